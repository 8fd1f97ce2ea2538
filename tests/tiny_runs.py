"""The tiny digits training the test files share: its settings, as config overrides and as CLI flags."""
from __future__ import annotations

from nbn_tutorial import train

TINY = ["dataset=digits-lt", "batch_size=64", "warmup_epochs=1", "milestones=[]", "lr_decay=[]", "lr=0.05",
        "device=cpu", "compile=off", "cpu_threads=1"]
TINY_ARGS = [arg for item in TINY for arg in ("--set", item)]
BN_RUN = ("epochs=1",)                  # the session's finished BN run (conftest.tiny_bn_run)
NBN_RUN = ("epochs=2", "norm=nbn")      # the session's finished NBN run (conftest.tiny_nbn_run)


def tiny_config(*overrides: str) -> train.Config:
    """The tiny digits config with `overrides` (KEY=VALUE) applied."""
    return train.load_config(None, [*TINY, *overrides])

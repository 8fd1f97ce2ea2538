"""Which data a checkpoint was trained on: its class names and a short fingerprint of its training set.

A checkpoint records both (``state["data"]``). Evaluation, ``init_from`` and stage 2 compare them with
the data they are given, so a model is never scored against, or fine-tuned on, classes that the same
labels mean something else for (a tree whose class 0 is another class, another class count), and a
stage-2 run re-balances exactly the stage-1 training set. A deliberate transfer passes with the config
key ``allow_other_data`` (``evaluate --allow-other-data``). Checkpoints of older versions record
nothing and are not checked. A resumed run must continue on the training set it started on.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from nbn_tutorial.errors import UserError

TRAIN_OVERRIDE = "set allow_other_data=true for a deliberate transfer"
EVALUATE_OVERRIDE = ("use data with the classes it was trained on, or pass --allow-other-data for a deliberate "
                     "transfer")
STAGE2_REMEDY = f"stage 2 re-balances the stage-1 training set, so use that data, or {TRAIN_OVERRIDE}"
RESUME_REMEDY = "resume it on the data it started on, or train a new run into another --out"


def fingerprint(dataset: Any) -> str:
    """Twelve hex digits identifying a split's samples: labels and relative image paths (file datasets) or
    the image bytes (in-memory datasets), so moving the data folder keeps it."""
    digest = hashlib.sha1(np.asarray(dataset.targets, dtype=np.int64).tobytes())
    samples = getattr(dataset, "samples", None)
    if samples is not None:
        root = Path(dataset.image_root)
        for path, _ in samples:
            digest.update(Path(path).relative_to(root).as_posix().encode("utf-8", "surrogateescape") + b"\n")
    else:
        digest.update(np.ascontiguousarray(dataset.images.cpu().numpy()).tobytes())
    return digest.hexdigest()[:12]


def data_identity(train_set: Any) -> dict[str, Any]:
    """What a checkpoint records about its training data: class names and the training split's fingerprint."""
    return {"classes": list(train_set.classes), "train_fingerprint": fingerprint(train_set)}


def _class_difference(recorded: list[str], classes: list[str]) -> str | None:
    """How two class lists differ, in words (None when they are the same)."""
    if len(recorded) != len(classes):
        return f"{len(recorded)} classes, this data {len(classes)}"
    for label, (old, new) in enumerate(zip(recorded, classes)):
        if old != new:
            return f"its class {label} is {old!r}, this data's class {label} is {new!r}"
    return None


def check_classes(state: dict, classes: list[str], what: str, override: str) -> None:
    """A UserError when the checkpoint ``state`` was trained on other class names or another class count."""
    recorded = (state.get("data") or {}).get("classes")
    difference = _class_difference(list(recorded), list(classes)) if recorded is not None else None
    if difference:
        raise UserError(f"{what} was trained on other classes ({difference}), so its labels would mean other "
                        f"classes here; {override}")


def check_training_set(state: dict, identity: dict[str, Any], what: str, remedy: str = STAGE2_REMEDY) -> None:
    """A UserError ending in ``remedy`` when the checkpoint ``state`` was trained on other classes or another
    training set than ``identity``'s."""
    check_classes(state, identity["classes"], what, remedy)
    recorded = (state.get("data") or {}).get("train_fingerprint")
    if recorded is not None and recorded != identity["train_fingerprint"]:
        raise UserError(f"{what} was trained on another training set (fingerprint {recorded}, this data's "
                        f"{identity['train_fingerprint']}: the list files or images changed); {remedy}")

"""Checkpoints: weights_only-loadable files with every random-number state, written atomically.

A checkpoint holds only tensors and plain Python values, so ``torch.load(path, weights_only=True)``
reads it; :data:`CHECKPOINT_FORMAT` marks this project's layout (see ``Trainer.state``).
"""
from __future__ import annotations

import io
import os
import random
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nbn_tutorial.errors import UserError
from nbn_tutorial.fileio import atomic_write_bytes
from nbn_tutorial.train.guards import nonfinite_entries

CHECKPOINT_FORMAT = 1


def rng_states(device: torch.device | None = None) -> dict:
    """Every global random state (and ``device``'s, if CUDA) as tensors and plain values (weights_only-safe)."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    version, python_state, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": [torch.cuda.get_rng_state(device)] if device is not None and device.type == "cuda" else [],
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(position),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": version, "state": torch.tensor(python_state, dtype=torch.int64),
                   "gauss_next": gauss_next},
    }


def set_rng_states(states: dict, device: torch.device | None = None) -> None:
    """Restore what :func:`rng_states` captured (the CUDA state onto ``device``)."""
    torch.set_rng_state(states["torch"])
    if states["cuda"] and device is not None and device.type == "cuda":
        torch.cuda.set_rng_state(states["cuda"][0], device)
    state = states["numpy"]
    np.random.set_state((state["kind"], state["keys"].numpy().astype(np.uint32), state["pos"], state["has_gauss"],
                         state["cached_gaussian"]))
    state = states["python"]
    random.setstate((state["version"], tuple(int(v) for v in state["state"].tolist()), state["gauss_next"]))


def read_checkpoint(path: str | os.PathLike) -> dict:
    """A checkpoint of this project, read with weights_only=True onto the CPU; UserError if missing or corrupt."""
    path = Path(path)
    if path.is_dir():
        inside = [name for name in ("last.pt", "best.pt") if (path / name).is_file()]
        hint = f", e.g. {str(path / inside[0])!r}" if inside else ""
        raise UserError(f"checkpoint {str(path)!r} is a folder; pass the best.pt or last.pt file of a run "
                        f"directory{hint}")
    if not path.is_file():
        raise UserError(f"checkpoint {str(path)!r} does not exist; pass the best.pt or last.pt of a run directory")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for damaged files (EOF, zip, unpickling)
        raise UserError(f"checkpoint {str(path)!r} is corrupt or not a PyTorch checkpoint ({_load_failure(error)}); "
                        "use another checkpoint or train again") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT or "model" not in state:
        raise UserError(f"checkpoint {str(path)!r} is not an nbn-tutorial training checkpoint (format "
                        f"{CHECKPOINT_FORMAT}); pass the best.pt or last.pt of a run directory")
    return state


def _load_failure(error: Exception) -> str:
    """Why torch.load failed, in a few words of our own (torch's texts run to several lines)."""
    if "Weights only load failed" in str(error):
        return "it holds Python objects besides tensors, which a weights-only load refuses"
    return "the file is cut short or damaged, or torch.save did not write it"   # EOF, zip, mmap and pickle errors


def _shape(tensor: Any) -> str:
    return "x".join(str(size) for size in tensor.shape) or "a scalar"


def state_mismatch(expected: Mapping[str, Any], stored: Mapping[str, Any]) -> str:
    """The first way a checkpoint's tensors ``stored`` differ from a model's ``expected`` ones, in words."""
    for key, value in expected.items():
        if key in stored and tuple(stored[key].shape) != tuple(value.shape):
            return f"{key} is {_shape(stored[key])} in the checkpoint and {_shape(value)} in the model"
    missing = [key for key in expected if key not in stored]
    extra = [key for key in stored if key not in expected]
    if missing:
        return f"the checkpoint lacks {', '.join(missing[:3])}" + (f" and {len(missing) - 3} more" if len(missing) > 3
                                                                   else "")
    if extra:
        return f"the checkpoint holds {', '.join(extra[:3])}, which the model has not"
    return "the tensors match"


def write_checkpoint(state: dict, paths: Iterable[str | os.PathLike]) -> None:
    """Serialise ``state`` once and write it atomically to each of ``paths`` (never a model holding nan or inf)."""
    bad = nonfinite_entries(state["model"])
    if bad:
        raise UserError(f"refusing to write a checkpoint whose model holds nan or inf ({', '.join(bad[:3])}); "
                        "lower the learning rate and train again")
    buffer = io.BytesIO()
    torch.save(state, buffer)
    payload = buffer.getvalue()
    for path in paths:
        atomic_write_bytes(path, payload)


def changed_tensors(before: str | os.PathLike, after: str | os.PathLike) -> Any:
    """How many tensors (parameters and buffers) of two checkpoints' models changed, by top-level module (``backbone``,
    ``head``, ...), kind (``weight``, ``running_mean``, ``nbn_alpha``, ...) and whether they changed; ``before`` and
    ``after`` are checkpoint files or run directories (their ``last.pt``)."""
    import pandas as pd   # deferred: the training engine does not need pandas

    states = [read_checkpoint(Path(path) / "last.pt" if Path(path).is_dir() else path)["model"]
              for path in (before, after)]
    rows = [{"tensor": key, "changed": key not in states[0] or not torch.equal(states[0][key], value)}
            for key, value in states[1].items()]
    table = pd.DataFrame(rows)
    names = table["tensor"].str
    return (table.assign(module=names.split(".").str[0], kind=names.rsplit(".", n=1).str[-1])
            .groupby(["module", "kind", "changed"], as_index=False).size().rename(columns={"size": "tensors"}))

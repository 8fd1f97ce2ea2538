"""Guards of a training run: an exploding loss stops it, a non-finite model is never checkpointed or evaluated,
unreadable images that were skipped are listed, and a config that cannot do what it says gets a note.

A loss of 1e25 is as useless as nan, and BN running variances can become infinite while the loss
still looks finite; both stop the run before a checkpoint of such a model is written, so "the last
good checkpoint" named in the message is always finite.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from nbn_tutorial.errors import UserError
from nbn_tutorial.fileio import atomic_write_text
from nbn_tutorial.train.progress import message_stream
from nbn_tutorial.wording import plural
from nbn_tutorial.train.schedule import learning_rate

SKIPPED_FILE = "skipped_images.txt"   # unreadable images a skip_bad_images run left out, one path per line
_RETRY = ("lower the learning rate (lr={lr:g}) or lengthen the warmup (warmup_epochs={warmup}), then train again "
          "with --overwrite")


def loss_ok(loss: Tensor, max_loss: float | None) -> Tensor:
    """A bool tensor: the loss is finite and, when ``max_loss`` is set, at most ``max_loss`` (no GPU sync)."""
    ok = torch.isfinite(loss)
    return ok if max_loss is None else ok & (loss <= max_loss)


def nonfinite_entries(state: Mapping[str, Tensor]) -> list[str]:
    """Names of the floating-point tensors of a state dict that hold nan or inf."""
    return [name for name, value in state.items()
            if torch.is_tensor(value) and value.is_floating_point() and not bool(torch.isfinite(value).all())]


def _names_text(names: list[str]) -> str:
    shown = ", ".join(names[:3])
    return shown + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def kept_text(run_dir: Path, replaces: Path | None) -> str:
    """What survives a stopped run: its last good checkpoint, or the previous run that --overwrite kept."""
    last = run_dir / "last.pt"
    if last.exists():
        return f"the last good checkpoint is {last}"
    if replaces is not None:
        return f"the previous run in {replaces} is kept unchanged (this run wrote no checkpoint)"
    return "no checkpoint was written yet"


def bad_loss_error(config, epoch: int, batch: int, batches: int, loss_sum: float, kept: str) -> UserError:
    """The sentence for a batch whose loss was nan, inf or above ``config.max_loss``."""
    if math.isfinite(loss_sum) and config.max_loss is not None:
        what = f"exceeded max_loss={config.max_loss:g} (an exploding run)"
    elif config.max_loss is not None:
        what = f"became nan or inf (or first exceeded max_loss={config.max_loss:g})"
    else:
        what = "became nan or inf"
    return UserError(f"the training loss {what} at epoch {epoch + 1}, batch {batch + 1} of {batches}, so training "
                     f"stopped and {kept}; " + _RETRY.format(lr=config.lr, warmup=config.warmup_epochs))


def check_finite_model(model: nn.Module, config, epochs_done: int, kept: str) -> None:
    """Stop a run whose parameters or buffers (e.g. BN running variances) hold nan or inf after an epoch."""
    bad = nonfinite_entries(model.state_dict())
    if bad:
        raise UserError(f"after epoch {epochs_done} the model holds nan or inf values ({_names_text(bad)}) although "
                        f"the loss looked finite, so it was not checkpointed and {kept}; "
                        + _RETRY.format(lr=config.lr, warmup=config.warmup_epochs))


EVALUATE_REMEDY = "evaluate another checkpoint, or train again with a lower lr"


def check_finite_checkpoint(state: Mapping, path: str | Path, remedy: str = EVALUATE_REMEDY) -> None:
    """Refuse a checkpoint whose model weights or buffers hold nan or inf (its predictions mean nothing);
    ``remedy`` is what the user can do where the checkpoint was given (evaluate, resume, init_from)."""
    bad = nonfinite_entries(state["model"])
    if bad:
        raise UserError(f"checkpoint {str(path)!r} holds nan or inf values ({_names_text(bad)}), so its "
                        f"predictions mean nothing; {remedy}")


def config_notes(config) -> list[str]:
    """Things a valid config does that its author may not expect (printed before training)."""
    notes = []
    if config.warmup_epochs > config.epochs:
        peak = max(learning_rate(config, epoch) for epoch in range(config.epochs))
        notes.append(f"warmup_epochs={config.warmup_epochs} is longer than the run ({config.epochs} epochs), so the "
                     f"learning rate never reaches lr={config.lr:g} (it peaks at {peak:.3g}); lower warmup_epochs "
                     "to warm up fully")
    return notes


def print_notes(notes: Iterable[str]) -> None:
    """Print each note where messages about a run go (stdout in a notebook kernel, stderr elsewhere)."""
    for note in notes:
        print(f"note: {note}", file=message_stream())


def record_skipped(loaders: Iterable, run_dir: Path, reported: set[str]) -> set[str]:
    """List the images the loaders skipped (skip_bad_images) in run_dir/skipped_images.txt; say when new ones
    appear. Returns every skipped path so far."""
    skipped = set(reported)
    for loader in loaders:
        skipped |= set(getattr(loader, "skipped", ()))
    new = skipped - reported
    if new:
        atomic_write_text(run_dir / SKIPPED_FILE, "".join(f"{path}\n" for path in sorted(skipped)))
        print(f"note: skipped {plural(len(new), 'unreadable image')} (skip_bad_images; first: "
              f"{sorted(new)[0]}); all {len(skipped)} are listed in {run_dir / SKIPPED_FILE}", file=message_stream())
    return skipped

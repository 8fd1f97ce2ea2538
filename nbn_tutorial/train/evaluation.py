"""Evaluating models: per-class counts over a loader, and the finished-run helpers (evaluate a
checkpoint, load a run's model)."""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from nbn_tutorial.data.specs import MissingFiles
from nbn_tutorial.errors import UserError
from nbn_tutorial.train.builders import build_datasets, build_loss_for, build_model_for
from nbn_tutorial.train.checkpoints import read_checkpoint, state_mismatch
from nbn_tutorial.train.config import Config
from nbn_tutorial.train.config_io import checkpoint_config
from nbn_tutorial.train.data_paths import relocate_data
from nbn_tutorial.train.guards import check_finite_checkpoint
from nbn_tutorial.train.identity import EVALUATE_OVERRIDE, check_classes
from nbn_tutorial.train.metric_files import accuracy_metrics
from nbn_tutorial.train.runtime import Runtime, cpu_threads, resolve_device, resolve_runtime
from nbn_tutorial.train.tau_norm import parse_tau, search_tau
from nbn_tutorial.models import tau_normalize
from nbn_tutorial.train.tau_norm import parse_tau
from nbn_tutorial import data
from nbn_tutorial import nn as nbn_nn


def evaluate_model(module: nn.Module, loader: Any, loss_fn: Any, num_classes: int, runtime: Runtime,
                   real_samples: int) -> tuple[Tensor, Tensor]:
    """Per-class (correct, total) counts of ``module`` over ``loader``'s first ``real_samples`` samples.

    Predictions use ``loss_fn.adjust_logits`` (post-hoc logit adjustment, identity for most losses).
    Counts are int64 tensors on the runtime device, not yet reduced across processes.
    """
    correct = torch.zeros(num_classes, dtype=torch.int64, device=runtime.device)
    total = torch.zeros_like(correct)
    seen = 0
    module.eval()
    with torch.inference_mode(), runtime.autocast():
        for x, y in loader:
            keep = min(len(y), real_samples - seen)
            seen += len(y)
            if keep <= 0:
                break
            if runtime.compile_mode == "reduce-overhead":
                torch.compiler.cudagraph_mark_step_begin()
            predictions = loss_fn.adjust_logits(module(x).float()).argmax(1)[:keep]
            y = y[:keep]
            total += torch.bincount(y, minlength=num_classes)
            correct += torch.bincount(y[predictions == y], minlength=num_classes)
    return correct, total


def alpha_values(model: nn.Module) -> list[float]:
    """The model's NBN alpha values ([] for a plain-BN model)."""
    return [float(alpha.detach()) for alpha in nbn_nn.alpha_parameters(model)]


def count_metrics(model: nn.Module, correct: Tensor, total: Tensor, shot_groups: dict) -> dict:
    """The metrics of one evaluation: accuracies from the (reduced) counts, and the model's alphas."""
    return {**accuracy_metrics(correct.cpu().numpy(), total.cpu().numpy(), shot_groups), "alpha": alpha_values(model)}


def _checkpoint_model(state: dict, path: str | os.PathLike, split: str = "test", *, data_root=None, list_dir=None,
                      skip_bad_images: bool = False, allow_other_data: bool = False) -> tuple[nn.Module, Config, Any]:
    """(model with the checkpoint's weights on CPU in eval mode, its config, the ``split`` dataset).

    The config's data root and list folder are relocated (see :func:`~.data_paths.relocate_data`);
    a checkpoint holding nan or inf is refused, and so is data whose classes differ from the ones the
    checkpoint was trained on (unless ``allow_other_data``).
    """
    check_finite_checkpoint(state, path)
    config = relocate_data(checkpoint_config(state, path), data_root, list_dir)
    if skip_bad_images:
        config = dataclasses.replace(config, skip_bad_images=True)
    try:
        dataset = build_datasets(config, (split,))[split]
    except MissingFiles as error:
        raise MissingFiles(f"{error}; if the data moved since this run trained, pass evaluate --data-root (or set "
                           "$NBN_DATA)") from None
    if not allow_other_data:
        check_classes(state, dataset.classes, f"checkpoint {str(path)!r}", EVALUATE_OVERRIDE)
    model = build_model_for(config, dataset)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError:
        raise UserError(f"checkpoint {str(path)!r} does not fit the model its config builds for this data "
                        f"({state_mismatch(model.state_dict(), state['model'])}); evaluate it on the data it was "
                        "trained on") from None
    return model.eval(), config, dataset


def evaluate_checkpoint(path: str | os.PathLike, *, split: str = "test", device: str = "auto", data_root=None,
                        list_dir=None, skip_bad_images: bool = False, tau_norm: str | float | None = None,
                        tau_split: str = "val", allow_other_data: bool = False) -> dict:
    """Rebuild the model stored in a checkpoint and evaluate it on ``split`` of its dataset.

    ``data_root``/``list_dir`` point at data that moved since training (default: where the run
    trained, else $NBN_DATA); ``skip_bad_images`` leaves unreadable images out (listed in
    ``skipped_images``). Returns the metrics (test_acc = overall accuracy on ``split``,
    balanced/many/medium/few, per-class, alpha) plus ``epoch``, ``split`` and ``checkpoint``.

    The data must have the classes the checkpoint was trained on; ``allow_other_data`` evaluates on other
    classes anyway (a deliberate transfer: label i is scored as the checkpoint's class i).

    ``tau_norm`` τ-normalises the classifier first (:func:`nbn_tutorial.models.tau_normalize`): a number,
    or ``"auto"`` to search τ on ``tau_split`` (val; ``test`` only when asked, and ``tau_note`` says so);
    the result then also holds ``tau``, ``tau_split`` and ``tau_note``.
    """
    if tau_norm is not None:
        tau_norm = parse_tau(tau_norm)   # a bad value is refused before anything is loaded
    state = read_checkpoint(path)
    model, config, dataset = _checkpoint_model(state, path, split, data_root=data_root, list_dir=list_dir,
                                               skip_bad_images=skip_bad_images, allow_other_data=allow_other_data)
    runtime = dataclasses.replace(resolve_runtime(config, resolve_device(device, option="--device ")),
                                  compile_mode=None)
    model = model.to(runtime.device)
    if runtime.channels_last:
        model = model.to(memory_format=torch.channels_last)
    tau_metrics: dict = {}
    if tau_norm is not None:
        with cpu_threads(config.cpu_threads):
            model, tau_metrics = _tau_normalized_model(model, config, tau_norm, runtime.device, tau_split)
    loss_fn = build_loss_for(config, dataset).to(runtime.device)
    loader = data.make_loader(dataset, batch_size=config.batch_size, train=False, device=runtime.device,
                              seed=config.seed, num_workers=config.num_workers, channels_last=runtime.channels_last)
    with cpu_threads(config.cpu_threads):
        correct, total = evaluate_model(model, loader, loss_fn, dataset.num_classes, runtime, len(dataset))
    metrics = count_metrics(model, correct, total, dataset.shot_groups)
    return {"epoch": state["epoch"], "split": split, "checkpoint": str(path), **metrics,
            "selected_on": selected_on(state, path), "skipped_images": sorted(getattr(loader, "skipped", ())),
            **tau_metrics}


def _tau_normalized_model(model: nn.Module, config: Config, tau_norm: str | float, device: torch.device,
                          tau_split: str = "val") -> tuple[nn.Module, dict]:
    """``model`` τ-normalised with a given τ or one searched by :func:`~.tau_norm.search_tau`, and what was done."""
    choice = parse_tau(tau_norm)
    if choice == "auto":
        search = search_tau(model, config, device=device, split=tau_split)
        tau, split, note = search.tau, search.split, search.note
    else:
        tau, split, note = float(choice), None, f"τ = {float(choice):g} as given"
    return tau_normalize(model, tau).eval(), {"tau": tau, "tau_split": split, "tau_note": note}


def selected_on(state: dict, path: str | os.PathLike) -> str | None:
    """The split a best checkpoint was selected on (``val`` or ``test``); None for a last checkpoint.

    Best checkpoints of older versions carry no split: they were always selected on the test split.
    """
    is_best = state.get("role") == "best" or ("role" not in state and Path(path).name == "best.pt")
    return state.get("best", {}).get("split") or "test" if is_best else None


def load_run(run_dir: str | os.PathLike, which: str = "last") -> tuple[nn.Module, Config]:
    """The model of a run directory (``which``: last or best checkpoint) on CPU in eval mode, and its config
    (its data root relocated to $NBN_DATA when the stored one no longer exists)."""
    if which not in ("best", "last"):
        raise UserError(f"which must be 'best' or 'last', got {which!r}")
    path = Path(run_dir) / f"{which}.pt"
    if which == "best" and not path.exists() and (Path(run_dir) / "last.pt").exists():
        raise UserError(f"{str(run_dir)!r} has no best.pt: it selected no best checkpoint because its dataset has no "
                        "val split (select_best_on=auto); use which='last', the run's result")
    model, config, _ = _checkpoint_model(read_checkpoint(path), path)
    return model, config

"""Evaluating models: per-class counts over a loader, and the finished-run helpers (evaluate a
checkpoint, load a run's model)."""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from nbn_tutorial.errors import UserError
from nbn_tutorial.train.builders import build_datasets, build_loss_for, build_model_for
from nbn_tutorial.train.checkpoints import checkpoint_config, read_checkpoint
from nbn_tutorial.train.config import Config
from nbn_tutorial.train.metric_files import accuracy_metrics
from nbn_tutorial.train.runtime import Runtime, cpu_threads, resolve_device, resolve_runtime


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
    from nbn_tutorial import nn as nbn_nn

    return [float(alpha.detach()) for alpha in nbn_nn.alpha_parameters(model)]


def count_metrics(model: nn.Module, correct: Tensor, total: Tensor, shot_groups: dict) -> dict:
    """The metrics of one evaluation: accuracies from the (reduced) counts, and the model's alphas."""
    return {**accuracy_metrics(correct.cpu().numpy(), total.cpu().numpy(), shot_groups), "alpha": alpha_values(model)}


def _checkpoint_model(state: dict, path: str | os.PathLike, split: str = "test") -> tuple[nn.Module, Config, Any]:
    """(model with the checkpoint's weights on CPU in eval mode, its config, the ``split`` dataset)."""
    config = checkpoint_config(state, path)
    dataset = build_datasets(config, (split,))[split]
    model = build_model_for(config, dataset)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as error:
        raise UserError(f"checkpoint {path} does not match its own config's model "
                        f"({str(error).splitlines()[0]})") from None
    return model.eval(), config, dataset


def evaluate_checkpoint(path: str | os.PathLike, *, split: str = "test", device: str = "auto") -> dict:
    """Rebuild the model stored in a checkpoint and evaluate it on ``split`` of its dataset.

    Returns the metrics (test_acc = overall accuracy on ``split``, balanced/many/medium/few, per-class,
    alpha) plus ``epoch``, ``split`` and ``checkpoint``.
    """
    from nbn_tutorial import data

    state = read_checkpoint(path)
    model, config, dataset = _checkpoint_model(state, path, split)
    runtime = dataclasses.replace(resolve_runtime(config, resolve_device(device)), compile_mode=None)
    model = model.to(runtime.device)
    if runtime.channels_last:
        model = model.to(memory_format=torch.channels_last)
    loss_fn = build_loss_for(config, dataset).to(runtime.device)
    loader = data.make_loader(dataset, batch_size=config.batch_size, train=False, device=runtime.device,
                              seed=config.seed, num_workers=config.num_workers, channels_last=runtime.channels_last)
    with cpu_threads(config.cpu_threads):
        correct, total = evaluate_model(model, loader, loss_fn, dataset.num_classes, runtime, len(dataset))
    metrics = count_metrics(model, correct, total, dataset.shot_groups)
    return {"epoch": state["epoch"], "split": split, "checkpoint": str(path), **metrics,
            "selected_on": selected_on(state, path)}


def selected_on(state: dict, path: str | os.PathLike) -> str | None:
    """The split a best checkpoint was selected on (``val`` or ``test``); None for a last checkpoint.

    Best checkpoints of older versions carry no split: they were always selected on the test split.
    """
    is_best = state.get("role") == "best" or ("role" not in state and Path(path).name == "best.pt")
    return state.get("best", {}).get("split") or "test" if is_best else None


def load_run(run_dir: str | os.PathLike, which: str = "last") -> tuple[nn.Module, Config]:
    """The model of a run directory (``which``: last or best checkpoint) on CPU in eval mode, and its config."""
    if which not in ("best", "last"):
        raise UserError(f"which must be 'best' or 'last', got {which!r}")
    path = Path(run_dir) / f"{which}.pt"
    if which == "best" and not path.exists() and (Path(run_dir) / "last.pt").exists():
        raise UserError(f"{str(run_dir)!r} has no best.pt: it selected no best checkpoint because its dataset has no "
                        "val split (select_best_on=auto); use which='last', the run's result")
    model, config, _ = _checkpoint_model(read_checkpoint(path), path)
    return model, config

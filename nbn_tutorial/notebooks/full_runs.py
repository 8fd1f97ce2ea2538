"""Notebook 05's plumbing: paper-protocol runs over presets and seeds, planned, trained here or launched with
torchrun, then gathered (:func:`nbn_tutorial.train.gather_runs`; mean ± std in :mod:`nbn_tutorial.study.seeds`).

The tables are saved as :data:`SEED_RUNS` and :data:`SEED_TABLE` in the run directory for the report.
"""
from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from nbn_tutorial import train
from nbn_tutorial.fileio import atomic_write_text
from nbn_tutorial.notebooks.runs import run_config, run_path
from nbn_tutorial.wording import Summary, plural

SEED_TABLE = "seed_table"        # notebook 05's mean ± std table (.csv/.md) in the run directory
SEED_RUNS = "seed_runs"          # notebook 05's per-run table (.csv/.md)
LAUNCH_SCRIPT = "torchrun_commands.sh"   # notebook 05's launch commands, in the run directory


@dataclass(frozen=True)
class PlannedRun:
    """One (preset, seed) run of notebook 05: its config and run directory."""

    preset: str
    seed: int
    config: Any
    path: Path
    overrides: dict

    @property
    def status(self) -> str:
        """finished, partial (can resume) or new."""
        if not (self.path / "metrics.jsonl").exists():
            return "new"
        done = train.epochs_done(self.path)
        return "finished" if done >= self.config.epochs else f"partial ({done}/{self.config.epochs} epochs)"


def plan_runs(presets: Sequence[str], seeds: Sequence[int], run_dir: str | Path, *, epochs: int | None = None,
              device: str | None = None, data_root: str | None = None) -> list[PlannedRun]:
    """Every (preset, seed) run with the notebook's overrides; run directories via :func:`run_path`."""
    plan = []
    for preset in presets:
        for seed in seeds:
            overrides = {key: value for key, value in {"epochs": epochs, "device": device, "data_root": data_root,
                                                       "seed": seed}.items() if value is not None}
            config = run_config(preset, **overrides)
            plan.append(PlannedRun(preset, int(seed), config, run_path(run_dir, config), overrides))
    return plan


def plan_table(plan: Sequence[PlannedRun]) -> pd.DataFrame:
    """The plan as a table: preset, seed, epochs, status and run directory name."""
    return pd.DataFrame([{"preset": run.preset, "seed": run.seed, "epochs": run.config.epochs, "status": run.status,
                          "run": run.path.name} for run in plan])


def launch_commands(plan: Sequence[PlannedRun], gpus: int = 1) -> str:
    """Shell commands that train the plan outside the notebook: one process, or torchrun over `gpus` GPUs."""
    launcher = (f"torchrun --nproc-per-node {gpus} -m nbn_tutorial" if gpus > 1 else "nbn-tutorial")
    lines = []
    for run in plan:
        sets = " ".join(f"--set {shlex.quote(f'{key}={value}')}" for key, value in run.overrides.items())
        resume = " --resume" if run.status.startswith("partial") else ""
        lines.append(f"{launcher} train --config {run.preset} {sets} --out {shlex.quote(str(run.path))}{resume}")
    return "\n".join(lines)


def write_launch_script(plan: Sequence[PlannedRun], run_dir: str | Path, gpus: int) -> Path:
    """Write :func:`launch_commands` as a shell script into the run directory (:data:`LAUNCH_SCRIPT`); returns it."""
    text = f"#!/usr/bin/env bash\n# notebook 05's plan, one torchrun job over {gpus} GPUs per run\n"
    return atomic_write_text(Path(run_dir) / LAUNCH_SCRIPT, text + launch_commands(plan, gpus=gpus) + "\n")


def preset_table() -> pd.DataFrame:
    """The training presets in configs/ as a table: name, dataset, model, norm, loss and epochs."""
    rows = []
    for name in train.list_presets():
        config = train.load_config(name)
        rows.append({"preset": name, "dataset": config.dataset, "model": config.model, "norm": config.norm,
                     "loss": config.loss, "epochs": config.epochs})
    return pd.DataFrame(rows).set_index("preset")


def train_plan(plan: Sequence[PlannedRun], *, train_here: bool = True, progress: bool = True) -> list[Path]:
    """Train (or resume, or reuse) every planned run in this process when `train_here`; returns the runs that exist."""
    if train_here:
        for run in plan:
            train.load_or_train(run.config, run.path, progress=progress)
    return [run.path for run in plan if (run.path / "metrics.jsonl").exists()]


def gpu_plan_note(plan: Sequence[PlannedRun], run_dir: str | Path, gpus: int, train_here: bool = True) -> Summary:
    """What the plan does on this machine, and what would run with torchrun on ``gpus`` GPUs instead.

    With several GPUs here the launch commands are the output; otherwise one sentence says what trains
    in this kernel and one example command stands for the script written into the run directory.
    """
    script = write_launch_script(plan, run_dir, gpus)
    here = torch.cuda.device_count()
    todo = [run for run in plan if run.status != "finished"]
    if here >= 2:
        return Summary(f"This machine has {here} GPUs. Run these commands in a terminal (also in `{script}`), one "
                       f"after another, then re-run this notebook with `train_here = False` to gather the results:"
                       f"\n\n```\n{launch_commands(plan, gpus=min(gpus, here))}\n```")
    device = "one GPU" if here == 1 else "no GPU"
    if not todo:
        action = "the next cell only gathers them"
    elif train_here:
        action = f"the next cell trains the {plural(len(todo), 'unfinished one')} here, one after another"
    else:
        action = "`train_here = True` would train the unfinished ones here, one after another"
    example = launch_commands(plan[:1], gpus=gpus) if plan else ""
    finished = len(plan) - len(todo)
    return Summary(f"This machine has {device}, so nothing here runs with torchrun: {finished} of the {len(plan)} "
                   f"planned runs {'is' if finished == 1 else 'are'} finished and {action}. On a machine with {gpus} "
                   f"GPUs, each run would instead be one `torchrun` job with one process per GPU (DDP, the batch split "
                   f"over the processes); the {len(plan)} commands are in `{script}`, the first one is"
                   f"\n\n```\n{example}\n```")

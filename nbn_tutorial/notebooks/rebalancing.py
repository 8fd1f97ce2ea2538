"""Notebook 07's plumbing: train (or reuse) a stage-2 preset on each stage-1 run, and where its table and
sentences are saved for the report. What re-balancing computes is :mod:`nbn_tutorial.train.rebalancing`'s."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nbn_tutorial import train
from nbn_tutorial.notebooks.runs import run_path

REBALANCING_TABLE = "rebalancing"            # <run_dir>/rebalancing.{csv,md}: the notebook's one table
REBALANCING_SUMMARY = "rebalancing_summary"  # <run_dir>/rebalancing_summary.md: its computed conclusions


def train_stage2(preset: str, stage1_configs: Mapping[str, Any], stage1_runs: Mapping[str, Path], run_dir: str | Path,
                 *, epochs: int | None = None, progress: bool = True) -> dict[str, Path]:
    """Train (or reuse) the stage-2 preset on every stage-1 run ({"BN": run, "NBN": run}); returns the runs."""
    runs = {}
    for name, run in stage1_runs.items():
        config = train.stage2_config(preset, stage1_configs[name], run, epochs=epochs)
        runs[name] = train.load_or_train(config, run_path(run_dir, config), progress=progress)
    return runs

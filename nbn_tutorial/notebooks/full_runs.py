"""Notebook 05: paper-protocol runs over presets and seeds, planned, trained (or launched) and gathered.

The gathered table (:func:`gather_results`) has one row per run; :func:`results_table` turns it into
mean ± std over seeds, saved as :data:`SEED_TABLE` and :data:`SEED_RUNS` for the report.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nbn_tutorial.fileio import atomic_write_text, read_yaml_mapping
from nbn_tutorial.notebooks.runs import ACCURACY_COLUMNS, final_metrics, run_config, run_path
from nbn_tutorial.notebooks.tables import mean_std_rows, percent

SEED_TABLE = "seed_table"        # notebook 05's mean ± std table (.csv/.md) in the run directory
SEED_RUNS = "seed_runs"          # notebook 05's per-run table (.csv/.md)
RUN_COLUMNS = ("dataset", "model", "norm", "head", "loss", "epochs", "seed")
SETTING_COLUMNS = ("dataset", "model", "head", "loss", "epochs")   # what stays fixed over seeds and norms
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
        from nbn_tutorial import train

        if not (self.path / "metrics.jsonl").exists():
            return "new"
        done = int(train.read_metrics(self.path).iloc[-1]["epoch"])
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


def plan_table(plan: Sequence[PlannedRun]) -> Any:
    """The plan as a table: preset, seed, epochs, status and run directory name."""
    import pandas as pd

    return pd.DataFrame([{"preset": run.preset, "seed": run.seed, "epochs": run.config.epochs, "status": run.status,
                          "run": run.path.name} for run in plan])


def launch_commands(plan: Sequence[PlannedRun], gpus: int = 1) -> str:
    """Shell commands that train the plan outside the notebook: one process, or torchrun over `gpus` GPUs."""
    import shlex

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


def preset_table() -> Any:
    """The training presets in configs/ as a table: name, dataset, model, norm, loss and epochs."""
    import pandas as pd

    from nbn_tutorial import train

    rows = []
    for name in train.list_presets():
        config = train.load_config(name)
        rows.append({"preset": name, "dataset": config.dataset, "model": config.model, "norm": config.norm,
                     "loss": config.loss, "epochs": config.epochs})
    return pd.DataFrame(rows).set_index("preset")


def train_plan(plan: Sequence[PlannedRun], *, train_here: bool = True, progress: bool = True) -> list[Path]:
    """Train (or resume, or reuse) every planned run in this process when `train_here`; returns the runs that exist."""
    from nbn_tutorial import train

    if train_here:
        for run in plan:
            train.load_or_train(run.config, run.path, progress=progress)
    return [run.path for run in plan if (run.path / "metrics.jsonl").exists()]


def gather_results(run_dirs: Iterable[str | Path]) -> Any:
    """One row per run directory: its config's key fields, epochs done and final accuracies in percent."""
    import pandas as pd

    from nbn_tutorial import train

    rows = []
    for run in run_dirs:
        config = read_yaml_mapping(Path(run) / "config.yaml", "run config")
        metrics = train.read_metrics(run)
        rows.append({**{key: config[key] for key in RUN_COLUMNS}, "epochs_done": int(metrics.iloc[-1]["epoch"]),
                     **{key: percent(value) for key, value in final_metrics(run).items()}, "run": Path(run).name})
    return pd.DataFrame(rows, columns=[*RUN_COLUMNS, "epochs_done", *ACCURACY_COLUMNS, "run"])


def results_table(results) -> Any:
    """Mean ± std over seeds (percent) per setting and norm, from :func:`gather_results`."""
    import pandas as pd

    rows, columns = mean_std_rows(results.to_dict("records"), [*SETTING_COLUMNS, "norm"], list(ACCURACY_COLUMNS))
    return pd.DataFrame(rows, columns=columns)


def mean_accuracy_table(results) -> Any:
    """Mean accuracies over seeds as fractions, one row per setting and norm, for plots.plot_group_comparison."""
    from nbn_tutorial import diagnosis

    means = results.groupby([*SETTING_COLUMNS, "norm"], sort=False)[list(ACCURACY_COLUMNS)].mean()
    labels = {key: " ".join(str(part) for part in (key[0], key[3], key[5])) for key in means.index}
    return diagnosis.group_table({labels[key]: (row / 100).to_dict() for key, row in means.iterrows()})

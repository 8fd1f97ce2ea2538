"""Training runs as the notebooks see them: a preset with the notebook's parameters, where its run lives,
its final accuracies, and a finished run opened for diagnosis.
"""
from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nbn_tutorial.accuracy import SHOT_NAMES
from nbn_tutorial.notebooks.helpers import record_result
from nbn_tutorial.notebooks.tables import percent
from nbn_tutorial.paths import project_path
from nbn_tutorial.wording import plural

GROUP_METRICS = ("overall", *SHOT_NAMES)   # the accuracies the notebooks compare between runs
ACCURACY_COLUMNS = ("overall", "balanced", *SHOT_NAMES)   # what final_metrics returns, in this order
_METRIC_COLUMNS = {name: "test_acc" if name == "overall" else f"{name}_acc" for name in ACCURACY_COLUMNS}


def run_config(preset: str, *, dataset: str | None = None, imbalance_factor: float | None = None,
               epochs: int | None = None, seed: int | None = None, device: str | None = None,
               data_root: str | None = None, **fields: Any):
    """A training Config: a configs/ preset with the notebook's parameters applied (None keeps the preset's).

    The data root (argument, else $NBN_DATA, else data/) counts from the project root when relative.
    """
    from nbn_tutorial import data, train

    overrides = {"dataset": dataset, "imbalance_factor": imbalance_factor, "epochs": epochs, "seed": seed,
                 "device": device, **fields}
    values = train.config_to_dict(train.load_config(preset))
    values.update({key: value for key, value in overrides.items() if value is not None})
    values["data_root"] = str(project_path(data.resolve_data_root(data_root if data_root is not None
                                                                    else values["data_root"])))
    return train.config_from_dict(values, f"preset {preset!r} with the notebook's parameters")


def config_digest(config) -> str:
    """Eight hex digits identifying what a config computes (run-control fields such as data_root excluded)."""
    from nbn_tutorial import train

    values = train.config_to_dict(train.resolve_dataset_defaults(config))
    protocol = {key: value for key, value in values.items() if key not in train.RUN_CONTROL_FIELDS}
    return hashlib.sha1(json.dumps(protocol, sort_keys=True, default=str).encode()).hexdigest()[:8]


def run_path(run_dir: str | Path, config) -> Path:
    """Where a config's training run lives inside a notebook run directory.

    The name (dataset_model_norm_loss_seedN-<digest>) depends only on what the config computes, so
    every notebook that trains the same config finds the same checkpoint: 05 reuses 02's and 04's runs.
    """
    from nbn_tutorial import train

    return Path(run_dir) / f"{train.default_run_dir(config).name}-{config_digest(config)}"


def final_metrics(run: str | Path) -> dict[str, float]:
    """Accuracies (fractions) after a run's last evaluated epoch: overall, balanced, many, medium, few."""
    from nbn_tutorial import train

    last = train.read_metrics(run).iloc[-1]
    return {name: math.nan if last[column] is None else float(last[column]) for name, column in _METRIC_COLUMNS.items()}


def results_frame(results: Mapping[str, Mapping[str, float]], digits: int = 1) -> Any:
    """Recorded results for people: one row per label, accuracies in percent rounded to ``digits`` decimals."""
    import pandas as pd

    frame = pd.DataFrame.from_dict({label: dict(values) for label, values in results.items()}, orient="index")
    frame = frame.round(digits).rename(columns=lambda name: f"{name} (%)")
    frame.index.name = "model"
    frame.columns.name = "test accuracy"
    return frame


def record_run(run_dir: str | Path, label: str, run: str | Path) -> Any:
    """Record a training run's final accuracies (percent) under `label` in the run directory's results.json;
    returns every recorded result as a rounded, labelled table (:func:`results_frame`)."""
    accuracies = {key: percent(value) for key, value in final_metrics(run).items()}
    return results_frame(record_result(run_dir, label, accuracies))


@dataclass
class RunView:
    """A finished run opened for diagnosis: last-epoch model, config, test split and model outputs."""

    path: Path
    model: Any
    config: Any
    test: Any
    outputs: Any

    @property
    def groups(self) -> dict:
        """The test split's shot groups (many/medium/few class indices)."""
        return self.test.shot_groups


def open_run(run: str | Path) -> RunView:
    """Load a run's last checkpoint (the epoch the metrics end with) and compute its test-set outputs."""
    from nbn_tutorial import diagnosis, train

    model, config = train.load_run(run, which="last")
    test = train.build_datasets(config, ("test",))["test"]
    return RunView(Path(run), model, config, test, diagnosis.collect_outputs(model, test))


def describe_model(model) -> str:
    """Parameter count and normalization layers of a model (deterministic text)."""
    import torch

    from nbn_tutorial import nn as nbn_nn

    parameters = sum(p.numel() for p in model.parameters())
    batchnorms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    nbn = nbn_nn.nbn_layers(model)
    alphas = nbn_nn.alpha_parameters(model)
    lines = [f"{type(model).__name__} ({getattr(model, 'arch', '?')}): {parameters:,} parameters, "
             f"{len(batchnorms)} BatchNorm layers, {len(nbn)} of them NBN"]
    if nbn:
        lines.append(f"NBN layers: {', '.join(name for name, _ in nbn)}")
        lines.append(f"learnable α: {plural(len(alphas), 'scalar parameter')}")
    compound = nbn_nn.compound_layers(model)
    if compound:
        components = sorted({layer.num_components for _, layer in compound})
        lines.append(f"Compound BN layers ({'/'.join(map(str, components))} components): "
                     f"{', '.join(name for name, _ in compound)}")
    return "\n".join(lines)

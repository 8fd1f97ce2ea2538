"""Training runs as the notebooks handle them: a preset with the notebook's parameters, where its run lives, its
results recorded for the report, a finished run opened for diagnosis, and a model described.

Plumbing only: what a run computes is :mod:`nbn_tutorial.train`'s, what it shows is :mod:`nbn_tutorial.diagnosis`'s.
"""
from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from nbn_tutorial import data, diagnosis, train
from nbn_tutorial import nn as nbn_nn
from nbn_tutorial.accuracy import GROUP_METRICS
from nbn_tutorial.notebooks.helpers import record_result
from nbn_tutorial.paths import project_path
from nbn_tutorial.wording import percent, plural

__all__ = ["GROUP_METRICS", "RunView", "config_digest", "describe_model", "open_run", "record_run", "results_frame",
           "ride_config", "run_config", "run_path"]


def run_config(preset: str, *, dataset: str | None = None, imbalance_factor: float | None = None,
               epochs: int | None = None, seed: int | None = None, device: str | None = None,
               data_root: str | None = None, **fields: Any) -> train.Config:
    """A training Config: a configs/ preset with the notebook's parameters applied (None keeps the preset's).

    The data root (argument, else $NBN_DATA, else data/) counts from the project root when relative.
    """
    overrides = {"dataset": dataset, "imbalance_factor": imbalance_factor, "epochs": epochs, "seed": seed,
                 "device": device, **fields}
    values = train.config_to_dict(train.load_config(preset))
    values.update({key: value for key, value in overrides.items() if value is not None})
    values["data_root"] = str(project_path(data.resolve_data_root(data_root if data_root is not None
                                                                    else values["data_root"])))
    return train.config_from_dict(values, f"preset {preset!r} with the notebook's parameters")


def ride_config(preset: str, *, norm: str, epochs: int | None = None, **parameters: Any) -> train.Config:
    """A RIDE preset with the notebook's parameters; with fewer ``epochs`` its DRW epoch keeps its share of training
    (RIDE re-weights from epoch 160 of 200: the quick preset from 24 of 30)."""
    fields = {}
    if epochs is not None:
        base = train.load_config(preset)
        fields["drw_epoch"] = round(base.drw_epoch * epochs / base.epochs)
    return run_config(preset, norm=norm, epochs=epochs, **parameters, **fields)


def config_digest(config: train.Config) -> str:
    """Eight hex digits identifying what a config computes (run-control fields such as data_root excluded)."""
    values = train.config_to_dict(train.resolve_dataset_defaults(config))
    former = {new: old for old, new in train.LEGACY_KEYS.items()}   # renamed keys hash under their old names, so
    protocol = {former.get(key, key): value for key, value in values.items()   # runs made before keep their folder
                if key not in train.RUN_CONTROL_FIELDS}
    return hashlib.sha1(json.dumps(protocol, sort_keys=True, default=str).encode()).hexdigest()[:8]


def run_path(run_dir: str | Path, config: train.Config) -> Path:
    """Where a config's training run lives inside a notebook run directory.

    The name (dataset_model_norm_loss_seedN-<digest>) depends only on what the config computes, so
    every notebook that trains the same config finds the same checkpoint: 05 reuses 02's and 04's runs.
    """
    return Path(run_dir) / f"{train.default_run_dir(config).name}-{config_digest(config)}"


def results_frame(results: Mapping[str, Mapping[str, float]], digits: int = 1) -> Any:
    """Recorded results for people: one row per label, accuracies in percent rounded to ``digits`` decimals."""
    frame = pd.DataFrame.from_dict({label: dict(values) for label, values in results.items()}, orient="index")
    frame = frame.round(digits).rename(columns=lambda name: f"{name} (%)")
    frame.index.name = "model"
    frame.columns.name = "test accuracy"
    return frame


def record_run(run_dir: str | Path, label: str, run: str | Path) -> Any:
    """Record a training run's final accuracies (percent) under `label` in the run directory's results.json;
    returns every recorded result as a rounded, labelled table (:func:`results_frame`)."""
    accuracies = {key: percent(value) for key, value in train.final_metrics(run).items()}
    return results_frame(record_result(run_dir, label, accuracies))


@dataclass
class RunView:
    """A finished run opened for diagnosis: last-epoch model, config, test split, and (computed when first asked
    for) the model's outputs on the test split."""

    path: Path
    model: Any
    config: Any
    test: Any

    @functools.cached_property
    def outputs(self) -> diagnosis.ModelOutputs:
        """The model's outputs on every test image (logits, features, last-stage activations)."""
        return diagnosis.collect_outputs(self.model, self.test)

    @property
    def groups(self) -> dict:
        """The test split's shot groups (many/medium/few class indices)."""
        return self.test.shot_groups


def open_run(run: str | Path) -> RunView:
    """A run's last checkpoint (the epoch the metrics end with) with its test split, ready for diagnosis."""
    model, config = train.load_run(run, which="last")
    return RunView(Path(run), model, config, train.build_datasets(config, ("test",))["test"])


def describe_model(model: Any) -> str:
    """Parameter count and normalization layers of a model (deterministic text)."""
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

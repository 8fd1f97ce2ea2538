"""The training configs that notebook parameters imply, built and validated before any notebook runs.

A parameter can have the right type and still make a bad training config (``imbalance_factor: 0.5``,
a preset name that does not exist, ``epochs: 0``). The notebooks would only find out when they reach
their training cell, minutes (or, in a sweep, whole sets) later. :func:`check_training_configs`
builds the same configs the notebooks build, with the same helpers, and fails at once.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from nbn_tutorial.errors import UserError
from nbn_tutorial.notebooks.full_runs import plan_runs
from nbn_tutorial.notebooks.profiles import notebook_parameters
from nbn_tutorial.notebooks.runs import ride_config, run_config
from nbn_tutorial.train import CONFIG_FIELDS, stage2_config

_PLAN_KEYS = ("epochs", "device", "data_root")   # what notebook 05 passes to plan_runs besides presets and seeds
NOTEBOOK_FIELDS = {"nbn_where": "norm_where"}    # notebook parameter -> the config key it sets (04's and 07's NBN run)


def _config_fields(values: Mapping[str, Any], leave_out: tuple[str, ...] = ("norm",)) -> dict[str, Any]:
    """The notebook parameters that are config fields, under their config keys (``leave_out`` left out)."""
    fields = {NOTEBOOK_FIELDS.get(key, key): value for key, value in values.items()}
    return {key: value for key, value in fields.items() if key in CONFIG_FIELDS and key not in leave_out}


def _single_run_configs(values: Mapping[str, Any]) -> Iterator[Any]:
    """The configs a notebook with a `config` parameter trains: the preset with its fields, as BN and as NBN."""
    fields = _config_fields(values)
    for norm in ("bn", "nbn"):
        yield run_config(values["config"], norm=norm, **fields)


def _rebalancing_configs(values: Mapping[str, Any]) -> Iterator[Any]:
    """The configs notebook 07 trains besides its stage-1 runs: cRT and LWS on each of them, RIDE as BN and NBN."""
    fields = _config_fields(values)
    ride_fields = _config_fields(values, ("norm", "epochs", "norm_where", "alpha_init"))
    for norm in ("bn", "nbn"):
        stage1 = run_config(values["config"], norm=norm, **fields)
        for preset in (values["crt_preset"], values["lws_preset"]):
            yield stage2_config(preset, stage1, Path("stage1-run"), epochs=values.get("stage2_epochs"))
        yield ride_config(values["ride_preset"], norm=norm, epochs=values.get("ride_epochs"), **ride_fields)


def _planned_configs(values: Mapping[str, Any]) -> Iterator[Any]:
    """The configs a notebook with `configs` and `seeds` plans (notebook 05)."""
    options = {key: values.get(key) for key in _PLAN_KEYS}
    for run in plan_runs(values["configs"], values.get("seeds") or [0], Path("."), **options):
        yield run.config


def check_training_configs(shares: Mapping[Path, Mapping[str, Any]]) -> int:
    """Build every training config the notebooks would build from their parameters (defaults filled in);
    a UserError naming the notebook for the first invalid one. Returns how many configs were checked."""
    checked = 0
    for path, share in shares.items():
        values = {**notebook_parameters(path), **share}
        builders = ([_single_run_configs] if "config" in values else []) + \
                   ([_planned_configs] if "configs" in values else []) + \
                   ([_rebalancing_configs] if "ride_preset" in values else [])
        for build in builders:
            try:
                checked += sum(1 for _ in build(values))
            except UserError as error:
                raise UserError(f"{path.name} would train an invalid config: {error}") from None
    return checked

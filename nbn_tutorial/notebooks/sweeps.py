"""Sweeps: a grid of parameter sets, each run as a notebook sequence in its own directory, then summarised.

A sweep YAML names a base profile, fixed parameter overrides, a grid and optionally a notebook
selection. A set counts as finished when its marker file exists (written after its last notebook
succeeded), so re-running an interrupted sweep continues where it stopped.
"""
from __future__ import annotations

import csv
import io
import itertools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbn_tutorial.errors import UserError
from nbn_tutorial.fileio import atomic_write_json, atomic_write_text, read_json, read_yaml_mapping
from nbn_tutorial.notebooks.helpers import read_results
from nbn_tutorial.notebooks.implied import check_training_configs
from nbn_tutorial.notebooks.manifest import read_manifest
from nbn_tutorial.notebooks.profiles import (DEFAULT_PROFILE, ParameterSource, check_parameters, combine_sources,
                                             load_profile, select_notebooks, sequence_of)
from nbn_tutorial.notebooks.runner import RUN_DIR_PARAMETER, execute_sequence
from nbn_tutorial.notebooks.tables import markdown_table
from nbn_tutorial.study.seeds import mean_std_rows
from nbn_tutorial.registry import check_choice

DONE_MARKER = "sweep_set_done.json"
SWEEP_KEYS = ("profile", "parameters", "grid", "only", "out")


@dataclass(frozen=True)
class Sweep:
    """A sweep definition: base profile, fixed parameter overrides, a grid, a notebook selection."""

    name: str
    profile: str
    parameters: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    only: list[str] | None = None
    out: str | None = None


def _check_keys(content: Mapping[str, Any], path: Path) -> None:
    """A UserError naming the sweep file unless every key is one of :data:`SWEEP_KEYS`."""
    for key in sorted(content):
        try:
            check_choice("key", key, SWEEP_KEYS)
        except UserError as error:
            raise UserError(f"sweep file {path}: {error}") from None


def load_sweep(path: str | Path) -> Sweep:
    """Read a sweep YAML: `profile`, optional `parameters`, `grid` (name -> list of values), `only`, `out`."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"sweep file {path} does not exist; see notebooks/params/sweep_example.yaml")
    content = read_yaml_mapping(path, "sweep file")
    _check_keys(content, path)
    grid = content.get("grid") or {}
    if not isinstance(grid, dict) or not grid or not all(isinstance(v, list) and v for v in grid.values()):
        raise UserError(f"sweep file {path} needs a `grid` mapping each parameter to a non-empty list of values")
    parameters = content.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise UserError(f"`parameters` in sweep file {path} must be a mapping of parameter names to values")
    if RUN_DIR_PARAMETER in grid or RUN_DIR_PARAMETER in parameters:
        raise UserError(f"sweep file {path} must not set run_dir: every set gets its own run directory")
    only = content.get("only")
    return Sweep(name=path.stem, profile=str(content.get("profile", DEFAULT_PROFILE)), parameters=parameters,
                 grid=grid, only=[str(item) for item in only] if only is not None else None, out=content.get("out"))


def sweep_sets(sweep: Sweep) -> list[dict[str, Any]]:
    """The grid's parameter sets (cartesian product, first grid key varying slowest)."""
    keys = list(sweep.grid)
    return [dict(zip(keys, values)) for values in itertools.product(*sweep.grid.values())]


def set_name(values: Mapping[str, Any]) -> str:
    """Directory name of a sweep set, derived from its grid values: "dataset=digits-lt_seed=0"."""
    parts = [f"{key}={value}" for key, value in values.items()]
    return re.sub(r"[^\w.=+-]+", "-", "_".join(parts))


def _finished(set_dir: Path, parameters: Mapping[str, Any], notebooks: Sequence[Path]) -> bool:
    marker = set_dir / DONE_MARKER
    if not marker.exists():
        return False
    done = read_json(marker, "sweep set marker")
    wanted = {"parameters": dict(parameters), "notebooks": [p.name for p in notebooks]}
    if {key: done.get(key) for key in wanted} != json.loads(json.dumps(wanted, default=str)):
        raise UserError(f"sweep set {set_dir} was finished with other parameters or notebooks; delete that "
                        f"directory or choose another --out to run the edited sweep")
    return True


def _overrides(sweep: Sweep, sources: Sequence[ParameterSource]) -> dict[str, Any]:
    """Fixed parameters from -f files and -p values, in order; a UserError for a grid parameter or run_dir."""
    overrides, _ = combine_sources(sources, base=None)
    for name in overrides:
        if name in sweep.grid or name == RUN_DIR_PARAMETER:
            what = "a grid parameter of the sweep; edit its grid" if name in sweep.grid else "set per parameter set"
            raise UserError(f"parameter {name!r} cannot be overridden for sweep {sweep.name}: it is {what}")
    return overrides


def run_sweep(path: str | Path, out_dir: str | Path | None = None, *, progress: bool = True,
              notebook_dir: str | Path | None = None, sources: Sequence[ParameterSource] = ()) -> Path:
    """Run every parameter set of a sweep into its own directory, skipping finished sets; returns summary.md.

    `sources` (parameter files and single values, as the CLI's -f and -p give them) override the
    sweep's fixed parameters for every set, in order; grid parameters cannot be overridden.
    """
    sweep = load_sweep(path)
    base = {**load_profile(sweep.profile), **sweep.parameters, **_overrides(sweep, sources)}
    notebooks = select_notebooks(sweep.only, notebook_dir)
    out = Path(out_dir or sweep.out or Path("runs") / f"sweep-{sweep.name}")
    sets = sweep_sets(sweep)
    for values in sets:  # validate every set, and the training configs it implies, before running any
        shares = check_parameters({**base, **values}, sequence_of(notebooks))
        try:
            check_training_configs({path: shares[path] for path in notebooks})
        except UserError as error:
            raise UserError(f"sweep set {set_name(values)}: {error}") from None
    for position, values in enumerate(sets, start=1):
        set_dir = out / set_name(values)
        parameters = {**base, **values}
        if _finished(set_dir, parameters, notebooks):
            if progress:
                print(f"sweep set {position}/{len(sets)} {set_dir.name}: finished earlier, skipped", flush=True)
            continue
        if progress:
            print(f"sweep set {position}/{len(sets)} {set_dir.name}", flush=True)
        execute_sequence(parameters, notebooks, set_dir, label=f"{sweep.name}/{set_dir.name}", progress=progress,
                         fresh_hint="delete that folder, or choose another --out to run the edited sweep")
        atomic_write_json(set_dir / DONE_MARKER, {"parameters": parameters, "notebooks": [p.name for p in notebooks],
                                                  "grid": values})
    return write_sweep_summary(out, sets)


def sweep_rows(out: Path, sets: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per finished set and recorded result label: grid values, label, metrics."""
    rows = []
    for values in sets:
        run_dir = Path(read_manifest(out / set_name(values))["run_dir"])
        for label, metrics in read_results(run_dir).items():
            rows.append({**values, "model": label, **metrics})
    return rows


def _numeric_column(rows: Sequence[Mapping[str, Any]], column: str) -> bool:
    values = [row.get(column) for row in rows]
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values if v is not None)


def _csv_text(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """Rows as CSV text with a header line (the csv module's default \\r\\n line ends)."""
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue()


def write_sweep_summary(out: Path, sets: Sequence[Mapping[str, Any]]) -> Path:
    """Write summary.csv and summary.md across the sweep's sets; returns the markdown path."""
    rows = sweep_rows(out, sets)
    columns = list(dict.fromkeys(key for row in rows for key in row))
    atomic_write_text(out / "summary.csv", _csv_text(rows, columns))
    lines = [f"# Sweep summary ({len(sets)} parameter sets)", "", markdown_table(rows, columns)]
    grid_keys = list(sets[0]) if sets else []
    if "seed" in grid_keys and rows:
        group_keys = [key for key in grid_keys if key != "seed"] + ["model"]
        metrics = [c for c in columns if c not in grid_keys and c != "model" and _numeric_column(rows, c)]
        lines += ["", "## Mean ± std over seeds", "", markdown_table(*mean_std_rows(rows, group_keys, metrics))]
    return atomic_write_text(out / "summary.md", "\n".join(lines) + "\n")

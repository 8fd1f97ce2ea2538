"""The notebook sequence: papermill runner, parameter profiles, sweeps, the demo report, notebook helpers.

`run_sequence` executes notebooks/01..05 in order in a kernel of the current interpreter, passing one
`run_dir` so later notebooks reuse earlier checkpoints. Parameters come from a profile in
notebooks/params/ (or any YAML file). A parameter name is accepted when at least one notebook of
the sequence declares it in its cell tagged `parameters` (so a profile written for all five also
works with `only`); any other name is an error, and each selected notebook receives only the
parameters it declares. `run_sweep` runs a grid of parameter sets, skipping finished ones.

The remaining functions are what the notebooks call so that they hold no logic themselves: run
directory resolution, recording results, figures for the report and sentences computed from numbers.
"""
from __future__ import annotations

import ast
import csv
import difflib
import itertools
import json
import math
import os
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from nbn_tutorial.errors import UserError

PROJECT_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = PROJECT_ROOT / "notebooks"
PARAMS_DIR = NOTEBOOK_DIR / "params"
DEFAULT_PROFILE = "quick"
SWEEP_PREFIX = "sweep_"          # notebooks/params/sweep_*.yaml are sweep definitions, not profiles
RUN_SUBDIR = "run"               # <out>/run is the run directory shared by the sequence
MANIFEST_FILE = "sequence.json"  # what run_sequence ran, written into <out>
RESULTS_FILE = "results.json"    # {label: {metric: percent}} recorded by the notebooks into the run directory
FIGURES_SUBDIR = "figures"
FIGURE_INDEX = "index.json"
DONE_MARKER = "sweep_set_done.json"
SEED_TABLE = "seed_table"        # notebook 05's mean ± std table (.csv/.md) in the run directory
SEED_RUNS = "seed_runs"          # notebook 05's per-run table (.csv/.md)
RUN_DIR_PARAMETER = "run_dir"
KERNEL_ENV = {"TQDM_MININTERVAL": "30"}  # tqdm reads TQDM_* defaults: one progress update per 30 s at most
NOTEBOOK_NAME = re.compile(r"^(\d\d)_\w+\.ipynb$")
GROUP_METRICS = ("overall", "many", "medium", "few")


# --------------------------------------------------------------------------------------------
# Profiles and parameters
# --------------------------------------------------------------------------------------------

def list_profiles() -> list[str]:
    """Names of the parameter profiles in notebooks/params/ (sweep_*.yaml files excluded)."""
    return sorted(p.stem for p in PARAMS_DIR.glob("*.yaml") if not p.stem.startswith(SWEEP_PREFIX))


def _read_yaml_mapping(path: Path, what: str) -> dict[str, Any]:
    try:
        content = yaml.safe_load(path.read_text())
    except OSError as error:
        raise UserError(f"cannot read {what} {path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise UserError(f"{what} {path} is not valid YAML: {str(error).splitlines()[0]}") from None
    if content is None:
        return {}
    if not isinstance(content, dict) or not all(isinstance(key, str) for key in content):
        raise UserError(f"{what} {path} must be a YAML mapping of parameter names to values")
    return content


def load_profile(name_or_path: str | Path) -> dict[str, Any]:
    """Parameters of a profile: a name from `list_profiles()` or the path of a YAML file."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise UserError(f"parameter file {path} does not exist; give an existing YAML file")
        return _read_yaml_mapping(path, "parameter file")
    name = str(name_or_path)
    if name not in list_profiles():
        raise UserError(f"unknown profile '{name}'; available profiles: {', '.join(list_profiles())} "
                        f"(or pass a YAML file)")
    return _read_yaml_mapping(PARAMS_DIR / f"{name}.yaml", "profile")


def _parameters_cell_source(notebook) -> str | None:
    for cell in notebook.cells:
        if cell.cell_type == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            return cell.source
    return None


def _read_notebook(path: Path):
    import nbformat

    try:
        return nbformat.read(str(path), as_version=4)
    except OSError as error:
        raise UserError(f"cannot read notebook {path}: {error.strerror}") from None


def notebook_parameters(path: str | Path) -> dict[str, Any]:
    """Declared parameters of a notebook and their defaults, from its cell tagged `parameters`.

    The cell may hold only assignments of literals to plain names (comments allowed).
    """
    path = Path(path)
    source = _parameters_cell_source(_read_notebook(path))
    if source is None:
        raise UserError(f"notebook {path.name} has no code cell tagged 'parameters'; tag one in JupyterLab "
                        f"(property inspector) so papermill can set its parameters")
    try:
        statements = ast.parse(source).body
    except SyntaxError as error:
        raise UserError(f"the parameters cell of {path.name} is not valid Python (line {error.lineno}: "
                        f"{error.msg})") from None
    declared: dict[str, Any] = {}
    for statement in statements:
        target = statement.targets[0] if isinstance(statement, ast.Assign) and len(statement.targets) == 1 else None
        if not isinstance(target, ast.Name):
            raise UserError(f"the parameters cell of {path.name} may hold only `name = literal` lines, "
                            f"line {statement.lineno} is not one")
        try:
            declared[target.id] = ast.literal_eval(statement.value)
        except ValueError:
            raise UserError(f"parameter '{target.id}' in {path.name} must be a literal (number, string, "
                            f"list, dict, True/False/None), line {statement.lineno} is not") from None
    return declared


def discover_notebooks(notebook_dir: str | Path | None = None) -> dict[str, Path]:
    """The numbered notebooks of a directory, {"01": path, ...}, in sequence order."""
    folder = Path(notebook_dir) if notebook_dir is not None else NOTEBOOK_DIR
    found = {}
    for path in sorted(folder.glob("*.ipynb")):
        match = NOTEBOOK_NAME.match(path.name)
        if match:
            found[match.group(1)] = path
    if not found:
        raise UserError(f"no numbered notebooks (01_name.ipynb, ...) in {folder}; run from a clone of the "
                        f"repository or pass the notebooks directory")
    return found


def select_notebooks(only: Sequence[str] | str | None = None, notebook_dir: str | Path | None = None) -> list[Path]:
    """The notebooks to run, in sequence order; `only` holds ids such as "01" or "3" (None: all)."""
    available = discover_notebooks(notebook_dir)
    if only is None:
        return list(available.values())
    requested = only.split(",") if isinstance(only, str) else list(only)
    wanted = set()
    for item in requested:
        text = str(item).strip()
        key = text.zfill(2) if text.isdigit() else text[:2]
        if key not in available or not (text.isdigit() or available[key].name.startswith(text)):
            raise UserError(f"unknown notebook '{text}' in --only; valid ids: {', '.join(available)}")
        wanted.add(key)
    if not wanted:
        raise UserError(f"--only selects no notebook; valid ids: {', '.join(available)}")
    return [path for key, path in available.items() if key in wanted]


def _type_name(value: Any) -> str:
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string", list: "a list",
            dict: "a mapping"}.get(type(value), type(value).__name__)


def _fits_default(value: Any, default: Any) -> bool:
    # String defaults are often sentinels of union-typed options ("auto", "official" or a number),
    # so only numbers, booleans, lists and mappings are checked.
    if value is None or default is None or isinstance(default, str):
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, (int, float)):
        return isinstance(value, (int, float)) and (isinstance(default, float) or isinstance(value, int))
    return isinstance(value, type(default))


def check_parameters(parameters: Mapping[str, Any], notebooks: Sequence[Path]) -> dict[Path, dict[str, Any]]:
    """Validate parameters against the notebooks' parameters cells; returns each notebook's own share.

    A name is valid when at least one of `notebooks` declares it; a value must have the type of a
    numeric, boolean, list or mapping default (an int is fine for a float; None always fits).
    """
    declared = {path: notebook_parameters(path) for path in notebooks}
    known = sorted(set().union(*declared.values()))
    names = ", ".join(path.name for path in notebooks)
    for name in parameters:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise UserError(f"unknown parameter '{name}'{hint}: no notebook of {names} declares it; "
                            f"declared parameters: {', '.join(known)}")
    for path, defaults in declared.items():
        for name, default in defaults.items():
            if name in parameters and not _fits_default(parameters[name], default):
                raise UserError(f"parameter '{name}' of {path.name} must be {_type_name(default)} like its "
                                f"default {default!r}, got {parameters[name]!r}")
    return {path: {k: v for k, v in parameters.items() if k in defaults} for path, defaults in declared.items()}


# --------------------------------------------------------------------------------------------
# Execution
# --------------------------------------------------------------------------------------------

def _kernel_manager_class():
    """A kernel manager that always starts ipykernel in this interpreter (no kernelspec lookup)."""
    from ipykernel.kernelspec import get_kernel_dict
    from jupyter_client import AsyncKernelManager
    from jupyter_client.kernelspec import KernelSpec
    from traitlets import default

    class CurrentInterpreterKernelManager(AsyncKernelManager):
        """Starts `python -m ipykernel_launcher` with this interpreter; never looks up a kernelspec."""

        @default("transport")
        def _local_sockets(self) -> str:
            # Unix sockets keep the kernel off the network (and ipykernel quiet about plain TCP).
            return "ipc" if os.name == "posix" else "tcp"

        @property
        def kernel_spec(self) -> KernelSpec:
            """ipykernel's own kernel.json for sys.executable, built in memory."""
            # argv starts with sys.executable; KERNEL_ENV keeps progress bars from flooding executed copies
            return KernelSpec(**get_kernel_dict(), env=KERNEL_ENV)

        async def _async_interrupt_kernel(self) -> None:
            # Papermill shuts the kernel down once no cell runs; the interrupt jupyter_client sends
            # first would only make ipykernel log a KeyboardInterrupt error on the terminal.
            if not self.shutting_down:
                await super()._async_interrupt_kernel()

    return CurrentInterpreterKernelManager


def _sequence_of(notebooks: Sequence[Path]) -> list[Path]:
    """All numbered notebooks of the directories the selected notebooks come from."""
    folders = dict.fromkeys(path.parent for path in notebooks)
    return [path for folder in folders for path in discover_notebooks(folder).values()]


def run_notebook(source: str | Path, target: str | Path, parameters: Mapping[str, Any] | None = None, *,
                 progress: bool = True, cell_timeout: int | None = None) -> Path:
    """Execute one notebook with papermill into `target` (kept on failure); errors name notebook and cell."""
    import papermill
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    source, target = Path(source), Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        papermill.execute_notebook(str(source), str(target), parameters=dict(parameters or {}), kernel_name="python3",
                                   language="python", progress_bar=progress, execution_timeout=cell_timeout,
                                   kernel_manager_class=_kernel_manager_class())
    except papermill.PapermillExecutionError as error:
        message = (error.evalue or "").strip().splitlines()
        detail = f"{error.ename}: {message[0]}" if message else error.ename
        raise UserError(f"notebook {source.name} failed in cell {error.exec_count}: {detail} "
                        f"(executed copy with the traceback: {target})") from None
    except CellTimeoutError:
        raise UserError(f"notebook {source.name} timed out: a cell ran longer than {cell_timeout} s "
                        f"(executed copy: {target})") from None
    except DeadKernelError:
        raise UserError(f"notebook {source.name} failed: its kernel died, often from running out of memory "
                        f"(executed copy: {target})") from None
    return target


def _profile_label(profile: str | None, params_file: str | Path | None) -> str:
    if params_file is not None:
        return Path(params_file).stem
    return Path(profile).stem if profile else DEFAULT_PROFILE


def _write_json(path: Path, content: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(json.dumps(content, indent=2, default=str) + "\n")
    temporary.replace(path)


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def _execute(parameters: Mapping[str, Any], notebooks: Sequence[Path], out: Path, *, label: str,
             progress: bool) -> Path:
    """Validate, then run the notebooks in order into `out` with one shared run directory.

    Parameters are checked against every notebook of the sequence, not only the selected ones, so a
    profile written for the whole sequence also works with --only.
    """
    out.mkdir(parents=True, exist_ok=True)
    run_dir = Path(parameters.get(RUN_DIR_PARAMETER) or out / RUN_SUBDIR).resolve()
    shares = _shares_with_run_dir(parameters, notebooks, run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    manifest = {"profile": label, "parameters": dict(parameters), "run_dir": str(run_dir),
                "notebooks": [path.name for path in notebooks], "seconds": {}}
    _write_json(out / MANIFEST_FILE, manifest)
    for position, path in enumerate(notebooks, start=1):
        if progress:
            print(f"[{position}/{len(notebooks)}] {path.name}", flush=True)
        started = time.perf_counter()
        run_notebook(path, out / path.name, shares[path], progress=progress)
        manifest["seconds"][path.name] = round(time.perf_counter() - started, 1)
        _write_json(out / MANIFEST_FILE, manifest)
        if progress:
            print(f"      done in {manifest['seconds'][path.name]:.0f} s -> {out / path.name}", flush=True)
    return out


def run_sequence(profile: str | None = None, params_file: str | Path | None = None, out_dir: str | Path | None = None,
                 only: Sequence[str] | str | None = None, progress: bool = True,
                 notebook_dir: str | Path | None = None) -> Path:
    """Execute the notebooks in order with a profile's parameters; returns the output directory.

    The output directory receives the executed notebooks, `sequence.json` and the run directory
    `run/` (unless the parameters name a `run_dir`, taken relative to the current directory).
    Default output: runs/<profile name>.
    """
    if profile is not None and params_file is not None:
        raise UserError("give either a profile or a parameter file, not both")
    parameters = load_profile(params_file if params_file is not None else profile or DEFAULT_PROFILE)
    label = _profile_label(profile, params_file)
    notebooks = select_notebooks(only, notebook_dir)
    out = Path(out_dir) if out_dir is not None else Path("runs") / label
    return _execute(parameters, notebooks, out, label=label, progress=progress)


def _shares_with_run_dir(parameters: Mapping[str, Any], notebooks: Sequence[Path],
                         run_dir: Path) -> dict[Path, dict[str, Any]]:
    shares = check_parameters(parameters, _sequence_of(notebooks))
    return {path: {**shares[path], **({RUN_DIR_PARAMETER: str(run_dir)} if RUN_DIR_PARAMETER in
                                      notebook_parameters(path) else {})} for path in notebooks}


def prepare_notebooks(out_dir: str | Path, profile: str | Path = DEFAULT_PROFILE, *,
                      only: Sequence[str] | str | None = None, notebook_dir: str | Path | None = None) -> list[Path]:
    """Write the notebooks with a profile's parameters injected but not executed (papermill --prepare-only).

    The stored outputs of the NBVAL_CHECK_OUTPUT cells stay and those cells get an execution count
    (nbval compares only cells it considers run; committed notebooks carry no counts), so
    `pytest --nbval-lax` on the result checks them against a fresh run. Run directory: <out_dir>/run.
    """
    import nbformat
    import papermill

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    notebooks = select_notebooks(only, notebook_dir)
    shares = _shares_with_run_dir(load_profile(profile), notebooks, (out / RUN_SUBDIR).resolve())
    for path in notebooks:
        target = out / path.name
        prepared = papermill.execute_notebook(str(path), None, parameters=shares[path], prepare_only=True,
                                              kernel_name="python3", language="python", progress_bar=False)
        for number, cell in enumerate(prepared.cells, start=1):
            if _is_checked(cell) and cell.outputs:
                cell.execution_count = number
        nbformat.write(prepared, str(target))
    return [out / path.name for path in notebooks]


CHECK_OUTPUT_MARKER = "# NBVAL_CHECK_OUTPUT"


def _is_checked(cell) -> bool:
    return cell.cell_type == "code" and CHECK_OUTPUT_MARKER in cell.source


def clean_notebook(notebook, executed=None):
    """The committed form of a notebook: no execution counts or run metadata; outputs only on
    NBVAL_CHECK_OUTPUT cells (taken from `executed`, the same notebook run by papermill, when given)."""
    executed_cells = {cell.get("id"): cell for cell in executed.cells} if executed is not None else {}
    for cell in notebook.cells:
        cell.metadata = {"tags": cell.metadata["tags"]} if cell.metadata.get("tags") else {}
        if cell.cell_type != "code":
            continue
        cell.execution_count = None
        source = executed_cells.get(cell.get("id"), cell) if _is_checked(cell) else None
        cell.outputs = [output for output in source.outputs if output.output_type == "stream"] if source else []
    notebook.metadata = {key: notebook.metadata[key] for key in ("kernelspec", "language_info")
                         if key in notebook.metadata}
    return notebook


def clean_notebooks(outputs_from: str | Path | None = None, notebook_dir: str | Path | None = None) -> list[Path]:
    """Rewrite the notebooks in their committed form; returns the files that changed.

    With `outputs_from` (an executed sequence such as runs/demo) the NBVAL_CHECK_OUTPUT cells take
    their outputs from it; otherwise they keep the stored ones.
    """
    import nbformat

    changed = []
    for path in discover_notebooks(notebook_dir).values():
        executed_path = Path(outputs_from) / path.name if outputs_from is not None else None
        executed = _read_notebook(executed_path) if executed_path is not None and executed_path.exists() else None
        before = path.read_text()
        cleaned = clean_notebook(_read_notebook(path), executed)
        after = nbformat.writes(cleaned) + "\n"
        if after != before:
            path.write_text(after)
            changed.append(path)
    return changed


# --------------------------------------------------------------------------------------------
# Sweeps
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Sweep:
    """A sweep definition: base profile, fixed parameter overrides, a grid, a notebook selection."""

    name: str
    profile: str
    parameters: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    only: list[str] | None = None
    out: str | None = None


SWEEP_KEYS = ("profile", "parameters", "grid", "only", "out")


def load_sweep(path: str | Path) -> Sweep:
    """Read a sweep YAML: `profile`, optional `parameters`, `grid` (name -> list of values), `only`, `out`."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"sweep file {path} does not exist; see notebooks/params/sweep_example.yaml")
    content = _read_yaml_mapping(path, "sweep file")
    extra = sorted(set(content) - set(SWEEP_KEYS))
    if extra:
        raise UserError(f"sweep file {path} has unknown key '{extra[0]}'; allowed keys: {', '.join(SWEEP_KEYS)}")
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
    done = _read_json(marker)
    wanted = {"parameters": dict(parameters), "notebooks": [p.name for p in notebooks]}
    if {key: done.get(key) for key in wanted} != json.loads(json.dumps(wanted, default=str)):
        raise UserError(f"sweep set {set_dir} was finished with other parameters or notebooks; delete that "
                        f"directory or choose another --out to run the edited sweep")
    return True


def run_sweep(path: str | Path, out_dir: str | Path | None = None, *, progress: bool = True,
              notebook_dir: str | Path | None = None) -> Path:
    """Run every parameter set of a sweep into its own directory, skipping finished sets; returns summary.md.

    A set counts as finished when its marker file exists (written after its last notebook succeeded),
    so re-running an interrupted sweep continues where it stopped.
    """
    sweep = load_sweep(path)
    base = {**load_profile(sweep.profile), **sweep.parameters}
    notebooks = select_notebooks(sweep.only, notebook_dir)
    out = Path(out_dir or sweep.out or Path("runs") / f"sweep-{sweep.name}")
    sets = sweep_sets(sweep)
    for values in sets:  # validate every set before running any
        check_parameters({**base, **values}, _sequence_of(notebooks))
    for position, values in enumerate(sets, start=1):
        set_dir = out / set_name(values)
        parameters = {**base, **values}
        if _finished(set_dir, parameters, notebooks):
            if progress:
                print(f"sweep set {position}/{len(sets)} {set_dir.name}: finished earlier, skipped", flush=True)
            continue
        if progress:
            print(f"sweep set {position}/{len(sets)} {set_dir.name}", flush=True)
        _execute(parameters, notebooks, set_dir, label=f"{sweep.name}/{set_dir.name}", progress=progress)
        _write_json(set_dir / DONE_MARKER, {"parameters": parameters, "notebooks": [p.name for p in notebooks],
                                            "grid": values})
    return write_sweep_summary(out, sets)


def sweep_rows(out: Path, sets: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per finished set and recorded result label: grid values, label, metrics."""
    rows = []
    for values in sets:
        run_dir = Path(_read_json(out / set_name(values) / MANIFEST_FILE)["run_dir"])
        for label, metrics in read_results(run_dir).items():
            rows.append({**values, "model": label, **metrics})
    return rows


def write_sweep_summary(out: Path, sets: Sequence[Mapping[str, Any]]) -> Path:
    """Write summary.csv and summary.md across the sweep's sets; returns the markdown path."""
    rows = sweep_rows(out, sets)
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with open(out / "summary.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    lines = [f"# Sweep summary ({len(sets)} parameter sets)", "", markdown_table(rows, columns)]
    grid_keys = list(sets[0]) if sets else []
    if "seed" in grid_keys and rows:
        group_keys = [key for key in grid_keys if key != "seed"] + ["model"]
        metrics = [c for c in columns if c not in grid_keys and c != "model" and _numeric_column(rows, c)]
        lines += ["", "## Mean ± std over seeds", "", markdown_table(*mean_std_rows(rows, group_keys, metrics))]
    summary = out / "summary.md"
    summary.write_text("\n".join(lines) + "\n")
    return summary


def _numeric_column(rows: Sequence[Mapping[str, Any]], column: str) -> bool:
    values = [row.get(column) for row in rows]
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values if v is not None)


def mean_std_rows(rows: Sequence[Mapping[str, Any]], group_keys: Sequence[str],
                  metrics: Sequence[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """Group rows by `group_keys`; each metric becomes "mean ± std (n)" text; returns (rows, columns)."""
    groups: dict[tuple, list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row.get(key) for key in group_keys), []).append(row)
    table = []
    for key, members in groups.items():
        entry: dict[str, Any] = dict(zip(group_keys, key))
        entry["seeds"] = len(members)
        for metric in metrics:
            values = [float(m[metric]) for m in members if m.get(metric) is not None]
            entry[metric] = format_mean_std(values)
        table.append(entry)
    return table, [*group_keys, "seeds", *metrics]


def format_mean_std(values: Sequence[float], digits: int = 1) -> str:
    """"mean ± std" of values (sample std; just the value for a single one; "n/a" for none)."""
    if not values:
        return "n/a"
    mean = sum(values) / len(values)
    if len(values) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {_sample_std(values):.{digits}f}"


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    """A GitHub markdown table of rows (floats with one decimal)."""
    columns = list(columns) if columns is not None else list(dict.fromkeys(k for row in rows for k in row))

    def cell(value: Any) -> str:
        """One table cell as text."""
        if isinstance(value, float):
            return f"{value:.1f}"
        return "" if value is None else str(value).replace("|", "\\|")

    lines = ["| " + " | ".join(columns) + " |", "| " + " | ".join("---" for _ in columns) + " |"]
    lines += ["| " + " | ".join(cell(row.get(column)) for column in columns) + " |" for row in rows]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Helpers the notebooks call
# --------------------------------------------------------------------------------------------

def project_path(path: str | Path) -> Path:
    """An absolute path; relative paths count from the project root (the clone holding notebooks/).

    JupyterLab runs notebooks in notebooks/, papermill in the current directory: anchoring relative
    paths at the project root makes both find the same checkpoints and data. Outside a source
    checkout they count from the current directory.
    """
    path = Path(path).expanduser()
    if path.is_absolute():
        return path
    base = PROJECT_ROOT if (PROJECT_ROOT / "pyproject.toml").exists() else Path.cwd()
    return base / path


def setup(run_dir: str | Path) -> Path:
    """A notebook's first call: show figures inline as PNG and return the resolved, created run directory.

    nbn_tutorial.plots builds figures without pyplot, so IPython needs its inline backend activated
    to draw a Figure left as a cell's last expression.
    """
    try:
        from IPython import get_ipython
    except ImportError:
        get_ipython = None
    shell = get_ipython() if get_ipython is not None else None
    if shell is not None and hasattr(shell, "kernel"):
        shell.run_line_magic("matplotlib", "inline")
    return resolve_run_dir(run_dir)


def resolve_run_dir(run_dir: str | Path) -> Path:
    """The notebooks' run directory as an absolute path (created); see :func:`project_path`."""
    path = project_path(run_dir)
    path.mkdir(parents=True, exist_ok=True)
    return path


def record_result(run_dir: str | Path, label: str, metrics: Mapping[str, float]) -> dict[str, dict[str, float]]:
    """Store one model's metrics under `label` in the run directory's results.json; returns all results."""
    path = Path(run_dir) / RESULTS_FILE
    results = _read_json(path) if path.exists() else {}
    results[label] = {key: float(value) for key, value in metrics.items()}
    _write_json(path, results)
    return results


def read_results(run_dir: str | Path) -> dict[str, dict[str, float]]:
    """The results recorded in a run directory ({} when none were recorded)."""
    path = Path(run_dir) / RESULTS_FILE
    return _read_json(path) if path.exists() else {}


def save_figure(figure, run_dir: str | Path, name: str, caption: str):
    """Save a figure as run_dir/figures/<name>.png for the report and return it for display."""
    folder = Path(run_dir) / FIGURES_SUBDIR
    folder.mkdir(parents=True, exist_ok=True)
    figure.savefig(folder / f"{name}.png", dpi=110, bbox_inches="tight")
    index_path = folder / FIGURE_INDEX
    index = _read_json(index_path) if index_path.exists() else {}
    index[name] = caption
    _write_json(index_path, index)
    return figure


def change_sentence(subject: str, quantity: str, before: float, after: float, *, unit: str = "%") -> str:
    """A sentence stating how `quantity` moved from `before` to `after` (numbers in percent)."""
    delta = after - before
    values = f"({before:.1f}{unit} → {after:.1f}{unit})"
    if round(abs(delta), 1) == 0:
        return f"{subject} left {quantity} unchanged {values}."
    verb = "improved" if delta > 0 else "lowered"
    return f"{subject} {verb} {quantity} by {abs(delta):.1f} points {values}."


class Summary(str):
    """Text computed from a run; a notebook shows it as Markdown, elsewhere it is a plain string."""

    def _repr_markdown_(self) -> str:
        return str(self)


def _percent(fraction: float | None) -> float:
    return math.nan if fraction is None else 100.0 * float(fraction)


# ---- training runs ---------------------------------------------------------------------------

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
    import hashlib

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
    columns = {"overall": "test_acc", "balanced": "balanced_acc", "many": "many_acc", "medium": "medium_acc",
               "few": "few_acc"}
    return {name: math.nan if last[column] is None else float(last[column]) for name, column in columns.items()}


def record_run(run_dir: str | Path, label: str, run: str | Path) -> dict[str, dict[str, float]]:
    """Record a training run's final accuracies (in percent) under `label` in the run directory's results.json."""
    return record_result(run_dir, label, {key: _percent(value) for key, value in final_metrics(run).items()})


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
        lines.append(f"learnable α: {len(alphas)} scalar parameter{'s' * (len(alphas) != 1)}")
    return "\n".join(lines)


# ---- notebook 01: long-tailed data -------------------------------------------------------------

def longtail_counts_table(num_classes: int = 10, max_per_class: int = 5000,
                          imbalance_factors: Sequence[float] = (10, 50, 100),
                          profiles: Sequence[str] = ("exp", "step")):
    """Per-class train counts of the LDAM-DRW formula for several profiles and imbalance factors, with totals."""
    import pandas as pd

    from nbn_tutorial import data

    columns = {f"{profile} IF={factor:g}": data.longtail_counts(num_classes, max_per_class, factor, profile)
               for profile in profiles for factor in imbalance_factors}
    table = pd.DataFrame(columns)
    table.index.name = "class"
    table.loc["total"] = table.sum()
    return table


def benchmark_shot_groups(imbalance_factor: float = 100) -> Any:
    """Classes per many/medium/few group of CIFAR-10-LT and CIFAR-100-LT (absolute rule, formula counts)."""
    import pandas as pd

    from nbn_tutorial import data

    rows = {}
    for name in ("cifar10-lt", "cifar100-lt"):
        spec = data.DATASETS[name]
        counts = data.longtail_counts(spec.num_classes, spec.balanced_train_per_class, imbalance_factor, "exp")
        groups = data.shot_groups(counts, rule=spec.shot_rule)
        rows[f"{name} IF={imbalance_factor:g}"] = {group: len(groups[group]) for group in data.SHOT_NAMES}
    return pd.DataFrame.from_dict(rows, orient="index")


def split_table(train_split, test_split) -> Any:
    """Per-class table of the data the notebooks use: name, train and test images, shot group."""
    import pandas as pd

    from nbn_tutorial import diagnosis

    groups = diagnosis.class_groups(train_split.shot_groups, train_split.num_classes)
    table = pd.DataFrame({"name": train_split.classes, "train": train_split.class_counts,
                          "test": test_split.class_counts, "group": groups})
    table.index.name = "class"
    return table


def describe_split(train_split, test_split) -> Summary:
    """Sentences about a long-tailed split, computed from its counts."""
    counts = train_split.class_counts
    groups = train_split.shot_groups
    total = int(counts.sum())
    shares = ", ".join(f"{name} {len(members)} classes / {100 * counts[members].sum() / total:.0f}% of the images"
                       for name, members in groups.items())
    test_counts = test_split.class_counts
    test_text = (f"The test split is balanced: {int(test_counts[0])} images per class."
                 if test_counts.min() == test_counts.max()
                 else f"The test split has {int(test_counts.min())} to {int(test_counts.max())} images per class.")
    return Summary(f"The training split of **{train_split.spec.name}** has {total} images in "
                   f"{train_split.num_classes} classes, from {int(counts.max())} images in the largest class down "
                   f"to {int(counts.min())} in the smallest (measured imbalance factor "
                   f"{counts.max() / counts.min():.1f}). Shot groups ({train_split.spec.shot_rule} rule): "
                   f"{shares}. {test_text}")


# ---- notebooks 02-04: summaries ------------------------------------------------------------------

def baseline_summary(run: str | Path) -> Summary:
    """Sentences about a baseline run: overall accuracy and the many/few gap, from its final metrics."""
    from nbn_tutorial import train

    metrics = {key: _percent(value) for key, value in final_metrics(run).items()}
    epochs = int(train.read_metrics(run).iloc[-1]["epoch"])
    gap = metrics["many"] - metrics["few"]
    if gap > 0:
        gap_text = f"few-shot classes trail many-shot classes by {gap:.1f} points"
    elif gap < 0:
        gap_text = f"few-shot classes lead many-shot classes by {-gap:.1f} points, unusual for a long tail"
    else:
        gap_text = "few-shot and many-shot classes are equally accurate"
    return Summary(f"After {epochs} epochs the BN baseline reaches {metrics['overall']:.1f}% overall and "
                   f"{metrics['balanced']:.1f}% balanced accuracy; many-shot {metrics['many']:.1f}%, medium-shot "
                   f"{metrics['medium']:.1f}%, few-shot {metrics['few']:.1f}%: {gap_text}.")


def _ratio_text(what: str, few: float, many: float) -> str:
    if not (math.isfinite(few) and math.isfinite(many)) or many == 0:
        return f"{what}: not measurable (a group is empty)."
    ratio = few / many
    direction = "weaker" if ratio < 1 else "stronger"
    size = f"{abs(1 - ratio) * 100:.0f}% {direction}" if round(ratio, 2) != 1 else "as strong"
    return f"{what} of few-shot classes are {size} than those of many-shot classes ({few:.3g} vs {many:.3g})."


def bias_summary(strength_table, channel_summary_table, norm_table) -> Summary:
    """Sentences on the feature bias: feature strength, class-specific channels and classifier norms by group."""
    from nbn_tutorial import diagnosis

    feature = diagnosis.summarize_by_group(strength_table, "strength")
    channels = channel_summary_table["mean_strength"]
    owned = channel_summary_table["channels_per_class"]
    norms = diagnosis.summarize_by_group(norm_table, "weight_norm")
    sentences = [
        _ratio_text("Penultimate features", feature["few"], feature["many"]),
        _ratio_text("Class-specific last-stage channels", channels["few"], channels["many"]),
        f"Each few-shot class owns {owned['few']:.1f} channels on average, each many-shot class {owned['many']:.1f}.",
        _ratio_text("Classifier weight vectors", norms["few"], norms["many"]),
    ]
    return Summary(" ".join(sentences))


def comparison_summary(results: Mapping[str, Mapping[str, float]], channels: Mapping[str, Any] | None = None,
                       before: str = "bn", after: str = "nbn") -> Summary:
    """Sentences comparing two recorded results (percent) group by group, the few-shot classes' share of
    class-specific channels when `channels` ({"BN": table, "NBN": table}) is given, and a caution."""
    if before not in results or after not in results:
        return Summary(f"No comparison yet: results for {before!r} and {after!r} are both needed.")
    lines = [change_sentence(after.upper(), "overall accuracy" if group == "overall" else f"{group}-shot accuracy",
                             results[before][group], results[after][group])
             for group in GROUP_METRICS if group in results[before] and group in results[after]]
    if channels:
        owned = [f"{int((table['active'] & (table['owner_group'] == 'few')).sum())} of {int(table['active'].sum())} "
                 f"with {name}" for name, table in channels.items()]
        lines.append(f"Few-shot classes own {' and '.join(owned)} active class-specific last-stage channels.")
    lines.append("This is one seed; notebook 05 repeats both over several seeds to separate the effect from noise.")
    return Summary(" ".join(lines))


def alpha_summary(run: str | Path) -> Summary:
    """How the NBN α values moved during training, from the run's metrics."""
    from nbn_tutorial import train

    alphas = [row for row in train.read_metrics(run)["alpha"] if isinstance(row, list) and row]
    if not alphas:
        return Summary("This run has no NBN α (a plain BN run).")
    start, end = alphas[0], alphas[-1]
    moves = ", ".join(f"{a:.3f} → {b:.3f}" for a, b in zip(start, end))
    return Summary(f"α after the first evaluated epoch → after the last: {moves}.")


# ---- notebook 05: full runs over seeds ------------------------------------------------------------

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


def train_plan(plan: Sequence[PlannedRun], *, train_here: bool = True, progress: bool = True) -> list[Path]:
    """Train (or resume, or reuse) every planned run in this process when `train_here`; returns the runs that exist."""
    from nbn_tutorial import train

    if train_here:
        for run in plan:
            train.load_or_train(run.config, run.path, progress=progress)
    return [run.path for run in plan if (run.path / "metrics.jsonl").exists()]


RUN_COLUMNS = ("dataset", "model", "norm", "head", "loss", "epochs", "seed")


def gather_results(run_dirs: Iterable[str | Path]) -> Any:
    """One row per run directory: its config's key fields, epochs done and final accuracies in percent."""
    import pandas as pd

    from nbn_tutorial import train

    rows = []
    for run in run_dirs:
        config = yaml.safe_load((Path(run) / "config.yaml").read_text())
        metrics = train.read_metrics(run)
        rows.append({**{key: config[key] for key in RUN_COLUMNS}, "epochs_done": int(metrics.iloc[-1]["epoch"]),
                     **{key: _percent(value) for key, value in final_metrics(run).items()}, "run": Path(run).name})
    return pd.DataFrame(rows, columns=[*RUN_COLUMNS, "epochs_done", "overall", "balanced", *GROUP_METRICS[1:], "run"])


_SETTING = ["dataset", "model", "head", "loss", "epochs"]


def results_table(results) -> Any:
    """Mean ± std over seeds (percent) per setting and norm, from :func:`gather_results`."""
    import pandas as pd

    metrics = ["overall", "balanced", *GROUP_METRICS[1:]]
    rows, columns = mean_std_rows(results.to_dict("records"), [*_SETTING, "norm"], metrics)
    return pd.DataFrame(rows, columns=columns)


def mean_accuracy_table(results) -> Any:
    """Mean accuracies over seeds as fractions, one row per setting and norm, for plots.plot_group_comparison."""
    from nbn_tutorial import diagnosis

    means = results.groupby([*_SETTING, "norm"], sort=False)[["overall", "balanced", *GROUP_METRICS[1:]]].mean()
    labels = {key: " ".join(str(part) for part in (key[0], key[3], key[5])) for key in means.index}
    return diagnosis.group_table({labels[key]: (row / 100).to_dict() for key, row in means.iterrows()})


def seed_summary(results, groups: Sequence[str] = ("overall", "few")) -> Summary:
    """Per setting: how NBN changed each group's accuracy over the seeds, judged against the seed-to-seed spread."""
    if results.empty:
        return Summary("No finished runs to summarise yet.")
    sentences = [_seed_sentence(setting, runs, group)
                 for setting, runs in results.groupby(_SETTING, sort=False) for group in groups]
    return Summary(" ".join(s for s in sentences if s) or "No setting has both a BN and an NBN run yet.")


def _seed_sentence(setting: tuple, runs, group: str) -> str:
    """One sentence on the BN → NBN change of one group's mean accuracy in one setting ("" without both norms)."""
    by_norm = {norm: runs[runs["norm"] == norm][group].dropna().tolist() for norm in ("bn", "nbn")}
    if not (by_norm["bn"] and by_norm["nbn"]):
        return ""
    before, after = (sum(v) / len(v) for v in (by_norm["bn"], by_norm["nbn"]))
    seeds = min(len(by_norm["bn"]), len(by_norm["nbn"]))
    spread = max(_sample_std(by_norm["bn"]), _sample_std(by_norm["nbn"]))
    where = f"On {setting[0]} ({setting[1]}, {setting[3]}, {setting[4]} epochs, {seeds} seed{'s' * (seeds > 1)})"
    quantity = "mean overall accuracy" if group == "overall" else f"mean {group}-shot accuracy"
    sentence = change_sentence(f"{where}, NBN", quantity, before, after)
    if seeds < 2:
        return sentence + " One seed cannot tell the effect from noise."
    verdict = "is within" if abs(after - before) <= spread else "exceeds"
    return sentence + f" The change {verdict} the seed-to-seed spread (std up to {spread:.1f} points)."


def _sample_std(values: Sequence[float]) -> float:
    if len(values) < 2:
        return 0.0
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def save_table(table, run_dir: str | Path, name: str) -> Any:
    """Write a table as <name>.csv and <name>.md into the run directory (for the report); returns it."""
    folder = Path(run_dir)
    table.to_csv(folder / f"{name}.csv", index=False)
    (folder / f"{name}.md").write_text(markdown_table(table.to_dict("records"), list(table.columns)) + "\n")
    return table


# --------------------------------------------------------------------------------------------
# The report of an executed sequence
# --------------------------------------------------------------------------------------------

def _read_manifest(out: Path) -> dict[str, Any]:
    path = out / MANIFEST_FILE
    if not path.exists():
        raise UserError(f"{out} holds no executed notebook sequence ({MANIFEST_FILE} is missing); run "
                        f"`nbn-tutorial notebooks run --out {out}` first")
    return _read_json(path)


def _figure_lines(out: Path, run_dir: Path) -> list[str]:
    index_path = run_dir / FIGURES_SUBDIR / FIGURE_INDEX
    if not index_path.exists():
        return []
    lines = ["## Key figures", ""]
    for name, caption in _read_json(index_path).items():
        image = run_dir / FIGURES_SUBDIR / f"{name}.png"
        if image.exists():
            lines += [f"**{caption}**", "", f"![{caption}]({_relative(image, out)})", ""]
    return lines


def _relative(path: Path, start: Path) -> str:
    try:
        return path.resolve().relative_to(start.resolve()).as_posix()
    except ValueError:
        return path.resolve().as_posix()


def _results_lines(results: Mapping[str, Mapping[str, float]]) -> list[str]:
    if not results:
        return []
    metrics = [m for m in GROUP_METRICS if any(m in values for values in results.values())]
    rows = [{"model": label, **{m: values.get(m) for m in metrics}} for label, values in results.items()]
    lines = ["## BN vs NBN (test accuracy, %)", "", markdown_table(rows, ["model", *metrics]), ""]
    if "bn" in results and "nbn" in results:
        lines += [change_sentence("NBN", f"{m}-shot accuracy" if m != "overall" else "overall accuracy",
                                  results["bn"][m], results["nbn"][m])
                  for m in metrics if m in results["bn"] and m in results["nbn"]]
        lines.append("")
    return lines


def _seed_lines(run_dir: Path) -> list[str]:
    table, runs = run_dir / f"{SEED_TABLE}.md", run_dir / f"{SEED_RUNS}.csv"
    if not (table.exists() and runs.exists()):
        return []
    import pandas as pd

    return ["## Over seeds (notebook 05; test accuracy, %, mean ± std)", "", table.read_text().strip(), "",
            seed_summary(pd.read_csv(runs)), ""]


def build_report(out_dir: str | Path) -> Path:
    """Write <out_dir>/report.md for an executed sequence: BN vs NBN table, sentences, key figures."""
    out = Path(out_dir)
    manifest = _read_manifest(out)
    run_dir = Path(manifest["run_dir"])
    parameters = ", ".join(f"{key}={value}" for key, value in manifest["parameters"].items())
    lines = [f"# NBN tutorial report: profile `{manifest['profile']}`", "",
             f"Parameters: {parameters or '(notebook defaults)'}.", "",
             "| notebook | seconds |", "| --- | --- |"]
    lines += [f"| [{name}]({name}) | {manifest['seconds'].get(name, 'not run')} |" for name in manifest["notebooks"]]
    lines.append("")
    lines += _results_lines(read_results(run_dir))
    lines += _seed_lines(run_dir)
    lines += _figure_lines(out, run_dir)
    report = out / "report.md"
    report.write_text("\n".join(lines).rstrip() + "\n")
    return report

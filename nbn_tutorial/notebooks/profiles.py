"""Parameter profiles and the notebooks' declared parameters: which notebooks exist, what they accept.

Profiles are YAML files in ``notebooks/params/`` (:data:`nbn_tutorial.paths.PROFILE_DIR`). A notebook
declares its parameters in its code cell tagged ``parameters`` (``name = literal`` lines only). A
parameter name is accepted when at least one notebook of the sequence declares it, and each notebook
receives only the parameters it declares.
"""
from __future__ import annotations

import ast
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nbn_tutorial import paths
from nbn_tutorial.errors import UserError
from nbn_tutorial.fileio import read_yaml_mapping
from nbn_tutorial.registry import check_choice
import yaml

DEFAULT_PROFILE = "quick"
SWEEP_PREFIX = "sweep_"          # notebooks/params/sweep_*.yaml are sweep definitions, not profiles
NOTEBOOK_NAME = re.compile(r"^(\d\d)_\w+\.ipynb$")


def _check_choice(kind: str, value: str, valid: Sequence[str], note: str) -> None:
    """:func:`check_choice`, with ``note`` appended to its message."""
    try:
        check_choice(kind, value, valid)
    except UserError as error:
        raise UserError(f"{error} {note}") from None


def list_profiles() -> list[str]:
    """Names of the parameter profiles in notebooks/params/ (sweep_*.yaml files excluded)."""
    return sorted(p.stem for p in paths.PROFILE_DIR.glob("*.yaml") if not p.stem.startswith(SWEEP_PREFIX))


def load_profile(name_or_path: str | Path) -> dict[str, Any]:
    """Parameters of a profile: a name from `list_profiles()` or the path of a YAML file."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return read_yaml_mapping(path, "parameter file")
    _check_choice("profile", str(name_or_path), list_profiles(), "(or pass a YAML file)")
    return read_yaml_mapping(paths.PROFILE_DIR / f"{name_or_path}.yaml", "profile")


ParameterSource = tuple[str, Any]   # ("profile", name or path) | ("file", path) | ("set", (name, value))
SOURCE_KINDS = ("profile", "file", "set")


def parse_parameter_value(text: str) -> Any:
    """A `-p NAME VALUE` value: parsed as YAML (10 -> int, 0.5 -> float, true -> bool, [0, 1] -> list,
    null -> None), with papermill's Python spellings None/True/False accepted too; else the string itself."""
    if text in ("None", "True", "False"):
        return {"None": None, "True": True, "False": False}[text]
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def combine_sources(sources: Sequence[ParameterSource],
                    base: str | None = DEFAULT_PROFILE) -> tuple[dict[str, Any], str]:
    """Apply profiles, parameter files and single values in order (later wins); returns (parameters, label).

    Without any profile or file the profile `base` comes first (None: nothing). The label names the
    profiles and files ("fashion+mine"); it is the default output folder of a sequence.
    """
    if base is not None and not any(kind in ("profile", "file") for kind, _ in sources):
        sources = [("profile", base), *sources]
    parameters: dict[str, Any] = {}
    labels = []
    for kind, value in sources:
        check_choice("parameter source", kind, SOURCE_KINDS)
        if kind == "set":
            name, item = value
            parameters[str(name)] = item
            continue
        parameters.update(load_profile(value) if kind == "profile" else read_yaml_mapping(Path(value), "parameter file"))
        labels.append(Path(value).stem)
    return parameters, "+".join(labels)


def read_notebook(path: Path, remedy: str = "restore it from a copy"):
    """The notebook at ``path`` (nbformat v4); a UserError ending in ``remedy`` when it cannot be read."""
    import nbformat   # deferred: notebook libraries: only notebook commands need them

    try:
        return nbformat.read(str(path), as_version=4)
    except OSError as error:
        raise UserError(f"cannot read notebook {path} ({error.strerror}); {remedy}") from None
    except (ValueError, KeyError, AttributeError, TypeError):   # NotJSONError, a cut-off file, a broken layout
        raise UserError(f"notebook {path} is damaged (not a complete notebook file); {remedy}") from None


def _parameters_cell_source(notebook) -> str | None:
    for cell in notebook.cells:
        if cell.cell_type == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            return cell.source
    return None


def notebook_parameters(path: str | Path) -> dict[str, Any]:
    """Declared parameters of a notebook and their defaults, from its cell tagged `parameters`.

    The cell may hold only assignments of literals to plain names (comments allowed).
    """
    path = Path(path)
    source = _parameters_cell_source(read_notebook(path))
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
    folder = Path(notebook_dir) if notebook_dir is not None else paths.NOTEBOOK_DIR
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
            _check_choice("notebook", text, list(available), "(the ids --only takes)")
        wanted.add(key)
    if not wanted:
        raise UserError(f"--only selects no notebook; valid ids: {', '.join(available)}")
    return [path for key, path in available.items() if key in wanted]


def sequence_of(notebooks: Sequence[Path]) -> list[Path]:
    """All numbered notebooks of the directories the selected notebooks come from."""
    folders = dict.fromkeys(path.parent for path in notebooks)
    return [path for folder in folders for path in discover_notebooks(folder).values()]


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
        _check_choice("parameter", name, known, f"(the parameters that {names} declare)")
    for path, defaults in declared.items():
        for name, default in defaults.items():
            if name in parameters and not _fits_default(parameters[name], default):
                raise UserError(f"parameter '{name}' of {path.name} must be {_type_name(default)} like its "
                                f"default {default!r}, got {parameters[name]!r}")
    return {path: {k: v for k, v in parameters.items() if k in defaults} for path, defaults in declared.items()}

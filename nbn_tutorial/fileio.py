"""Writing and reading the project's files: one atomic-write rule, one YAML-mapping reader.

Every file the package writes (checkpoints, metric files, configs, list files, manifests, reports)
goes through :func:`atomic_write_bytes`: a temporary file next to the target, flushed to disk, then
renamed over it, so a crash or a full disk never leaves a half-written file and never damages the
previous version. Failures are :class:`UserError` sentences naming the path.
"""
from __future__ import annotations

import errno
import json
import os
import re
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from nbn_tutorial.errors import UserError


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()
_TEMP_NAME = re.compile(r"^\.(.+)\.[a-z0-9_]{8}\.tmp$")   # what atomic_write_bytes names its temporary files
_REMEDIES = {errno.ENOSPC: "free some disk space or choose another location",
             errno.EDQUOT: "free some of your disk quota or choose another location",
             errno.ENOTDIR: "part of that path is a file, not a folder: choose another location"}


def write_error(path: str | os.PathLike, error: OSError) -> UserError:
    """The one sentence for a file or folder that cannot be written (full disk, read-only, under a file)."""
    reason = error.strerror or str(error)
    remedy = _REMEDIES.get(error.errno, "choose a writable location")
    return UserError(f"cannot write {str(path)!r} ({reason}); {remedy} (nothing already written there was changed)")


def check_utf8_path(path: str | os.PathLike, what: str) -> None:
    """A UserError when ``path`` holds bytes that are not UTF-8 (file names and reports are written as UTF-8)."""
    try:
        os.fsencode(path).decode("utf-8")
    except UnicodeDecodeError:
        shown = os.fsencode(path).decode("utf-8", "backslashreplace")
        raise UserError(f"{what} '{shown}' is not valid UTF-8 text; rename it (or choose a name) in UTF-8") from None


def leftover_temp_files(folder: str | os.PathLike) -> list[Path]:
    """The temporary files of :func:`atomic_write_bytes` calls that never finished (their process was killed)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.iterdir() if _TEMP_NAME.match(path.name) and path.is_file())


def ensure_dir(path: str | os.PathLike) -> Path:
    """Create ``path`` and its parents if needed; a UserError when it cannot be a folder."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{str(folder)!r} is a file, not a folder; choose another location")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise write_error(folder, error) from None
    return folder


def atomic_write_bytes(path: str | os.PathLike, payload: bytes, *, durable: bool = True) -> Path:
    """Write ``payload`` to a temporary file next to ``path``, then rename it over ``path``; returns ``path``.

    ``durable=False`` skips the fsync: still never a half-written file, but a power cut may lose the
    newest files (fine for re-creatable files written by the thousand, such as resized cache images).
    """
    path = Path(path)
    ensure_dir(path.parent)
    try:
        handle = tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False)
    except OSError as error:
        raise write_error(path, error) from None
    try:
        with handle:
            handle.write(payload)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.chmod(handle.name, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the usual permissions
        os.replace(handle.name, path)
    except OSError as error:
        Path(handle.name).unlink(missing_ok=True)
        raise write_error(path, error) from None
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """:func:`atomic_write_bytes` of UTF-8 text."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, content: Any) -> Path:
    """:func:`atomic_write_bytes` of indented JSON (non-JSON values written with ``str``)."""
    return atomic_write_text(path, json.dumps(content, indent=2, default=str) + "\n")


def read_json(path: str | os.PathLike, what: str = "file") -> Any:
    """The JSON content of ``path``; a UserError naming ``what`` when it is missing or damaged."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{what} {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UserError(f"{what} {str(path)!r} cannot be read as JSON ({error}); delete it or restore it") from None


def yaml_error_text(error: yaml.YAMLError) -> str:
    """A YAML syntax error in one line, with its line and column when PyYAML knows them."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return f"{where}{problem}"


def read_yaml_mapping(path: str | os.PathLike, what: str = "YAML file", *, allow_empty: bool = True) -> dict[str, Any]:
    """The mapping stored in a YAML file; UserErrors name ``what``, the path, and the line of a syntax error."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{what} {str(path)!r} is a folder; give the path of a YAML file")
    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{what} {str(path)!r} does not exist; give an existing YAML file") from None
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise UserError(f"cannot read {what} {str(path)!r} ({reason})") from None
    except yaml.YAMLError as error:
        raise UserError(f"{what} {str(path)!r} is not valid YAML ({yaml_error_text(error)})") from None
    if content is None:
        if not allow_empty:
            raise UserError(f"{what} {str(path)!r} is empty; write its settings as `key: value` lines")
        return {}
    if not isinstance(content, dict) or not all(isinstance(key, str) for key in content):
        raise UserError(f"{what} {str(path)!r} must be a YAML mapping of `key: value` lines")
    return content


def append_text(path: str | os.PathLike, text: str) -> None:
    """Append ``text`` to ``path`` (created if missing); a UserError when it cannot be written."""
    try:
        with open(path, "a", newline="", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as error:
        raise write_error(path, error) from None


def jsonl_text(rows: list[dict]) -> str:
    """Rows as JSON lines."""
    return "".join(json.dumps(row) + "\n" for row in rows)


def read_jsonl(path: str | os.PathLike, *, torn_end: bool = False) -> list[dict]:
    """The rows of a JSON-lines file ([] when it does not exist); a UserError naming the line that is not JSON.

    ``torn_end=True`` drops a damaged last line with a note instead: an append the writer's death cut short.
    """
    path = Path(path)
    if not path.exists():
        return []
    lines = [(number, line) for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace")
                                                          .splitlines(), start=1) if line.strip()]
    rows = []
    for position, (number, line) in enumerate(lines):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            row = None
        if isinstance(row, dict):
            rows.append(row)
        elif torn_end and position == len(lines) - 1:
            print(f"note: dropped the damaged last line of {path} (line {number}: an interrupted write)",
                  file=sys.stderr)
        else:
            raise UserError(f"{path}, line {number}, is not a JSON object row; delete that line or restore the file")
    return rows


def trim_jsonl(path: str | os.PathLike, keep: Callable[[dict], bool]) -> tuple[list[dict], bool]:
    """Keep only the rows of a JSON-lines file that ``keep`` accepts (a torn last line is dropped); returns the
    kept rows and whether the file had to be rewritten."""
    path = Path(path)
    kept = [row for row in read_jsonl(path, torn_end=True) if keep(row)]
    text = jsonl_text(kept)
    if text == (path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""):
        return kept, False
    atomic_write_text(path, text)
    return kept, True

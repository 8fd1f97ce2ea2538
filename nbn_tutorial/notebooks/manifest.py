"""The manifest of an executed sequence (``sequence.json``): which notebooks ran, how long, and what failed.

Running some notebooks again into a finished output (``--only 01``) with the same parameters merges
into its manifest, so the report still lists every notebook; with other parameters the runner refuses
(or, with --overwrite, starts a fresh sequence), so one report never mixes two protocols. A notebook
that failed, never finished or whose executed copy is gone makes the report refuse the sequence with
one sentence instead of reporting half of it.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nbn_tutorial.errors import UserError
from nbn_tutorial.fileio import atomic_write_json, read_json

MANIFEST_FILE = "sequence.json"  # what run_sequence ran, written into <out>


def _as_json(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples and lists, numbers and their JSON form compare equal)."""
    return json.loads(json.dumps(value, default=str))


def read_manifest(out: Path) -> dict[str, Any]:
    """The manifest of an executed sequence in `out`; a UserError saying what `out` is and how to make one."""
    path = out / MANIFEST_FILE
    if out.is_file():
        raise UserError(f"{out} is a file; give the output folder of `nbn-tutorial notebooks run` (its --out)")
    if not out.exists():
        raise UserError(f"{out} does not exist; give the output folder of `nbn-tutorial notebooks run` (its --out)")
    if not path.exists():
        raise UserError(f"{out} holds no executed notebook sequence ({MANIFEST_FILE} is missing); run "
                        f"`nbn-tutorial notebooks run --out {out}` first")
    return read_json(path, "sequence manifest")


def previous_manifest(out: Path) -> dict[str, Any] | None:
    """The manifest an earlier run left in ``out`` (None when there is none)."""
    path = out / MANIFEST_FILE
    return read_json(path, "sequence manifest") if path.is_file() else None


def sequence_differences(previous: Mapping[str, Any], parameters: Mapping[str, Any], run_dir: Path) -> list[str]:
    """``name: recorded -> now`` for every parameter (and the run directory) that differs from ``previous``."""
    old, new = _as_json(previous.get("parameters") or {}), _as_json(dict(parameters))
    missing = object()
    differences = [f"{name}: {old.get(name, '(default)')!r} -> {new.get(name, '(default)')!r}"
                   for name in sorted(set(old) | set(new)) if old.get(name, missing) != new.get(name, missing)]
    if previous.get("run_dir") != str(run_dir):
        differences.append(f"run_dir: {previous.get('run_dir')!r} -> {str(run_dir)!r}")
    return differences


def start_manifest(out: Path, label: str, parameters: Mapping[str, Any], run_dir: Path,
                   notebooks: Sequence[Path]) -> dict[str, Any]:
    """The manifest for running ``notebooks`` into ``out`` (written), merged into the one an earlier run with the
    same parameters and run directory left there (the caller refuses, or clears, one with other parameters)."""
    names = [path.name for path in notebooks]
    manifest = {"profile": label, "parameters": dict(parameters), "run_dir": str(run_dir), "notebooks": names,
                "seconds": {}}
    previous = previous_manifest(out)
    if previous is not None:
        if sequence_differences(previous, parameters, run_dir):
            raise UserError(f"{out} holds notebooks executed with other parameters; choose another --out")
        merged = sorted(set(previous.get("notebooks", [])) | set(names))
        seconds = {name: value for name, value in previous.get("seconds", {}).items() if name not in names}
        manifest.update(notebooks=merged, seconds=seconds)
        failed = previous.get("failed")
        if failed and failed.get("notebook") not in names:
            manifest["failed"] = failed
    atomic_write_json(out / MANIFEST_FILE, manifest)
    return manifest


def record_seconds(out: Path, manifest: dict[str, Any], name: str, seconds: float) -> None:
    """Record that notebook ``name`` finished in ``seconds``."""
    manifest["seconds"][name] = round(seconds, 1)
    atomic_write_json(out / MANIFEST_FILE, manifest)


def record_failure(out: Path, manifest: dict[str, Any], name: str, error: Exception) -> None:
    """Record that notebook ``name`` failed with ``error`` (the report refuses the sequence until it is re-run)."""
    manifest["failed"] = {"notebook": name, "error": str(error)}
    try:
        atomic_write_json(out / MANIFEST_FILE, manifest)
    except UserError:
        pass  # the notebook's own error is the one to report


def rerun_command(out: Path, name: str) -> str:
    """The command that executes notebook ``name`` of the sequence in ``out`` again."""
    return f"nbn-tutorial notebooks run --only {name[:2]} --out {out}"


def check_complete(out: Path, manifest: Mapping[str, Any]) -> None:
    """A UserError unless every notebook of the manifest finished (none failed, none interrupted) and its executed
    copy is still there."""
    failed = manifest.get("failed")
    unfinished = [name for name in manifest.get("notebooks", []) if name not in manifest.get("seconds", {})]
    missing = [name for name in manifest.get("notebooks", []) if not (out / name).is_file()]
    if not (failed or unfinished or missing):
        return
    name = failed["notebook"] if failed else (unfinished or missing)[0]
    what = "failed" if failed else "did not finish" if unfinished else "is missing (its executed copy was deleted)"
    raise UserError(f"the notebook sequence in {out} is incomplete: {name} {what}, so there is nothing complete "
                    f"to report; fix the cause and run `{rerun_command(out, name)}` with the same parameters, then "
                    "report again")

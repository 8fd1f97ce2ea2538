"""The manifest of an executed sequence (``sequence.json``): which notebooks ran, how long, and what failed.

Running some notebooks again into a finished output (``--only 01``) merges into its manifest, so the
report still lists every notebook; a notebook that failed (or never finished) is recorded, and the
report refuses such a sequence with one sentence instead of reporting half of it.
"""
from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nbn_tutorial.errors import UserError
from nbn_tutorial.fileio import atomic_write_json, read_json

MANIFEST_FILE = "sequence.json"  # what run_sequence ran, written into <out>


def _same(first: Any, second: Any) -> bool:
    """Equal once written as JSON (tuples and lists, numbers and their JSON form compare equal)."""
    return json.loads(json.dumps(first, default=str)) == json.loads(json.dumps(second, default=str))


def start_manifest(out: Path, label: str, parameters: Mapping[str, Any], run_dir: Path,
                   notebooks: Sequence[Path]) -> dict[str, Any]:
    """The manifest for running ``notebooks`` into ``out`` (written): merged into the existing one when that
    ran with the same parameters and run directory, else a new one (with a note that the old one is replaced)."""
    names = [path.name for path in notebooks]
    manifest = {"profile": label, "parameters": dict(parameters), "run_dir": str(run_dir), "notebooks": names,
                "seconds": {}}
    path = out / MANIFEST_FILE
    previous = read_json(path, "sequence manifest") if path.is_file() else None
    if previous is not None:
        if _same(previous.get("parameters"), manifest["parameters"]) and previous.get("run_dir") == str(run_dir):
            merged = sorted(set(previous.get("notebooks", [])) | set(names))
            seconds = {name: value for name, value in previous.get("seconds", {}).items() if name not in names}
            manifest.update(notebooks=merged, seconds=seconds)
            failed = previous.get("failed")
            if failed and failed.get("notebook") not in names:
                manifest["failed"] = failed
        else:
            print(f"note: {out} held notebooks executed with other parameters; its manifest now lists only the "
                  f"notebooks of this run ({', '.join(names)})", file=sys.stderr)
    atomic_write_json(path, manifest)
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


def check_complete(out: Path, manifest: Mapping[str, Any]) -> None:
    """A UserError unless every notebook of the manifest finished (none failed, none interrupted)."""
    failed = manifest.get("failed")
    unfinished = [name for name in manifest.get("notebooks", []) if name not in manifest.get("seconds", {})]
    if not failed and not unfinished:
        return
    name = failed["notebook"] if failed else unfinished[0]
    what = "failed" if failed else "did not finish"
    rerun = f"nbn-tutorial notebooks run --only {name[:2]} --out {out}"
    raise UserError(f"the notebook sequence in {out} is incomplete: {name} {what}, so there is nothing complete "
                    f"to report; fix the cause and run `{rerun}` with the same parameters, then report again")

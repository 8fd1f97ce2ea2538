"""`nbn-tutorial notebooks copy DIR`: the notebooks, profiles, presets and studies in a folder the learner owns.

The folder gets the marker file :data:`nbn_tutorial.paths.WORKSPACE_MARKER`; commands and notebooks run
inside it read its (editable) files instead of the installed ones, and relative paths such as
``runs/quick`` count from it. Existing files are never overwritten: identical ones are kept, different
ones stop the copy before anything is written.
"""
from __future__ import annotations

import os
from pathlib import Path

from nbn_tutorial import paths
from nbn_tutorial.errors import UserError
from nbn_tutorial.fileio import atomic_write_bytes, ensure_dir

COPIED = {  # folder -> patterns, as setup.py bundles them
    "configs": ("*.yaml",),
    "notebooks": ("*.ipynb", "sanitize.cfg", "params/*.yaml"),
    "studies": ("*.yaml", "results/**/*.csv", "results/**/*.md"),
}
MARKER_TEXT = ("This folder is an nbn-tutorial workspace (written by `nbn-tutorial notebooks copy`).\n"
               "Inside it, `nbn-tutorial` and the notebooks use the presets in configs/, the profiles in\n"
               "notebooks/params/ and the studies in studies/ of this folder, and relative paths such as\n"
               "runs/quick count from here. Edit them freely; delete this file to stop using them.\n")


def workspace_files(source: Path | None = None) -> dict[Path, Path]:
    """Relative target path -> source file, for every file a workspace receives."""
    root = source if source is not None else paths.resource_root()
    files = {}
    for folder, patterns in COPIED.items():
        for pattern in patterns:
            for path in sorted((root / folder).glob(pattern)):
                files[path.relative_to(root)] = path
    if not files:
        raise UserError(f"found no notebooks or presets under {root}; reinstall nbn-tutorial")
    return files


def copy_workspace(destination: str | os.PathLike) -> tuple[Path, int, int]:
    """Copy the resources into ``destination``; returns (folder, files written, identical files kept)."""
    target = Path(destination).expanduser()
    if target.exists() and not target.is_dir():
        raise UserError(f"{str(target)!r} is a file; give a folder for the notebooks")
    files = workspace_files()
    files_and_marker = {**{relative: source.read_bytes() for relative, source in files.items()},
                        Path(paths.WORKSPACE_MARKER): MARKER_TEXT.encode()}
    conflicts = [str(relative) for relative, content in files_and_marker.items()
                 if (target / relative).exists() and (target / relative).read_bytes() != content]
    if conflicts:
        more = f" and {len(conflicts) - 1} more" if len(conflicts) > 1 else ""
        raise UserError(f"{target / conflicts[0]}{more} already exist(s) with different content; nothing was copied "
                        "(your edits are kept): choose another folder or move those files away")
    ensure_dir(target)
    written = kept = 0
    for relative, content in files_and_marker.items():
        if (target / relative).exists():
            kept += 1
            continue
        atomic_write_bytes(target / relative, content)
        written += 1
    return target.resolve(), written, kept

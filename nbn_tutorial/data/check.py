"""`nbn-tutorial data check NAME`: open every image of a file dataset once, in parallel, and list the bad ones.

``data stats`` counts from list files and never opens an image; a truncated JPEG or a text file named
``.jpg`` then stops training mid-epoch. This check decodes each image with the same rule as training
(:func:`nbn_tutorial.data.images.check_image`) before any training starts.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from nbn_tutorial.data.files import list_path, read_list_file
from nbn_tutorial.data.images import check_image
from nbn_tutorial.data.imagefolder import tree_images
from nbn_tutorial.data.specs import DATASETS, get_spec, resolve_data_root
from nbn_tutorial.errors import UserError
from nbn_tutorial.registry import positive_int
from nbn_tutorial.wording import plural
from concurrent.futures import ProcessPoolExecutor


@dataclass(frozen=True)
class CheckResult:
    """What a check opened and what failed: (path, reason) for every unreadable or missing image."""

    name: str
    where: Path
    checked: int
    bad: list[tuple[str, str]]
    workers: int


def _listed_images(name: str, data_root: Path, list_dir: Path | None) -> tuple[list[Path], Path]:
    """Every image named in a list dataset's list files (each once), and the folder they resolve under."""
    spec = get_spec(name)
    image_root = data_root / spec.folder
    folder = list_dir or image_root
    files = {list_path(spec, folder, "train")}   # the train list must exist; the others are checked if present
    files |= {folder / file for _, file in spec.list_files if (folder / file).is_file()}
    relative = dict.fromkeys(path for file in sorted(files) for path in read_list_file(file)[0])
    return [image_root / path for path in relative], image_root


def dataset_images(name: str, root=None, list_dir=None) -> tuple[list[Path], Path]:
    """The image files ``data check`` opens for dataset ``name``, and the folder they live in."""
    spec = get_spec(name)
    data_root = resolve_data_root(root)
    if spec.kind != "files":
        file_datasets = ", ".join(n for n, s in DATASETS.items() if s.kind == "files")
        raise UserError(f"{name} keeps its images in memory arrays, so there are no image files to check; "
                        f"data check is for {file_datasets}")
    if spec.from_tree:
        return tree_images(data_root), data_root
    return _listed_images(name, data_root, Path(list_dir).expanduser() if list_dir not in (None, "") else None)


def check_images(paths: list[Path], workers: int | None = None) -> tuple[list[tuple[str, str]], int]:
    """(path, reason) of every image in ``paths`` that cannot be decoded, using ``workers`` processes."""
    if workers is None:   # all cores, but no pool start-up for a small folder
        workers = max(1, min(os.cpu_count() or 1, len(paths) // 64))
    workers = max(1, min(positive_int(workers, "--workers"), len(paths)))
    texts = [str(path) for path in paths]
    if workers == 1:
        reasons = [check_image(path) for path in texts]
    else:
        with ProcessPoolExecutor(workers) as pool:
            reasons = list(pool.map(check_image, texts, chunksize=max(1, min(64, len(texts) // workers))))
    return [(path, reason) for path, reason in zip(texts, reasons) if reason is not None], workers


def check_dataset(name: str, root=None, list_dir=None, workers: int | None = None) -> CheckResult:
    """Open every image of dataset ``name`` once; returns what was checked and what failed."""
    paths, where = dataset_images(name, root, list_dir)
    bad, used = check_images(paths, workers)
    return CheckResult(name, where, len(paths), bad, used)


def format_check(result: CheckResult) -> str:
    """The check's report: one line per bad image, then a summary line."""
    lines = [f"{path}: {reason}" for path, reason in result.bad]
    lines.append(f"{result.name}: opened {plural(result.checked, 'image')} under {result.where} "
                 f"({plural(result.workers, 'process', 'processes')}): "
                 + (f"{len(result.bad)} cannot be read" if result.bad else "all readable"))
    return "\n".join(lines)

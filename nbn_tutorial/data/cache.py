"""A pre-resized copy of a list dataset's images: JPEG decoding is the bottleneck of a large-image pipeline."""
from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path

from nbn_tutorial.data.files import list_path, read_list_file
from nbn_tutorial.data.images import UnreadableImage, image_error_text
from nbn_tutorial.data.specs import DATASETS, get_spec, resolve_data_root
from nbn_tutorial.errors import UserError
from nbn_tutorial.fileio import atomic_write_bytes, atomic_write_json, ensure_dir, read_json
from nbn_tutorial.registry import positive_int
from concurrent.futures import ProcessPoolExecutor


CACHE_MANIFEST = "nbn_cache.json"   # the settings a cache folder was made with (refuses a mix of sizes)


def _decode_small(source: str, short_side: int):
    from PIL import Image   # deferred: Pillow: only for images

    with Image.open(source) as image:
        # draft() lets libjpeg decode at 1/2, 1/4 or 1/8 scale directly when the target is that much smaller.
        image.draft("RGB", (short_side * image.width // min(image.size), short_side * image.height // min(image.size)))
        return image.convert("RGB")


def _resize_one(job: tuple[str, str, int, int]) -> str | None:
    """Write one image of the cache (shorter side at most ``short_side``, never enlarged; JPEG, atomically);
    returns why the source image cannot be read, or None when it was written."""
    from PIL import Image   # deferred: Pillow: only for images

    source, target, short_side, quality = job
    try:
        rgb = _decode_small(source, short_side)
    except Exception as error:  # noqa: BLE001 (a bad image is reported with the others, not a crash)
        return image_error_text(error)
    scale = short_side / min(rgb.size)
    if scale < 1:
        rgb = rgb.resize((round(rgb.width * scale), round(rgb.height * scale)), Image.BICUBIC, reducing_gap=3.0)
    encoded = io.BytesIO()
    rgb.save(encoded, "JPEG", quality=quality)
    atomic_write_bytes(target, encoded.getvalue(), durable=False)  # thousands of re-creatable files: no fsync
    return None


def _check_cache_settings(cache_root: Path, short_side: int, quality: int) -> None:
    """Record the cache's settings, or refuse to complete a cache made with other settings."""
    wanted = {"short_side": short_side, "quality": quality}
    manifest = cache_root / CACHE_MANIFEST
    if manifest.is_file():
        stored = read_json(manifest, "cache settings file")
        if {key: stored.get(key) for key in wanted} != wanted:
            raise UserError(f"{cache_root} already holds a cache resized to short side {stored.get('short_side')} "
                            f"(quality {stored.get('quality')}); re-run with --short-side {stored.get('short_side')} "
                            "to complete it, or choose another --out for a cache of another size")
        return
    atomic_write_json(manifest, wanted)


def build_resized_cache(image_root: str | os.PathLike, list_files: Sequence[str | os.PathLike],
                        cache_root: str | os.PathLike, short_side: int = 256, quality: int = 90,
                        workers: int | None = None) -> Path:
    """Pre-resized copy of every image named in ``list_files`` (shorter side <= ``short_side``), plus the lists.

    Decoding full-size JPEGs is what limits an ImageNet-LT/iNat input pipeline on CPU; the cache makes
    each decode several times cheaper. Resumable: images already in the cache are skipped.
    """
    image_root, cache_root = Path(image_root).resolve(), Path(cache_root).resolve()
    if cache_root == image_root:
        raise UserError(f"the cache folder {cache_root} is the image folder itself; choose another --out")
    positive_int(short_side, "short side")
    workers = positive_int(workers, "--workers") if workers is not None else (os.cpu_count() or 1)
    ensure_dir(cache_root)
    _check_cache_settings(cache_root, short_side, quality)
    jobs: dict[str, tuple[str, str, int, int]] = {}
    for list_file in map(Path, list_files):
        relative_paths, _ = read_list_file(list_file)
        for relative in relative_paths:
            target = cache_root / relative
            if not target.is_file():
                jobs[relative] = (str(image_root / relative), str(target), short_side, quality)
        atomic_write_bytes(cache_root / list_file.name, list_file.read_bytes())
    missing = [job[0] for job in jobs.values() if not Path(job[0]).is_file()]
    if missing:
        raise UserError(f"{len(missing)} listed images are missing under {image_root} (first: {missing[0]}); "
                        "put the images there so that the list's relative paths resolve")
    with ProcessPoolExecutor(workers) as pool:
        reasons = list(pool.map(_resize_one, jobs.values(), chunksize=16))
    bad = [(job[0], reason) for job, reason in zip(jobs.values(), reasons) if reason is not None]
    if bad:
        raise UnreadableImage(f"{len(bad)} of {len(jobs)} images cannot be read (first: {bad[0][0]}: {bad[0][1]}), "
                              f"so they are missing from the cache {cache_root} (the other {len(jobs) - len(bad)} "
                              "were written); replace them and run the same command again, which resizes only what "
                              "is missing (`nbn-tutorial data check` lists every unreadable image)")
    return cache_root


def cache_dataset(name: str, out: str | os.PathLike, root=None, list_dir=None, short_side: int = 256,
                  workers: int | None = None) -> Path:
    """Pre-resized cache of a list dataset under ``out`` (use ``out`` as the data root afterwards)."""
    spec = get_spec(name)
    if not spec.list_files:
        raise UserError(f"{name} is not a list-file dataset; the cache is for "
                        f"{', '.join(n for n, s in DATASETS.items() if s.list_files)}")
    image_root = resolve_data_root(root) / spec.folder
    lists = Path(list_dir) if list_dir is not None else image_root
    present = [split for split in spec.splits if (lists / dict(spec.list_files)[split]).is_file()]
    # With no list at all, the train list's lookup raises the missing-list-file message.
    list_files = [list_path(spec, lists, split) for split in present or ["train"]]
    return build_resized_cache(image_root, list_files, Path(out) / spec.folder, short_side, workers=workers)

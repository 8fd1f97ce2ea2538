"""Shared helpers of the benchmark scripts: device choice, interleaved timing, tables, ratio lines.

Every benchmark measures both sides in ONE process, interleaved (A B, B A, A B, ...) after a warm-up,
and prints medians and their ratio, so drift and noise from other processes hit both sides alike.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

RATIO_PREFIX = "RATIO"
REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(1, str(REPO_ROOT))  # the scripts also run from a checkout where the package is not installed


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    """Add the common `--device cpu|cuda|auto` and `--threads N` options."""
    parser.add_argument("--device", default="auto", choices=("cpu", "cuda", "auto"),
                        help="where to run (auto: cuda when available, else cpu)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads of the main process (default: torch's, one per core); 1 keeps "
                             "figures stable on a machine shared with other jobs")


def resolve_device(name: str, threads: int | None = None) -> torch.device:
    """The torch device for `cpu`, `cuda` or `auto` (cuda without one is an error); sets torch's thread count."""
    if threads is not None:
        torch.set_num_threads(threads)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda was asked for but torch sees no CUDA device; use --device cpu.")
    return torch.device(name)


def synchronize(device: torch.device) -> None:
    """Wait for queued device work so wall-clock timings are honest."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], object], device: torch.device) -> float:
    """Seconds one call of `fn` takes, device work included."""
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def interleaved_times(sides: dict[str, Callable[[], object]], repeats: int, device: torch.device,
                      warmup: int = 1) -> dict[str, list[float]]:
    """Seconds per call of each side over `repeats` rounds, the order reversed every round; warm-up rounds dropped."""
    names = list(sides)
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(warmup + repeats):
        order = names if round_index % 2 == 0 else names[::-1]
        for name in order:
            elapsed = time_call(sides[name], device)
            if round_index >= warmup:
                times[name].append(elapsed)
    return times


def median(values: Sequence[float]) -> float:
    """The median of a non-empty sequence."""
    return float(statistics.median(values))


def paired_ratio(numerator: Sequence[float], denominator: Sequence[float]) -> float:
    """Median over rounds of numerator/denominator measured in the same round (robust to drift)."""
    return median([a / b for a, b in zip(numerator, denominator, strict=True)])


def spread(values: Sequence[float]) -> str:
    """`min..max` of the values, to show how noisy a median is."""
    return f"{min(values):.4g}..{max(values):.4g}"


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain-text table with right-aligned columns (floats printed with 4 significant digits)."""
    def cell(value: object) -> str:
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    text_rows = [[cell(value) for value in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in text_rows)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(headers, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in text_rows]
    return "\n".join(lines)


def ratio_line(label: str, value: float, target: float | None = None, higher_is_better: bool = True) -> str:
    """`RATIO <label>: <value>x (target >= t: met|NOT met)`: the one line each benchmark must print."""
    line = f"{RATIO_PREFIX} {label}: {value:.3f}x"
    if target is not None:
        met = value >= target if higher_is_better else value <= target
        sign = ">=" if higher_is_better else "<="
        line += f"  (target {sign} {target:g}: {'met' if met else 'NOT met'})"
    return line


def environment_line(device: torch.device) -> str:
    """Where the figures come from: date, host CPUs, torch version, device name."""
    if device.type == "cuda":
        where = torch.cuda.get_device_name(device)
    else:
        where = f"CPU ({os.cpu_count()} logical cores, {torch.get_num_threads()} torch threads, {platform.machine()})"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    stamp = datetime.datetime.now().isoformat(timespec="seconds")
    return f"# {stamp}  torch {torch.__version__}  device: {where}  load average: {load:.2f}"


def read_metric_rows(run_dir: str | os.PathLike) -> list[dict]:
    """The rows of an engine run directory's metrics.jsonl (one JSON object per evaluated epoch)."""
    import json

    lines = (Path(run_dir) / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]

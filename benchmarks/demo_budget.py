"""Wall time and peak memory of the `make demo` job against its budget (<= 5 min, <= 3 GB on 2 CPU cores).

Runs `nbn-tutorial notebooks run --profile quick --out <fresh dir> --report` (the recipe of `make demo`,
into a fresh output directory so nothing is reused) and samples, every --interval seconds, the resident
memory (RSS) of the whole process tree: the CLI process and all its descendants, i.e. the papermill
kernels too. The sum of RSS counts pages shared between processes more than once, so the peak is an
upper bound of the real footprint: a budget met here is met.

    python benchmarks/demo_budget.py
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

BUDGET_SECONDS = 5 * 60
BUDGET_BYTES = 3 * 1024**3
ROOT = Path(__file__).resolve().parents[1]


def tree_rss(process: psutil.Process) -> int:
    """Summed RSS in bytes of `process` and all its live descendants (processes that vanish count 0)."""
    total = 0
    try:
        members = [process, *process.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    for member in members:
        try:
            total += member.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            pass
    return total


class PeakTreeMemory:
    """Background sampler of `tree_rss(pid)` every `interval` seconds; `.peak_bytes` after `stop()`."""

    def __init__(self, pid: int, interval: float = 0.2):
        self.process = psutil.Process(pid)
        self.interval = interval
        self.peak_bytes = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_bytes = max(self.peak_bytes, tree_rss(self.process))
            self.samples += 1
            self._stop.wait(self.interval)

    def start(self) -> PeakTreeMemory:
        """Start sampling in a daemon thread."""
        self._thread.start()
        return self

    def stop(self) -> int:
        """Stop sampling; returns the peak in bytes."""
        self._stop.set()
        self._thread.join()
        return self.peak_bytes


@dataclass
class JobMeasurement:
    """What one measured command did: exit status, wall seconds, peak tree RSS, number of samples."""
    returncode: int
    wall_s: float
    peak_bytes: int
    samples: int
    output_tail: str


def measure_command(command: Sequence[str], interval: float = 0.2, cwd: Path | None = None,
                    timeout: float | None = None) -> JobMeasurement:
    """Run `command` to completion while sampling its process tree's memory; output captured (tail kept)."""
    start = time.perf_counter()
    with tempfile.TemporaryFile(mode="w+") as log:
        child = subprocess.Popen(list(command), cwd=cwd, stdout=log, stderr=subprocess.STDOUT, text=True)
        sampler = PeakTreeMemory(child.pid, interval).start()
        try:
            returncode = child.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            returncode = child.wait()
        peak = sampler.stop()
        wall = time.perf_counter() - start
        log.seek(0)
        tail = log.read()[-4000:]
    return JobMeasurement(returncode, wall, peak, sampler.samples, tail)


def demo_command(out_dir: Path, profile: str) -> list[str]:
    """The `make demo` recipe (`nbn-tutorial notebooks run ... --report`) with this interpreter."""
    return [sys.executable, "-m", "nbn_tutorial", "notebooks", "run", "--profile", profile,
            "--out", str(out_dir), "--report"]


def budget_line(label: str, value: float, budget: float, unit: str) -> str:
    """`<label>: value unit (budget <= b unit: met|NOT met)`."""
    verdict = "met" if value <= budget else "NOT met"
    return f"{label}: {value:.2f} {unit}  (budget <= {budget:g} {unit}: {verdict})"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo job once in a fresh directory and print its wall time and peak memory."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="quick", help="notebook profile (make demo uses quick)")
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between memory samples")
    parser.add_argument("--keep", default=None, help="write the demo output here instead of a temporary dir")
    args = parser.parse_args(argv)
    out_root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="nbn-demo-"))
    out_dir = out_root / "demo"
    if out_dir.exists():
        raise SystemExit(f"error: {out_dir} exists; the demo must run into a fresh directory.")
    command = demo_command(out_dir, args.profile)
    print(f"# {psutil.cpu_count()} logical cores, {psutil.virtual_memory().total / 1024**3:.1f} GB RAM, "
          f"load average {psutil.getloadavg()[0]:.2f}")
    print(f"# command: {' '.join(command)}")
    try:
        result = measure_command(command, args.interval, cwd=ROOT)
    finally:
        if not args.keep:
            shutil.rmtree(out_root, ignore_errors=True)
    if result.returncode != 0:
        print(result.output_tail)
        print(f"demo job FAILED with exit status {result.returncode}")
        return result.returncode
    print(budget_line("wall time", result.wall_s / 60, BUDGET_SECONDS / 60, "min"))
    print(budget_line("peak memory (summed RSS of the process tree)", result.peak_bytes / 1024**3,
                      BUDGET_BYTES / 1024**3, "GB"))
    print(f"({result.samples} memory samples, every {args.interval} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

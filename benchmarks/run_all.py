"""Run every benchmark with its defaults on one device and save what they print.

    python benchmarks/run_all.py --device cpu
    python benchmarks/run_all.py --device cuda --fashion-gz data/fashion-mnist-gz     # every GPU figure

Each script runs in its own process (so one cannot slow the next); its output is shown live and
collected into benchmarks/results/<device>-<YYYY-MM-DD>[-N].txt, the file the READMEs quote from.
"""
from __future__ import annotations

import argparse
import datetime
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent

# name -> extra arguments per device type; demo_budget measures the 2-core CPU budget, so CPU only.
BENCHMARKS: dict[str, dict[str, list[str]]] = {
    "nbn_overhead": {"cpu": ["--compile", "--where", "official,all"], "cuda": ["--where", "official,all"]},
    "loader": {"cpu": [], "cuda": []},
    "cifar_lt_speed": {"cpu": [], "cuda": []},
    # On a GPU the full Fashion-MNIST-LT (14,870 train / 10,000 test) over 20 epochs fits a 10-minute command.
    "parity": {"cpu": [], "cuda": ["--train-per-class", "6000", "--test-per-class", "1000", "--epochs", "20",
                                   "--workers", "4"]},
    "imagenet_pipeline": {"cpu": [], "cuda": []},
    "demo_budget": {"cpu": []},
}


def git_commit() -> str:
    """The checked-out commit (with a `+dirty` mark), or `unknown` outside git."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=HERE, capture_output=True, text=True).stdout
        return commit + ("+dirty" if dirty.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def fresh_results_path(device: str) -> Path:
    """benchmarks/results/<device>-<date>.txt, or -2, -3, ... when that day already has results."""
    stem = f"{device}-{datetime.date.today().isoformat()}"
    path, number = HERE / "results" / f"{stem}.txt", 1
    while path.exists():
        number += 1
        path = HERE / "results" / f"{stem}-{number}.txt"
    return path


def run_benchmark(name: str, arguments: list[str], log, command: list[str] | None = None,
                  timeout_s: float | None = None) -> int:
    """Run one script (or ``command``), echoing its output live and into `log`; returns its exit status.

    With ``timeout_s`` the process is stopped once that many seconds have passed (status 124).
    """
    command = command or [sys.executable, str(HERE / f"{name}.py"), *arguments]
    header = f"\n=== {name}: {' '.join(command[1:])}"
    print(header, flush=True)
    log.write(header + "\n")
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
                               cwd=HERE.parent)
    timer = threading.Timer(timeout_s, process.kill) if timeout_s else None
    if timer is not None:
        timer.start()
    for line in process.stdout:
        print(line, end="", flush=True)
        log.write(line)
    status = process.wait()
    if timer is not None:
        timer.cancel()
        if status < 0:
            status = 124
            log.write(f"=== {name}: stopped after its time budget of {timeout_s:.0f} s\n")
    footer = f"=== {name}: exit status {status}, {time.perf_counter() - start:.0f} s"
    print(footer, flush=True)
    log.write(footer + "\n")
    log.flush()
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """Run the selected benchmarks; exit status 1 if any of them failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--only", default=None, help=f"comma-separated subset of: {', '.join(BENCHMARKS)}")
    parser.add_argument("--fashion-gz", default=None,
                        help="folder with Fashion-MNIST's four .gz files (for parity where the Debian copy is absent)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads of each benchmark's main process (default: torch's; 1 on a shared machine)")
    parser.add_argument("--out", default=None, help="results file (default: benchmarks/results/<device>-<date>.txt)")
    args = parser.parse_args(argv)
    names = [n for n in BENCHMARKS if args.device in BENCHMARKS[n]]
    if args.only:
        wanted = [n.strip() for n in args.only.split(",")]
        unknown = sorted(set(wanted) - set(BENCHMARKS))
        if unknown:
            parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
        names = [n for n in names if n in wanted]
    out = Path(args.out) if args.out else fresh_results_path(args.device)
    out.parent.mkdir(parents=True, exist_ok=True)
    failures = []
    with open(out, "w") as log:
        log.write(f"# benchmarks/run_all.py {' '.join(sys.argv[1:] if argv is None else argv)}  commit {git_commit()}  "
                  f"{datetime.datetime.now().isoformat(timespec='seconds')}\n")
        for name in names:
            arguments = ["--device", args.device] if name != "demo_budget" else []
            if args.threads is not None and name != "demo_budget":
                arguments += ["--threads", str(args.threads)]
            arguments += BENCHMARKS[name][args.device]
            if name == "parity" and args.fashion_gz:
                arguments += ["--fashion-gz", args.fashion_gz]
            if run_benchmark(name, arguments, log) != 0:
                failures.append(name)
    print(f"\nresults written to {out}" + (f"; FAILED: {', '.join(failures)}" if failures else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

"""Every GPU check in one command that fits a 10-minute device call: `pytest -m cuda`, then benchmark pieces.

    python benchmarks/gpu_checks.py          # from the repository root

Runs, in this order, each with what is left of ``--budget-s`` (default 480 s) as its time limit:
the CUDA tests (tests/test_cuda.py), nbn_overhead (official and all placements), loader, and
cifar_lt_speed (a few epochs). A piece that does not finish within the budget is reported as stopped,
so the whole command ends within the budget. Everything printed goes to
benchmarks/results/cuda-<date>[-N].txt.
"""
from __future__ import annotations

import argparse
import datetime
import importlib.util
import sys
import time
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run_all import fresh_results_path, git_commit, run_benchmark  # noqa: E402

PIECES: tuple[tuple[str, list[str]], ...] = (
    ("nbn_overhead", ["--device", "cuda", "--where", "official,all"]),
    ("loader", ["--device", "cuda"]),
    ("cifar_lt_speed", ["--device", "cuda", "--epochs", "4"]),
)
TEST_BUDGET_S = 240.0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CUDA tests and the benchmark pieces within the budget; status 1 if any failed or was stopped."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-s", type=float, default=480.0, help="wall-clock budget of the whole command")
    parser.add_argument("--out", default=None, help="results file (default: benchmarks/results/cuda-<date>.txt)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    out = Path(args.out) if args.out else fresh_results_path("cuda")
    out.parent.mkdir(parents=True, exist_ok=True)
    failures = []
    with open(out, "w") as log:
        log.write(f"# benchmarks/gpu_checks.py {' '.join(sys.argv[1:] if argv is None else argv)}  commit {git_commit()}"
                  f"  {datetime.datetime.now().isoformat(timespec='seconds')}\n")
        if importlib.util.find_spec("pytest") is None:
            log.write("=== cuda tests: pytest is not installed here (pip install pytest), skipped\n")
            failures.append("cuda tests (no pytest)")
        else:
            command = [sys.executable, "-m", "pytest", "-m", "cuda", "-q", "-p", "no:cacheprovider", "-rs",
                       str(HERE.parent / "tests" / "test_cuda.py")]
            if run_benchmark("cuda tests", [], log, command=command, timeout_s=min(TEST_BUDGET_S, args.budget_s)):
                failures.append("cuda tests")
        for name, arguments in PIECES:
            left = args.budget_s - (time.perf_counter() - start)
            if left < 20:
                log.write(f"=== {name}: not run, the budget of {args.budget_s:.0f} s is spent\n")
                failures.append(name)
                continue
            if run_benchmark(name, arguments, log, timeout_s=left):
                failures.append(name)
    print(f"\nresults written to {out}" + (f"; FAILED or stopped: {', '.join(failures)}" if failures else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

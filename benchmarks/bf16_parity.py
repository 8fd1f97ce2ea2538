"""Is bf16 autocast sound for the paper-protocol study? Reads the bf16 parity study's results and prints, per
norm, every seed's bf16 − fp32 difference of final balanced accuracy against the fp32 runs' seed-to-seed spread,
and the wall-time ratio. Passes when every difference lies within one fp32 standard deviation over seeds.

    python benchmarks/bf16_parity.py benchmarks/results/bf16_parity > benchmarks/results/bf16_parity/parity.txt
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nbn_tutorial.study.tables import by_seed, read_header, read_table  # noqa: E402


def parity_lines(folder: Path, dataset: str = "fashion-mnist-lt") -> tuple[list[str], bool]:
    """The report lines and whether every norm passes."""
    results = read_table(folder, "results")
    lines, passed = [f"# {line}" for line in read_header(folder / "results.csv")], True
    for norm in ("bn", "nbn"):
        fp32, bf16 = (by_seed(results, dataset, f"{norm}-{kind}", "balanced") for kind in ("fp32", "bf16"))
        seeds = sorted(set(fp32) & set(bf16))
        differences = np.array([bf16[seed] - fp32[seed] for seed in seeds])
        spread = float(np.std([fp32[seed] for seed in seeds], ddof=1))
        seconds = {kind: np.mean(list(by_seed(results, dataset, f"{norm}-{kind}", "seconds").values()))
                   for kind in ("fp32", "bf16")}
        ok = bool(np.all(np.abs(differences) <= spread))
        passed &= ok
        lines.append(f"{norm}: bf16 - fp32 balanced accuracy per seed {', '.join(f'{d:+.2f}' for d in differences)} "
                     f"points (mean {differences.mean():+.2f}); fp32 seed-to-seed SD {spread:.2f} points over "
                     f"{len(seeds)} seeds: {'within' if ok else 'NOT within'} the seed spread")
        lines.append(f"RATIO {norm} fp32/bf16 wall time per run: {seconds['fp32'] / seconds['bf16']:.2f}x "
                     f"({seconds['fp32']:.0f} s vs {seconds['bf16']:.0f} s, both arms sharing 2 cores)")
    lines.append(f"PARITY {'passed' if passed else 'FAILED'}: bf16 autocast "
                 f"{'may' if passed else 'must not'} be used for the paper-protocol study")
    return lines, passed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="the parity study's report folder")
    lines, passed = parity_lines(parser.parse_args().folder)
    print("\n".join(lines))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())

"""The README's study table and answers: generated from committed results, never typed, and checked by a test.

The README holds the table between the markers ``<!-- study:NAME:start -->`` and ``<!-- study:NAME:end -->``;
``nbn-tutorial study report DIR --out studies/results/NAME --readme README.md`` rewrites that block from the
report it has just written.
"""
from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from nbn_tutorial.errors import UserError
from nbn_tutorial.fileio import atomic_write_text
from nbn_tutorial.study.report import arm_intervals, paired_intervals, read_results
from nbn_tutorial.study.verdicts import study_conclusions


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- study:{name}:start -->", f"<!-- study:{name}:end -->"


def readme_table(results_dir: str | os.PathLike, baseline: str) -> str:
    """Per dataset and arm: seeds, balanced and few-shot accuracy (mean), and their paired Δ to the baseline [95% CI]."""
    results, _ = read_results(results_dir)
    lines = ["| dataset | arm | seeds | balanced % | Δ balanced vs " + baseline + " [95% CI] | few-shot % | Δ few vs "
             + baseline + " [95% CI] |", "|---|---|---|---|---|---|---|"]
    for dataset in results["dataset"].unique():
        balanced, few = arm_intervals(results, dataset, "balanced"), arm_intervals(results, dataset, "few")
        deltas = {metric: paired_intervals(results, dataset, metric, baseline) for metric in ("balanced", "few")}
        for arm in balanced:
            cells = [dataset, f"`{arm}`", str(balanced[arm].n), f"{balanced[arm].mean:.1f}",
                     "—" if arm == baseline else deltas["balanced"][arm].text(1, signed=True),
                     f"{few[arm].mean:.1f}", "—" if arm == baseline else deltas["few"][arm].text(1, signed=True)]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def readme_conclusions(results_dir: str | os.PathLike, baseline: str, reference: str,
                       pairs: Sequence[Sequence[str]] = ()) -> str:
    """The study's computed answers (:func:`~nbn_tutorial.study.verdicts.study_conclusions`) as a markdown list."""
    results, _ = read_results(results_dir)
    return "\n".join(f"- {sentence}" for sentence in study_conclusions(results, baseline, reference, pairs))


def readme_block(name: str, results_dir: str | os.PathLike, baseline: str, reference: str | None = None,
                 pairs: Sequence[Sequence[str]] = ()) -> str:
    """The whole marked block (markers included) for study ``name``: the table, then the answers if a reference."""
    start, end = _markers(name)
    parts = [start, readme_table(results_dir, baseline)]
    if reference is not None:
        parts += ["", "What the study says (computed from the same results):", "",
                  readme_conclusions(results_dir, baseline, reference, pairs)]
    return "\n".join([*parts, end])


def _readme_text(path: Path, name: str) -> tuple[str, re.Pattern]:
    """The README's text and the pattern of study ``name``'s marked block; UserErrors for a missing or unreadable
    file and for a README without the block."""
    if path.is_dir():
        raise UserError(f"README {str(path)!r} is a folder; give the README file that holds the study's table")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"README {str(path)!r} does not exist; give the README file that holds the study's table")\
            from None
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"cannot read README {str(path)!r} ({getattr(error, 'strerror', None) or error})") from None
    start, end = _markers(name)
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), flags=re.S)
    if not pattern.search(text):
        raise UserError(f"{path} has no block {start} ... {end}; add those two lines where the table belongs")
    return text, pattern


def check_readme(readme: str | os.PathLike, name: str) -> None:
    """A UserError unless ``readme`` can be read and holds study ``name``'s marked block (checked before a report
    is written, so a bad --readme changes nothing)."""
    _readme_text(Path(readme), name)


def update_readme(readme: str | os.PathLike, name: str, results_dir: str | os.PathLike, baseline: str,
                  reference: str | None = None, pairs: Sequence[Sequence[str]] = ()) -> Path:
    """Replace the marked block of study ``name`` in ``readme`` with the one computed from ``results_dir``."""
    path = Path(readme)
    text, pattern = _readme_text(path, name)
    block = readme_block(name, results_dir, baseline, reference, pairs)
    return atomic_write_text(path, pattern.sub(lambda _: block, text))

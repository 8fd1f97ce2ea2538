"""The README's study table and answers: generated from committed results, never typed, and checked by a test.

The README holds the table between the markers ``<!-- study:NAME:start -->`` and ``<!-- study:NAME:end -->``;
``nbn-tutorial study report DIR --out studies/results/NAME --readme README.md`` rewrites that block from the
report it has just written.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from nbn_tutorial.errors import UserError
from nbn_tutorial.fileio import atomic_write_text
from nbn_tutorial.study.contrasts import Design
from nbn_tutorial.study.summary import design_sentence
from nbn_tutorial.study.verdicts import primary_answers
from nbn_tutorial.study.tables import arm_intervals, paired_intervals, read_results, read_table


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


def primary_answers_of(results, contrasts, design: Design) -> list[str]:
    """The primary answers of every dataset, in dataset order."""
    return [sentence for dataset in results["dataset"].unique()
            for sentence in primary_answers(results, contrasts, design, dataset)]


def readme_conclusions(results_dir: str | os.PathLike, design: Design, name: str) -> str:
    """How the study's inference works, then its primary answers as a markdown list (the rest is in summary.md)."""
    results = read_table(results_dir, "results")
    contrasts = read_table(results_dir, "contrasts")
    answers = primary_answers_of(results, contrasts, design)
    return (design_sentence(design, contrasts) + "\n\n" + "\n".join(f"- {sentence}" for sentence in answers)
            + "\n\nEvery other contrast, the feature-bias measures and α over training: `studies/results/"
            + f"{name}/summary.md`.")


def readme_block(name: str, results_dir: str | os.PathLike, design: Design) -> str:
    """The whole marked block (markers included) for study ``name``: the table, then the answers."""
    start, end = _markers(name)
    parts = [start, readme_table(results_dir, design.baseline), "",
             "What the study says (computed from the same results; `studies/results/" + name +
             "/contrasts.csv` has every p-value):", "", readme_conclusions(results_dir, design, name)]
    return "\n".join([*parts, end])


def _readme_text(path: Path, name: str | None) -> tuple[str, re.Pattern | None]:
    """The README's text and the pattern of study ``name``'s marked block (None without a name); UserErrors for a
    README that is missing or unreadable, or that lacks the block."""
    if not path.is_file():
        raise UserError(f"README {str(path)!r} does not exist; give the README.md that holds the study's table")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"cannot read README {str(path)!r} ({getattr(error, 'strerror', None) or error})") from None
    if name is None:
        return text, None
    start, end = _markers(name)
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), flags=re.S)
    if not pattern.search(text):
        raise UserError(f"{path} has no block {start} ... {end}; add those two lines where the table belongs")
    return text, pattern


def check_readme(readme: str | os.PathLike, name: str | None = None) -> None:
    """A UserError unless ``readme`` can be read (and holds study ``name``'s block, when the name is known): checked
    before a report is written, so a bad --readme changes nothing."""
    _readme_text(Path(readme), name)


def update_readme(readme: str | os.PathLike, name: str, results_dir: str | os.PathLike, design: Design) -> Path:
    """Replace the marked block of study ``name`` in ``readme`` with the one computed from ``results_dir``."""
    path = Path(readme)
    text, pattern = _readme_text(path, name)
    block = readme_block(name, results_dir, design)
    return atomic_write_text(path, pattern.sub(lambda _: block, text))

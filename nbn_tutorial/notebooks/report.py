"""The report of an executed notebook sequence: report.md with the BN vs NBN table, sentences and key figures.

Beside it: report.html, and an HTML page of every executed notebook (figures embedded) that the report
links to, for readers without Jupyter.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from nbn_tutorial.accuracy import GROUP_METRICS
from nbn_tutorial.fileio import atomic_write_text, read_json
from nbn_tutorial.notebooks.full_runs import SEED_RUNS, SEED_TABLE
from nbn_tutorial.notebooks.helpers import FIGURE_INDEX, FIGURES_SUBDIR, RESULTS_FILE, read_results
from nbn_tutorial.notebooks.manifest import check_complete, read_manifest, rerun_command
from nbn_tutorial.notebooks.rebalancing import REBALANCING_SUMMARY, REBALANCING_TABLE
from nbn_tutorial.notebooks.rendering import html_path, markdown_page, notebook_html
from nbn_tutorial.notebooks.studies import COMPOUND_ANSWERS, COMPOUND_TABLE, STUDY_ANSWERS, STUDY_TABLE
from nbn_tutorial.notebooks.tables import markdown_table
from nbn_tutorial.study.seeds import seed_summary
from nbn_tutorial.wording import accuracy_name, change_sentence


def _relative(path: Path, start: Path) -> str:
    try:
        return path.resolve().relative_to(start.resolve()).as_posix()
    except ValueError:
        return path.resolve().as_posix()


def _figure_lines(out: Path, run_dir: Path) -> list[str]:
    index_path = run_dir / FIGURES_SUBDIR / FIGURE_INDEX
    if not index_path.exists():
        return []
    lines = ["## Key figures", ""]
    for name, caption in read_json(index_path, "figure index").items():
        image = run_dir / FIGURES_SUBDIR / f"{name}.png"
        if image.exists():
            lines += [f"**{caption}**", "", f"![{caption}]({_relative(image, out)})", ""]
    return lines


def _results_lines(results: Mapping[str, Mapping[str, float]]) -> list[str]:
    if not results:
        return []
    metrics = [m for m in GROUP_METRICS if any(m in values for values in results.values())]
    rows = [{"model": label, **{m: values.get(m) for m in metrics}} for label, values in results.items()]
    lines = ["## BN vs NBN, one run each (test accuracy, %)", "", markdown_table(rows, ["model", *metrics]), ""]
    if "bn" in results and "nbn" in results:
        lines += ["One run per model (notebooks 02 and 04): a difference here may be seed-to-seed noise; the "
                  "comparisons over seeds below say how large that noise is.", ""]
        lines += [change_sentence("NBN", accuracy_name(m), results["bn"][m], results["nbn"][m])
                  for m in metrics if m in results["bn"] and m in results["nbn"]]
        lines.append("")
    return lines


def _seed_lines(run_dir: Path) -> list[str]:
    table, runs = run_dir / f"{SEED_TABLE}.md", run_dir / f"{SEED_RUNS}.csv"
    if not (table.exists() and runs.exists()):
        return []
    return ["## Over seeds (notebook 05; test accuracy, %, mean ± std)", "", table.read_text(encoding="utf-8").strip(),
            "", seed_summary(pd.read_csv(runs)), ""]


def _saved_section(run_dir: Path, heading: str, table_name: str, text_name: str) -> list[str]:
    """A report section from a notebook's saved table and sentences (``<name>.md`` files in the run directory)."""
    table, text = run_dir / f"{table_name}.md", run_dir / f"{text_name}.md"
    if not (table.exists() and text.exists()):
        return []
    return [f"## {heading}", "", table.read_text(encoding="utf-8").strip(), "",
            text.read_text(encoding="utf-8").strip(), ""]


SAVED_SECTIONS = (   # (heading, table, sentences) of notebooks 06, 07 and 08, in report order
    ("What makes NBN work (notebook 06; mean [95% CI] over seeds, Δ paired to BN)", STUDY_TABLE, STUDY_ANSWERS),
    ("Re-balancing and experts (notebook 07; test accuracy, %, one seed)", REBALANCING_TABLE, REBALANCING_SUMMARY),
    ("BN vs NBN vs Compound BN (notebook 08; a reconstruction; mean [95% CI] over seeds, Δ paired to BN)",
     COMPOUND_TABLE, COMPOUND_ANSWERS),
)


REPORT_FILES = ("report.md", "report.html")


def report_inputs(run_dir: Path) -> list[Path]:
    """The records in a sequence's run directory that the report reads (results, figures, saved tables)."""
    names = [RESULTS_FILE, FIGURES_SUBDIR, f"{SEED_TABLE}.md", f"{SEED_RUNS}.csv"]
    names += [f"{name}.md" for _, table, text in SAVED_SECTIONS for name in (table, text)]
    return [run_dir / name for name in names]


def _notebook_page(out: Path, name: str) -> str:
    """Render an executed notebook's HTML page (saying how to execute it again when it is damaged)."""
    notebook_html(out / name, f"execute it again with `{rerun_command(out, name)}` (same parameters), then report "
                              "again")
    return f"[HTML]({html_path(name).as_posix()})"


def _notebook_lines(out: Path, manifest: Mapping) -> list[str]:
    """The table of executed notebooks, each linked as .ipynb and as its HTML page (rendered here)."""
    lines = ["| notebook | page | seconds |", "| --- | --- | --- |"]
    for name in manifest["notebooks"]:
        lines.append(f"| [{name}]({name}) | {_notebook_page(out, name)} | {manifest['seconds'][name]} |")
    return lines + [""]


def build_report(out_dir: str | Path) -> Path:
    """Write <out_dir>/report.md and report.html for an executed sequence (BN vs NBN table, sentences, key
    figures), and an HTML page next to every executed notebook; returns report.md."""
    out = Path(out_dir)
    manifest = read_manifest(out)
    check_complete(out, manifest)   # a failed or interrupted sequence has no report (one sentence, exit 2)
    run_dir = Path(manifest["run_dir"])
    parameters = ", ".join(f"{key}={value}" for key, value in manifest["parameters"].items())
    lines = [f"# NBN tutorial report: profile `{manifest['profile']}`", "",
             f"Parameters: {parameters or '(notebook defaults)'}.", ""]
    lines += _notebook_lines(out, manifest)
    lines += _results_lines(read_results(run_dir))
    lines += _seed_lines(run_dir)
    for heading, table_name, text_name in SAVED_SECTIONS:
        lines += _saved_section(run_dir, heading, table_name, text_name)
    lines += _figure_lines(out, run_dir)
    text = "\n".join(lines).rstrip() + "\n"
    markdown, page = REPORT_FILES
    atomic_write_text(out / page, markdown_page(text, f"NBN tutorial report: {manifest['profile']}"))
    return atomic_write_text(out / markdown, text)

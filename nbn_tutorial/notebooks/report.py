"""The report of an executed notebook sequence: report.md with the BN vs NBN table, sentences and key figures."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from nbn_tutorial.fileio import atomic_write_text, read_json
from nbn_tutorial.notebooks.full_runs import SEED_RUNS, SEED_TABLE
from nbn_tutorial.notebooks.helpers import FIGURE_INDEX, FIGURES_SUBDIR, read_results
from nbn_tutorial.notebooks.prose import accuracy_name, change_sentence, seed_summary
from nbn_tutorial.notebooks.runner import read_manifest
from nbn_tutorial.notebooks.runs import GROUP_METRICS
from nbn_tutorial.notebooks.tables import markdown_table


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
    lines = ["## BN vs NBN (test accuracy, %)", "", markdown_table(rows, ["model", *metrics]), ""]
    if "bn" in results and "nbn" in results:
        lines += [change_sentence("NBN", accuracy_name(m), results["bn"][m], results["nbn"][m])
                  for m in metrics if m in results["bn"] and m in results["nbn"]]
        lines.append("")
    return lines


def _seed_lines(run_dir: Path) -> list[str]:
    table, runs = run_dir / f"{SEED_TABLE}.md", run_dir / f"{SEED_RUNS}.csv"
    if not (table.exists() and runs.exists()):
        return []
    import pandas as pd

    return ["## Over seeds (notebook 05; test accuracy, %, mean ± std)", "", table.read_text(encoding="utf-8").strip(),
            "", seed_summary(pd.read_csv(runs)), ""]


def build_report(out_dir: str | Path) -> Path:
    """Write <out_dir>/report.md for an executed sequence: BN vs NBN table, sentences, key figures."""
    out = Path(out_dir)
    manifest = read_manifest(out)
    run_dir = Path(manifest["run_dir"])
    parameters = ", ".join(f"{key}={value}" for key, value in manifest["parameters"].items())
    lines = [f"# NBN tutorial report: profile `{manifest['profile']}`", "",
             f"Parameters: {parameters or '(notebook defaults)'}.", "",
             "| notebook | seconds |", "| --- | --- |"]
    lines += [f"| [{name}]({name}) | {manifest['seconds'].get(name, 'not run')} |" for name in manifest["notebooks"]]
    lines.append("")
    lines += _results_lines(read_results(run_dir))
    lines += _seed_lines(run_dir)
    lines += _figure_lines(out, run_dir)
    return atomic_write_text(out / "report.md", "\n".join(lines).rstrip() + "\n")

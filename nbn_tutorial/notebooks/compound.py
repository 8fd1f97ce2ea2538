"""What notebook 08 calls: Compound BN's component usage by class group, the ``compound_bn`` study's committed
results, and the sentences computed from both."""
from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from nbn_tutorial.errors import UserError
from nbn_tutorial.notebooks.prose import Summary

COMPOUND_STUDY = "compound_bn"
COMPOUND_TABLE = "compound_table"      # notebook 08's study table (.md) in the run directory, for the report
COMPOUND_ANSWERS = "compound_answers"  # notebook 08's computed conclusions (.md), for the report
CBN_ARMS = ("cbn", "cbn-dual")


# ---- component usage of trained runs --------------------------------------------------------------

def run_component_usage(run: str | os.PathLike) -> pd.DataFrame:
    """:func:`nbn_tutorial.diagnosis.component_usage` of a finished CBN run (last checkpoint) on its test split."""
    from nbn_tutorial import diagnosis, train

    model, config = train.load_run(run, which="last")
    test = train.build_datasets(config, ("test",))["test"]
    return diagnosis.component_usage(model, test, test.train_counts)


def usage_match_table(usage: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """:func:`~nbn_tutorial.diagnosis.component_match` of each run's usage table, one block of layers per run."""
    from nbn_tutorial import diagnosis

    return pd.concat([diagnosis.component_match(table).assign(model=name) for name, table in usage.items()],
                     ignore_index=True).set_index(["model", "layer"])


def _share_text(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{100 * value:.0f}%"


def usage_summary(usage: Mapping[str, pd.DataFrame]) -> Summary:
    """Sentences on each run's component usage: in its deepest CBN layer and over all its CBN layers."""
    from nbn_tutorial import diagnosis

    sentences = []
    for name, table in usage.items():
        match = diagnosis.component_match(table)
        deepest = match.loc[match["depth"].idxmax()]
        groups = int(table["group"].max()) + 1
        sentences.append(
            f"**{name}**: in the deepest CBN layer, group k's samples take component k for "
            f"{_share_text(deepest['paired_share'])} on average over the {groups} frequency groups (the rarest group: "
            f"{_share_text(deepest['tail_paired_share'])}); under the best one-to-one pairing "
            f"{_share_text(deepest['matched_share'])} (it cannot fall below 1/{groups}), and "
            f"{deepest['effective_components']:.2f} of {groups} components are in effective use. Over all "
            f"{len(match)} CBN layers the paired share averages {_share_text(match['paired_share'].mean())}.")
    names = list(usage)
    if len(names) == 2:
        before, after = (diagnosis.component_match(usage[name])["paired_share"].mean() for name in names)
        change = "rises" if after > before + 0.005 else "falls" if after < before - 0.005 else "stays"
        sentences.append(f"From {names[0]} to {names[1]}, the mean paired share {change} "
                         f"({_share_text(before)} → {_share_text(after)}). One seed and a short run: the study "
                         "below repeats it over seeds.")
    return Summary(" ".join(sentences))


# ---- the study ------------------------------------------------------------------------------------

def compound_study(results_dir: str | os.PathLike | None = None):
    """The ``compound_bn`` study's results: the committed studies/results/compound_bn/, or ``results_dir``."""
    from nbn_tutorial.notebooks.studies import committed_results, open_study

    folder = Path(results_dir) if results_dir is not None else committed_results(COMPOUND_STUDY)
    if not (folder / "results.csv").is_file() or not (folder / "per_class.csv").is_file():
        raise UserError(f"no results of the {COMPOUND_STUDY} study in {folder}; run `nbn-tutorial study run "
                        f"{COMPOUND_STUDY} --out runs/studies/{COMPOUND_STUDY} --jobs 2` and `nbn-tutorial study "
                        f"report runs/studies/{COMPOUND_STUDY} --out {folder}`, or point results_dir (notebook 08's "
                        "cbn_results_dir) at a folder written by `nbn-tutorial study report`")
    return open_study(COMPOUND_STUDY, results_dir=folder)


def _arm_order(view, dataset: str) -> list[str]:
    """The arms run on ``dataset`` in the study file's order (baseline first), then any others."""
    from nbn_tutorial import study

    present = list(view.results[view.results["dataset"] == dataset]["arm"].unique())
    planned = study.load_study(view.name).arms_of(dataset) if dataset in study.load_study(view.name).datasets else []
    return [arm for arm in planned if arm in present] + [arm for arm in present if arm not in planned]


def compound_table(view, metrics: tuple[str, ...] = ("balanced", "few", "cbn_paired_share"),
                   deltas: tuple[str, ...] = ("balanced", "few")) -> pd.DataFrame:
    """Per dataset and arm: mean [95% CI] over seeds of ``metrics`` and, for ``deltas``, the paired Δ to the
    baseline arm (n/a where an arm has no value, e.g. the component shares of BN and NBN)."""
    from nbn_tutorial import study
    from nbn_tutorial.study.tables import ACCURACIES, metric_label

    records = []
    for dataset in view.results["dataset"].unique():
        for arm in _arm_order(view, dataset):
            record = {"dataset": dataset, "arm": arm}
            for metric in metrics:
                digits = 1 if metric in ACCURACIES else 3
                record[metric_label(metric)] = study.arm_intervals(view.results, dataset, metric)[arm].text(digits)
                if metric in deltas:
                    record[f"Δ {metric} vs {view.baseline}"] = (
                        study.paired_intervals(view.results, dataset, metric, view.baseline)[arm].text(digits, True)
                        if arm != view.baseline else "—")
            records.append(record)
    return pd.DataFrame(records).set_index(["dataset", "arm"])


def _comparisons(view) -> list[tuple[str, str, str]]:
    """(arm, against, metric) contrasts the conclusions state, where the study has them."""
    base, reference = view.baseline, view.reference or "nbn"
    chosen = [(arm, base, metric) for arm in (*CBN_ARMS, reference) for metric in ("balanced", "few")]
    chosen += [("cbn-dual", "cbn", metric) for metric in ("balanced", "few")]
    return chosen + [(arm, reference, "balanced") for arm in CBN_ARMS]


def compound_conclusions(view) -> Summary:
    """Per dataset: each CBN arm and NBN against BN, the dual path's own effect (cbn-dual − cbn) and CBN against
    NBN, each as a paired difference over seeds with its interval, p-values and what the Holm-adjusted p allows."""
    from nbn_tutorial import study
    from nbn_tutorial.study.contrasts import find

    blocks = []
    for dataset in view.results["dataset"].unique():
        seeds = view.results[view.results["dataset"] == dataset]["seed"].nunique()
        rows = [find(view.contrasts, dataset, *contrast) for contrast in _comparisons(view)]
        lines = [f"**{dataset}** ({seeds} seeds):", *[f"- {study.contrast_sentence(row)}" for row in rows
                                                        if row is not None]]
        blocks.append("\n".join(lines))
    return Summary("\n\n".join(blocks))


def save_compound_summary(view, run_dir: str | os.PathLike) -> None:
    """Write the study table and the computed conclusions into the run directory, where the report finds them."""
    from nbn_tutorial.fileio import atomic_write_text
    from nbn_tutorial.notebooks.tables import markdown_table

    table = compound_table(view).reset_index()
    folder = Path(run_dir)
    atomic_write_text(folder / f"{COMPOUND_TABLE}.md",
                      markdown_table(table.to_dict("records"), list(table.columns)) + "\n")
    atomic_write_text(folder / f"{COMPOUND_ANSWERS}.md", f"{compound_conclusions(view)}\n")


def compound_summary(usage: Mapping[str, pd.DataFrame], view) -> Summary:
    """Notebook 08's summary: the component usage of its runs and the study's headline differences, computed."""
    from nbn_tutorial import study
    from nbn_tutorial.study.contrasts import find

    lines = [usage_summary(usage)]
    for dataset in view.results["dataset"].unique():
        for arm in CBN_ARMS:
            row = find(view.contrasts, dataset, arm, view.baseline, "balanced")
            if row is not None:
                lines.append(f"On {dataset}: {study.contrast_sentence(row)}")
    lines.append("All of it measures our reconstruction of Compound BN from the paper's abstract (the full text was "
                 "not available to the project, and the authors' code is not public), not the authors' method as "
                 "they ran it.")
    return Summary(" ".join(lines))

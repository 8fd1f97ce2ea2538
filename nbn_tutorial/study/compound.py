"""The ``compound_bn`` study read: BN, NBN, CBN and CBN with its dual path over seeds (notebook 08), as a table of
mean [95% CI] and paired Δ, and the sentences its contrasts allow.
"""
from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from nbn_tutorial.diagnosis.components import usage_summary
from nbn_tutorial.study.contrasts import find
from nbn_tutorial.study.spec import load_study
from nbn_tutorial.study.tables import ACCURACIES, arm_intervals, metric_label, paired_intervals
from nbn_tutorial.study.verdicts import contrast_sentence
from nbn_tutorial.study.view import StudyView
from nbn_tutorial.wording import Summary

COMPOUND_STUDY = "compound_bn"
CBN_ARMS = ("cbn", "cbn-dual")


def _arm_order(view: StudyView, dataset: str) -> list[str]:
    """The arms run on ``dataset`` in the study file's order (baseline first), then any others."""
    present = list(view.results[view.results["dataset"] == dataset]["arm"].unique())
    study = load_study(view.name)
    planned = study.arms_of(dataset) if dataset in study.datasets else []
    return [arm for arm in planned if arm in present] + [arm for arm in present if arm not in planned]


def compound_table(view: StudyView, metrics: tuple[str, ...] = ("balanced", "few", "cbn_paired_share"),
                   deltas: tuple[str, ...] = ("balanced", "few")) -> pd.DataFrame:
    """Per dataset and arm: mean [95% CI] over seeds of ``metrics`` and, for ``deltas``, the paired Δ to the
    baseline arm (n/a where an arm has no value, e.g. the component shares of BN and NBN)."""
    records = []
    for dataset in view.results["dataset"].unique():
        for arm in _arm_order(view, dataset):
            record = {"dataset": dataset, "arm": arm}
            for metric in metrics:
                digits = 1 if metric in ACCURACIES else 3
                record[metric_label(metric)] = arm_intervals(view.results, dataset, metric)[arm].text(digits)
                if metric in deltas:
                    record[f"Δ {metric} vs {view.baseline}"] = (
                        paired_intervals(view.results, dataset, metric, view.baseline)[arm].text(digits, True)
                        if arm != view.baseline else "—")
            records.append(record)
    return pd.DataFrame(records).set_index(["dataset", "arm"])


def _comparisons(view: StudyView) -> list[tuple[str, str, str]]:
    """(arm, against, metric) contrasts the conclusions state, where the study has them."""
    base, reference = view.baseline, view.reference or "nbn"
    chosen = [(arm, base, metric) for arm in (*CBN_ARMS, reference) for metric in ("balanced", "few")]
    chosen += [("cbn-dual", "cbn", metric) for metric in ("balanced", "few")]
    return chosen + [(arm, reference, "balanced") for arm in CBN_ARMS]


def compound_conclusions(view: StudyView) -> Summary:
    """Per dataset: each CBN arm and NBN against BN, the dual path's own effect (cbn-dual − cbn) and CBN against
    NBN, each as a paired difference over seeds with its interval, p-values and what the Holm-adjusted p allows."""
    blocks = []
    for dataset in view.results["dataset"].unique():
        seeds = view.results[view.results["dataset"] == dataset]["seed"].nunique()
        rows = [find(view.contrasts, dataset, *contrast) for contrast in _comparisons(view)]
        lines = [f"**{dataset}** ({seeds} seeds):", *[f"- {contrast_sentence(row)}" for row in rows if row is not None]]
        blocks.append("\n".join(lines))
    return Summary("\n\n".join(blocks))


def compound_summary(usage: Mapping[str, pd.DataFrame], view: StudyView) -> Summary:
    """Notebook 08's summary: the component usage of its runs and the study's headline differences, computed."""
    lines = [usage_summary(usage)]
    for dataset in view.results["dataset"].unique():
        for arm in CBN_ARMS:
            row = find(view.contrasts, dataset, arm, view.baseline, "balanced")
            if row is not None:
                lines.append(f"On {dataset}: {contrast_sentence(row)}")
    lines.append("All of it measures our reconstruction of Compound BN from the paper's abstract (the full text was "
                 "not available to the project, and the authors' code is not public), not the authors' method as "
                 "they ran it.")
    return Summary(" ".join(lines))

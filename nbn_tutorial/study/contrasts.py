"""Every paired contrast a study reports, its p-values and the family it is adjusted in.

A contrast is ``arm − against`` on one metric and dataset, over the seeds both arms finished. For each
the report gives the mean, the 95% t-interval, the paired t-test p, the exact sign-flip permutation p
(all 2ⁿ sign patterns) and the Holm-adjusted t-test p within its family:

- the **primary** family: the contrasts the study file declares under ``primary`` (on every dataset that
  runs both arms), the study's confirmatory question;
- one **exploratory** family per dataset: every other contrast of that dataset: each arm against the
  baseline (balanced, few-, many-shot accuracy and the two feature-strength gaps |ratio − 1|), each arm
  against the reference (balanced and few-shot accuracy) and the study's ``pairs`` (the same two).

Only a contrast whose Holm-adjusted p is below 0.05 earns a verdict word (:mod:`.verdicts`).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from nbn_tutorial.study.stats import holm, sign_flip_p, smallest_sign_flip_p, t_interval, t_test_p
from nbn_tutorial.study.tables import arms_of, paired_differences

PRIMARY_FAMILY = "primary"
VS_BASELINE = ("balanced", "few", "many", "feature_strength_gap", "channel_strength_gap")
VS_REFERENCE = ("balanced", "few")
IN_PAIRS = ("balanced", "few")
CONTRAST_COLUMNS = ("dataset", "arm", "against", "metric", "n", "mean", "low", "high", "p", "p_perm", "p_holm",
                    "family", "family_size", "smallest_p_perm")


@dataclass(frozen=True)
class Design:
    """What a study compares: its baseline and reference arms, extra pairs and declared primary contrasts."""

    baseline: str
    reference: str | None = None
    pairs: tuple[tuple[str, str], ...] = ()
    primary: tuple[tuple[str, str, str], ...] = ()     # (arm, against, metric)
    declared: str = "before-results"
    why: str = ""

    @classmethod
    def of(cls, study) -> Design:
        """The design of a loaded :class:`~nbn_tutorial.study.spec.Study`."""
        return cls(study.baseline, study.reference, tuple(study.pairs), tuple(study.primary), study.primary_declared,
                   study.primary_why)


def exploratory_family(dataset: str) -> str:
    """The name of ``dataset``'s exploratory family."""
    return f"exploratory: {dataset}"


def planned_contrasts(results: pd.DataFrame, design: Design) -> list[tuple[str, str, str, str, str]]:
    """(dataset, arm, against, metric, family) of every contrast the study's arms allow, primary ones first."""
    primary, exploratory = [], []
    for dataset in results["dataset"].unique():
        arms = arms_of(results, dataset)
        chosen = {(arm, against, metric) for arm, against, metric in design.primary if {arm, against} <= set(arms)}
        primary += [(dataset, arm, against, metric, PRIMARY_FAMILY) for arm, against, metric in design.primary
                    if (arm, against, metric) in chosen]
        candidates = [(arm, design.baseline, metric) for metric in VS_BASELINE for arm in arms if arm != design.baseline]
        if design.reference in arms:
            candidates += [(arm, design.reference, metric) for metric in VS_REFERENCE for arm in arms
                           if arm not in (design.baseline, design.reference)]
        candidates += [(first, second, metric) for metric in IN_PAIRS for first, second in design.pairs
                       if {first, second} <= set(arms)]
        seen = set(chosen)
        for candidate in candidates:
            if candidate not in seen:
                seen.add(candidate)
                exploratory.append((dataset, *candidate, exploratory_family(dataset)))
    return primary + exploratory


def contrast_table(results: pd.DataFrame, design: Design) -> pd.DataFrame:
    """One row per planned contrast (columns ``CONTRAST_COLUMNS``), Holm-adjusted within each family."""
    records = []
    for dataset, arm, against, metric, family in planned_contrasts(results, design):
        differences = paired_differences(results, dataset, arm, against, metric)
        interval = t_interval(differences)
        records.append({"dataset": dataset, "arm": arm, "against": against, "metric": metric, "n": interval.n,
                        "mean": interval.mean, "low": interval.low, "high": interval.high,
                        "p": t_test_p(differences), "p_perm": sign_flip_p(differences), "family": family,
                        "smallest_p_perm": smallest_sign_flip_p(interval.n)})
    frame = pd.DataFrame(records, columns=[c for c in CONTRAST_COLUMNS if c not in ("p_holm", "family_size")])
    frame["p_holm"] = np.nan
    frame["family_size"] = 0
    for _, members in frame.groupby("family", sort=False):
        frame.loc[members.index, "p_holm"] = holm(members["p"].to_numpy(dtype=float))
        frame.loc[members.index, "family_size"] = int(np.isfinite(members["p"].to_numpy(dtype=float)).sum())
    return frame[list(CONTRAST_COLUMNS)]


def find(contrasts: pd.DataFrame, dataset: str, arm: str, against: str, metric: str) -> pd.Series | None:
    """The row of one contrast, or None when the study has no such contrast."""
    match = contrasts[(contrasts["dataset"] == dataset) & (contrasts["arm"] == arm)
                      & (contrasts["against"] == against) & (contrasts["metric"] == metric)]
    return None if match.empty else match.iloc[0]


def family_sizes(contrasts: pd.DataFrame) -> dict[str, int]:
    """How many comparisons each family adjusts for."""
    return {family: int(size) for family, size in zip(contrasts["family"], contrasts["family_size"])}


def primary_rows(contrasts: pd.DataFrame) -> pd.DataFrame:
    """The primary family's rows."""
    return contrasts[contrasts["family"] == PRIMARY_FAMILY]


def surviving(contrasts: pd.DataFrame, level: float = 0.05) -> pd.DataFrame:
    """The contrasts whose Holm-adjusted p is below ``level``."""
    return contrasts[contrasts["p_holm"] < level]


def contrasts_of(contrasts: pd.DataFrame, dataset: str, metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """``dataset``'s contrasts (of ``metrics`` when given)."""
    chosen = contrasts[contrasts["dataset"] == dataset]
    return chosen if metrics is None else chosen[chosen["metric"].isin(list(metrics))]

"""Mechanism evidence of a study's NBN runs: whether NBN evens out feature strength (two measures, judged
by distance from 1), whether that tracks α, and what α does over training (α collapse).

Sentences are computed from the results, contrast and dynamics tables; a verdict word only where the
contrast's Holm-adjusted p allows it (:func:`~nbn_tutorial.study.verdicts.judgement`); correlations are
exploratory and described by their interval only.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from nbn_tutorial.study.contrasts import Design, find
from nbn_tutorial.study.stats import Correlation, correlation
from nbn_tutorial.study.tables import by_seed
from nbn_tutorial.study.verdicts import effect, judgement

COLLAPSED = 0.05     # |α| below this: every converted layer's applied weight and bias have norm below 0.05


def _mean(results: pd.DataFrame, dataset: str, arm: str, metric: str) -> float:
    values = list(by_seed(results, dataset, arm, metric).values())
    return float(np.nanmean(values)) if values and not all(map(math.isnan, values)) else math.nan


def feature_answer(results: pd.DataFrame, contrasts: pd.DataFrame, design: Design, dataset: str) -> str:
    """Both feature-bias measures under the baseline and the reference, the change of each ratio's distance from
    1 (smaller is more even), and which measure the paper's claim is about."""
    base, arm = design.baseline, design.reference
    parts = []
    for measure, words in (("feature_strength", "penultimate-feature strength"),
                           ("channel_strength", "class-specific channel strength")):
        row = find(contrasts, dataset, arm, base, f"{measure}_gap")
        if row is None:
            continue
        before, after = _mean(results, dataset, base, f"{measure}_ratio"), _mean(results, dataset, arm, f"{measure}_ratio")
        parts.append(f"few/many {words} {before:.3f} under `{base}` and {after:.3f} under `{arm}`; its distance "
                     f"from 1 changes by {effect(row)}: "
                     f"{judgement(row, f'`{arm}` makes it less even', f'`{arm}` evens it out')}")
    if not parts:
        return f"On {dataset} the study measured no feature-bias ratio for `{arm}` and `{base}`."
    return (f"On {dataset}, two measures of the feature bias (1 = few-shot classes as strong as many-shot ones): "
            + "; ".join(parts) + ". The paper's claim is about rare-class-specific features, which the "
            "class-specific channel measure follows more closely than the penultimate-feature norm.")


MEASURED = ["seed", "alpha", "feature_strength_ratio", "channel_strength_ratio"]


def nbn_runs(results: pd.DataFrame, dataset: str, model: str | None = None) -> pd.DataFrame:
    """The finished runs of ``dataset`` that have an α (every NBN arm; of ``model`` when given), each trained
    network once: arms that re-balance another arm's network (τ, cRT, LWS keep its backbone and α) repeat its
    measures and are dropped."""
    chosen = results[(results["dataset"] == dataset) & (results["status"] == "finished")]
    if model is not None:
        chosen = chosen[chosen["model"] == model]
    return chosen[np.isfinite(chosen["alpha"].astype(float))].drop_duplicates(subset=MEASURED)


def reference_model(results: pd.DataFrame, dataset: str, design: Design) -> str | None:
    """The model the reference arm trains on ``dataset`` (the α relation compares runs of one architecture)."""
    models = results[(results["dataset"] == dataset) & (results["arm"] == design.reference)]["model"]
    return str(models.iloc[0]) if len(models) and str(models.iloc[0]) else None


def alpha_correlation(results: pd.DataFrame, dataset: str, metric: str = "feature_strength_ratio",
                      model: str | None = None) -> Correlation:
    """Pearson correlation of final α and ``metric`` over every NBN run of ``dataset`` (all NBN arms of ``model``)."""
    runs = nbn_runs(results, dataset, model)
    return correlation(runs["alpha"].astype(float).tolist(), runs[metric].astype(float).tolist())


def alpha_relation_answer(results: pd.DataFrame, dataset: str, model: str | None = None) -> str:
    """Whether the feature-strength ratio tracks α across the NBN runs (of ``model``), as a described correlation."""
    runs = nbn_runs(results, dataset, model)
    arms = ", ".join(f"`{arm}`" for arm in runs["arm"].unique())
    parts = []
    for metric, words in (("feature_strength_ratio", "feature-strength ratio"),
                          ("channel_strength_ratio", "channel-strength ratio")):
        found = alpha_correlation(results, dataset, metric, model)
        if not math.isfinite(found.r):
            continue
        if found.low > 0 or found.high < 0:
            reading = (f"runs with a {'larger' if found.r > 0 else 'smaller'} α have a higher {words}, so its "
                       "movement may track how loud the converted layers are rather than the normalisation itself")
        else:
            reading = "the interval includes zero"
        parts.append(f"final α and the {words} correlate: {found.text()}: {reading}")
    if not parts:
        return f"On {dataset} there are too few NBN runs with an α to relate α to the feature measures."
    return (f"On {dataset}, across the NBN runs ({arms}; an exploratory correlation, not adjusted): "
            + "; ".join(parts) + ".")


def alpha_trajectories(dynamics: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """Per NBN run of ``dataset``: α after the first and the last epoch, its smallest |α|, and the first epoch
    at which |α| fell below ``COLLAPSED`` (NaN if never)."""
    chosen = dynamics[dynamics["dataset"] == dataset]
    records = []
    for (arm, seed), run in chosen.groupby(["arm", "seed"], sort=False):
        run = run.sort_values("epoch")
        alpha = run["alpha"].astype(float).to_numpy()
        below = run["epoch"].to_numpy()[np.abs(alpha) < COLLAPSED]
        records.append({"arm": arm, "seed": int(seed), "alpha_first": alpha[0], "alpha_last": alpha[-1],
                        "alpha_min_abs": float(np.abs(alpha).min()),
                        "collapse_epoch": float(below[0]) if below.size else math.nan})
    return pd.DataFrame(records, columns=["arm", "seed", "alpha_first", "alpha_last", "alpha_min_abs",
                                          "collapse_epoch"])


def alpha_collapse_answer(results: pd.DataFrame, dynamics: pd.DataFrame, design: Design, dataset: str) -> str:
    """What α does over training in each NBN arm, and how the final α relates to the accuracy difference to the
    baseline, seed by seed."""
    trained = nbn_runs(results, dataset)     # each trained network once (re-balancing arms repeat their source's)
    trajectories = alpha_trajectories(dynamics, dataset).merge(trained[["arm", "seed"]].astype({"seed": int}),
                                                               on=["arm", "seed"])
    if trajectories.empty:
        return f"On {dataset} the study recorded no per-epoch NBN state (dynamics), so α over training is not shown."
    parts = []
    for arm, runs in trajectories.groupby("arm", sort=False):
        collapsed = runs["collapse_epoch"].notna()
        when = (f", first after epoch {int(runs['collapse_epoch'].min())} to {int(runs['collapse_epoch'].max())}"
                if collapsed.any() else "")
        finals = ", ".join(f"{value:.3g}" for value in runs["alpha_last"])
        parts.append(f"`{arm}` ends with α = {finals} over its {len(runs)} seeds ({int(collapsed.sum())} of them "
                     f"had |α| below {COLLAPSED:g} at some epoch{when})")
    baseline = by_seed(results, dataset, design.baseline, "balanced")
    alphas, differences = [], []
    model = reference_model(results, dataset, design)
    for arm in nbn_runs(results, dataset, model)["arm"].unique():
        accuracy, final = by_seed(results, dataset, arm, "balanced"), by_seed(results, dataset, arm, "alpha")
        for seed in sorted(set(accuracy) & set(baseline) & set(final)):
            alphas.append(final[seed])
            differences.append(accuracy[seed] - baseline[seed])
    found = correlation(alphas, differences)
    relation = (f"Over the {model or 'NBN'} runs, final α and the balanced-accuracy difference to `{design.baseline}` (same seed) "
                f"correlate: {found.text()} (exploratory, not adjusted)")
    return (f"On {dataset}: " + "; ".join(parts) + f". With |α| = a, every converted layer applies a weight and a "
            f"bias of norm a in total over its channels, so an α near 0 switches the converted residual branches "
            f"off. {relation}.")

"""Runs over seeds without a study file (notebook 05, sweeps): mean ± std per setting, and whether a change
between norms exceeds the seed-to-seed spread.

The rows are those of :func:`nbn_tutorial.train.gather_runs` (one per run directory, accuracies in percent).
A seeded study (:mod:`nbn_tutorial.study`) pairs runs by seed and adjusts for many comparisons; this is the
simpler reading of a handful of runs.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from nbn_tutorial.accuracy import ACCURACY_COLUMNS
from nbn_tutorial.diagnosis.compare import group_table
from nbn_tutorial.wording import Summary, accuracy_name, change_sentence, plural

SETTING_COLUMNS = ("dataset", "model", "head", "loss", "epochs")   # what stays fixed over seeds and norms


def sample_std(values: Sequence[float]) -> float:
    """Sample standard deviation (n - 1 in the denominator); 0 for fewer than two values."""
    if len(values) < 2:
        return 0.0
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def format_mean_std(values: Sequence[float], digits: int = 1) -> str:
    """"mean ± std" of values (sample std; just the value for a single one; "n/a" for none)."""
    if not values:
        return "n/a"
    mean = sum(values) / len(values)
    if len(values) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {sample_std(values):.{digits}f}"


def mean_std_rows(rows: Sequence[Mapping[str, Any]], group_keys: Sequence[str],
                  metrics: Sequence[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """Group rows by `group_keys`; each metric becomes "mean ± std (n)" text; returns (rows, columns)."""
    groups: dict[tuple, list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row.get(key) for key in group_keys), []).append(row)
    table = []
    for key, members in groups.items():
        entry: dict[str, Any] = dict(zip(group_keys, key))
        entry["seeds"] = len(members)
        for metric in metrics:
            values = [float(m[metric]) for m in members if m.get(metric) is not None]
            entry[metric] = format_mean_std(values)
        table.append(entry)
    return table, [*group_keys, "seeds", *metrics]


def seed_table(results: pd.DataFrame) -> pd.DataFrame:
    """Mean ± std over seeds (percent) per setting and norm, from :func:`nbn_tutorial.train.gather_runs`."""
    rows, columns = mean_std_rows(results.to_dict("records"), [*SETTING_COLUMNS, "norm"], list(ACCURACY_COLUMNS))
    return pd.DataFrame(rows, columns=columns)


def mean_accuracy_table(results: pd.DataFrame) -> pd.DataFrame:
    """Mean accuracies over seeds as fractions, one row per setting and norm, for plots.plot_group_comparison."""
    means = results.groupby([*SETTING_COLUMNS, "norm"], sort=False)[list(ACCURACY_COLUMNS)].mean()
    labels = {key: " ".join(str(part) for part in (key[0], key[3], key[5])) for key in means.index}
    return group_table({labels[key]: (row / 100).to_dict() for key, row in means.iterrows()})


def seed_summary(results: pd.DataFrame, groups: Sequence[str] = ("overall", "few")) -> Summary:
    """Per setting: how NBN changed each group's accuracy over the seeds, judged against the seed-to-seed spread."""
    if results.empty:
        return Summary("No finished runs to summarise yet.")
    sentences = [_seed_sentence(setting, runs, group)
                 for setting, runs in results.groupby(list(SETTING_COLUMNS), sort=False) for group in groups]
    return Summary(" ".join(s for s in sentences if s) or "No setting has both a BN and an NBN run yet.")


def _seed_sentence(setting: tuple, runs: pd.DataFrame, group: str) -> str:
    """One sentence on the BN → NBN change of one group's mean accuracy in one setting ("" without both norms)."""
    by_norm = {norm: runs[runs["norm"] == norm][group].dropna().tolist() for norm in ("bn", "nbn")}
    if not (by_norm["bn"] and by_norm["nbn"]):
        return ""
    before, after = (sum(v) / len(v) for v in (by_norm["bn"], by_norm["nbn"]))
    seeds = min(len(by_norm["bn"]), len(by_norm["nbn"]))
    spread = max(sample_std(by_norm["bn"]), sample_std(by_norm["nbn"]))
    where = f"On {setting[0]} ({setting[1]}, {setting[3]}, {setting[4]} epochs, {plural(seeds, 'seed')})"
    sentence = change_sentence(f"{where}, NBN", f"mean {accuracy_name(group)}", before, after)
    if seeds < 2:
        return sentence + " One seed cannot tell the effect from noise."
    verdict = "is within" if abs(after - before) <= spread else "exceeds"
    return sentence + f" The change {verdict} the seed-to-seed spread (std up to {spread:.1f} points)."

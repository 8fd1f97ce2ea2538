"""Re-balancing trained runs (Kang et al., ICLR 2020) read back: a stage-1 run τ-normalised with τ chosen on held-
out data, and every method's final accuracies side by side with the sentences they allow (notebook 07).

cRT and LWS are stage-2 runs (:func:`~nbn_tutorial.train.stage2.stage2_config`); RIDE is a run of its own.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nbn_tutorial.accuracy import ACCURACY_COLUMNS
from nbn_tutorial.train.builders import build_datasets
from nbn_tutorial.train.evaluation import load_run
from nbn_tutorial.train.results import final_metrics
from nbn_tutorial.train.run_dir import stored_config
from nbn_tutorial.train.tau_norm import TauSearch, search_tau, tau_table
from nbn_tutorial.wording import Summary, percent

METHODS = ("stage 1", "cRT", "τ-norm", "LWS", "RIDE")
REBALANCED = ("cRT", "τ-norm", "LWS")


@dataclass(frozen=True)
class TauResult:
    """A stage-1 run τ-normalised: the chosen τ (see :class:`~nbn_tutorial.train.tau_norm.TauSearch`) and its
    test accuracies (fractions, as a training metrics row)."""

    search: TauSearch
    test: dict[str, float]

    @property
    def tau(self) -> float:
        """The chosen τ."""
        return self.search.tau


def tau_normalize_run(run: str | os.PathLike) -> TauResult:
    """τ-normalise a run's last checkpoint: τ searched on the val split, then its test accuracies at that τ."""
    model, config = load_run(run, which="last")
    search = search_tau(model, config)
    test = build_datasets(config, ("test",))["test"]
    row = tau_table(model, test, taus=(search.tau,)).iloc[0]
    return TauResult(search, {key: row[key] for key in row.index if key != "tau"})


def tau_curves(results: Mapping[str, TauResult]) -> pd.DataFrame:
    """Every searched τ's accuracies (percent) per run, long form: model, tau, balanced, few, chosen, split."""
    frames = []
    for name, result in results.items():
        table = result.search.table
        frames.append(pd.DataFrame({"model": name, "tau": table["tau"], "balanced": 100 * table["balanced_acc"],
                                    "few": 100 * table["few_acc"], "chosen": table["tau"] == result.tau,
                                    "split": result.search.split}))
    return pd.concat(frames, ignore_index=True)


def _row(norm: str, method: str, metrics: str | os.PathLike | Mapping[str, Any], note: str = "") -> dict[str, Any]:
    values = final_metrics(metrics) if isinstance(metrics, (str, Path)) else {
        name: metrics["test_acc" if name == "overall" else f"{name}_acc"] for name in ACCURACY_COLUMNS}
    return {"norm": norm, "method": method, **{name: percent(values[name]) for name in ACCURACY_COLUMNS},
            "note": note}


def _tau_note(result: TauResult) -> str:
    where = "test split: optimistic" if result.search.split == "test" else f"{result.search.split} split"
    return f"τ = {result.tau:g} ({where})"


def _ride_note(run: Path) -> str:
    config = stored_config(Path(run))
    return f"{config.num_experts} experts, {config.epochs} epochs"


def rebalancing_table(stage1: Mapping[str, Path], crt: Mapping[str, Path], tau: Mapping[str, TauResult],
                      lws: Mapping[str, Path], ride: Mapping[str, Path]) -> pd.DataFrame:
    """One row per norm and method (stage 1, cRT, τ-norm, LWS, RIDE): final test accuracies in percent."""
    rows = []
    for norm in stage1:
        rows += [_row(norm, "stage 1", stage1[norm]), _row(norm, "cRT", crt[norm]),
                 _row(norm, "τ-norm", tau[norm].test, _tau_note(tau[norm])), _row(norm, "LWS", lws[norm])]
        if norm in ride:
            rows.append(_row(norm, "RIDE", ride[norm], _ride_note(ride[norm])))
    return pd.DataFrame(rows, columns=["norm", "method", *ACCURACY_COLUMNS, "note"])


def _accuracy(table: pd.DataFrame, norm: str, method: str, metric: str) -> float | None:
    chosen = table[(table["norm"] == norm) & (table["method"] == method)]
    return None if chosen.empty else float(chosen[metric].iloc[0])


def _method_sentence(table: pd.DataFrame, norm: str, method: str) -> str:
    """How a method moved one norm's balanced and few-shot accuracy from its stage-1 run."""
    parts = []
    for metric, name in (("balanced", "balanced accuracy"), ("few", "few-shot accuracy")):
        before, after = _accuracy(table, norm, "stage 1", metric), _accuracy(table, norm, method, metric)
        delta = after - before
        if round(abs(delta), 1) == 0:
            parts.append(f"left {name} unchanged ({before:.1f}%)")
        else:
            parts.append(f"{'raised' if delta > 0 else 'lowered'} {name} by {abs(delta):.1f} points "
                         f"({before:.1f}% → {after:.1f}%)")
    subject = "RIDE (trained from scratch) against the single stage-1 model" if method == "RIDE" else method
    return f"On {norm}, {subject} {parts[0]} and {parts[1]}."


def _norm_gap(table: pd.DataFrame, method: str, reference: str, other: str) -> tuple[float, str] | None:
    first, second = _accuracy(table, reference, method, "balanced"), _accuracy(table, other, method, "balanced")
    if first is None or second is None:
        return None
    delta = second - first
    side = "above" if delta > 0 else "below" if delta < 0 else "level with"
    amount = f"{abs(delta):.1f} points " if round(abs(delta), 1) else ""
    return delta, f"{method}: {amount}{side} ({second:.1f}% vs {first:.1f}%)"


def _gap_sentences(table: pd.DataFrame, reference: str, other: str) -> list[str]:
    """The other norm against the reference, method by method, and before against after re-balancing."""
    gaps = [(method, *gap) for method in METHODS if (gap := _norm_gap(table, method, reference, other)) is not None]
    if not gaps:
        return []
    ahead = sum(delta > 0 for _, delta, _ in gaps)
    sentences = [f"{other} against {reference} in balanced accuracy, method by method: "
                 + "; ".join(text for _, _, text in gaps) + f". {other} is ahead in {ahead} of {len(gaps)}."]
    rebalanced = [delta for method, delta, _ in gaps if method in REBALANCED]
    stage1_gap = next((delta for method, delta, _ in gaps if method == "stage 1"), None)
    if rebalanced and stage1_gap is not None:
        sentences.append(f"Once the classifier is re-balanced (cRT, τ-norm, LWS), {other}'s mean difference to "
                         f"{reference} is {float(np.mean(rebalanced)):+.1f} points, against {stage1_gap:+.1f} before.")
    return sentences


def rebalancing_summary(table: pd.DataFrame, tau: Mapping[str, TauResult] | None = None, reference: str = "BN",
                        other: str = "NBN") -> Summary:
    """Sentences computed from :func:`rebalancing_table`: what each method did on each norm, whether NBN still
    helps once the classifier is re-balanced, RIDE, where τ was chosen, and how far one seed goes."""
    norms = list(dict.fromkeys(table["norm"]))
    sentences = [_method_sentence(table, norm, method) for norm in norms for method in ("cRT", "τ-norm", "LWS", "RIDE")
                 if _accuracy(table, norm, method, "balanced") is not None]
    sentences += _gap_sentences(table, reference, other)
    chosen_on_test = [name for name, result in (tau or {}).items() if result.search.split == "test"]
    if chosen_on_test:
        sentences.append(f"τ was chosen on the test split ({tau[chosen_on_test[0]].search.dataset} has no val split), "
                         "so the τ-norm rows are optimistic.")
    sentences.append("Each row is one seed and one run; differences of a point or two are within the seed-to-seed "
                     "spread of notebook 05, so `nbn-tutorial study run rebalancing` repeats this grid over seeds.")
    return Summary(" ".join(sentences))

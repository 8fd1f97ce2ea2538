"""A study's summary.md and its list of answers: computed sentences, the arm tables and every contrast."""
from __future__ import annotations

import math

import pandas as pd

from nbn_tutorial.study.contrasts import PRIMARY_FAMILY, Design, contrasts_of
from nbn_tutorial.study.evidence import (alpha_collapse_answer, alpha_relation_answer, feature_answer, nbn_runs,
                                         reference_model)
from nbn_tutorial.study.tables import arm_table, arms_of, metric_digits, metric_label, per_class_paired
from nbn_tutorial.study.verdicts import HOLM_EXPLAINED, arms_answer, confirmed, pair_answer, primary_answers


def design_sentence(design: Design, contrasts: pd.DataFrame) -> str:
    """How the study's inference works: the primary family (and when it was declared) and the exploratory ones."""
    primary = contrasts[contrasts["family"] == PRIMARY_FAMILY]
    named = ", ".join(f"`{arm}` − `{against}` on {metric_label(metric)}" for arm, against, metric in design.primary)
    when = ("declared in the study file before any result existed" if design.declared == "before-results" else
            "declared after the results were known (the study predates this rule), so the adjustment guards against "
            "testing many contrasts, not against choosing which to test")
    first = (f"The primary contrasts ({named}, on every dataset that runs both arms: {len(primary)} in all) form one "
             f"family, {when}{'; ' + design.why if design.why else ''}. " if len(primary) else
             "The study declares no primary contrast, so every contrast is exploratory. ")
    return (first + "Every other contrast of a dataset (each arm against the baseline and the reference, and the "
            "study's pairs) belongs to that dataset's exploratory family. " + HOLM_EXPLAINED)


def study_conclusions(results: pd.DataFrame, contrasts: pd.DataFrame, dynamics: pd.DataFrame,
                      design: Design) -> list[str]:
    """Per dataset: the primary contrasts, the other arms against the baseline and the reference, feature evening
    and its relation to α, α over training; then the study file's pairs."""
    sentences = []
    for dataset in results["dataset"].unique():
        arms = set(arms_of(results, dataset))
        sentences += primary_answers(results, contrasts, design, dataset)
        if design.baseline not in arms:
            continue
        sentences.append(arms_answer(results, contrasts, design, dataset, design.baseline))
        if design.reference in arms:
            against_reference = arms_answer(results, contrasts, design, dataset, design.reference)
            if against_reference not in sentences:   # with no other arm both answers say the same
                sentences.append(against_reference)
            sentences.append(feature_answer(results, contrasts, design, dataset))
        model = reference_model(results, dataset, design)
        if len(nbn_runs(results, dataset, model)["arm"].unique()) >= 2:
            sentences.append(alpha_relation_answer(results, dataset, model))
        if not dynamics[dynamics["dataset"] == dataset].empty:
            sentences.append(alpha_collapse_answer(results, dynamics, design, dataset))
        pairs = [pair_answer(contrasts, dataset, first, second) for first, second in design.pairs
                 if {first, second} <= arms]
        sentences += [sentence for sentence in pairs if sentence is not None]
    return sentences


def _number(value: float, digits: int) -> str:
    return "" if not math.isfinite(value) else f"{value:.{digits}f}"


def _p(value: float) -> str:
    return "" if not math.isfinite(value) else f"{value:.3g}"


def contrast_markdown(contrasts: pd.DataFrame) -> str:
    """The contrasts as a markdown table: estimate [95% CI], the three p-values, family and what survives."""
    lines = ["| contrast | metric | Δ [95% CI] | n | p (t) | p (sign-flip) | p (Holm) | family (K) | verdict |",
             "|---|---|---|---|---|---|---|---|---|"]
    for _, row in contrasts.iterrows():
        digits = metric_digits(row["metric"])
        interval = (f"{row['mean']:+.{digits}f} [{_number(row['low'], digits)}, {_number(row['high'], digits)}]"
                    if math.isfinite(row["mean"]) else "n/a")
        verdict = ("survives" if confirmed(row) else
                   "not confirmed" if int(row["n"]) >= 2 and (row["low"] > 0 or row["high"] < 0) else "—")
        family = "primary" if row["family"] == PRIMARY_FAMILY else "exploratory"
        lines.append(f"| `{row['arm']}` − `{row['against']}` | {metric_label(row['metric'])} | {interval} | "
                     f"{int(row['n'])} | {_p(row['p'])} | {_p(row['p_perm'])} | {_p(row['p_holm'])} | "
                     f"{family} ({int(row['family_size'])}) | {verdict} |")
    return "\n".join(lines)


def frame_markdown(frame: pd.DataFrame) -> str:
    """A plain markdown table (floats to one decimal, NaN as an empty cell)."""
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    for _, row in frame.iterrows():
        cells = [f"{v:.1f}" if isinstance(v, float) and math.isfinite(v) else ("" if isinstance(v, float) else str(v))
                 for v in row.tolist()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary_markdown(name: str, header: list[str], results: pd.DataFrame, per_class: pd.DataFrame,
                     dynamics: pd.DataFrame, contrasts: pd.DataFrame, design: Design) -> str:
    """The whole summary.md of a study."""
    lines = [f"# Study `{name}`", "", *[f"- {line}" for line in header], "", "## What the study says", "",
             design_sentence(design, contrasts), ""]
    lines += [f"- {sentence}" for sentence in study_conclusions(results, contrasts, dynamics, design)]
    for dataset in results["dataset"].unique():
        lines += ["", f"## {dataset}", "", "Mean [95% CI] over seeds; Δ = paired difference to the baseline arm "
                  f"`{design.baseline}` (percentage points for accuracies).", "",
                  frame_markdown(arm_table(results, dataset, design.baseline)), "",
                  "### Every contrast, with its p-values", "",
                  "p (t): paired t-test; p (sign-flip): exact permutation of the seeds' signs; p (Holm): the t-test p "
                  "adjusted within its family of K contrasts. A verdict word needs p (Holm) < 0.05.", "",
                  contrast_markdown(contrasts_of(contrasts, dataset)), "",
                  f"### Per-class paired differences to `{design.baseline}` by training-count rank", "",
                  "Descriptive: unadjusted 95% intervals over seeds, one per class rank; no verdict is drawn "
                  "from them.", "", frame_markdown(per_class_paired(per_class, dataset, design.baseline))]
    return "\n".join(lines).rstrip() + "\n"

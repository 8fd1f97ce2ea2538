"""The answers a study gives, in sentences computed from its contrast table (:mod:`.contrasts`).

A verdict word ("helps", "hurts", "a detectable gain/loss", "evens out") appears only where the contrast's
Holm-adjusted p is below 0.05 within its family. Elsewhere a sentence says what the unadjusted 95%
interval shows and that it is not confirmed after adjusting for the family's K comparisons. Where the
seeds are too few for the exact sign-flip test to reach 0.05 at all, the sentence says so too. Few-shot
accuracy is part of balanced accuracy, so it is never presented as a second confirmation.
"""
from __future__ import annotations

import math
from collections.abc import Iterable

import pandas as pd

from nbn_tutorial.study.contrasts import PRIMARY_FAMILY, Design, contrasts_of, find, planned_contrasts
from nbn_tutorial.study.stats import ALPHA
from nbn_tutorial.study.tables import arms_of, metric_digits, metric_label, unit

HOLM_EXPLAINED = ("Holm's method sorts a family's K p-values, multiplies the smallest by K, the next by K − 1 and "
                  "so on (never letting an adjusted value fall below the one before); calling a difference "
                  "detected only when its adjusted p is below 0.05 keeps the chance of any false detection in the "
                  "family at 5%, where K unadjusted 95% intervals would each have a 5% chance of excluding zero "
                  "by luck.")


def _p(value: float) -> str:
    return "n/a" if not math.isfinite(value) else (f"{value:.2g}" if value < 0.01 else f"{value:.2f}")


def _family(row: pd.Series) -> str:
    if row["family"] == PRIMARY_FAMILY:
        return f"the {int(row['family_size'])} primary contrasts"
    return f"the {int(row['family_size'])} exploratory contrasts of {row['dataset']}"


def effect(row: pd.Series) -> str:
    """``+0.1 points (95% CI -0.9 to +1.0, 10 seeds; t-test p = 0.79, sign-flip p = 0.80)``."""
    fmt = f"{{:+.{metric_digits(row['metric'])}f}}"
    if int(row["n"]) < 2:
        return f"{fmt.format(row['mean'])}{unit(row['metric'])} (fewer than two paired seeds: no interval)"
    return (f"{fmt.format(row['mean'])}{unit(row['metric'])} (95% CI {fmt.format(row['low'])} to "
            f"{fmt.format(row['high'])}, {int(row['n'])} seeds; t-test p = {_p(row['p'])}, sign-flip p = "
            f"{_p(row['p_perm'])})")


def confirmed(row: pd.Series) -> bool:
    """True when the contrast's Holm-adjusted p is below 0.05."""
    return bool(math.isfinite(row["p_holm"]) and row["p_holm"] < ALPHA)


def _sign_flip_caveat(row: pd.Series) -> str:
    smallest = row["smallest_p_perm"]
    if math.isfinite(smallest) and smallest > ALPHA:
        return (f"; with {int(row['n'])} seeds the exact sign-flip test cannot go below p = {smallest:.4g}, so "
                "only the t-test's normal-theory p carries it")
    return ""


def judgement(row: pd.Series, gain: str = "a detectable gain", loss: str = "a detectable loss") -> str:
    """What the contrast allows one to say, with its adjustment: a verdict only where Holm's p < 0.05."""
    holm_text = f"Holm-adjusted p = {_p(row['p_holm'])} over {_family(row)}"
    if int(row["n"]) < 2:
        return "no interval, so nothing can be said"
    if confirmed(row):
        return f"{gain if row['mean'] > 0 else loss} ({holm_text}{_sign_flip_caveat(row)})"
    if row["low"] > 0 or row["high"] < 0:
        return (f"the unadjusted interval excludes zero, but this does not survive adjusting for "
                f"{int(row['family_size'])} comparisons ({holm_text}): not confirmed")
    return "the interval includes zero: the runs do not tell the two arms apart"


def contrast_sentence(row: pd.Series) -> str:
    """``arm − against, metric: effect; judgement.`` for one contrast row."""
    return (f"`{row['arm']}` − `{row['against']}`, {metric_label(row['metric'])}: {effect(row)}; "
            f"{judgement(row)}.")


def _seeds(results: pd.DataFrame, dataset: str) -> int:
    return int(results[(results["dataset"] == dataset) & (results["status"] == "finished")]["seed"].nunique())


def primary_answers(results: pd.DataFrame, contrasts: pd.DataFrame, design: Design, dataset: str) -> list[str]:
    """The dataset's primary contrasts, each with its few-shot companion named as part of it, not as evidence."""
    sentences = []
    for arm, against, metric in design.primary:
        row = find(contrasts, dataset, arm, against, metric)
        if row is None:
            continue
        sentence = (f"On {dataset} ({_seeds(results, dataset)} seeds), the primary contrast `{arm}` − `{against}` on "
                    f"{metric_label(metric)} is {effect(row)}: {judgement(row, 'it helps', 'it hurts')}.")
        few = find(contrasts, dataset, arm, against, "few")
        if metric == "balanced" and few is not None:
            sentence += (f" Few-shot accuracy, one part of balanced accuracy (not a second confirmation), moves "
                         f"{effect(few)}; {judgement(few)}.")
        sentences.append(sentence)
    return sentences


def findings(rows: pd.DataFrame, intro: str, nothing: str) -> str:
    """One sentence over several contrasts: the confirmed ones with their verdict, then the unconfirmed
    ones whose unadjusted interval excludes zero, or ``nothing`` when neither exists."""
    parts = [contrast_sentence(row).rstrip(".") for _, row in rows.iterrows() if confirmed(row)]
    unconfirmed = [row for _, row in rows.iterrows() if not confirmed(row) and int(row["n"]) >= 2
                   and (row["low"] > 0 or row["high"] < 0)]
    if unconfirmed:
        names = ", ".join(f"`{row['arm']}` − `{row['against']}` on {metric_label(row['metric'])} "
                          f"({_effect_short(row)})" for row in unconfirmed)
        family = _family(unconfirmed[0])
        parts.append(f"unadjusted intervals exclude zero for {names}, but none of these survives Holm's "
                     f"adjustment over {family}: not confirmed")
    if not parts:
        return nothing
    return intro + "; ".join(parts) + "."


def _effect_short(row: pd.Series) -> str:
    fmt = f"{{:+.{metric_digits(row['metric'])}f}}"
    return f"{fmt.format(row['mean'])} [{fmt.format(row['low'])}, {fmt.format(row['high'])}]"


def _others(results: pd.DataFrame, dataset: str, design: Design) -> list[str]:
    return [arm for arm in arms_of(results, dataset) if arm not in (design.baseline, design.reference)]


def _rows(contrasts: pd.DataFrame, dataset: str, arms: Iterable[str], against: str, metrics) -> pd.DataFrame:
    chosen = contrasts_of(contrasts, dataset, metrics)
    return chosen[chosen["arm"].isin(list(arms)) & (chosen["against"] == against)
                  & (chosen["family"] != PRIMARY_FAMILY)]


def arms_answer(results: pd.DataFrame, contrasts: pd.DataFrame, design: Design, dataset: str, against: str) -> str:
    """Which other arms differ from ``against`` (the baseline or the reference) on balanced, few- or many-shot
    accuracy, confirmed or not."""
    others = _others(results, dataset, design)
    if not others:
        return f"On {dataset} the study has no arm besides `{design.baseline}` and `{design.reference}`."
    names = ", ".join(f"`{arm}`" for arm in others)
    return findings(_rows(contrasts, dataset, others, against, ("balanced", "few", "many")),
                    f"On {dataset}, compared with `{against}`: ",
                    f"On {dataset}, none of {names} differs from `{against}` on balanced, few- or many-shot accuracy "
                    "by more than its interval allows (every interval includes zero).")


def pair_answer(contrasts: pd.DataFrame, dataset: str, first: str, second: str) -> str | None:
    """One of the study file's ``pairs``: ``first`` − ``second`` on the same seeds, balanced and few-shot (None
    when its balanced contrast is a primary one, already answered)."""
    balanced, few = (find(contrasts, dataset, first, second, metric) for metric in ("balanced", "few"))
    if balanced is None or few is None or balanced["family"] == PRIMARY_FAMILY:
        return None
    return (f"On {dataset}, `{first}` − `{second}` (same seeds): balanced accuracy {effect(balanced)}, "
            f"{judgement(balanced)}; few-shot accuracy (part of balanced) {effect(few)}, {judgement(few)}.")

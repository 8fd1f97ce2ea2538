"""The answers a study gives, in sentences computed from its paired intervals.

Four questions, per dataset: does NBN (the reference arm) change accuracy compared with BN (the baseline)?
do the other arms (against the baseline)? which NBN design choices matter (each variant against the
reference)? does NBN even out feature strength (the few/many feature-strength ratio)? An interval that
includes zero is reported as "no detectable difference", never as a gain or a loss.
"""
from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from nbn_tutorial.study.report import paired_intervals
from nbn_tutorial.study.stats import Interval


def _effect(interval: Interval, unit: str = " points", digits: int = 1) -> str:
    fmt = f"{{:+.{digits}f}}"
    if interval.n < 2:
        return f"{fmt.format(interval.mean)}{unit} (one seed: no interval)"
    return (f"{fmt.format(interval.mean)}{unit} (95% CI {fmt.format(interval.low)} to {fmt.format(interval.high)}, "
            f"{interval.n} seeds)")


def direction(interval: Interval, gain: str = "helps", loss: str = "hurts",
              neither: str = "makes no detectable difference") -> str:
    """``gain``/``loss`` when the interval excludes zero on that side, else ``neither``."""
    if not interval.excludes_zero:
        return neither
    return gain if interval.mean > 0 else loss


def _seeds(results: pd.DataFrame, dataset: str) -> int:
    return int(results[(results["dataset"] == dataset) & (results["status"] == "finished")]["seed"].nunique())


def nbn_answer(results: pd.DataFrame, dataset: str, baseline: str, reference: str) -> str:
    """Does the reference arm (NBN) change balanced and few-shot accuracy against the baseline (BN)?"""
    balanced = paired_intervals(results, dataset, "balanced", baseline)[reference]
    few = paired_intervals(results, dataset, "few", baseline)[reference]
    verdicts = (direction(balanced), direction(few))
    said = (f"{verdicts[0]} on {'both' if balanced.excludes_zero else 'either'}" if verdicts[0] == verdicts[1]
            else f"{verdicts[0]} on balanced accuracy and {verdicts[1]} on few-shot accuracy")
    return (f"On {dataset} ({_seeds(results, dataset)} seeds), `{reference}` − `{baseline}`: balanced accuracy "
            f"{_effect(balanced)}, few-shot accuracy {_effect(few)}. So `{reference}` {said} here.")


def _other_arms(results: pd.DataFrame, dataset: str, baseline: str, reference: str) -> list[str]:
    """The arms of ``dataset`` besides the baseline and the reference, in study order."""
    return [arm for arm in results[results["dataset"] == dataset]["arm"].unique() if arm not in (baseline, reference)]


def _detectable(results: pd.DataFrame, dataset: str, arms: list[str], against: str) -> list[str]:
    """A clause for each of ``arms`` whose balanced or few-shot accuracy differs detectably from ``against``."""
    return [f"`{arm}` − `{against}` on {label} accuracy is {_effect(interval)}, "
            f"{direction(interval, 'a detectable gain', 'a detectable loss')}"
            for metric, label in (("balanced", "balanced"), ("few", "few-shot"))
            for arm, interval in paired_intervals(results, dataset, metric, against).items()
            if arm in arms and interval.excludes_zero]


def choices_answer(results: pd.DataFrame, dataset: str, baseline: str, reference: str) -> str:
    """Which other arms differ detectably from the reference arm, on balanced or few-shot accuracy."""
    others = _other_arms(results, dataset, baseline, reference)
    if not others:
        return f"On {dataset} the study has no arm besides `{baseline}` and `{reference}`."
    findings = _detectable(results, dataset, others, reference)
    if not findings:
        return (f"On {dataset}, none of the other arms ({', '.join(f'`{v}`' for v in others)}) differs detectably "
                f"from `{reference}` on balanced or few-shot accuracy: at this scale the differences between them "
                "are not measurable.")
    return f"On {dataset}, compared with `{reference}`: " + "; ".join(findings) + "."


def baseline_answer(results: pd.DataFrame, dataset: str, baseline: str, reference: str) -> str:
    """Which arms besides the reference differ detectably from the baseline, on balanced or few-shot accuracy."""
    others = _other_arms(results, dataset, baseline, reference)
    if not others:
        return f"On {dataset} the study has no arm besides `{baseline}` and `{reference}`."
    findings = _detectable(results, dataset, others, baseline)
    if not findings:
        return (f"On {dataset}, none of {', '.join(f'`{v}`' for v in others)} differs detectably from `{baseline}` "
                "on balanced or few-shot accuracy.")
    return f"On {dataset}, compared with `{baseline}`: " + "; ".join(findings) + "."


def feature_answer(results: pd.DataFrame, dataset: str, baseline: str, reference: str) -> str:
    """Does the reference arm move the few/many feature-strength ratio (towards 1 = evened out)?"""
    interval = paired_intervals(results, dataset, "feature_strength_ratio", baseline)[reference]
    base = results[(results["dataset"] == dataset) & (results["arm"] == baseline)]["feature_strength_ratio"].mean()
    evens = "evens out" if (interval.mean > 0) == (base < 1) else "widens"
    verdict = direction(interval, gain=f"{evens} feature strength", loss=f"{evens} feature strength",
                        neither="does not detectably change the feature-strength gap")
    return (f"On {dataset}, few-shot classes' penultimate features have {base:.3f} times the strength of many-shot "
            f"classes' under `{baseline}`; `{reference}` changes that ratio by "
            f"{_effect(interval, unit='', digits=3)}: it {verdict} here.")


def pair_answer(results: pd.DataFrame, dataset: str, first: str, second: str) -> str:
    """One extra paired comparison of the study file's ``pairs``: ``first`` − ``second`` on the same seeds."""
    balanced = paired_intervals(results, dataset, "balanced", second)[first]
    few = paired_intervals(results, dataset, "few", second)[first]
    said = {name: direction(interval, "a detectable gain", "a detectable loss", "no detectable difference")
            for name, interval in (("balanced", balanced), ("few", few))}
    return (f"On {dataset}, `{first}` − `{second}` (same seeds): balanced accuracy {_effect(balanced)}, "
            f"{said['balanced']}; few-shot accuracy {_effect(few)}, {said['few']}.")


def study_conclusions(results: pd.DataFrame, baseline: str, reference: str,
                      pairs: Sequence[Sequence[str]] = ()) -> list[str]:
    """Per dataset, the four answers (NBN vs BN, the other arms vs BN and vs NBN, feature strength), then the
    study file's extra ``pairs``."""
    sentences = []
    for dataset in results["dataset"].unique():
        arms = set(results[results["dataset"] == dataset]["arm"])
        if reference not in arms or baseline not in arms:
            continue
        sentences += [nbn_answer(results, dataset, baseline, reference),
                      baseline_answer(results, dataset, baseline, reference),
                      choices_answer(results, dataset, baseline, reference),
                      feature_answer(results, dataset, baseline, reference)]
        sentences += [pair_answer(results, dataset, first, second) for first, second in pairs
                      if {first, second} <= arms]
    return sentences

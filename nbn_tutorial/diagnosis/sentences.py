"""Sentences computed from the diagnosis tables and a run's final accuracies (notebooks 02-04's summaries).

Each function states what its numbers say (direction and size); none carries a hand-written claim.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nbn_tutorial.accuracy import GROUP_METRICS
from nbn_tutorial.diagnosis.tables import summarize_by_group
from nbn_tutorial.wording import Summary, accuracy_name, change_sentence, percent, ratio_sentence


def baseline_summary(metrics: Mapping[str, float], epochs: int) -> Summary:
    """Sentences about a baseline: overall and balanced accuracy and the many/few gap, from its final accuracies
    (fractions: overall, balanced, many, medium, few) after ``epochs`` epochs."""
    values = {key: percent(value) for key, value in metrics.items()}
    gap = values["many"] - values["few"]
    if gap > 0:
        gap_text = f"few-shot classes trail many-shot classes by {gap:.1f} points"
    elif gap < 0:
        gap_text = f"few-shot classes lead many-shot classes by {-gap:.1f} points, unusual for a long tail"
    else:
        gap_text = "few-shot and many-shot classes are equally accurate"
    return Summary(f"After {epochs} epochs the BN baseline reaches {values['overall']:.1f}% overall and "
                   f"{values['balanced']:.1f}% balanced accuracy; many-shot {values['many']:.1f}%, medium-shot "
                   f"{values['medium']:.1f}%, few-shot {values['few']:.1f}%: {gap_text}.")


def bias_summary(strength_table: Any, channel_summary_table: Any, norm_table: Any) -> Summary:
    """Sentences on the feature bias: feature strength, class-specific channels and classifier norms by group."""
    feature = summarize_by_group(strength_table, "strength")
    channels = channel_summary_table["mean_strength"]
    owned = channel_summary_table["channels_per_class"]
    norms = summarize_by_group(norm_table, "weight_norm")
    sentences = [
        ratio_sentence("Penultimate features", feature["few"], feature["many"]),
        ratio_sentence("Class-specific last-stage channels", channels["few"], channels["many"]),
        f"Each few-shot class owns {owned['few']:.1f} channels on average, each many-shot class {owned['many']:.1f}.",
        ratio_sentence("Classifier weight vectors", norms["few"], norms["many"]),
    ]
    return Summary(" ".join(sentences))


def comparison_summary(results: Mapping[str, Mapping[str, float]], channels: Mapping[str, Any] | None = None,
                       before: str = "bn", after: str = "nbn") -> Summary:
    """Sentences comparing two recorded results (percent) group by group, the few-shot classes' share of
    class-specific channels when ``channels`` ({"BN": table, "NBN": table}) is given, and a caution."""
    if before not in results or after not in results:
        return Summary(f"No comparison yet: results for {before!r} and {after!r} are both needed.")
    lines = [change_sentence(after.upper(), accuracy_name(group), results[before][group], results[after][group])
             for group in GROUP_METRICS if group in results[before] and group in results[after]]
    if channels:
        owned = [f"{int((table['active'] & (table['owner_group'] == 'few')).sum())} of {int(table['active'].sum())} "
                 f"with {name}" for name, table in channels.items()]
        lines.append(f"Few-shot classes own {' and '.join(owned)} active class-specific last-stage channels.")
    lines.append("This is one seed; notebook 05 repeats both over several seeds to separate the effect from noise.")
    return Summary(" ".join(lines))


def alpha_summary(metrics: Any) -> Summary:
    """How the NBN α values moved during training, from a run's metrics table (``train.read_metrics``)."""
    alphas = [row for row in metrics["alpha"] if isinstance(row, list) and row]
    if not alphas:
        return Summary("This run has no NBN α (a plain BN run).")
    moves = ", ".join(f"{a:.3f} → {b:.3f}" for a, b in zip(alphas[0], alphas[-1]))
    return Summary(f"α after the first evaluated epoch → after the last: {moves}.")

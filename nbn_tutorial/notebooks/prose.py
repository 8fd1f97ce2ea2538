"""Sentences computed from numbers: the summaries the notebooks and the report print.

Every sentence states what the numbers say (direction, size, and whether a change exceeds the
seed-to-seed spread), so the notebooks never carry hand-written claims that a re-run could falsify.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nbn_tutorial.notebooks.full_runs import SETTING_COLUMNS
from nbn_tutorial.notebooks.runs import GROUP_METRICS, final_metrics
from nbn_tutorial.notebooks.tables import percent, sample_std
from nbn_tutorial.wording import plural


class Summary(str):
    """Text computed from a run; a notebook shows it as Markdown, elsewhere it is a plain string."""

    def _repr_markdown_(self) -> str:
        return str(self)


def change_sentence(subject: str, quantity: str, before: float, after: float, *, unit: str = "%") -> str:
    """A sentence stating how `quantity` moved from `before` to `after` (numbers in percent)."""
    delta = after - before
    values = f"({before:.1f}{unit} → {after:.1f}{unit})"
    if round(abs(delta), 1) == 0:
        return f"{subject} left {quantity} unchanged {values}."
    verb = "improved" if delta > 0 else "lowered"
    return f"{subject} {verb} {quantity} by {abs(delta):.1f} points {values}."


def accuracy_name(group: str) -> str:
    """"overall accuracy" or "<group>-shot accuracy", as the sentences name a metric."""
    return "overall accuracy" if group == "overall" else f"{group}-shot accuracy"


# ---- notebook 01 ---------------------------------------------------------------------------------

def describe_split(train_split, test_split) -> Summary:
    """Sentences about a long-tailed split, computed from its counts."""
    counts = train_split.class_counts
    groups = train_split.shot_groups
    total = int(counts.sum())
    shares = ", ".join(f"{name} {len(members)} classes / {100 * counts[members].sum() / total:.0f}% of the images"
                       for name, members in groups.items())
    test_counts = test_split.class_counts
    test_text = (f"The test split is balanced: {int(test_counts[0])} images per class."
                 if test_counts.min() == test_counts.max()
                 else f"The test split has {int(test_counts.min())} to {int(test_counts.max())} images per class.")
    return Summary(f"The training split of **{train_split.spec.name}** has {total} images in "
                   f"{train_split.num_classes} classes, from {int(counts.max())} images in the largest class down "
                   f"to {int(counts.min())} in the smallest (measured imbalance factor "
                   f"{counts.max() / counts.min():.1f}). Shot groups ({train_split.shot_rule} rule): "
                   f"{shares}. {test_text}")


# ---- notebooks 02-04 ------------------------------------------------------------------------------

def baseline_summary(run: str | Path) -> Summary:
    """Sentences about a baseline run: overall accuracy and the many/few gap, from its final metrics."""
    from nbn_tutorial import train

    metrics = {key: percent(value) for key, value in final_metrics(run).items()}
    epochs = int(train.read_metrics(run).iloc[-1]["epoch"])
    gap = metrics["many"] - metrics["few"]
    if gap > 0:
        gap_text = f"few-shot classes trail many-shot classes by {gap:.1f} points"
    elif gap < 0:
        gap_text = f"few-shot classes lead many-shot classes by {-gap:.1f} points, unusual for a long tail"
    else:
        gap_text = "few-shot and many-shot classes are equally accurate"
    return Summary(f"After {epochs} epochs the BN baseline reaches {metrics['overall']:.1f}% overall and "
                   f"{metrics['balanced']:.1f}% balanced accuracy; many-shot {metrics['many']:.1f}%, medium-shot "
                   f"{metrics['medium']:.1f}%, few-shot {metrics['few']:.1f}%: {gap_text}.")


def _ratio_text(what: str, few: float, many: float) -> str:
    if not (math.isfinite(few) and math.isfinite(many)) or many == 0:
        return f"{what}: not measurable (a group is empty)."
    ratio = few / many
    direction = "weaker" if ratio < 1 else "stronger"
    size = f"{abs(1 - ratio) * 100:.0f}% {direction}" if round(ratio, 2) != 1 else "as strong"
    return f"{what} of few-shot classes are {size} than those of many-shot classes ({few:.3g} vs {many:.3g})."


def bias_summary(strength_table, channel_summary_table, norm_table) -> Summary:
    """Sentences on the feature bias: feature strength, class-specific channels and classifier norms by group."""
    from nbn_tutorial import diagnosis

    feature = diagnosis.summarize_by_group(strength_table, "strength")
    channels = channel_summary_table["mean_strength"]
    owned = channel_summary_table["channels_per_class"]
    norms = diagnosis.summarize_by_group(norm_table, "weight_norm")
    sentences = [
        _ratio_text("Penultimate features", feature["few"], feature["many"]),
        _ratio_text("Class-specific last-stage channels", channels["few"], channels["many"]),
        f"Each few-shot class owns {owned['few']:.1f} channels on average, each many-shot class {owned['many']:.1f}.",
        _ratio_text("Classifier weight vectors", norms["few"], norms["many"]),
    ]
    return Summary(" ".join(sentences))


def comparison_summary(results: Mapping[str, Mapping[str, float]], channels: Mapping[str, Any] | None = None,
                       before: str = "bn", after: str = "nbn") -> Summary:
    """Sentences comparing two recorded results (percent) group by group, the few-shot classes' share of
    class-specific channels when `channels` ({"BN": table, "NBN": table}) is given, and a caution."""
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


def alpha_summary(run: str | Path) -> Summary:
    """How the NBN α values moved during training, from the run's metrics."""
    from nbn_tutorial import train

    alphas = [row for row in train.read_metrics(run)["alpha"] if isinstance(row, list) and row]
    if not alphas:
        return Summary("This run has no NBN α (a plain BN run).")
    start, end = alphas[0], alphas[-1]
    moves = ", ".join(f"{a:.3f} → {b:.3f}" for a, b in zip(start, end))
    return Summary(f"α after the first evaluated epoch → after the last: {moves}.")


def grad_cam_note(model, images) -> Summary:
    """How coarse a Grad-CAM map is: the last-stage grid it is computed on, against the input size."""
    from nbn_tutorial import diagnosis

    height, width = diagnosis.feature_map_size(model, images)
    image_height, image_width = (int(size) for size in images.shape[-2:])
    cell = f"{image_height / height:.3g}×{image_width / width:.3g}"
    text = (f"These maps are computed on the last stage's {height}×{width} feature maps and upsampled bilinearly to "
            f"the {image_height}×{image_width} input, so each map cell covers a {cell} block of pixels.")
    if height * width <= 16:
        text = (f"**Coarse maps.** {text} A {height}×{width} grid can only say which part of the image drove the "
                "prediction, not which strokes or edges; every gradation in between is bilinear interpolation.")
    return Summary(text)


# ---- notebook 05 ----------------------------------------------------------------------------------

def gpu_plan_note(plan, run_dir: str | Path, gpus: int, train_here: bool = True) -> Summary:
    """What the plan does on this machine, and what would run with torchrun on ``gpus`` GPUs instead.

    With several GPUs here the launch commands are the output; otherwise one sentence says what trains
    in this kernel and one example command stands for the script written into the run directory.
    """
    import torch

    from nbn_tutorial.notebooks.full_runs import launch_commands, write_launch_script

    script = write_launch_script(plan, run_dir, gpus)
    here = torch.cuda.device_count()
    todo = [run for run in plan if run.status != "finished"]
    if here >= 2:
        return Summary(f"This machine has {here} GPUs. Run these commands in a terminal (also in `{script}`), one "
                       f"after another, then re-run this notebook with `train_here = False` to gather the results:"
                       f"\n\n```\n{launch_commands(plan, gpus=min(gpus, here))}\n```")
    device = "one GPU" if here == 1 else "no GPU"
    if not todo:
        action = "the next cell only gathers them"
    elif train_here:
        action = f"the next cell trains the {plural(len(todo), 'unfinished one')} here, one after another"
    else:
        action = "`train_here = True` would train the unfinished ones here, one after another"
    example = launch_commands(plan[:1], gpus=gpus) if plan else ""
    finished = len(plan) - len(todo)
    return Summary(f"This machine has {device}, so nothing here runs with torchrun: {finished} of the {len(plan)} "
                   f"planned runs {'is' if finished == 1 else 'are'} finished and {action}. On a machine with {gpus} GPUs, each run "
                   f"would instead be one `torchrun` job with one process per GPU (DDP, the batch split over the "
                   f"processes); the {len(plan)} commands are in `{script}`, the first one is"
                   f"\n\n```\n{example}\n```")



def seed_summary(results, groups: Sequence[str] = ("overall", "few")) -> Summary:
    """Per setting: how NBN changed each group's accuracy over the seeds, judged against the seed-to-seed spread."""
    if results.empty:
        return Summary("No finished runs to summarise yet.")
    sentences = [_seed_sentence(setting, runs, group)
                 for setting, runs in results.groupby(list(SETTING_COLUMNS), sort=False) for group in groups]
    return Summary(" ".join(s for s in sentences if s) or "No setting has both a BN and an NBN run yet.")


def _seed_sentence(setting: tuple, runs, group: str) -> str:
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

"""Notebook 07: re-balancing a trained classifier (cRT, τ-norm, LWS) and RIDE's experts, BN against NBN.

Stage 1 is the runs of notebooks 02 and 04 (same configs, so the same run directories); stage 2 starts
from their ``last.pt``. Everything the notebook shows is computed here; the table and its summary are
written into the run directory for the report.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nbn_tutorial.notebooks.runs import run_config, run_path
from nbn_tutorial.notebooks.tables import percent

REBALANCING_TABLE = "rebalancing"            # <run_dir>/rebalancing.{csv,md}: the notebook's one table
REBALANCING_SUMMARY = "rebalancing_summary"  # <run_dir>/rebalancing_summary.md: its computed conclusions
METHODS = ("stage 1", "cRT", "τ-norm", "LWS", "RIDE")
ACCURACY_COLUMNS = ("overall", "balanced", "many", "medium", "few")
# What a stage-2 preset decides; everything else (data, model, seed, device) is the stage-1 run's.
STAGE2_FIELDS = ("sampler", "trainable", "reinit_classifier", "loss", "epochs", "batch_size", "lr", "momentum",
                 "weight_decay", "nesterov", "schedule", "warmup_epochs", "milestones", "lr_decay", "eval_every",
                 "checkpoint_metric")


def stage2_config(preset: str, stage1_config, stage1_run: str | Path, *, epochs: int | None = None):
    """The stage-2 preset's training settings (:data:`STAGE2_FIELDS`) on the stage-1 run's data and model,
    starting from that run's ``last.pt`` (``epochs`` None keeps the preset's)."""
    from nbn_tutorial import train

    schedule = train.config_to_dict(train.load_config(preset))
    values = {**train.config_to_dict(stage1_config), **{key: schedule[key] for key in STAGE2_FIELDS},
              "init_from": str(Path(stage1_run).resolve() / "last.pt")}
    if epochs is not None:
        values["epochs"] = epochs
    return train.config_from_dict(values, f"stage-2 preset {preset!r} on the stage-1 run {stage1_run}")


def train_stage2(preset: str, stage1_configs: Mapping[str, Any], stage1_runs: Mapping[str, Path], run_dir: str | Path,
                 *, epochs: int | None = None, progress: bool = True) -> dict[str, Path]:
    """Train (or reuse) the stage-2 preset on every stage-1 run ({"BN": run, "NBN": run}); returns the runs."""
    from nbn_tutorial import train

    runs = {}
    for name, run in stage1_runs.items():
        config = stage2_config(preset, stage1_configs[name], run, epochs=epochs)
        runs[name] = train.load_or_train(config, run_path(run_dir, config), progress=progress)
    return runs


def ride_config(preset: str, *, norm: str, epochs: int | None = None, **parameters: Any):
    """A RIDE preset with the notebook's parameters; with fewer ``epochs`` its DRW epoch keeps its share of training
    (RIDE re-weights from epoch 160 of 200: the quick preset from 24 of 30)."""
    from nbn_tutorial import train

    fields = {}
    if epochs is not None:
        base = train.load_config(preset)
        fields["drw_epoch"] = round(base.drw_epoch * epochs / base.epochs)
    return run_config(preset, norm=norm, epochs=epochs, **parameters, **fields)


@dataclass(frozen=True)
class TauResult:
    """A stage-1 run τ-normalised: the chosen τ (see :class:`~nbn_tutorial.train.tau_norm.TauSearch`) and its
    test accuracies (fractions, as a training metrics row)."""

    search: Any
    test: dict[str, float]

    @property
    def tau(self) -> float:
        """The chosen τ."""
        return self.search.tau


def changed_tensors(before_run: str | Path, after_run: str | Path) -> pd.DataFrame:
    """How many tensors (parameters and buffers) of two runs' last checkpoints changed, by top-level module
    (``backbone``, ``head``, ...) and kind (``weight``, ``running_mean``, ``nbn_alpha``, ...)."""
    import torch

    before = torch.load(Path(before_run) / "last.pt", map_location="cpu", weights_only=True)["model"]
    after = torch.load(Path(after_run) / "last.pt", map_location="cpu", weights_only=True)["model"]
    rows = [{"tensor": key, "changed": key not in before or not torch.equal(before[key], value)}
            for key, value in after.items()]
    table = pd.DataFrame(rows)
    names = table["tensor"].str
    return (table.assign(module=names.split(".").str[0], kind=names.rsplit(".", n=1).str[-1])
            .groupby(["module", "kind", "changed"], as_index=False).size().rename(columns={"size": "tensors"}))


def tau_normalize_runs(stage1_runs: Mapping[str, Path]) -> dict[str, TauResult]:
    """τ-normalise each stage-1 run's last checkpoint: τ searched on the val split (test when there is none)."""
    from nbn_tutorial import train
    from nbn_tutorial.train.tau_norm import search_tau, tau_table

    results = {}
    for name, run in stage1_runs.items():
        model, config = train.load_run(run, which="last")
        search = search_tau(model, config)
        test = train.build_datasets(config, ("test",))["test"]
        row = tau_table(model, test, taus=(search.tau,)).iloc[0]
        results[name] = TauResult(search, {key: row[key] for key in row.index if key != "tau"})
    return results


def tau_curves(results: Mapping[str, TauResult]) -> pd.DataFrame:
    """Every searched τ's accuracies (percent) per run, long form: model, tau, balanced, few, chosen."""
    frames = []
    for name, result in results.items():
        table = result.search.table
        frames.append(pd.DataFrame({"model": name, "tau": table["tau"], "balanced": 100 * table["balanced_acc"],
                                    "few": 100 * table["few_acc"], "chosen": table["tau"] == result.tau,
                                    "split": result.search.split}))
    return pd.concat(frames, ignore_index=True)


def classifier_norms(runs: Mapping[str, Path], tau: Mapping[str, TauResult] | None = None) -> dict[str, pd.DataFrame]:
    """Per-class classifier weight norm tables of runs ({"stage 1": run, "cRT": run, "LWS": run}), plus the
    τ-normalised stage-1 classifier when ``tau`` (a :class:`TauResult`) is given under the key "τ-norm"."""
    from nbn_tutorial import diagnosis, models, train

    tables = {}
    for name, run in runs.items():
        model, config = train.load_run(run, which="last")
        test = train.build_datasets(config, ("test",))["test"]
        tables[name] = diagnosis.classifier_norm_table(model, test.train_counts, test.shot_groups)
        if name == "stage 1" and tau is not None:
            normalized = models.tau_normalize(model, tau.tau)
            tables["τ-norm"] = diagnosis.classifier_norm_table(normalized, test.train_counts, test.shot_groups)
    return tables


def expert_tables(ride_runs: Mapping[str, Path]) -> pd.DataFrame:
    """Each RIDE run per expert and as the ensemble (:func:`nbn_tutorial.diagnosis.expert_table`), stacked."""
    from nbn_tutorial import diagnosis, train

    frames = []
    for name, run in ride_runs.items():
        model, config = train.load_run(run, which="last")
        test = train.build_datasets(config, ("test",))["test"]
        frames.append(diagnosis.expert_table(model, test).assign(norm=name))
    table = pd.concat(frames, ignore_index=True)
    return table[["norm", *[column for column in table.columns if column != "norm"]]]


def _row(norm: str, method: str, metrics: Mapping[str, Any], note: str = "") -> dict[str, Any]:
    from nbn_tutorial.notebooks.runs import final_metrics

    values = final_metrics(metrics) if isinstance(metrics, (str, Path)) else {
        name: metrics["test_acc" if name == "overall" else f"{name}_acc"] for name in ACCURACY_COLUMNS}
    return {"norm": norm, "method": method, **{name: percent(values[name]) for name in ACCURACY_COLUMNS},
            "note": note}


def _tau_note(result: TauResult) -> str:
    where = "test split: optimistic" if result.search.split == "test" else f"{result.search.split} split"
    return f"τ = {result.tau:g} ({where})"


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


def _ride_note(run: Path) -> str:
    from nbn_tutorial.train.run_dir import stored_config

    config = stored_config(Path(run))
    return f"{config.num_experts} experts, {config.epochs} epochs"


def sampled_class_counts(config, samplers: tuple[str, ...] = ("instance", "class-balanced",
                                                             "square-root")) -> pd.DataFrame:
    """How often each class is drawn in one epoch of each sampler (epoch 0 of the config's seed), by class."""
    from nbn_tutorial import data, train

    train_set = train.build_datasets(config, ("train",))["train"]
    columns = {"class": np.arange(train_set.num_classes), "train_count": train_set.class_counts}
    for name in samplers:
        sampler = data.make_sampler(name, train_set.targets, seed=config.seed)
        columns[name] = np.bincount(train_set.targets[sampler.indices().numpy()], minlength=train_set.num_classes)
    return pd.DataFrame(columns)


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


def rebalancing_summary(table: pd.DataFrame, tau: Mapping[str, TauResult] | None = None,
                        run_dir: str | Path | None = None, reference: str = "BN", other: str = "NBN"):
    """Sentences computed from :func:`rebalancing_table`: what each method did on each norm, whether NBN still
    helps once the classifier is re-balanced, RIDE, where τ was chosen, and how far one seed goes. Written to
    ``<run_dir>/rebalancing_summary.md`` when ``run_dir`` is given."""
    from nbn_tutorial.fileio import atomic_write_text
    from nbn_tutorial.notebooks.prose import Summary

    norms = list(dict.fromkeys(table["norm"]))
    sentences = [_method_sentence(table, norm, method) for norm in norms for method in ("cRT", "τ-norm", "LWS", "RIDE")
                 if _accuracy(table, norm, method, "balanced") is not None]
    gaps = [(method, *gap) for method in METHODS if (gap := _norm_gap(table, method, reference, other)) is not None]
    if gaps:
        ahead = sum(delta > 0 for _, delta, _ in gaps)
        sentences.append(f"{other} against {reference} in balanced accuracy, method by method: "
                         + "; ".join(text for _, _, text in gaps) + f". {other} is ahead in {ahead} of {len(gaps)}.")
        rebalanced = [delta for method, delta, _ in gaps if method in ("cRT", "τ-norm", "LWS")]
        stage1_gap = next((delta for method, delta, _ in gaps if method == "stage 1"), None)
        if rebalanced and stage1_gap is not None:
            mean_gap = float(np.mean(rebalanced))
            sentences.append(f"Once the classifier is re-balanced (cRT, τ-norm, LWS), {other}'s mean difference to "
                             f"{reference} is {mean_gap:+.1f} points, against {stage1_gap:+.1f} before.")
    chosen_on_test = [name for name, result in (tau or {}).items() if result.search.split == "test"]
    if chosen_on_test:
        sentences.append(f"τ was chosen on the test split ({tau[chosen_on_test[0]].search.dataset} has no val split), "
                         "so the τ-norm rows are optimistic.")
    sentences.append("Each row is one seed and one run; differences of a point or two are within the seed-to-seed "
                     "spread of notebook 05, so `nbn-tutorial study run rebalancing` repeats this grid over seeds.")
    text = Summary(" ".join(sentences))
    if run_dir is not None:
        atomic_write_text(Path(run_dir) / f"{REBALANCING_SUMMARY}.md", str(text) + "\n")
    return text

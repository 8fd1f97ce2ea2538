"""A study's results opened for reading: the tables a report wrote, with the study file's design, and what is
computed from them arm by arm and class by class (notebooks 06, 07 and 08 read studies through this).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from nbn_tutorial import paths
from nbn_tutorial.errors import UserError
from nbn_tutorial.study.contrasts import Design
from nbn_tutorial.study.report import load_design
from nbn_tutorial.study.spec import load_study
from nbn_tutorial.study.tables import arm_table, metric_label, per_class_paired, read_header, read_table
from nbn_tutorial.wording import Summary

RESULTS_SUBDIR = "results"
TABLES = ("results", "per_class", "contrasts", "dynamics")


@dataclass
class StudyView:
    """A study's results opened for reading: per-run and per-class tables, contrasts and per-epoch dynamics, where
    they come from (the results' header), and the study file's arms and design."""

    name: str
    folder: Path
    results: pd.DataFrame
    per_class: pd.DataFrame
    header: list[str]
    baseline: str
    reference: str | None
    pairs: tuple[tuple[str, str], ...] = ()
    contrasts: pd.DataFrame | None = None
    dynamics: pd.DataFrame | None = None
    design: Design | None = None


def committed_results(name: str) -> Path:
    """The folder of a study's committed results: studies/results/<name>/."""
    return paths.STUDY_DIR / RESULTS_SUBDIR / name


def read_study(name: str, folder: str | os.PathLike | None = None) -> StudyView:
    """The results of study ``name`` in ``folder`` (None: its committed results), read with its study file."""
    folder = Path(folder) if folder is not None else committed_results(name)
    if not (folder / "results.csv").is_file():
        raise UserError(f"no study results in {folder}; run `nbn-tutorial study run {name} --out runs/studies/{name}` "
                        f"and `nbn-tutorial study report runs/studies/{name} --out {folder}`")
    spec, design = load_design(name)
    tables = {which: read_table(folder, which) for which in TABLES}
    return StudyView(name, folder, tables["results"], tables["per_class"], read_header(folder / "results.csv"),
                     spec.baseline, spec.reference, spec.pairs, tables["contrasts"], tables["dynamics"], design)


def arms_table(name: str) -> pd.DataFrame:
    """The arms of a study file: what each one changes in the config, and which datasets and seeds run it."""
    spec = load_study(name)
    rows = []
    for arm, settings in spec.arms.items():
        where = [f"{dataset} ({len(spec.seeds_of(dataset))} seeds)" for dataset in spec.datasets
                 if arm in spec.arms_of(dataset)]
        role = " (baseline)" if arm == spec.baseline else " (reference)" if arm == spec.reference else ""
        rows.append({"arm": arm + role, "config": ", ".join(f"{key}={value}" for key, value in settings.items()),
                     "runs on": "; ".join(where)})
    return pd.DataFrame(rows).set_index("arm")


def arm_tables(view: StudyView, metrics: tuple[str, ...] = ("balanced", "few", "feature_strength_ratio")
               ) -> pd.DataFrame:
    """Every dataset's arms: mean [95% CI] over seeds and the paired Δ to the baseline of ``metrics``."""
    tables = [arm_table(view.results, dataset, view.baseline).assign(dataset=dataset)
              for dataset in view.results["dataset"].unique()]
    table = pd.concat(tables, ignore_index=True).set_index(["dataset", "arm"])
    columns = ["runs", *[column for metric in metrics
                         for column in (metric_label(metric), f"Δ {metric} vs {view.baseline}")]]
    return table[columns]


def per_class_dataset(view: StudyView) -> str:
    """The dataset whose per-class differences to show: the first one trained with a permuted class order
    (class difficulty and frequency not confounded), else the first dataset."""
    spec = load_study(view.name)
    present = list(view.results["dataset"].unique())
    permuted = [name for name in present if spec.datasets.get(name, {}).get("set", {}).get("class_order") == "permuted"]
    return (permuted or present)[0]


def per_class_differences(view: StudyView, dataset: str, arm: str | None = None) -> pd.DataFrame:
    """Per-class paired accuracy differences to the baseline by training-count rank (one arm, or every arm)."""
    table = per_class_paired(view.per_class, dataset, view.baseline)
    return table if arm is None else table[table["arm"] == arm].reset_index(drop=True)


def per_class_summary(view: StudyView, dataset: str, arm: str) -> Summary:
    """Sentences: the arm's per-class differences to the baseline along the training counts, and where an
    unadjusted per-rank interval excludes zero (descriptive: no verdict is drawn from them)."""
    table = per_class_differences(view, dataset, arm)
    if table.empty:
        return Summary(f"No per-class comparison of `{arm}` with `{view.baseline}` on {dataset}.")
    detectable = table[(table["low"] > 0) | (table["high"] < 0)]
    head, tail = table.iloc[0], table.iloc[-1]
    text = (f"On {dataset}, `{arm}` − `{view.baseline}` per class: {head['difference']:+.1f} points for the most "
            f"frequent class rank (about {head['train_count']:.0f} training images) and {tail['difference']:+.1f} "
            f"for the rarest (about {tail['train_count']:.0f}). ")
    if detectable.empty:
        return Summary(text + "No class rank's 95% interval excludes zero.")
    ranks = ", ".join(f"rank {int(r.count_rank)} ({r.difference:+.1f})" for r in detectable.itertuples())
    return Summary(text + f"Unadjusted intervals excluding zero: {ranks}; with {len(table)} ranks compared, about "
                   f"{0.05 * len(table):.1f} would exclude zero by luck alone, so these are not confirmed.")

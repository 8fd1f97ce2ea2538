"""What notebook 06 (and 08) call: a study's committed results, or a small study rerun in the kernel, as tables,
figures and computed sentences."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from nbn_tutorial import paths
from nbn_tutorial.errors import UserError
from nbn_tutorial.notebooks.prose import Summary

RESULTS_SUBDIR = "results"


@dataclass
class StudyView:
    """A study's results opened for a notebook: per-run and per-class tables, where they come from, comparisons."""

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
    design: object = None          # the study's Design (nbn_tutorial.study.contrasts)


def committed_results(name: str) -> Path:
    """The folder of a study's committed results: studies/results/<name>/."""
    return paths.STUDY_DIR / RESULTS_SUBDIR / name


def _run_small_study(name: str, run_dir: str | os.PathLike, jobs: int) -> Path:
    from nbn_tutorial import study

    out = Path(run_dir) / "study" / name
    study.run_study(name, out, jobs=jobs, progress=True)
    study.write_study_report(out, command=f"nbt.notebooks.open_study(rerun=True, rerun_study={name!r})")
    return out


def open_study(name: str = "nbn_ablation", *, rerun: bool = False, rerun_study: str | None = None,
               run_dir: str | os.PathLike | None = None, results_dir: str | os.PathLike | None = None,
               jobs: int = 1) -> StudyView:
    """The results of study ``name``: the committed ones (or ``results_dir``), or, with ``rerun=True``, those of
    ``rerun_study`` (a smaller grid) trained now into ``run_dir``/study/ (resumable: a rerun continues)."""
    from nbn_tutorial import study

    chosen = rerun_study if rerun and rerun_study else name
    if rerun:
        if run_dir is None:
            raise UserError("rerun=True needs a run_dir to train the study's runs into")
        folder = _run_small_study(chosen, run_dir, jobs)
    else:
        folder = Path(results_dir) if results_dir is not None else committed_results(name)
    if not (folder / "results.csv").is_file():
        raise UserError(f"no study results in {folder}; run `nbn-tutorial study run {chosen} --out runs/studies/"
                        f"{chosen}` and `nbn-tutorial study report runs/studies/{chosen} --out {folder}`, or set "
                        "rerun=True to train a small grid in this notebook")
    spec, design = study.load_design(chosen)
    tables = {which: study.read_table(folder, which) for which in ("results", "per_class", "contrasts", "dynamics")}
    return StudyView(chosen, folder, tables["results"], tables["per_class"], study.read_header(folder / "results.csv"),
                     spec.baseline, spec.reference, spec.pairs, tables["contrasts"], tables["dynamics"], design)


def study_provenance(view: StudyView) -> Summary:
    """Where the numbers come from (the results' header: commands, software, date), as a Markdown list."""
    runs = view.results
    counts = ", ".join(f"{dataset}: {int(group['seed'].nunique())} seeds × {int(group['arm'].nunique())} arms"
                       for dataset, group in runs.groupby("dataset", sort=False))
    lines = [f"Results of the study **{view.name}** from `{view.folder}` ({counts}; "
             f"{int((runs['status'] != 'finished').sum())} failed runs):", ""]
    return Summary("\n".join(lines + [f"- {line}" for line in view.header]))


def arm_tables(view: StudyView, metrics: tuple[str, ...] = ("balanced", "few", "feature_strength_ratio")) -> pd.DataFrame:
    """Every dataset's arms: mean [95% CI] over seeds and the paired Δ to the baseline of ``metrics``."""
    from nbn_tutorial import study
    from nbn_tutorial.study.tables import metric_label

    tables = [study.arm_table(view.results, dataset, view.baseline).assign(dataset=dataset)
              for dataset in view.results["dataset"].unique()]
    table = pd.concat(tables, ignore_index=True).set_index(["dataset", "arm"])
    columns = ["runs", *[column for metric in metrics for column in (metric_label(metric), f"Δ {metric} vs {view.baseline}")]]
    return table[columns]


def study_answers(view: StudyView) -> Summary:
    """How the study's inference works, then its answers, computed from its contrasts (see
    :mod:`nbn_tutorial.study.verdicts`)."""
    from nbn_tutorial import study

    answers = study.study_conclusions(view.results, view.contrasts, view.dynamics, view.design)
    return Summary("\n\n".join([study.design_sentence(view.design, view.contrasts), *answers]))


def per_class_differences(view: StudyView, dataset: str, arm: str | None = None) -> pd.DataFrame:
    """Per-class paired accuracy differences to the baseline by training-count rank (one arm, or every arm)."""
    from nbn_tutorial import study

    table = study.per_class_paired(view.per_class, dataset, view.baseline)
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


STUDY_TABLE = "study_table"      # notebook 06's arm table (.md) in the run directory, for the report
STUDY_ANSWERS = "study_answers"  # notebook 06's computed answers (.md), for the report


def arms_table(name: str) -> pd.DataFrame:
    """The arms of a study file: what each one changes in the config, and which datasets and seeds run it."""
    from nbn_tutorial import study

    spec = study.load_study(name)
    rows = []
    for arm, settings in spec.arms.items():
        where = [f"{dataset} ({len(spec.seeds_of(dataset))} seeds)" for dataset in spec.datasets
                 if arm in spec.arms_of(dataset)]
        role = " (baseline)" if arm == spec.baseline else " (reference)" if arm == spec.reference else ""
        rows.append({"arm": arm + role, "config": ", ".join(f"{key}={value}" for key, value in settings.items()),
                     "runs on": "; ".join(where)})
    return pd.DataFrame(rows).set_index("arm")


def per_class_dataset(view: StudyView) -> str:
    """The dataset whose per-class differences to show: the first one trained with a permuted class order
    (class difficulty and frequency not confounded), else the first dataset."""
    from nbn_tutorial import study

    spec = study.load_study(view.name)
    present = [name for name in view.results["dataset"].unique()]
    permuted = [name for name in present if spec.datasets.get(name, {}).get("set", {}).get("class_order") == "permuted"]
    return (permuted or present)[0]


def save_study_summary(view: StudyView, run_dir: str | os.PathLike) -> None:
    """Write the arm table and the computed answers into the run directory, where the report finds them."""
    from nbn_tutorial.fileio import atomic_write_text
    from nbn_tutorial.notebooks.tables import markdown_table

    table = arm_tables(view).reset_index()
    folder = Path(run_dir)
    atomic_write_text(folder / f"{STUDY_TABLE}.md", markdown_table(table.to_dict("records"), list(table.columns)) + "\n")
    atomic_write_text(folder / f"{STUDY_ANSWERS}.md", f"{study_provenance(view)}\n\n{study_answers(view)}\n")


FROZEN_COSINE = 0.999   # β's final direction this close to its epoch-1 direction counts as never having moved


MECHANISM_COLUMNS = {"runs": "runs", "alpha_min": "α at the end, min", "alpha_max": "α at the end, max",
                     "beta_norm_median": "largest ‖β‖ of a layer (median)",
                     "beta_cos_first_min": "smallest cos(β, β after epoch 1)"}


def _mechanism_frame(view: StudyView) -> pd.DataFrame:
    runs = view.results[(view.results["status"] == "finished") & view.results["alpha"].notna()]
    if runs.empty:
        raise UserError(f"study {view.name} has no finished NBN run with a recorded α")
    return runs.groupby(["dataset", "arm"], sort=False).agg(
        runs=("seed", "count"), alpha_min=("alpha", "min"), alpha_max=("alpha", "max"),
        beta_norm_median=("beta_norm_max", "median"), beta_cos_first_min=("beta_cos_first_min", "min"))


def _magnitude(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def mechanism_table(view: StudyView) -> pd.DataFrame:
    """Per dataset and NBN arm, NBN's state at the end of training over the seeds: α, the largest ‖β‖ of a layer,
    and the smallest cosine between a layer's final β and its β after epoch 1 (1: the direction never moved)."""
    frame = _mechanism_frame(view)
    frame["beta_norm_median"] = frame["beta_norm_median"].map(_magnitude)
    return frame.round({"alpha_min": 3, "alpha_max": 3, "beta_cos_first_min": 4}).rename(columns=MECHANISM_COLUMNS)


def mechanism_summary(view: StudyView) -> Summary:
    """Sentences from :func:`mechanism_table`: where α ended and whether β's direction ever left its epoch-1 one."""
    sentences = []
    for (dataset, arm), row in _mechanism_frame(view).iterrows():
        moved = (f"β's direction never moved after epoch 1 (smallest cosine {row['beta_cos_first_min']:.4f})"
                 if row["beta_cos_first_min"] >= FROZEN_COSINE else
                 f"β's direction kept changing after epoch 1 (smallest cosine {row['beta_cos_first_min']:.2f})")
        sentences.append(f"- {dataset}, `{arm}` ({int(row['runs'])} runs): α ended between {row['alpha_min']:.3g} "
                         f"and {row['alpha_max']:.3g}; the largest ‖β‖ of a layer was "
                         f"{_magnitude(row['beta_norm_median'])} (median over seeds); {moved}.")
    return Summary("\n".join(sentences))


def evidence_dataset(view: StudyView) -> str:
    """The dataset whose NBN mechanism to show: the first with per-epoch dynamics (a permuted class order first),
    else the per-class dataset."""
    recorded = set(view.dynamics["dataset"]) if view.dynamics is not None else set()
    preferred = [per_class_dataset(view)] + list(view.results["dataset"].unique())
    return next((name for name in preferred if name in recorded), preferred[0])


def feature_evidence(view: StudyView, dataset: str) -> Summary:
    """Notebook 06's feature-bias sentences: both measures judged by distance from 1, and their relation to α."""
    from nbn_tutorial.study import evidence

    model = evidence.reference_model(view.results, dataset, view.design)
    return Summary(evidence.feature_answer(view.results, view.contrasts, view.design, dataset) + "\n\n"
                   + evidence.alpha_relation_answer(view.results, dataset, model))


def collapse_evidence(view: StudyView, dataset: str) -> Summary:
    """Notebook 06's sentences on α over training and its relation to each run's accuracy difference."""
    from nbn_tutorial.study import evidence

    return Summary(evidence.alpha_collapse_answer(view.results, view.dynamics, view.design, dataset))

"""What a study's results answer, read from an opened study (:class:`~nbn_tutorial.study.view.StudyView`): the
computed conclusions, NBN's state at the end of training per arm, and the feature-bias and α evidence.

The sentences come from :mod:`.summary`, :mod:`.verdicts` and :mod:`.evidence`; this module picks what a
reader of one study needs, so notebooks 06-08 and the report say the same thing.
"""
from __future__ import annotations

import pandas as pd

from nbn_tutorial.diagnosis.mechanism import FROZEN_COSINE
from nbn_tutorial.errors import UserError
from nbn_tutorial.study.evidence import alpha_collapse_answer, alpha_relation_answer, feature_answer, reference_model
from nbn_tutorial.study.summary import design_sentence, study_conclusions
from nbn_tutorial.study.view import StudyView, per_class_dataset
from nbn_tutorial.wording import Summary

MECHANISM_COLUMNS = {"runs": "runs", "alpha_min": "α at the end, min", "alpha_max": "α at the end, max",
                     "beta_norm_median": "largest ‖β‖ of a layer (median)",
                     "beta_cos_first_min": "smallest cos(β, β after epoch 1)"}


def study_answers(view: StudyView) -> Summary:
    """How the study's inference works, then its answers, computed from its contrasts (see
    :mod:`nbn_tutorial.study.verdicts`)."""
    answers = study_conclusions(view.results, view.contrasts, view.dynamics, view.design)
    return Summary("\n\n".join([design_sentence(view.design, view.contrasts), *answers]))


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
    """The feature-bias sentences: both measures judged by distance from 1, and their relation to α."""
    model = reference_model(view.results, dataset, view.design)
    return Summary(feature_answer(view.results, view.contrasts, view.design, dataset) + "\n\n"
                   + alpha_relation_answer(view.results, dataset, model))


def collapse_evidence(view: StudyView, dataset: str) -> Summary:
    """The sentences on α over training and its relation to each run's accuracy difference."""
    return Summary(alpha_collapse_answer(view.results, view.dynamics, view.design, dataset))

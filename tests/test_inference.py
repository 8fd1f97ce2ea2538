"""The study's inference: p-values (t-test, exact sign-flip), Holm's adjustment within families, verdict words
only where the adjustment allows, and committed reports that rebuild from their committed tables alone."""
import itertools
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from nbn_tutorial import study
from nbn_tutorial.study.contrasts import PRIMARY_FAMILY, Design

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = sorted(path for path in (ROOT / "studies" / "results").glob("*") if (path / "results.csv").is_file())


@pytest.mark.parametrize("seed", range(5))
def test_holm_matches_statsmodels(seed):
    rng = np.random.default_rng(seed)
    p = rng.uniform(0, 0.2, size=int(rng.integers(1, 40)))
    p[rng.integers(0, len(p))] = p[0]                     # a tie
    assert np.allclose(study.holm(p), multipletests(p, method="holm")[1])


def test_holm_leaves_missing_p_values_out_of_the_count():
    adjusted = study.holm([0.01, math.nan, 0.04])
    assert math.isnan(adjusted[1]) and adjusted[[0, 2]].tolist() == pytest.approx([0.02, 0.04])


def brute_force_sign_flip(values):
    observed = abs(sum(values))
    sums = [abs(sum(s * v for s, v in zip(signs, values))) for signs in itertools.product((1, -1), repeat=len(values))]
    return np.mean([total >= observed - 1e-12 for total in sums])


@pytest.mark.parametrize("values", [[-3.95, -4.07, -0.54, -1.76, -2.07], [1.0, 0, 0.67, 0.33, 0.33, 0, 1.33],
                                    [0.5, -0.2, 0.1, 0.9, -0.4, 0.3, 0.05, -0.6]])
def test_the_sign_flip_p_is_exact(values):
    assert study.sign_flip_p(values) == pytest.approx(brute_force_sign_flip(values))


def test_five_seeds_of_one_sign_cannot_go_below_one_sixteenth():
    assert study.sign_flip_p([-3.95, -4.07, -0.54, -1.76, -2.07]) == study.smallest_sign_flip_p(5) == 0.0625
    assert study.smallest_sign_flip_p(10) == pytest.approx(2 / 1024)


def test_the_sign_flip_p_above_sixteen_values_is_a_close_estimate():
    values = np.random.default_rng(1).normal(0.4, 1.0, size=18)
    sums = np.abs(np.array(list(itertools.product((1.0, -1.0), repeat=18))) @ values)
    exact = np.mean(sums >= abs(values.sum()) - 1e-9)
    assert study.sign_flip_p(values) == pytest.approx(exact, abs=0.01)


def test_the_t_test_p_is_the_paired_t_test():
    treated, control = np.array([77.0, 74.1, 70.3, 75.2, 76.0]), np.array([79.0, 78.2, 70.8, 77.0, 78.1])
    by_hand = treated - control
    t = by_hand.mean() / (by_hand.std(ddof=1) / math.sqrt(5))
    assert study.t_test_p(by_hand) == pytest.approx(2 * stats.t.sf(abs(t), 4))
    assert study.t_test_p(by_hand) == pytest.approx(stats.ttest_rel(treated, control).pvalue)
    assert study.t_test_p([0.0, 0.0]) == 1.0 and study.t_test_p([1.0, 1.0]) == 0.0
    assert math.isnan(study.t_test_p([1.0]))


def results_table(effects: dict[tuple[str, str], list[float]], seeds: int = 5) -> pd.DataFrame:
    """A results.csv-shaped table: balanced accuracy = 80 + effect + seed noise; other metrics from it."""
    rows = []
    noise = np.random.default_rng(0).normal(0, 0.1, size=seeds)
    for (dataset, arm), shifts in effects.items():
        for seed in range(seeds):
            value = 80 + shifts[seed] + noise[seed]
            rows.append({"dataset": dataset, "arm": arm, "seed": seed, "status": "finished", "balanced": value,
                         "few": value - 10, "many": value + 5, "feature_strength_ratio": 0.8,
                         "channel_strength_ratio": 0.9, "alpha": math.nan})
    return study.tables.add_gaps(pd.DataFrame(rows))


def test_families_and_holm_within_each():
    effects = {("a", "bn"): [0] * 5, ("a", "nbn"): [-3, -4, -1, -2, -2], ("a", "x"): [1, 2, 1, 2, 1],
               ("b", "bn"): [0] * 5, ("b", "nbn"): [1, -1, 0.5, -0.5, 0]}
    design = Design("bn", "nbn", primary=(("nbn", "bn", "balanced"),))
    table = study.contrast_table(results_table(effects), design)
    primary = table[table["family"] == PRIMARY_FAMILY]
    assert set(primary["dataset"]) == {"a", "b"} and (primary["family_size"] == 2).all()
    for _, members in table.groupby("family"):
        assert np.allclose(members["p_holm"], multipletests(members["p"], method="holm")[1])
    exploratory = table[table["family"] == "exploratory: a"]
    assert len(exploratory) == 2 * 5 - 1 + 2    # two arms × five metrics against bn, minus the primary; x vs nbn
    assert not ((exploratory["arm"] == "nbn") & (exploratory["metric"] == "balanced")).any()
    assert list(table.columns[:11]) == ["dataset", "arm", "against", "metric", "n", "mean", "low", "high", "p",
                                        "p_perm", "p_holm"]


def row(mean, low, high, p_holm, n=5, family="exploratory: a", size=20):
    return pd.Series({"dataset": "a", "arm": "nbn", "against": "bn", "metric": "balanced", "n": n, "mean": mean,
                      "low": low, "high": high, "p": 0.01, "p_perm": 0.0625, "p_holm": p_holm, "family": family,
                      "family_size": size, "smallest_p_perm": study.smallest_sign_flip_p(n)})


def test_a_verdict_word_only_where_holm_allows_it():
    survives = study.judgement(row(-2.5, -4.4, -0.6, 0.04), "it helps", "it hurts")
    assert survives.startswith("it hurts") and "cannot go below p = 0.0625" in survives
    unadjusted = study.judgement(row(-2.5, -4.4, -0.6, 0.65))
    assert "not confirmed" in unadjusted and "20 comparisons" in unadjusted
    assert "detectable" not in unadjusted and "hurt" not in unadjusted
    unclear = study.judgement(row(0.1, -0.9, 1.0, 1.0, n=10))
    assert "includes zero" in unclear and "detectable" not in unclear


@pytest.mark.parametrize("folder", COMMITTED, ids=lambda path: path.name)
def test_committed_contrasts_have_their_columns_and_holm_within_each_family(folder):
    contrasts = study.read_table(folder, "contrasts")
    assert set(study.CONTRAST_COLUMNS) <= set(contrasts.columns)
    for _, members in contrasts.groupby("family"):
        finite = members[members["p"].notna()]
        assert np.allclose(finite["p_holm"], multipletests(finite["p"], method="holm")[1])
    results = study.read_table(folder, "results")
    tau_rows = results[results["tau"].notna()]
    assert (tau_rows["tau_split"] == "val").all(), "τ is never chosen on the test split"


@pytest.mark.parametrize("folder", COMMITTED, ids=lambda path: path.name)
def test_committed_reports_rebuild_from_their_committed_tables(folder, tmp_path):
    copy = shutil.copytree(folder, tmp_path / folder.name)
    summary = study.rebuild_study_report(copy, command="test")
    made_by = lambda text: [line for line in text.splitlines() if "report made by" not in line]  # noqa: E731
    assert made_by(summary.read_text()) == made_by((folder / "summary.md").read_text())
    assert made_by((copy / "contrasts.csv").read_text()) == made_by((folder / "contrasts.csv").read_text())
    assert "Holm" in summary.read_text()

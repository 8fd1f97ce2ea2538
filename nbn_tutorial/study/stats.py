"""Confidence intervals of a study: Student-t intervals of means and of paired (same-seed) differences."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

LEVEL = 0.95
METHOD = "two-sided 95% Student-t interval"


@dataclass(frozen=True)
class Interval:
    """A mean and its confidence interval over ``n`` values (low/high NaN when n < 2)."""

    mean: float
    low: float
    high: float
    n: int

    @property
    def excludes_zero(self) -> bool:
        """True when the whole interval lies on one side of 0."""
        return self.n >= 2 and (self.low > 0 or self.high < 0)

    def text(self, digits: int = 1, signed: bool = False) -> str:
        """``mean [low, high]`` (just the mean when there is no interval)."""
        fmt = f"{{:+.{digits}f}}" if signed else f"{{:.{digits}f}}"
        if not math.isfinite(self.mean):
            return "n/a"
        if self.n < 2:
            return fmt.format(self.mean)
        return f"{fmt.format(self.mean)} [{fmt.format(self.low)}, {fmt.format(self.high)}]"


def t_interval(values: Sequence[float], level: float = LEVEL) -> Interval:
    """Mean and Student-t confidence interval of ``values`` (NaNs dropped)."""
    from scipy import stats   # deferred: scipy: heavy, only this function needs it

    array = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    n = int(array.size)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    mean = float(array.mean())
    if n < 2:
        return Interval(mean, math.nan, math.nan, n)
    half = float(stats.t.ppf(0.5 + level / 2, n - 1) * array.std(ddof=1) / math.sqrt(n))
    return Interval(mean, mean - half, mean + half, n)


def paired_values(treated: Mapping[int, float], control: Mapping[int, float]) -> list[float]:
    """treated − control for every seed both have a finite value for, in seed order."""
    return [treated[s] - control[s] for s in sorted(set(treated) & set(control))
            if treated[s] is not None and control[s] is not None
            and math.isfinite(treated[s]) and math.isfinite(control[s])]


def paired_difference(treated: Mapping[int, float], control: Mapping[int, float], level: float = LEVEL) -> Interval:
    """Mean and t-interval of treated − control over the seeds both have (a paired comparison)."""
    return t_interval(paired_values(treated, control), level)


EXACT_SIGN_FLIP_MAX_N = 16        # 2**16 sign patterns; above that the sign-flip p is a seeded Monte Carlo estimate
MONTE_CARLO_DRAWS = 100_000
ALPHA = 0.05                      # the level a Holm-adjusted p must stay below for a verdict word


def _finite(values: Sequence[float]) -> np.ndarray:
    return np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)


def t_test_p(differences: Sequence[float]) -> float:
    """Two-sided p of the one-sample t-test of mean 0 (a paired t-test on differences); NaN below 2 values.

    Differences that are all equal give p = 1 when they are 0 and p = 0 otherwise (an infinite t)."""
    from scipy import stats   # deferred: scipy: heavy, only this function needs it

    array = _finite(differences)
    if array.size < 2:
        return math.nan
    if np.ptp(array) == 0:
        return 1.0 if array[0] == 0 else 0.0
    return float(stats.ttest_1samp(array, 0.0).pvalue)


def _sign_patterns(n: int) -> np.ndarray:
    """All 2**n sign vectors (+1/-1) as an int8 array [2**n, n]."""
    bits = (np.arange(2 ** n, dtype=np.int64)[:, None] >> np.arange(n)) & 1
    return (1 - 2 * bits).astype(np.int8)


def sign_flip_p(differences: Sequence[float], seed: int = 0) -> float:
    """Two-sided p of the sign-flip permutation test of paired differences: the share of the 2**n sign patterns
    whose |sum| is at least the observed |sum| (exact for n <= 16, else a seeded Monte Carlo estimate)."""
    array = _finite(differences)
    n = array.size
    if n == 0:
        return math.nan
    observed = abs(array.sum())
    tolerance = 1e-9 * max(1.0, float(np.abs(array).sum()))
    if n <= EXACT_SIGN_FLIP_MAX_N:
        sums = np.abs(_sign_patterns(n) @ array)
        return float(np.mean(sums >= observed - tolerance))
    signs = np.random.default_rng(seed).choice(np.array([-1.0, 1.0]), size=(MONTE_CARLO_DRAWS, n))
    hits = int(np.sum(np.abs(signs @ array) >= observed - tolerance))
    return (hits + 1) / (MONTE_CARLO_DRAWS + 1)


def smallest_sign_flip_p(n: int) -> float:
    """The smallest p the exact two-sided sign-flip test can give with n paired values: 2 / 2**n."""
    return min(1.0, 2.0 / 2 ** n) if n >= 1 else math.nan


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (NaN entries stay NaN and do not count as comparisons).

    Sorted ascending, the i-th smallest of m p-values (i from 1) is multiplied by m - i + 1; each adjusted
    value is at least the one before it and at most 1. Rejecting where the adjusted p < α keeps the chance
    of any false rejection in the family at most α."""
    p = np.asarray(p_values, dtype=np.float64)
    adjusted = np.full(p.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    m = finite.size
    running = 0.0
    for rank, index in enumerate(finite[np.argsort(p[finite], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[index]))
        adjusted[index] = running
    return adjusted


@dataclass(frozen=True)
class Correlation:
    """Pearson's r over ``n`` pairs, its 95% interval (Fisher z) and two-sided p; NaN below 4 pairs."""

    r: float
    low: float
    high: float
    p: float
    n: int

    def text(self) -> str:
        """``r = -0.72 (95% CI -0.83 to -0.55, n = 40)``."""
        if not math.isfinite(self.r):
            return f"r not computable (n = {self.n}: fewer than four pairs or no spread)"
        return f"r = {self.r:+.2f} (95% CI {self.low:+.2f} to {self.high:+.2f}, n = {self.n})"


def correlation(x: Sequence[float], y: Sequence[float]) -> Correlation:
    """Pearson correlation of the pairs where both values are finite, with a 95% Fisher-z interval."""
    from scipy import stats   # deferred: scipy: heavy, only this function needs it

    pairs = np.asarray([(a, b) for a, b in zip(x, y) if a is not None and b is not None
                        and math.isfinite(a) and math.isfinite(b)], dtype=np.float64).reshape(-1, 2)
    n = len(pairs)
    if n < 4 or np.ptp(pairs[:, 0]) == 0 or np.ptp(pairs[:, 1]) == 0:
        return Correlation(math.nan, math.nan, math.nan, math.nan, n)
    result = stats.pearsonr(pairs[:, 0], pairs[:, 1])
    interval = result.confidence_interval(LEVEL)
    return Correlation(float(result.statistic), float(interval.low), float(interval.high), float(result.pvalue), n)

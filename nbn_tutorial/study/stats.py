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
    from scipy import stats

    array = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    n = int(array.size)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    mean = float(array.mean())
    if n < 2:
        return Interval(mean, math.nan, math.nan, n)
    half = float(stats.t.ppf(0.5 + level / 2, n - 1) * array.std(ddof=1) / math.sqrt(n))
    return Interval(mean, mean - half, mean + half, n)


def paired_difference(treated: Mapping[int, float], control: Mapping[int, float], level: float = LEVEL) -> Interval:
    """Mean and t-interval of treated − control over the seeds both have (a paired comparison)."""
    seeds = sorted(set(treated) & set(control))
    differences = [treated[s] - control[s] for s in seeds
                   if treated[s] is not None and control[s] is not None
                   and math.isfinite(treated[s]) and math.isfinite(control[s])]
    return t_interval(differences, level)

"""Percentile-bootstrap intervals over clips: how much a score would move with another draw of the same clips.

A resample draws n of the n clips with replacement; it is kept as counts (how often each clip was drawn,
shape (resamples, n)), so that every score that is a mean, or a ratio of sums, over clips is a matrix
product away and 1000 resamples cost milliseconds. The interval is the (1 - level)/2 and (1 + level)/2
percentiles of the resampled scores (``numpy.percentile``, linear interpolation). Counts depend only on
(seed, n): the same clips give the same interval on every run. Written with numpy rather than
``scipy.stats.bootstrap`` because the scores here are ratios of per-clip sums with clips that do not count
(no gold label, no gold time), which scipy's per-sample statistic interface does not weight.
"""
from __future__ import annotations

import dataclasses

import numpy as np

METHOD = 'percentile bootstrap over clips'


@dataclasses.dataclass(frozen=True)
class Bootstrap:
    """How intervals are drawn: ``resamples`` draws (0: no intervals), a fixed ``seed``, the ``level``."""
    resamples: int = 1000
    seed: int = 0
    level: float = 0.95

    def __post_init__(self):
        if self.resamples < 0:
            raise ValueError(f"bootstrap resamples must be >= 0, got {self.resamples}")
        if not 0.0 < self.level < 1.0:
            raise ValueError(f"bootstrap level must be in (0, 1), got {self.level}")

    def counts(self, n: int) -> np.ndarray:
        """(resamples, n) int: how often each of n clips is drawn in each resample."""
        if n == 0 or self.resamples == 0:
            return np.zeros((self.resamples, n), np.int64)
        rng = np.random.default_rng([self.seed, n])
        return rng.multinomial(n, np.full(n, 1.0 / n), size=self.resamples)

    def interval(self, values) -> list[float] | None:
        """[low, high] of the resampled scores (resamples where the score is undefined, NaN, are left out);
        None without resamples or defined scores."""
        values = np.asarray(values, np.float64)
        values = values[np.isfinite(values)]
        if values.size == 0:
            return None
        tail = 100.0 * (1.0 - self.level) / 2.0
        low, high = np.percentile(values, [tail, 100.0 - tail])
        return [round(float(low), 6), round(float(high), 6)]

    def describe(self) -> dict:
        return {'method': METHOD, 'level': self.level, 'resamples': self.resamples, 'seed': self.seed}


def ratio(numerator, denominator, counts: np.ndarray) -> np.ndarray:
    """Per resample, sum(count * numerator) / sum(count * denominator) over clips; NaN where the
    denominator sums to 0. A mean over the clips that count is ``ratio(value * valid, valid, counts)``."""
    num = counts @ np.asarray(numerator, np.float64)
    den = counts @ np.asarray(denominator, np.float64)
    with np.errstate(divide='ignore', invalid='ignore'):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)

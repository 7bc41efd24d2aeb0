"""Forecast scores: accuracy and macro-F1 of class forecasts, CRPS and interval coverage of
predictive samples, and block-bootstrap intervals over consecutive start times.

Start times one minute apart with horizons up to five minutes share most of their future, so
their errors are correlated: the bootstrap resamples blocks of consecutive start times (within
each instrument) rather than single ones, which would understate the intervals.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

N_CLASSES = 3


def confusion(y_true: np.ndarray, y_pred: np.ndarray, k: int = N_CLASSES) -> np.ndarray:
    """Counts of (true, predicted) pairs over the last axis: shape (..., k, k)."""
    t = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(y_pred, dtype=np.int64)
    lead = t.shape[:-1]
    rows = int(np.prod(lead)) if lead else 1
    code = (t * k + p).reshape(rows, -1) + (np.arange(rows) * k * k)[:, None]
    counts = np.bincount(code.ravel(), minlength=rows * k * k)
    return counts.reshape(*lead, k, k)


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray | float:
    """Share of exact hits over the last axis (a float for 1-d input)."""
    y_true = np.asarray(y_true)
    if y_true.shape[-1] == 0:
        return float("nan")
    out = np.mean(y_true == np.asarray(y_pred), axis=-1)
    return float(out) if out.ndim == 0 else out


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, k: int = N_CLASSES) -> np.ndarray | float:
    """Unweighted mean F1 over the classes that occur in ``y_true`` or ``y_pred`` (scikit-learn's
    ``f1_score(average="macro")`` with its default labels; a class with no true and no predicted
    member has no F1 to average). Over the last axis; a float for 1-d input."""
    if np.asarray(y_true).shape[-1] == 0:
        return float("nan")
    c = confusion(y_true, y_pred, k).astype(np.float64)
    tp = np.diagonal(c, axis1=-2, axis2=-1)
    denom = c.sum(-1) + c.sum(-2)  # support + predicted, per class
    present = denom > 0
    f1 = np.where(present, 2 * tp / np.maximum(denom, 1), 0.0)
    out = f1.sum(-1) / present.sum(-1)
    return float(out) if out.ndim == 0 else out


def crps_samples(samples: np.ndarray, y: np.ndarray) -> np.ndarray:
    """CRPS of the empirical distribution of ``samples`` (..., R) at the outcome ``y`` (...):
    E|X - y| - E|X - X'| / 2, the pair term over all R^2 ordered pairs (the energy form of the
    CRPS of the sample's step CDF). A point mass at m gives |m - y|."""
    x = np.sort(np.asarray(samples, dtype=np.float64), axis=-1)
    r = x.shape[-1]
    first = np.mean(np.abs(x - np.asarray(y, dtype=np.float64)[..., None]), axis=-1)
    # sum_{i,j} |x_i - x_j| = 2 sum_i (2i - r - 1) x_(i), i = 1..r on the sorted sample
    weights = 2 * np.arange(1, r + 1) - r - 1
    pair = 2.0 * np.sum(weights * x, axis=-1) / (r * r)
    return first - pair / 2.0


def covered(samples: np.ndarray, y: np.ndarray, level: float) -> np.ndarray:
    """Whether ``y`` lies in the central ``level`` interval of ``samples`` (quantiles by linear
    interpolation, bounds inclusive: a mid on the tick grid often equals a bound)."""
    a = (1.0 - level) / 2.0
    lo, hi = np.quantile(np.asarray(samples, dtype=np.float64), [a, 1.0 - a], axis=-1)
    y = np.asarray(y, dtype=np.float64)
    return (lo <= y) & (y <= hi)


@dataclass(frozen=True, slots=True)
class Interval:
    value: float
    low: float
    high: float

    def as_dict(self, digits: int = 4) -> dict[str, float | None]:
        def r(x: float) -> float | None:
            return None if not np.isfinite(x) else round(float(x), digits)

        return {"value": r(self.value), "low": r(self.low), "high": r(self.high)}


class BlockBootstrap:
    """Index resamples of one or more series of consecutive start times (one per instrument):
    each resample draws, per series, ``ceil(n / block)`` blocks of ``block`` consecutive
    positions (circular) and keeps the first n; the series are concatenated (a stratified
    resample: each instrument keeps its count). Seeded, so every statistic computed from the
    same instance sees the same resamples (paired differences)."""

    def __init__(self, lengths: Sequence[int], block: int, draws: int = 1000, seed: int = 0):
        if block < 1:
            raise ValueError("a bootstrap block holds at least one start time")
        self.lengths = tuple(int(n) for n in lengths)
        self.block = block
        rng = np.random.default_rng(seed)
        parts = []
        offset = 0
        for n in self.lengths:
            if n == 0:
                continue
            k = -(-n // block)
            starts = rng.integers(0, n, size=(draws, k))
            idx = (starts[:, :, None] + np.arange(block)) % n  # (draws, k, block)
            parts.append(idx.reshape(draws, -1)[:, :n] + offset)
            offset += n
        self.indices = (
            np.concatenate(parts, axis=1) if parts else np.zeros((draws, 0), dtype=np.int64)
        )

    def interval(
        self, statistic: Callable[[np.ndarray], np.ndarray], level: float = 0.95
    ) -> Interval:
        """``statistic`` of the full sample with the percentile interval of its resamples.
        ``statistic`` maps index arrays (rows, N) to one value per row (vectorised: a thousand
        resamples cost one call)."""
        n = sum(self.lengths)
        value = float(np.asarray(statistic(np.arange(n)[None, :])).reshape(-1)[0])
        values = np.asarray(statistic(self.indices), dtype=np.float64).reshape(-1)
        values = values[np.isfinite(values)]
        if len(values) == 0:
            return Interval(value, float("nan"), float("nan"))
        a = (1.0 - level) / 2.0
        lo, hi = np.quantile(values, [a, 1.0 - a])
        return Interval(float(value), float(lo), float(hi))

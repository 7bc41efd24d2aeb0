"""The forecasting target of the MarS paper (Sec. 4.1, after Ntakaris et al. 2018) and its
three classes.

l = (mean of the mid-prices after each order within [t, t + k) - m0) / m0, with m0 the mid at
t. A real span and a rollout are read the same way, from a ``Trajectory`` (the mid after each
order): ``MidPath``. Classes: down (0), flat (1), up (2), split at the terciles of l over a grid
of start times of the training hours (``Thresholds``), frozen before any evaluated hour is read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from simulator.trajectory import Trajectory

DOWN, FLAT, UP = 0, 1, 2
CLASSES = ("down", "flat", "up")


class ForecastError(ValueError):
    """A forecast that cannot be set up on this data or with these settings (user error)."""


@dataclass(frozen=True, slots=True)
class MidPath:
    """The mid after every order of a span, and the mid ``m0`` at its start.

    A one-sided book has no mid: the last two-sided mid carries forward (``m0`` before any), so
    the path never holds NaN.
    """

    start_ns: int
    m0: float
    ts_ns: np.ndarray  # int64, the orders' times
    mid: np.ndarray  # float64, the mid after each order
    _cum: np.ndarray  # cumulative sum of ``mid`` with a leading 0 (means over prefixes in O(1))

    @classmethod
    def of(cls, t: Trajectory) -> MidPath:
        two = t.two_sided()
        raw = np.where(two, (t.best_bid + t.best_ask) / 2.0, np.nan)
        m0 = (t.bid0 + t.ask0) / 2.0
        mid = _forward_fill(raw, m0)
        return cls(
            t.start_ns, m0, np.asarray(t.ts_ns), mid, np.concatenate([[0.0], np.cumsum(mid)])
        )

    def count_before(self, horizon_ns: int) -> int:
        """Orders within ``[start, start + horizon)``."""
        return int(np.searchsorted(self.ts_ns, self.start_ns + horizon_ns, side="left"))

    def target(self, horizon_ns: int) -> float:
        """The paper's l over the horizon; 0 when no order arrived (the mid never moved)."""
        n = self.count_before(horizon_ns)
        if n == 0:
            return 0.0
        return (self._cum[n] / n - self.m0) / self.m0

    def mid_at(self, horizon_ns: int) -> float:
        """The mid in force at ``start + horizon`` (after the last order before it)."""
        n = self.count_before(horizon_ns)
        return self.m0 if n == 0 else float(self.mid[n - 1])


def _forward_fill(x: np.ndarray, first: float) -> np.ndarray:
    out = np.asarray(x, dtype=np.float64).copy()
    bad = np.isnan(out)
    if not bad.any():
        return out
    idx = np.where(~bad, np.arange(len(out)), -1)
    np.maximum.accumulate(idx, out=idx)
    filled = np.where(idx >= 0, out[np.maximum(idx, 0)], first)
    return filled


class DayPaths:
    """The real mid path of a whole day, sliced into spans: one ``Trajectory`` of the day
    (``DayForks.real`` over the whole tape) read once, so that a grid of thousands of start
    times costs a ``searchsorted`` each."""

    def __init__(self, day_trajectory: Trajectory) -> None:
        self.whole = MidPath.of(day_trajectory)

    def at(self, start_ns: int) -> MidPath:
        """The real path from ``start_ns`` on (to the end of the day)."""
        w = self.whole
        i0 = int(np.searchsorted(w.ts_ns, start_ns, side="left"))
        m0 = w.m0 if i0 == 0 else float(w.mid[i0 - 1])
        mid = w.mid[i0:]
        cum = w._cum[i0:] - w._cum[i0]
        return MidPath(start_ns, m0, w.ts_ns[i0:], mid, cum)

    def mid_before(self, ts_ns: int) -> float:
        """The mid in force just before ``ts_ns``."""
        return self.at(ts_ns).m0

    def targets(self, starts_ns: Sequence[int], horizons_ns: Sequence[int]) -> np.ndarray:
        """l for every start (rows) and horizon (columns)."""
        out = np.empty((len(starts_ns), len(horizons_ns)))
        for i, s in enumerate(starts_ns):
            p = self.at(int(s))
            out[i] = [p.target(h) for h in horizons_ns]
        return out

    def mids_at(self, starts_ns: Sequence[int], horizons_ns: Sequence[int]) -> np.ndarray:
        """The real mid at every start + horizon."""
        out = np.empty((len(starts_ns), len(horizons_ns)))
        for i, s in enumerate(starts_ns):
            p = self.at(int(s))
            out[i] = [p.mid_at(h) for h in horizons_ns]
        return out


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Per horizon, the lower and upper terciles of l over the training grid: l below the lower
    is down, above the upper is up, flat between (both inclusive to flat)."""

    horizons_ns: tuple[int, ...]
    lower: tuple[float, ...]
    upper: tuple[float, ...]
    fitted_on: tuple[int, int]  # first and last start time of the grid they come from
    samples: int

    @classmethod
    def fit(
        cls, targets: np.ndarray, horizons_ns: Sequence[int], starts_ns: Sequence[int]
    ) -> Thresholds:
        """Terciles of ``targets`` (starts x horizons) of the training grid ``starts_ns``."""
        if len(starts_ns) < 3:
            raise ForecastError("class thresholds need at least 3 training start times")
        lo, hi = np.quantile(targets, [1 / 3, 2 / 3], axis=0)
        return cls(
            tuple(int(h) for h in horizons_ns),
            tuple(float(v) for v in lo),
            tuple(float(v) for v in hi),
            (int(min(starts_ns)), int(max(starts_ns))),
            len(starts_ns),
        )

    def classify(self, targets: np.ndarray, horizon_index: int | None = None) -> np.ndarray:
        """Classes of ``targets``: an array whose last axis runs over the horizons, or any array
        of one horizon's values (``horizon_index``)."""
        t = np.asarray(targets, dtype=np.float64)
        if horizon_index is None:
            lo, hi = np.asarray(self.lower), np.asarray(self.upper)
        else:
            lo, hi = self.lower[horizon_index], self.upper[horizon_index]
        return np.where(t < lo, DOWN, np.where(t > hi, UP, FLAT)).astype(np.int64)

    def as_dict(self) -> dict[str, object]:
        return {
            "horizons_s": [h // 1_000_000_000 for h in self.horizons_ns],
            "lower_bps": [round(v * 1e4, 4) for v in self.lower],
            "upper_bps": [round(v * 1e4, 4) for v in self.upper],
            "samples": self.samples,
        }

"""Instrument-relative units: order sizes in the instrument's typical order size, times in its
typical time between orders.

A model whose tokens and book features read shares and nanoseconds learns one instrument's
scale: a model trained on NASDAQ stocks (orders of about 100 shares, several a second) reads a
Bitstamp book, whose sizes are satoshis, as levels millions of times deeper than any it saw,
and sends orders of a hundred satoshis. In relative units (``OrderTokenizer.relative_units``,
``surveillance train --relative-units``) a size is read as ``qty * REFERENCE_SIZE / size`` and
an interval as ``interval * REFERENCE_INTERVAL_NS / interval_ns``, where ``size`` is the
geometric mean limit-order size and ``interval_ns`` the mean time between orders over the last
``SCALE_LOOKBACK_NS`` of the instrument's own flow (``rolling_scales``): what transfers across
instruments is the shape of the flow against its own scale, not the scale.

Training reads each order against the scale of the flow before it; a fork reads its whole
history and generates against the scale at the fork (the last history order's), held for the
rollout: a rollout that drifts from the market must not rescale itself into looking normal.

``REFERENCE_SIZE`` is a round figure (NASDAQ's round lot); the scale's size is the geometric
mean, 34 shares on the shared GOOG day and 47 on the AMZN one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from simulator.orderstream import OrderType
from simulator.units import NS_PER_MS, NS_PER_S

REFERENCE_SIZE = 100.0  # a typical limit order, in model units
REFERENCE_INTERVAL_NS = 100.0 * NS_PER_MS  # a typical time between orders, in model units
SCALE_LOOKBACK_NS = 25 * 60 * NS_PER_S  # the flow a scale is measured over (a detection window)
MIN_SPAN_NS = NS_PER_MS  # the span a mean interval is measured over, at least
# A fork needs this many history orders in the lookback to measure its scale: a handful would
# set the rollouts' rate and sizes by chance (one order: a mean interval of a millisecond).
MIN_SCALE_ORDERS = 100


@dataclass(frozen=True, slots=True)
class UnitScale:
    """An instrument's scale: ``size`` (a typical limit order, its own units) and
    ``interval_ns`` (its mean time between orders), scalars or arrays over the leading
    dimensions of what they convert (one per order, or one per rollout)."""

    size: np.ndarray | float
    interval_ns: np.ndarray | float

    def _size_factor(self) -> np.ndarray:
        return REFERENCE_SIZE / np.maximum(np.asarray(self.size, np.float64), 1e-12)

    def _time_factor(self) -> np.ndarray:
        return REFERENCE_INTERVAL_NS / np.maximum(np.asarray(self.interval_ns, np.float64), 1.0)

    def qty_in(self, qty) -> np.ndarray:
        """Sizes in model units (int64): at least 1, and 0 (an empty level) stays 0."""
        q = np.asarray(qty, np.int64)
        scaled = np.maximum(np.rint(q * self._size_factor()), 1).astype(np.int64)
        return np.where(q > 0, scaled, 0)

    def qty_out(self, qty) -> np.ndarray:
        """Model-unit sizes in the instrument's units (int64, at least 1)."""
        q = np.asarray(qty, np.float64)
        return np.maximum(np.rint(q / self._size_factor()), 1).astype(np.int64)

    def interval_in(self, interval_ns) -> np.ndarray:
        return np.rint(np.asarray(interval_ns, np.float64) * self._time_factor()).astype(np.int64)

    def interval_out(self, interval_ns) -> np.ndarray:
        return np.rint(np.asarray(interval_ns, np.float64) / self._time_factor()).astype(np.int64)

    def rows_in(self, rows) -> np.ndarray:
        """LOBSTER rows ``(..., 4 * levels)`` with their sizes in model units (prices kept); the
        scale broadcasts over the leading dimensions."""
        out = np.array(rows, np.int64, copy=True)
        f = self._size_factor()
        f = f[..., None] if f.ndim else f
        for col in (1, 3):
            q = out[..., col::4]
            out[..., col::4] = np.where(q > 0, np.maximum(np.rint(q * f), 1), 0)
        return out

    def take(self, index) -> UnitScale:
        """The scales at ``index`` of per-row scales (broadcast scalars stay scalars)."""
        size, ivl = np.asarray(self.size), np.asarray(self.interval_ns)
        return UnitScale(size[index] if size.ndim else size, ivl[index] if ivl.ndim else ivl)


def rolling_scales(type_, qty, ts_ns, lookback_ns: int = SCALE_LOOKBACK_NS) -> UnitScale:
    """Per order, the scale of the flow up to and including it: the geometric mean size of the
    limit orders (not cancels) within ``lookback_ns`` before it, and the lookback (cut at the
    first order) divided by the number of orders in it. Before the first limit order the first
    one's size stands in; a stream without limit orders has size 1."""
    t = np.asarray(type_, np.int64)
    q = np.asarray(qty, np.float64)
    ts = np.asarray(ts_ns, np.int64)
    n = len(ts)
    if n == 0:
        return UnitScale(np.zeros(0), np.zeros(0))
    if np.any(np.diff(ts) < 0):
        raise ValueError("rolling_scales needs orders in time order")
    limit = t != int(OrderType.CANCEL)
    if limit.any():
        lt, lq = ts[limit], q[limit]
        # the geometric mean: a median jumps between the modes of a two-mode size mix (GOOG's
        # odd lots and round lots: its rolling median is 11 to 100 shares), this moves smoothly
        logs = np.log(np.maximum(lq, 1.0))
        med = np.exp(
            pd.Series(logs, index=pd.to_datetime(lt))
            .rolling(pd.Timedelta(lookback_ns, "ns"))
            .mean()
            .to_numpy()
        )
        j = np.searchsorted(lt, ts, side="right") - 1
        size = np.where(j >= 0, med[np.maximum(j, 0)], lq[0])
    else:
        size = np.ones(n)
    lo = np.searchsorted(ts, ts - lookback_ns, side="right")
    count = np.arange(n) - lo + 1
    span = np.maximum(np.minimum(ts - ts[0], lookback_ns), MIN_SPAN_NS)
    return UnitScale(size, span / count)


def orders_in_lookback(ts_ns, lookback_ns: int = SCALE_LOOKBACK_NS) -> int:
    """How many orders the scale after the last one is measured over."""
    ts = np.asarray(ts_ns, np.int64)
    return 0 if len(ts) == 0 else int(np.sum(ts > ts[-1] - lookback_ns))

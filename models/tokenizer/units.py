"""Instrument-relative units: order sizes in the instrument's typical order size, times in its
typical time between orders.

A model whose tokens and book features read shares and nanoseconds learns one instrument's
scale: a model trained on NASDAQ stocks reads a Bitstamp book, whose sizes are satoshis, as
levels millions of times deeper than any it saw, and sends orders of a hundred satoshis. In
relative units (``OrderTokenizer.relative_units``, ``surveillance train --relative-units``) a
size is read as ``qty * REFERENCE_SIZE / size`` and an interval as ``interval * REFERENCE_INTERVAL_NS / interval_ns``, where ``size`` is the
geometric mean limit-order size and ``interval_ns`` the mean time between orders over the last
``SCALE_LOOKBACK`` orders of the instrument's own flow (``rolling_scales``): what transfers
across instruments is the shape of the flow against its own scale, not the scale.

Training reads each order against the scale of the orders before it, and so does a fork's
history; the rollouts generate against the scale after the history's last order
(``scale_after``), held for the rollout: a rollout that drifts from the market must not rescale
itself into looking normal.

``REFERENCE_SIZE`` and ``REFERENCE_INTERVAL_NS`` are round figures: units, not estimates.
Measurements and the variants tried: docs/decisions/relative-units.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.orderstream import OrderType
from simulator.units import NS_PER_MS

REFERENCE_SIZE = 100.0  # a typical limit order, in model units
REFERENCE_INTERVAL_NS = 100.0 * NS_PER_MS  # a typical time between orders, in model units
# The orders a scale is measured over: the detection's context (``DetectionConfig.
# history_orders``), all a fork is given, so training reads the scale a fork can read.
SCALE_LOOKBACK = 256
MIN_SPAN_NS = NS_PER_MS  # the span a mean interval is measured over, at least
# A fork needs this many history orders to measure its scale: a handful would set the
# rollouts' rate and sizes by chance.
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


def _scales(type_, qty, ts_ns, lookback: int) -> tuple[np.ndarray, np.ndarray]:
    """The scale before each of the ``n`` orders and after the last (``n + 1`` values)."""
    t = np.asarray(type_, np.int64)
    q = np.asarray(qty, np.float64)
    ts = np.asarray(ts_ns, np.int64)
    n = len(ts)
    if np.any(np.diff(ts) < 0):
        raise ValueError("unit scales need orders in time order")
    limit = t != int(OrderType.CANCEL)
    # the geometric mean: a median jumps between the modes of a two-mode size mix (odd lots
    # and round lots), this moves smoothly between them
    logs = np.where(limit, np.log(np.maximum(q, 1.0)), 0.0)
    sum_logs = np.concatenate([[0.0], np.cumsum(logs)])
    sum_limits = np.concatenate([[0], np.cumsum(limit)])
    pos = np.arange(n + 1)
    lo = np.maximum(pos - lookback, 0)
    count = sum_limits[pos] - sum_limits[lo]
    first = float(q[limit][0]) if limit.any() else 1.0  # before any limit order
    size = np.where(count > 0, np.exp((sum_logs[pos] - sum_logs[lo]) / np.maximum(count, 1)), first)
    gaps = pos - 1 - lo  # intervals between the lookback's orders
    span = np.where(gaps >= 1, ts[np.maximum(pos - 1, 0)] - ts[lo], 0)
    interval = np.maximum(span, MIN_SPAN_NS) / np.maximum(gaps, 1)
    # fewer than two orders before: the first interval measured stands in
    interval[: min(2, n + 1)] = interval[2] if n >= 2 else REFERENCE_INTERVAL_NS
    return size, interval


def rolling_scales(type_, qty, ts_ns, lookback: int = SCALE_LOOKBACK) -> UnitScale:
    """Per order, the scale of the ``lookback`` orders before it (not itself: a rollout's
    orders are read against the history before them): the geometric mean size of the limit
    orders (not cancels) among them and their mean time between orders. At a stream's start
    the first limit order's size and the first interval stand in for what is not there yet."""
    size, interval = _scales(type_, qty, ts_ns, lookback)
    return UnitScale(size[:-1], interval[:-1])


def scale_after(type_, qty, ts_ns, lookback: int = SCALE_LOOKBACK) -> UnitScale:
    """The scale after a stream's last order (a fork's history): scalars."""
    if len(ts_ns) == 0:
        raise ValueError("a scale needs at least one order")
    size, interval = _scales(type_, qty, ts_ns, lookback)
    return UnitScale(float(size[-1]), float(interval[-1]))

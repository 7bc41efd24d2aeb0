"""The MarS counterfactual for aggressive manipulation (issue 31): a real window's aggressive
orders played into rollouts forked at its start, and the real market's price response to them
set against the simulated markets' response to the same orders.

``aggressive_orders`` reads the orders off a real window (``Trajectory``: every marketable
limit order, with how many ticks past the other side's best it was priced) and
``touch_shares`` the share of the touch each took; ``counterfactual_request`` is the window's
detection fork with those orders replayed in every rollout (``simulator.agents.Replayed``, at
their real sizes or at those shares of the rollout's book); ``signed_response`` is the mid's
move, in ticks and signed by the order's side, from just before each order to a horizon after
it, in a real or a simulated trajectory. ``benchmarks/counterfactual_response.py`` measures it on the calibration
hours; the figures are in docs/studies/aggressive-manipulation.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from simulator.agents import Replayed
from simulator.book import EMPTY_ASK_PRICE, EMPTY_BID_PRICE
from simulator.engine import ForkRequest
from simulator.orderstream import OrderType
from simulator.trajectory import Trajectory
from simulator.units import NS_PER_S
from surveillance.detection.pipeline import ClosedWindow
from surveillance.detection.scoring import DetectionConfig, fork_request

Order = tuple[int, int, int, int]  # (ts_ns, side: 1 buy / -1 sell, ticks past the touch, qty)


def _touch_before(trajectory: Trajectory) -> tuple[np.ndarray, np.ndarray]:
    """The best bid and ask before each order (the opening touch before the first)."""
    bid = np.concatenate([[trajectory.bid0], trajectory.best_bid[:-1]])
    ask = np.concatenate([[trajectory.ask0], trajectory.best_ask[:-1]])
    return bid, ask


def aggressive_orders(trajectory: Trajectory) -> list[Order]:
    """Every marketable limit order of a real window, in time order: its side, how many ticks
    past the other side's best it was priced (0: the touch only) and its size. A window read
    without prices (``Trajectory.price`` None) has none; an order that met an empty side is
    left out (nothing to take)."""
    return [order for order, _ in _aggressive(trajectory, False)]


def touch_shares(trajectory: Trajectory) -> list[float]:
    """Per order of ``aggressive_orders``, the share of what rested up to its price that it
    took: its size over the touch's for an order at the touch (at most 1); 1 for one priced
    past the touch, whose depth the trajectory does not keep (most such orders take all that
    rests up to their price: docs/decisions/tokenizer-sweep-slot.md)."""
    if trajectory.bid_qty is None or trajectory.ask_qty is None:
        raise ValueError("the trajectory keeps no touch sizes: no shares to read")
    return [share for _, share in _aggressive(trajectory, True)]


def _aggressive(trajectory: Trajectory, shares: bool) -> list[tuple[Order, float]]:
    """``aggressive_orders`` with each order's ``touch_shares`` share (1.0 unless ``shares``)."""
    if trajectory.price is None:
        return []
    bid, ask = _touch_before(trajectory)
    n = len(trajectory.ts_ns)
    bid_qty = ask_qty = np.zeros(n, np.int64)
    if shares:
        assert trajectory.bid_qty is not None and trajectory.ask_qty is not None
        bid_qty = np.concatenate([[trajectory.qty0[0]], trajectory.bid_qty[:-1]])
        ask_qty = np.concatenate([[trajectory.qty0[1]], trajectory.ask_qty[:-1]])
    out: list[tuple[Order, float]] = []
    for j in np.flatnonzero(trajectory.aggressive & (trajectory.type != int(OrderType.CANCEL))):
        side = 1 if trajectory.type[j] == int(OrderType.BID) else -1
        far = int(ask[j] if side > 0 else bid[j])
        if far in (EMPTY_ASK_PRICE, EMPTY_BID_PRICE):
            continue
        ticks = max(0, side * (int(trajectory.price[j]) - far) // trajectory.tick_size)
        qty = int(trajectory.qty[j])
        touch = int(ask_qty[j] if side > 0 else bid_qty[j])
        share = 1.0 if ticks > 0 or touch <= 0 else min(1.0, qty / touch)
        out.append(((int(trajectory.ts_ns[j]), side, int(ticks), qty), share))
    return out


def signed_response(
    trajectory: Trajectory, orders: Sequence[Order], horizon_s: float
) -> np.ndarray:
    """Per order, the mid's move in ticks from just before its time to ``horizon_s`` seconds
    after it, times its side (positive: the price went the order's way); NaN where the book was
    one-sided at either end. An order within ``horizon_s`` of the window's end is read to the
    window's last event (the trajectory holds nothing later)."""
    if not orders:
        return np.zeros(0)
    bid = np.concatenate([[trajectory.bid0], trajectory.best_bid]).astype(float)
    ask = np.concatenate([[trajectory.ask0], trajectory.best_ask]).astype(float)
    two_sided = (bid > EMPTY_BID_PRICE) & (ask < EMPTY_ASK_PRICE)
    mid = np.where(two_sided, (bid + ask) / 2.0, np.nan)  # mid[k]: after the k-th event
    ts = np.array([o[0] for o in orders], dtype=np.int64)
    side = np.array([o[1] for o in orders], dtype=float)
    before = mid[np.searchsorted(trajectory.ts_ns, ts, side="left")]
    after = mid[np.searchsorted(trajectory.ts_ns, ts + int(horizon_s * NS_PER_S), side="right")]
    return side * (after - before) / trajectory.tick_size


def counterfactual_request(
    window: ClosedWindow,
    config: DetectionConfig,
    orders: Sequence[Order],
    shares: Sequence[float] | None = None,
) -> ForkRequest:
    """The window's detection fork (same book, context, seed and rollouts) with ``orders``
    replayed in every rollout (``shares``: each sized as that share of what rests up to its
    price in the rollout, ``touch_shares``; None: the real sizes)."""
    request, _ = fork_request(window, config)
    plan = Replayed(tuple(orders), config.tick_size, None if shares is None else tuple(shares))
    return replace(request, agents=(plan,))

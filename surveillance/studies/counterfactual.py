"""The MarS counterfactual for aggressive manipulation (issue 31): a real window's aggressive
orders played into rollouts forked at its start, and the real market's price response to them
set against the simulated markets' response to the same orders.

``aggressive_orders`` reads the orders off a real window (``Trajectory``: every marketable
limit order, with how many ticks past the other side's best it was priced);
``counterfactual_request`` is the window's detection fork with those orders replayed in every
rollout (``simulator.agents.Replayed``); ``signed_response`` is the mid's move, in ticks and
signed by the order's side, from just before each order to a horizon after it, in a real or a
simulated trajectory. ``benchmarks/counterfactual_response.py`` measures it on the calibration
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
    if trajectory.price is None:
        return []
    bid, ask = _touch_before(trajectory)
    out: list[Order] = []
    for j in np.flatnonzero(trajectory.aggressive & (trajectory.type != int(OrderType.CANCEL))):
        side = 1 if trajectory.type[j] == int(OrderType.BID) else -1
        far = int(ask[j] if side > 0 else bid[j])
        if far in (EMPTY_ASK_PRICE, EMPTY_BID_PRICE):
            continue
        ticks = max(0, side * (int(trajectory.price[j]) - far) // trajectory.tick_size)
        out.append((int(trajectory.ts_ns[j]), side, int(ticks), int(trajectory.qty[j])))
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
    window: ClosedWindow, config: DetectionConfig, orders: Sequence[Order]
) -> ForkRequest:
    """The window's detection fork (same book, context, seed and rollouts) with ``orders``
    replayed in every rollout."""
    request, _ = fork_request(window, config)
    return replace(request, agents=(Replayed(tuple(orders), config.tick_size),))

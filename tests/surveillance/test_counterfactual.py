"""The MarS counterfactual's pieces (``surveillance.studies.counterfactual``): a real window's
aggressive orders, their signed price response, and the fork that replays them."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.agents import Replayed
from simulator.book import EMPTY_ASK_PRICE
from simulator.trajectory import Trajectory
from surveillance.studies.counterfactual import (
    aggressive_orders,
    counterfactual_request,
    signed_response,
    touch_shares,
)

S = 1_000_000_000
ASK, BID, CANCEL = 0, 1, 2


def window() -> Trajectory:
    """Touch 9,900 / 10,100 at the start. 10 s: a buy priced a tick past the ask (takes it:
    ask 10,300). 12 s: a passive ask. 20 s: a sell at the bid (bid 9,800). 30 s: a cancel.
    41 s: a buy meeting an empty ask side (left out)."""
    return Trajectory(
        start_ns=0,
        end_ns=60 * S,
        bid0=9_900,
        ask0=10_100,
        ts_ns=np.array([10, 12, 20, 30, 41], dtype=np.int64) * S,
        type=np.array([BID, ASK, ASK, CANCEL, BID]),
        qty=np.array([500, 100, 300, 100, 100]),
        aggressive=np.array([True, False, True, False, True]),
        best_bid=np.array([9_900, 9_900, 9_800, 9_800, 9_800]),
        best_ask=np.array([10_300, 10_300, 10_300, EMPTY_ASK_PRICE, EMPTY_ASK_PRICE]),
        tick_size=100,
        price=np.array([10_200, 10_300, 9_900, 10_300, 10_400]),
    )


def test_aggressive_orders_are_read_with_their_depth_past_the_touch() -> None:
    assert aggressive_orders(window()) == [(10 * S, 1, 1, 500), (20 * S, -1, 0, 300)]
    no_prices = window()
    no_prices.price = None
    assert aggressive_orders(no_prices) == []


def test_the_signed_response_is_the_mids_move_the_orders_way_in_ticks() -> None:
    orders = aggressive_orders(window())
    # the buy: mid 10,000 before, 10,100 five seconds on (+1 tick); the sell: mid 10,100
    # before, 10,050 at 25 s (the price fell, the sell's way: +0.5)
    assert signed_response(window(), orders, 5).tolist() == [1.0, 0.5]
    # 15 s on the buy meets mid 10,050 (+0.5); the sell meets a one-sided book at 35 s
    at_15 = signed_response(window(), orders, 15)
    assert at_15[0] == 0.5 and np.isnan(at_15[1])
    assert signed_response(window(), [], 5).size == 0


def test_the_counterfactual_fork_is_the_detection_fork_with_the_orders_replayed(
    lobster_dir,
) -> None:
    from simulator.lobster import load_lobster
    from simulator.normalized import iter_events, lobster_to_frame
    from surveillance.detection.pipeline import InstrumentPipeline
    from surveillance.detection.scoring import DetectionConfig, fork_request
    from tests.conftest import lobster_zip

    frame = lobster_to_frame(load_lobster(lobster_zip(lobster_dir, "AMZN", 1)))
    open_ns = 34_200 * S
    frame = frame[frame.ts_ns < open_ns + 15 * 60 * S].reset_index(drop=True)
    pipe = InstrumentPipeline("AMZN", window_ns=5 * 60 * S, origin_ns=open_ns)
    closed = [w for e in iter_events(frame) for w in pipe.on_event(e)]
    second = next(w for w in closed if w.history)
    config = DetectionConfig(window_ns=5 * 60 * S, rollouts=2, seed=0)
    orders = [(second.start_ns + S, 1, 0, 100)]
    request = counterfactual_request(second, config, orders)
    plain, _ = fork_request(second, config)
    assert request.agents == (Replayed(tuple(orders), config.tick_size),)
    assert (request.seed, request.rollouts, request.start_ns, request.horizon_ns) == (
        plain.seed,
        plain.rollouts,
        plain.start_ns,
        plain.horizon_ns,
    )
    assert (
        request.book is plain.book
        and request.context.ts_ns.tolist() == plain.context.ts_ns.tolist()
    )


def test_an_orders_share_of_the_touch_is_what_a_sized_replay_takes() -> None:
    """At the touch: its size over the touch's (at most all of it); past the touch: all that
    rested up to its price, which the trajectory cannot tell from its size."""
    w = window()
    w.bid_qty = np.array([400, 400, 100, 100, 100])
    w.ask_qty = np.array([200, 200, 200, 0, 0])
    w.qty0 = (400, 300)
    # the buy goes a tick past the ask: 1.0; the sell takes 300 of the bid's 400: 0.75
    assert touch_shares(w) == [1.0, 0.75]
    w.bid_qty = np.array([400, 200, 100, 100, 100])  # the sell meets 200: all of it
    assert touch_shares(w) == [1.0, 1.0]
    # the first buy at the ask instead, for 150 of the opening ask's 300 (the bid held 400)
    w.price = np.array([10_100, 10_300, 9_900, 10_300, 10_400])
    w.qty = np.array([150, 100, 300, 100, 100])
    assert touch_shares(w) == [0.5, 1.0]
    with pytest.raises(ValueError, match="touch sizes"):
        touch_shares(window())

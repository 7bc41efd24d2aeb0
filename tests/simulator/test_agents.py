"""Execution agents inside rollouts: the paper's TWAP (rest, then take), POV, one immediate order."""

from __future__ import annotations

import pytest

from simulator.agents import MarketOrder, Pov, Twap, take_price
from simulator.engine import Engine
from simulator.rollout import CancelOrder, GeneratedOrder
from tests.simulator.test_engine import ASK, BID, CANCEL, S, deep_book, request

IDLE = [[GeneratedOrder(CANCEL, 1, 1, S) for _ in range(200)]]  # touches nothing near the top


def fills(futures, rollout: int = 0) -> list[tuple[int, int, int, bool]]:
    return [(f.ts_ns, f.price, f.qty, f.passive) for f in futures.agent_fills[rollout]]


def fork(agent, script, **changes):
    from tests.simulator.test_rollout import ScriptGenerator

    req = request(agents=(agent,), max_depth=None, context_rows=None, rollouts=1, **changes)
    return Engine(ScriptGenerator(script)).fork_one(req)


def test_take_price_reads_the_levels_of_the_other_side() -> None:
    book = deep_book()  # bids 9,900..9,500, asks 10,100..10,500
    assert take_price(book, 1, 1) == 10_100
    assert take_price(book, 1, 3) == 10_300
    # never the deepest level: an agent does not empty a side
    assert take_price(book, 1, None) == take_price(book, 1, 99) == 10_400
    assert take_price(book, -1, 2) == 9_800


def test_a_twap_slice_rests_at_the_touch_then_takes_what_is_left() -> None:
    # two 30 s slices of 300, half of each resting at the best bid; at 110 s the model sells
    # 400 at the best bid: the 300 ahead of the agent in the queue, then 100 of the agent's
    script = [[GeneratedOrder(ASK, 9_900, 400, 10 * S)] + IDLE[0]]
    twap = Twap(1, 600, 100 * S, 160 * S, slices=2, levels=2, passive=0.5)
    futures = fork(twap, script)
    assert fills(futures) == [
        (110 * S, 9_900, 100, True),  # resting at the touch
        (115 * S, 10_100, 200, False),  # the slice's shortfall, taken at 115 s
        (145 * S, 10_100, 100, False),  # slice two rested at the new best bid, unfilled:
        (145 * S, 10_200, 200, False),  # its 300 taken over two levels
    ]
    r = futures.results[0]
    agent_rows = [k for k, _ in futures.agent_orders[0]]
    kinds = [(int(r.ts_ns[k]) // S, int(r.type[k]), int(r.price[k])) for k in agent_rows]
    assert kinds == [
        (100, BID, 9_900),  # post 300 at the best bid
        (115, CANCEL, 9_900),  # cancel the 200 left
        (115, BID, 10_200),  # take 200, up to the second ask level
        (130, BID, 9_800),  # the bid level it rested at is gone: the new best bid
        (145, CANCEL, 9_800),
        (145, BID, 10_200),
    ]


def test_a_twap_without_passive_time_keeps_the_old_slices() -> None:
    twap = Twap(1, 1_200, 100 * S, 160 * S, slices=6)
    r = fork(twap, IDLE).results[0]
    assert r.filled_qty[[k for k, _ in fork(twap, IDLE).agent_orders[0]]].tolist() == [200, 100] * 3


def test_a_twap_checks_its_plan() -> None:
    with pytest.raises(ValueError, match="passive"):
        Twap(1, 100, 0, S, slices=2, passive=1.0)
    with pytest.raises(ValueError, match="side"):
        Twap(0, 100, 0, S, slices=2)
    with pytest.raises(ValueError, match="rate"):
        Pov(1, 100, 0, S, rate=0.0)


def test_a_pov_trades_its_share_of_the_market_volume() -> None:
    # the model sells 30 shares a second into the bids; the agent buys 20% of all volume
    script = [[GeneratedOrder(ASK, 9_000, 30, S) for _ in range(60)]]
    pov = Pov(1, 10_000, 100 * S, 140 * S, rate=0.2, interval_ns=2 * S)
    futures = fork(pov, script, horizon_ns=40 * S)
    r = futures.results[0]
    mine = sum(f.qty for f in futures.agent_fills[0])
    total = int(r.trade_qty.sum())
    assert all(not f.passive and f.side == 1 for f in futures.agent_fills[0])
    # it lags by what traded since its last look (2 s of 30 shares a second, and the end)
    assert 0.2 * total - 30 <= mine <= 0.2 * total + 1
    assert mine > 0


def test_a_pov_stops_when_its_quantity_is_done() -> None:
    script = [[GeneratedOrder(ASK, 9_000, 30, S) for _ in range(60)]]
    futures = fork(Pov(1, 50, 100 * S, 140 * S, rate=0.5, interval_ns=2 * S), script)
    assert sum(f.qty for f in futures.agent_fills[0]) == 50


def test_a_market_order_sweeps_the_book_at_once() -> None:
    futures = fork(MarketOrder(1, 700, 100 * S), IDLE)
    assert fills(futures) == [
        (100 * S, 10_100, 300, False),
        (100 * S, 10_200, 300, False),
        (100 * S, 10_300, 100, False),
    ]
    capped = fork(MarketOrder(-1, 700, 100 * S, levels=2), IDLE)
    assert sum(q for _, _, q, _ in fills(capped)) == 600  # two bid levels; the rest dropped


class DeepQuoter:
    """Rests a bid at the deepest level at 100 s and cancels it at 130 s."""

    def __init__(self) -> None:
        self.wakes = [100 * S, 130 * S]
        self.order_id = 0

    def wake_ns(self):
        return self.wakes[0] if self.wakes else None

    def act(self, book, ts_ns):
        self.wakes.pop(0)
        if self.order_id == 0:
            return GeneratedOrder(BID, 9_500, 100, 0)
        return CancelOrder(self.order_id)

    def placed(self, order_id, filled, resting):
        self.order_id = order_id


def test_cancelling_an_order_the_depth_limit_dropped_does_nothing() -> None:
    # a better bid at 110 s pushes the agent's level past the five levels kept
    from tests.simulator.test_rollout import ScriptGenerator

    script = [[GeneratedOrder(BID, 10_000, 100, 10 * S)] + IDLE[0]]
    req = request(agents=(lambda i, rng: DeepQuoter(),), max_depth=5, context_rows=None,
                  rollouts=1)  # fmt: skip
    r = Engine(ScriptGenerator(script)).fork_one(req).results[0]
    assert r.best_bid[-1] == 10_000 and r.depth_dropped >= 1

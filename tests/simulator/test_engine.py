"""The engine API: batches of fork requests, books at chosen times, agents inside rollouts."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from simulator.agents import Replayed, Twap
from simulator.book import OrderBook
from simulator.engine import Engine, ForkRequest, window_seed
from simulator.generators import EmpiricalGenerator
from simulator.matching import MatchingRules
from simulator.orderstream import OrderType
from simulator.rollout import CancelOrder, GeneratedOrder
from tests.simulator.test_rollout import ScriptGenerator, synthetic_history

S = 1_000_000_000
RULES = MatchingRules(tick_size=100)
BID, ASK, CANCEL = int(OrderType.BID), int(OrderType.ASK), int(OrderType.CANCEL)


def deep_book() -> OrderBook:
    book = OrderBook("TEST")
    oid = 1
    for k in range(5):
        book.add(oid, 1, 9_900 - 100 * k, 300)
        book.add(oid + 1, -1, 10_100 + 100 * k, 300)
        oid += 2
    return book


def request(**changes) -> ForkRequest:
    history, rows = synthetic_history(np.random.default_rng(1))
    base = ForkRequest(
        instrument="TEST",
        book=deep_book(),
        context=history,
        context_rows=rows,
        open_mid=10_000.0,
        start_ns=100 * S,
        horizon_ns=60 * S,
        rollouts=3,
        seed=7,
        rules=RULES,
        max_depth=5,
    )
    return dataclasses.replace(base, **changes)


def columns(futures) -> list[tuple]:
    return [
        (r.ts_ns.tolist(), r.type.tolist(), r.price.tolist(), r.qty.tolist(), r.best_bid.tolist())
        for r in futures.results
    ]


def test_a_request_forks_the_same_futures_alone_or_in_a_batch() -> None:
    alone = Engine(EmpiricalGenerator()).fork([request(seed=3)])[0]
    batch = Engine(EmpiricalGenerator()).fork([request(seed=5), request(seed=3), request()])
    assert columns(batch[1]) == columns(alone)
    assert columns(batch[0]) != columns(alone)  # another seed, other futures
    assert [f.request.seed for f in batch] == [5, 3, 7]  # in request order
    assert all(len(t.ts_ns) > 0 for t in alone.trajectories)


def test_books_are_kept_at_the_chosen_times() -> None:
    times = (100 * S, 130 * S, 200 * S)
    (futures,) = Engine(EmpiricalGenerator()).fork([request(snapshot_times_ns=times)])
    at_start = futures.books_at(100 * S)
    assert at_start.shape == (3, 40)
    assert (at_start == deep_book().snapshot(10)).all()  # no order before the first time
    for r, book_end in zip(futures.results, futures.books_at(200 * S), strict=True):
        # the touch after the last order is the touch of the book kept at the horizon
        assert (book_end[2], book_end[0]) == (r.best_bid[-1], r.best_ask[-1])
    with pytest.raises(KeyError, match="snapshot_times_ns"):
        futures.books_at(150 * S)
    with pytest.raises(ValueError, match="ascending"):
        Engine(EmpiricalGenerator()).fork([request(snapshot_times_ns=(2 * S, 1 * S))])


def test_a_twap_agent_sends_its_slices_inside_every_rollout_and_moves_the_price() -> None:
    # the model only takes a share off the deepest bid each second: the ask side moves by the
    # agent alone
    idle = [[GeneratedOrder(CANCEL, 1, 1, S) for _ in range(200)]]
    twap = Twap(side=1, qty=1_200, start_ns=100 * S, end_ns=160 * S, slices=6, tick_size=100)
    req = request(agents=(twap,), max_depth=None, context_rows=None)
    (futures,) = Engine(ScriptGenerator(idle)).fork([req])
    for r, steps in zip(futures.results, futures.agent_orders, strict=True):
        sent = [k for k, agent in steps]
        assert len(sent) == 6 and {a for _, a in steps} == {0}
        assert (r.type[sent] == BID).all() and r.aggressive[sent].all()
        assert r.ts_ns[sent].tolist() == [100 * S + k * 10 * S for k in range(6)]
        # IOC at the touch: 200 of the first level's 300, then the 100 left, and so on
        assert r.filled_qty[sent].tolist() == [200, 100] * 3
        assert r.best_ask[-1] == 10_100 + 300  # the buyer took three levels
    # allowed one level past the touch, every slice fills
    deeper = dataclasses.replace(req, agents=(dataclasses.replace(twap, levels=2),))
    (futures,) = Engine(ScriptGenerator(idle)).fork([deeper])
    assert all(
        int(r.filled_qty[[k for k, _ in steps]].sum()) == 1_200
        for r, steps in zip(futures.results, futures.agent_orders, strict=True)
    )
    # without the agent the same model leaves the touch where it was
    (plain,) = Engine(ScriptGenerator(idle)).fork([dataclasses.replace(req, agents=())])
    assert all(r.best_ask[-1] == 10_100 for r in plain.results)


def test_replayed_orders_go_out_at_their_times_as_deep_as_asked() -> None:
    """``Replayed``: each order immediate-or-cancel at its time, priced its ticks past the
    other side's best in the rollout; orders due together go out together, in order."""
    idle = [[GeneratedOrder(CANCEL, 1, 1, S) for _ in range(200)]]
    orders = ((101 * S, 1, 0, 200), (101 * S, -1, 1, 400), (130 * S, 1, 2, 700))
    req = request(agents=(Replayed(orders, 100),), max_depth=None, context_rows=None)
    (futures,) = Engine(ScriptGenerator(idle)).fork([req])
    for r, steps in zip(futures.results, futures.agent_orders, strict=True):
        sent = [k for k, _ in steps]
        assert r.ts_ns[sent].tolist() == [101 * S, 101 * S, 130 * S]
        assert r.type[sent].tolist() == [BID, ASK, BID] and r.aggressive[sent].all()
        # the touch only: 200 of the best ask's 300; one tick past the bid: its 300 and 100
        # of the next level's; two ticks past the ask (10,100 with 100 left): up to 10,300
        assert r.price[sent].tolist() == [10_100, 9_800, 10_300]
        assert r.filled_qty[sent].tolist() == [200, 400, 700]
    with pytest.raises(ValueError, match="time order"):
        Replayed(((2 * S, 1, 0, 100), (1 * S, 1, 0, 100)), 100)
    with pytest.raises(ValueError, match="ticks"):
        Replayed(((1 * S, 1, -1, 100),), 100)


def test_agent_orders_keep_the_models_clock() -> None:
    """The model's orders go out when it said, whatever the agents sent in between."""
    script = [[GeneratedOrder(BID, 9_800, 100, 7 * S) for _ in range(20)]]
    twap = Twap(side=-1, qty=300, start_ns=101 * S, end_ns=131 * S, slices=3, tick_size=100)
    req = request(agents=(twap,), max_depth=None, context_rows=None, horizon_ns=40 * S)
    (futures,) = Engine(ScriptGenerator(script)).fork([req])
    r = futures.results[0]
    agent = {k for k, _ in futures.agent_orders[0]}
    model_ts = [t for k, t in enumerate(r.ts_ns.tolist()) if k not in agent]
    assert model_ts == [100 * S + 7 * S * (k + 1) for k in range(5)]


class Quoter:
    """Rests a bid one tick above the best bid at 100 s, cancels what is left at 130 s."""

    def __init__(self) -> None:
        self.wakes = [100 * S, 130 * S]
        self.order_id = 0
        self.fills = []
        self.placed_with = None

    def wake_ns(self):
        return self.wakes[0] if self.wakes else None

    def act(self, book, ts_ns):
        self.wakes.pop(0)
        if self.order_id == 0:
            return GeneratedOrder(BID, book.best_bid + 100, 500, 0)
        return [CancelOrder(self.order_id)]

    def placed(self, order_id, filled, resting):
        self.order_id = order_id
        self.placed_with = (filled, resting)

    def filled(self, fill):
        self.fills.append(fill)


def test_an_agent_rests_is_filled_by_the_model_and_cancels_what_is_left() -> None:
    # the model sells 200 at the best bid at 110 s, then cancels at the agent's level at 120 s
    script = [
        [GeneratedOrder(ASK, 9_900, 200, 10 * S), GeneratedOrder(CANCEL, 10_000, 300, 10 * S)]
    ]
    agents = []

    def factory(index, rng):
        agents.append(Quoter())
        return agents[-1]

    req = request(agents=(factory,), max_depth=None, context_rows=None, rollouts=1,
                  keep_books=True)  # fmt: skip
    (futures,) = Engine(ScriptGenerator(script)).fork([req])
    r, agent = futures.results[0], agents[0]
    assert agent.placed_with == (0, 500)  # rested in full, a new best bid
    # the model's sell met the agent's bid first: a passive fill of 200 at its price
    assert [(f.ts_ns, f.side, f.price, f.qty, f.passive) for f in agent.fills] == [
        (110 * S, 1, 10_000, 200, True)
    ]
    assert futures.agent_fills[0] == agent.fills
    # the model's cancel at that level found only the agent's order: void, the agent kept 300
    model_cancel = 2
    assert r.type[model_cancel] == CANCEL and not r.applied[model_cancel]
    # the agent cancelled its remaining 300 at 130 s: recorded as its order, the level is gone
    (k, a) = futures.agent_orders[0][-1]
    assert (r.type[k], r.qty[k], r.ts_ns[k], a) == (CANCEL, 300, 130 * S, 0)
    assert r.book is not None and r.book.best_bid == 9_900
    assert agent.order_id not in r.book


def test_the_window_seed_rule_depends_on_seed_instrument_and_start() -> None:
    a = window_seed(0, "GOOG", 36_000 * S)
    assert a == window_seed(0, "GOOG", 36_000 * S)
    assert len({a, window_seed(1, "GOOG", 36_000 * S), window_seed(0, "AMZN", 36_000 * S),
                window_seed(0, "GOOG", 37_500 * S)}) == 4  # fmt: skip


def test_a_twap_runs_inside_rollouts_of_the_bundled_order_model() -> None:
    """The order model keeps every rollout in its batch each step while agents act."""
    from pathlib import Path

    checkpoint = Path(__file__).resolve().parents[2] / "models" / "checkpoints" / "lmm-small.pt"
    if not checkpoint.exists():
        pytest.skip("no bundled checkpoint")
    from models.generator import load_generator

    twap = Twap(side=1, qty=600, start_ns=100 * S, end_ns=120 * S, slices=3, tick_size=100)
    req = request(agents=(twap,), horizon_ns=30 * S, max_orders=1_000)
    (with_agent,) = Engine(load_generator(checkpoint)).fork([req])
    (without,) = Engine(load_generator(checkpoint)).fork([dataclasses.replace(req, agents=())])
    for r, steps in zip(with_agent.results, with_agent.agent_orders, strict=True):
        sent = [k for k, _ in steps]
        assert r.ts_ns[sent].tolist() == [100 * S, 106_666_666_666, 113_333_333_333]
        assert (r.type[sent] == BID).all()
        assert (np.diff(r.ts_ns) >= 0).all()  # one clock for the model's orders and the agent's
    # the model reacts to the book the agent leaves: the futures differ from the plain ones
    assert columns(with_agent) != columns(without)


def _mixed_requests() -> list[ForkRequest]:
    """Requests that differ in everything a batch could mix up: rollout counts, histories,
    horizons, seeds, depth limits, agents and kept books."""
    short, short_rows = synthetic_history(np.random.default_rng(9), n=300)
    twap = Twap(side=1, qty=300, start_ns=101 * S, end_ns=140 * S, slices=4, tick_size=100)
    return [
        request(rollouts=5, seed=1),
        request(rollouts=1, seed=2, horizon_ns=20 * S),
        request(rollouts=4, seed=3, context=short, context_rows=short_rows, max_orders=400),
        request(rollouts=3, seed=4, agents=(twap,), snapshot_times_ns=(120 * S,)),
        request(rollouts=2, seed=5, max_depth=None, horizon_ns=90 * S),
        request(rollouts=6, seed=6, refill=True),
    ]


def everything(futures) -> list[tuple]:
    return [
        (
            *cols,
            r.side.tolist(),
            r.order_id.tolist(),
            r.applied.tolist(),
            r.trade_qty.tolist(),
            r.stop,
            r.agent_orders,
            [s.tolist() for s in r.snapshots],
        )
        for cols, r in zip(columns(futures), futures.results, strict=True)
    ]


@pytest.mark.parametrize("max_batch", [None, 7, 1])
def test_batched_requests_fork_exactly_what_each_forks_alone(max_batch) -> None:
    """One sampler call per step for every request's rollouts (max_batch: requests wait for
    rollouts to end and reuse their slots) gives each request the futures it gets alone."""
    requests = _mixed_requests()
    alone = [Engine(EmpiricalGenerator()).fork([r])[0] for r in requests]
    engine = Engine(EmpiricalGenerator(), max_batch=max_batch)
    assert engine.batched
    together = engine.fork(requests)
    assert [f.request for f in together] == requests
    for a, b in zip(alone, together, strict=True):
        assert everything(a) == everything(b)
    # the requests really differ, so an identity cannot come from identical requests
    assert len({str(everything(f)) for f in together}) == len(requests)


class _Recording(EmpiricalGenerator):
    """Counts the rollouts of each sampler call."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[int] = []

    def next_orders(self, books, ts_ns):
        self.calls.append(len(books))
        return super().next_orders(books, ts_ns)


def test_a_call_steps_all_requests_together_within_max_batch() -> None:
    requests = [request(rollouts=4, seed=s) for s in range(5)]
    sampler = _Recording()
    Engine(sampler).fork(requests)
    assert sampler.calls[0] == 20  # every rollout of every request in the first step
    capped = _Recording()
    Engine(capped, max_batch=8).fork(requests)
    assert capped.calls[0] == 8 and max(capped.calls) <= 8
    # a waiting request joins once rollouts have ended: more steps, never more than the cap
    assert len(capped.calls) > len(sampler.calls)


def test_a_sampler_without_join_forks_the_requests_one_after_the_other() -> None:
    from tests.simulator.test_rollout import ScriptGenerator

    engine = Engine(ScriptGenerator([[GeneratedOrder(BID, 9_900, 100, S)] * 3]))
    assert not engine.batched
    futures = engine.fork([request(rollouts=2, seed=1), request(rollouts=2, seed=2)])
    assert [len(r) for f in futures for r in f.results] == [3, 3, 3, 3]


class _Counted(_Recording):
    """Counts its runs begun and forks joined too."""

    def __init__(self, **kwargs) -> None:
        super().__init__()
        EmpiricalGenerator.__init__(self, **kwargs)
        self.begins, self.joins = 0, 0

    def begin(self, *args) -> None:
        self.begins += 1
        self.joins -= 1  # the empirical generator's begin joins its first fork
        super().begin(*args)

    def join(self, *args) -> None:
        self.joins += 1
        super().join(*args)


def test_a_mixture_of_batch_samplers_forks_in_one_run_what_each_request_forks_alone() -> None:
    """A mixture whose members can join (``BatchMixture``) steps every request's rollouts
    together, each member its share in one call, and each request gets the futures the
    unbatched mixture forks for it alone. A first request with fewer rollouts than members
    leaves the second member to begin its run with the next request's share."""
    from simulator.generators import BatchMixture, MixtureGenerator, mixture

    def members(cls=EmpiricalGenerator):  # two members that differ
        return [cls(), cls(cancel_by_fate=False, spread_buckets=4)]

    requests = [request(rollouts=1, seed=11), *_mixed_requests()]
    alone = [Engine(MixtureGenerator(members())).fork([r])[0] for r in requests]
    counted = members(_Counted)
    batched = mixture(counted)
    assert isinstance(batched, BatchMixture) and Engine(batched).batched
    for round_ in (1, 2):  # a second run starts afresh
        together = Engine(batched).fork(requests)
        for a, b in zip(alone, together, strict=True):
            assert everything(a) == everything(b)
        assert [m.begins for m in counted] == [round_, round_]
        # member 0 has a share of every request, member 1 of those with two rollouts or more
        shared = [len(requests), sum(r.rollouts >= 2 for r in requests)]
        assert [m.joins for m in counted] == [round_ * (n - 1) for n in shared]
    # member k drives rollouts k, k + 2, ... of every request, all of them in its first call
    shares = [sum(len(range(k, r.rollouts, 2)) for r in requests) for k in (0, 1)]
    assert [m.calls[0] for m in counted] == shares
    # the members differ, so the routing shows: one member alone forks other futures
    swapped = Engine(MixtureGenerator(members()[::-1])).fork(requests)
    assert [everything(f) for f in swapped] != [everything(f) for f in together]
    # a member that cannot join leaves the mixture unbatched
    assert not isinstance(mixture([EmpiricalGenerator(), ScriptGenerator([])]), BatchMixture)


class _Watching(ScriptGenerator):
    """A scripted sampler that reads agent orders (``observe_agents``): it keeps every turn."""

    reads_agents = True

    def __init__(self, scripts) -> None:
        super().__init__(scripts)
        self.turns: list[tuple[int, object]] = []

    def observe_agents(self, book, turn) -> None:
        self.turns.append((self.slot[id(book)], turn))


def test_a_sampler_that_reads_agent_orders_is_told_what_they_did_and_what_followed() -> None:
    """Each agent turn carries the orders as a feed shows them (a fill as the shares it
    took), the books just before and after each, when the model's previous order went, and
    the model's order that was already sampled and went after them."""
    script = [[GeneratedOrder(ASK, 10_500, 100, 7 * S) for _ in range(20)]]
    # a buy at the touch (the best ask's 300), a sell at the touch (200 of the best bid's 300)
    orders = ((101 * S, 1, 0, 300), (115 * S, -1, 0, 200))
    req = request(
        agents=(Replayed(orders, 100),),
        max_depth=None,
        context_rows=None,
        horizon_ns=30 * S,
        rollouts=2,
    )
    gen = _Watching(script)
    (futures,) = Engine(gen).fork([req])
    assert sorted(k for k, _ in gen.turns) == [0, 0, 1, 1]  # two turns per rollout
    for k, turn in gen.turns:
        r = futures.results[k]
        (seen,) = turn.orders
        at = int(np.flatnonzero(r.ts_ns == seen.ts_ns)[0])
        assert (seen.type, seen.price, seen.qty) == (
            int(r.type[at]),
            int(r.price[at]),
            300 if seen.type == BID else 200,
        )
        assert seen.qty == int(r.filled_qty[at])
        # the books around it: the touch it met, and the one it left
        if seen.type == BID:
            assert (seen.rows_before[0], seen.rows_before[1]) == (10_100, 300)
        else:
            assert (seen.rows_before[2], seen.rows_before[3]) == (9_900, 300)
        assert (seen.rows_after[2], seen.rows_after[0]) == (r.best_bid[at], r.best_ask[at])
        # the model's order before it, and the one after it (sampled before the agent acted)
        assert turn.since_ns == (int(r.ts_ns[at - 1]) if at else req.start_ns)
        assert turn.next_order == (ASK, 10_500, 100, int(r.ts_ns[at + 1]))
    # a sampler that does not read them forks the same futures
    (plain,) = Engine(ScriptGenerator(script)).fork([req])
    assert columns(plain) == columns(futures)


class _Nibbler:
    """Sends one immediate-or-cancel buy under the best ask at 101 s: it takes nothing."""

    def __init__(self) -> None:
        self.wakes = [101 * S]

    def wake_ns(self):
        return self.wakes[0] if self.wakes else None

    def act(self, book, ts_ns):
        self.wakes.pop(0)
        return GeneratedOrder(BID, book.best_ask - 100, 100, 0, ioc=True)


def test_an_agent_order_that_takes_nothing_is_not_shown_to_the_model() -> None:
    script = [[GeneratedOrder(ASK, 10_500, 100, 7 * S) for _ in range(20)]]
    req = request(
        agents=(lambda i, rng: _Nibbler(),), max_depth=None, context_rows=None, horizon_ns=30 * S
    )
    gen = _Watching(script)
    (futures,) = Engine(gen).fork([req])
    assert all(len(steps) == 1 for steps in futures.agent_orders)  # it was sent
    assert gen.turns == []  # a feed would not show it


def test_replayed_orders_sized_as_a_share_of_the_book_take_that_share() -> None:
    """``Replayed(shares=...)``: each order takes its share of what rests up to its price in
    the rollout, whatever the real size was (the touch holds 300, each level behind it 300)."""
    idle = [[GeneratedOrder(CANCEL, 1, 1, S) for _ in range(200)]]
    orders = ((101 * S, 1, 0, 50), (110 * S, -1, 0, 50), (120 * S, 1, 1, 50))
    plan = Replayed(orders, 100, (1.0, 0.5, 1.0))
    req = request(agents=(plan,), max_depth=None, context_rows=None)
    (futures,) = Engine(ScriptGenerator(idle)).fork([req])
    for r, steps in zip(futures.results, futures.agent_orders, strict=True):
        sent = [k for k, _ in steps]
        # all of the best ask; half the best bid; a tick past the new ask (10,200 and 10,300)
        assert r.filled_qty[sent].tolist() == [300, 150, 600]
    # orders due together: each a share of what the ones before it left (300 at the touch)
    together = ((101 * S, 1, 0, 50), (101 * S, 1, 0, 50))
    req = request(agents=(Replayed(together, 100, (1 / 3, 0.5)),), max_depth=None)
    (futures,) = Engine(ScriptGenerator(idle)).fork([dataclasses.replace(req, context_rows=None)])
    for r, steps in zip(futures.results, futures.agent_orders, strict=True):
        assert r.filled_qty[[k for k, _ in steps]].tolist() == [100, 100]
    with pytest.raises(ValueError, match="one share per"):
        Replayed(orders, 100, (1.0,))
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        Replayed(orders, 100, (1.0, 0.0, 1.0))

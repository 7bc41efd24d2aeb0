"""Batched forking with the order model: a fork's orders do not depend on the forks that share
its batch (docs/decisions/batched-forking.md)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from models.generator import _MIN_ROWS, load_generator  # noqa: E402
from models.model import KVCache, LMMConfig, OrderModel  # noqa: E402
from models.tokenizer import LOB_DIM, N_MID_BUCKETS, TOD_DIM, VOCAB_SIZE  # noqa: E402
from simulator.engine import Engine  # noqa: E402
from tests.simulator.test_engine import request  # noqa: E402
from tests.simulator.test_rollout import synthetic_history  # noqa: E402

S = 1_000_000_000


def test_a_matmul_row_has_the_same_bits_in_any_batch_of_at_least_min_rows() -> None:
    """What batched forking rests on, measured on the machine that runs the tests: a float32
    linear layer gives a row the same bits in every batch of ``_MIN_ROWS`` rows or more, at any
    position. If this fails on a machine, batched forks there are not those forked alone."""
    torch.manual_seed(0)
    layer = torch.nn.Linear(96, 384)
    x = torch.randn(700, 96)
    with torch.inference_mode():
        full = layer(x)
        for b in (_MIN_ROWS, 5, 16, 17, 64, 129, 700):
            part = layer(x[:b])
            assert torch.equal(part, full[:b]), b
        moved = layer(torch.cat([x[500:503], x[:_MIN_ROWS]]))
        assert torch.equal(moved[:3], full[500:503])


def _random_model() -> OrderModel:
    torch.manual_seed(0)
    cfg = LMMConfig(n_layer=2, n_head=2, d_model=32, block_size=16, dropout=0.0)
    model = OrderModel(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    return model


def test_rows_at_different_positions_step_as_they_would_alone() -> None:
    """A cache whose rows are at their own positions (some not yet past the window, so their
    empty slots are masked) gives each row the hidden state of a batch of that row alone."""
    model = _random_model()
    g = torch.Generator().manual_seed(3)
    starts = [0, 3, 15, 40, 7]  # 15 and 40: a full window; 40: the ring buffer has wrapped

    def prefix(b: int, p: int) -> KVCache:
        ids = torch.randint(0, VOCAB_SIZE, (1, 1), generator=torch.Generator().manual_seed(b))
        cache = KVCache(model.cfg, _MIN_ROWS, "cpu")
        cache.positions = torch.zeros(_MIN_ROWS, dtype=torch.long)
        gen = torch.Generator().manual_seed(100 + b)
        for _ in range(p):  # fill the row with p random steps
            model.step(
                cache,
                ids.expand(_MIN_ROWS, 1)[:, 0],
                torch.rand(_MIN_ROWS, LOB_DIM, generator=gen),
                torch.zeros(_MIN_ROWS, dtype=torch.long),
                torch.rand(_MIN_ROWS, TOD_DIM, generator=gen),
            )
        return cache

    alone = [prefix(b, p) for b, p in enumerate(starts)]
    batch = KVCache(model.cfg, len(starts), "cpu")
    batch.k = torch.cat([c.k[:, :1] for c in alone], dim=1)
    batch.v = torch.cat([c.v[:, :1] for c in alone], dim=1)
    batch.positions = torch.tensor(starts)
    ids = torch.randint(0, VOCAB_SIZE, (len(starts),), generator=g)
    lob = torch.rand(len(starts), LOB_DIM, generator=g)
    mid = torch.randint(0, N_MID_BUCKETS, (len(starts),), generator=g)
    tod = torch.rand(len(starts), TOD_DIM, generator=g)
    h = model.step(batch, ids, lob, mid, tod)
    for b, cache in enumerate(alone):
        rep = torch.full((_MIN_ROWS,), b)  # the row's inputs on every row of its own batch
        h1 = model.step(cache, ids[rep], lob[rep], mid[rep], tod[rep])
        assert torch.equal(h[b], h1[0]), b
    assert batch.positions.tolist() == [p + 1 for p in starts]


def _orders(futures) -> list[tuple]:
    return [
        (r.ts_ns.tolist(), r.type.tolist(), r.price.tolist(), r.qty.tolist(), r.stop)
        for r in futures.results
    ]


@pytest.fixture(scope="module")
def lmm_requests():
    short, short_rows = synthetic_history(np.random.default_rng(9), n=60)  # < block_size
    level5, level5_rows = synthetic_history(np.random.default_rng(4), n=400)
    level5_rows = level5_rows[:, :20]  # a level-5 feed: features read 5 levels
    base = dataclasses.replace(request(), horizon_ns=3 * S, max_orders=150)
    return [
        dataclasses.replace(base, rollouts=5, seed=1),
        dataclasses.replace(base, rollouts=1, seed=2, horizon_ns=1 * S),
        dataclasses.replace(base, rollouts=3, seed=3, context=short, context_rows=short_rows),
        dataclasses.replace(
            base, rollouts=4, seed=4, context=level5, context_rows=level5_rows, refill=True
        ),
    ]


@pytest.mark.parametrize("max_batch", [None, 6])
def test_the_order_model_forks_each_request_as_alone_in_a_batch(lmm_requests, max_batch) -> None:
    """The bundled model, requests of different sizes, histories (one shorter than the model's
    window), feed depths and horizons: forked together (and with slots reused by waiting
    requests) each gets exactly the orders it gets alone."""
    gen = load_generator()
    alone = [_orders(Engine(gen).fork([r])[0]) for r in lmm_requests]
    together = [_orders(f) for f in Engine(gen, max_batch=max_batch).fork(lmm_requests)]
    assert together == alone
    assert sum(len(ts) for o in alone for ts, *_ in o) > 300  # the rollouts did run
    assert len({str(o) for o in alone}) == len(alone)


def _agent_requests() -> list:
    """Requests with agents that trade (a TWAP, replayed aggressive orders, both) and without."""
    from simulator.agents import Replayed, Twap

    base = dataclasses.replace(request(), horizon_ns=4 * S, max_orders=200)
    twap = Twap(side=1, qty=900, start_ns=100 * S, end_ns=103 * S, slices=6, tick_size=100)
    replayed = Replayed(
        ((100 * S + 5, 1, 0, 300), (101 * S, 1, 1, 300), (101 * S, -1, 0, 200)), 100
    )
    return [
        dataclasses.replace(base, rollouts=5, seed=1, agents=(twap,)),
        dataclasses.replace(base, rollouts=3, seed=2, agents=(replayed,)),
        dataclasses.replace(base, rollouts=2, seed=3),
        dataclasses.replace(base, rollouts=4, seed=4, agents=(twap, replayed)),
    ]


@pytest.mark.parametrize("max_batch", [None, 6])
def test_forks_whose_agents_the_model_reads_are_the_same_alone_or_batched(max_batch) -> None:
    """Agent orders fed into the model's context (``observe_agents``) step the rows they
    belong to in rounds of their own; a fork still gets exactly the orders it gets alone."""
    gen = load_generator()
    requests = _agent_requests()
    alone = [_orders(Engine(gen).fork([r])[0]) for r in requests]
    together = [_orders(f) for f in Engine(gen, max_batch=max_batch).fork(requests)]
    assert together == alone


def test_the_model_reads_an_agents_order_from_the_step_after_it() -> None:
    """With and without agent orders in its context, a rollout is the same up to the model's
    order that was already sampled when the first agent order went in (the same random
    draws), and from the next step on the model answers what it read: the futures differ."""
    gen, blind = load_generator(), load_generator(see_agents=False)
    differ = 0
    for req in _agent_requests():
        seeing, not_seeing = Engine(gen).fork([req])[0], Engine(blind).fork([req])[0]
        for a, b, steps in zip(
            seeing.results, not_seeing.results, seeing.agent_orders, strict=True
        ):
            if not steps:
                assert _orders_of(a) == _orders_of(b)
                continue
            first = steps[0][0]
            upto = first + 2  # the agent's order, then the model's already sampled
            assert _orders_of(a, upto) == _orders_of(b, upto)
            differ += _orders_of(a) != _orders_of(b)
    assert differ >= 5  # most rollouts with agents (14 of them) move apart


def _orders_of(r, upto=None) -> tuple:
    cut = slice(None, upto)
    return (r.ts_ns[cut].tolist(), r.type[cut].tolist(), r.price[cut].tolist(), r.qty[cut].tolist())


def test_a_mixture_hands_agent_orders_to_the_member_driving_the_rollout() -> None:
    from simulator.generators import MixtureGenerator
    from simulator.rollout import AgentTurn

    class Member:
        reads_agents = True

        def __init__(self) -> None:
            self.seen: list = []

        def begin(self, books, *args) -> None:
            self.books = books

        def observe_agents(self, book, turn) -> None:
            self.seen.append((book, turn))

    class Blind:
        def begin(self, books, *args) -> None:
            self.books = books

    members = [Member(), Blind(), Member()]
    mix = MixtureGenerator(members)  # type: ignore[list-item]
    assert mix.reads_agents
    assert not MixtureGenerator([Blind()]).reads_agents  # type: ignore[list-item]
    books = [object() for _ in range(6)]
    mix.begin(books, None, None, 0.0, 0, 1)  # type: ignore[arg-type]
    turns = [AgentTurn(k) for k in range(6)]
    for b, t in zip(books, turns, strict=True):
        mix.observe_agents(b, t)  # type: ignore[arg-type]
    assert members[0].seen == [(books[0], turns[0]), (books[3], turns[3])]
    assert members[2].seen == [(books[2], turns[2]), (books[5], turns[5])]


def test_the_sampler_spec_says_how_its_model_reads_agents() -> None:
    """The default reads agent orders as tokens; the comparison setting is a model version of
    its own, so a report made with it cannot pass for one made the default way."""
    from surveillance.cli.wiring import SamplerSpec

    seeing, blind = SamplerSpec(), SamplerSpec(see_agents=False)
    assert seeing().see_agents and not blind().see_agents
    assert blind.model_version == seeing.model_version + "-blind-agents"
    assert "blind" not in seeing.model_version


def test_an_agents_order_is_fed_after_the_models_last_with_the_book_it_left() -> None:
    """The step after an agent's buy feeds, for its rollout: the buy's token (a buy, the
    shares it took, its interval) paired with the book after it, then the model's in-flight
    order."""
    from models.tokenizer import LOB_SCALE, token_fields
    from simulator.agents import Replayed
    from simulator.orderstream import OrderType

    gen = load_generator()
    tok = gen.tokenizer
    # a buy of 200 at the touch half a second in
    plan = Replayed(((100 * S + S // 2, 1, 0, 200),), 100)
    req = dataclasses.replace(
        request(), rollouts=1, horizon_ns=2 * S, max_orders=40, agents=(plan,), max_depth=None
    )
    fed: list[tuple[str, np.ndarray, np.ndarray]] = []
    step, feed = gen.model.step, gen._feed_agent_orders
    forcing = [False]

    def spy_step(cache, ids, lob, mid, tod):
        fed.append(("agent" if forcing[0] else "step", ids.numpy().copy(), lob.numpy().copy()))
        return step(cache, ids, lob, mid, tod)

    def spy_feed():
        forcing[0] = True
        try:
            feed()
        finally:
            forcing[0] = False

    gen.model.step, gen._feed_agent_orders = spy_step, spy_feed  # type: ignore[method-assign]
    try:
        (futures,) = Engine(gen).fork([req])
    finally:
        gen.model.step, gen._feed_agent_orders = step, feed  # type: ignore[method-assign]
    r = futures.results[0]
    (k,) = [k for k, _ in futures.agent_orders[0]]
    left = int(r.ask_qty[k])
    met = int(r.ask_qty[k - 1]) if k else req.book.touch()[3]
    assert r.filled_qty[k] == 200 and left == met - 200  # it took 200 of the ask
    at = next(i for i, (kind, _, _) in enumerate(fed) if kind == "agent")
    assert [kind for kind, _, _ in fed].count("agent") == 1
    _, ids, lob = fed[at]
    t, _, v, i = (int(x[0]) for x in token_fields(ids))
    assert t == int(OrderType.BID)
    assert v == tok.volume["limit"].encode(np.array([200]))[0]
    assert i == tok.interval.encode(np.array([r.ts_ns[k] - (r.ts_ns[k - 1] if k else 100 * S)]))[0]
    # paired with the book it left (what it left at the ask), not the one it met
    assert np.isclose(lob[0, 0], np.log1p(left) / LOB_SCALE)
    # then the model's next step feeds its in-flight order (the one after the buy) first
    kind, ids, _ = fed[at + 1]
    assert kind == "step" and int(token_fields(ids)[0][0]) == int(r.type[k + 1])

"""Property tests of ``OrderBook`` and ``ClearingHouse`` invariants.

The clearing house is checked against a deliberately naive reference matcher (a flat list of
resting orders with arrival sequence numbers, sorted on every match): price-time priority means
the two produce the same trades, order by order, and the same resting book.

Volume conservation, precisely: every share that entered through an accepted order is, at any
time, in exactly one of four places, so

    sum(accepted order qty) == resting qty + 2 * traded qty + cancelled qty

(a traded share leaves both the taker's and the maker's order; ``cancelled`` counts explicit
cancels and the unfilled rest of IOC and market orders).
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.book import OrderBook, check_integrity
from simulator.matching import ClearingHouse, MatchingRules, OrderStatus, TimeInForce
from simulator.types import Side

PRICES = st.integers(95, 105)
QTYS = st.integers(1, 12)
SIDES = st.sampled_from([1, -1])

limit_op = st.tuples(st.just("limit"), SIDES, PRICES, QTYS, st.sampled_from(list(TimeInForce)))
market_op = st.tuples(st.just("market"), SIDES, QTYS, st.none(), st.none())
cancel_op = st.tuples(
    st.just("cancel"), st.integers(0, 10_000), st.none() | QTYS, st.none(), st.none()
)
OPS = st.lists(
    st.one_of(limit_op, limit_op, limit_op, market_op, cancel_op, cancel_op), max_size=80
)


@dataclass
class RefOrder:
    seq: int
    order_id: int
    side: int
    price: int
    qty: int


class ReferenceMatcher:
    """Price-time priority the slow, obvious way."""

    def __init__(self) -> None:
        self.orders: list[RefOrder] = []
        self.seq = 0

    def book(self) -> dict[int, tuple[int, int, int]]:
        return {o.order_id: (o.side, o.price, o.qty) for o in self.orders}

    def available(self, side: int, price: int | None) -> int:
        return sum(o.qty for o in self._crossing(side, price))

    def _crossing(self, side: int, price: int | None) -> list[RefOrder]:
        makers = [
            o
            for o in self.orders
            if o.side == -side
            and (price is None or (o.price <= price if side > 0 else o.price >= price))
        ]
        # best price first (lowest ask for a buyer, highest bid for a seller), then oldest
        return sorted(makers, key=lambda o: (o.price * side, o.seq))

    def match(
        self, side: int, price: int | None, qty: int, max_levels: int | None = None
    ) -> list[tuple[int, int, int]]:
        trades = []
        levels: list[int] = []
        for maker in self._crossing(side, price):
            if not qty:
                break
            if maker.price not in levels:
                if max_levels is not None and len(levels) >= max_levels:
                    break
                levels.append(maker.price)
            fill = min(qty, maker.qty)
            trades.append((maker.order_id, maker.price, fill))
            maker.qty -= fill
            qty -= fill
        self.orders = [o for o in self.orders if o.qty > 0]
        return trades

    def rest(self, order_id: int, side: int, price: int, qty: int) -> None:
        self.seq += 1
        self.orders.append(RefOrder(self.seq, order_id, side, price, qty))


def book_orders(book: OrderBook) -> dict[int, tuple[int, int, int]]:
    out = {}
    for side in (Side.BID, Side.ASK):
        for level in book.iter_levels(side):
            for order_id, qty in level.orders.items():
                out[order_id] = (int(side), level.price, qty)
    return out


def run_ops(ch: ClearingHouse, ops: list[tuple], ref: ReferenceMatcher | None = None) -> int:
    """Apply ``ops``, checking invariants after each; returns the accepted order volume."""
    accepted_qty = 0
    ids: list[int] = []
    for op in ops:
        kind = op[0]
        if kind == "limit":
            _, side, price, qty, tif = op
            expected = None
            if ref is not None:
                fok_ok = tif != TimeInForce.FOK or ref.available(side, price) >= qty
                expected = ref.match(side, price, qty) if fok_ok else []
            result = ch.submit_limit(side, price, qty, tif=tif)
            if result.status is not OrderStatus.REJECTED:
                accepted_qty += qty
                ids.append(result.order_id)
            if ref is not None:
                got = [(t.maker_order_id, t.price, t.qty) for t in result.trades]
                assert got == expected
                if result.resting_qty:
                    ref.rest(result.order_id, side, price, result.resting_qty)
            for t in result.trades:
                assert t.aggressor_side == side and t.taker_order_id == result.order_id
                assert (t.price <= price) if side > 0 else (t.price >= price)
            assert result.filled_qty + result.resting_qty + result.cancelled_qty == (
                qty if result.ok else 0
            )
        elif kind == "market":
            _, side, qty, _, _ = op
            expected = ref.match(side, None, qty, ch.rules.max_sweep_levels) if ref else None
            result = ch.submit_market(side, qty)
            if result.ok:
                accepted_qty += qty
                assert result.resting_qty == 0
            if ref is not None:
                assert [(t.maker_order_id, t.price, t.qty) for t in result.trades] == expected
        else:
            _, pick, qty, _, _ = op
            order_id = ids[pick % len(ids)] if ids else 1
            result = ch.cancel(order_id, qty)
            if ref is not None:
                held = {o.order_id: o for o in ref.orders}
                if order_id in held:
                    held[order_id].qty -= min(held[order_id].qty, qty or held[order_id].qty)
                    ref.orders = [o for o in ref.orders if o.qty > 0]
                else:
                    assert result.status is OrderStatus.REJECTED
        # never crossed after matching, and the book is internally sound
        book = ch.book
        if book.best_bid is not None and book.best_ask is not None:
            assert book.best_bid < book.best_ask
        assert check_integrity(book) == []
        if ref is not None:
            assert book_orders(book) == ref.book()
    return accepted_qty


@settings(max_examples=300, deadline=None)
@given(OPS)
def test_matching_follows_price_time_priority_like_the_reference(ops: list[tuple]) -> None:
    run_ops(ClearingHouse(OrderBook(), MatchingRules()), ops, ReferenceMatcher())


@settings(max_examples=150, deadline=None)
@given(OPS, st.integers(1, 3))
def test_market_order_protection_matches_the_reference(ops: list[tuple], levels: int) -> None:
    ch = ClearingHouse(OrderBook(), MatchingRules(max_sweep_levels=levels))
    run_ops(ch, ops, ReferenceMatcher())


@settings(max_examples=300, deadline=None)
@given(OPS)
def test_volume_is_conserved(ops: list[tuple]) -> None:
    ch = ClearingHouse(OrderBook(), MatchingRules())
    accepted_qty = 0
    cancelled = 0
    ids: list[int] = []
    for op in ops:
        if op[0] == "limit":
            result = ch.submit_limit(op[1], op[2], op[3], tif=op[4])
            if result.ok:
                accepted_qty += op[3]
                ids.append(result.order_id)
        elif op[0] == "market":
            result = ch.submit_market(op[1], op[2])
            if result.ok:
                accepted_qty += op[2]
        else:
            result = ch.cancel(ids[op[1] % len(ids)] if ids else 1, op[2])
        cancelled += result.cancelled_qty
        resting = ch.book.volume(Side.BID) + ch.book.volume(Side.ASK)
        assert accepted_qty == resting + 2 * ch.traded_qty + cancelled


@settings(max_examples=150, deadline=None)
@given(OPS, OPS)
def test_fork_is_independent(before: list[tuple], after: list[tuple]) -> None:
    ch = ClearingHouse(OrderBook(), MatchingRules())
    run_ops(ch, before)
    snapshot = ch.book.snapshot(20).tolist()
    orders = book_orders(ch.book)
    counters = ch.counters()
    child = ch.fork()
    run_ops(child, after)
    assert ch.book.snapshot(20).tolist() == snapshot
    assert book_orders(ch.book) == orders
    assert ch.counters() == counters
    # the parent still works, and mints ids the child may also have minted but never shares
    ch.submit_limit(1, 90, 1)
    assert check_integrity(ch.book) == [] and check_integrity(child.book) == []


# ---------------------------------------------------------------------- OrderBook alone

book_op = st.one_of(
    st.tuples(st.just("add"), SIDES, PRICES, QTYS),
    st.tuples(st.just("reduce"), st.integers(0, 10_000), QTYS, st.none()),
    st.tuples(st.just("delete"), st.integers(0, 10_000), st.none(), st.none()),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(book_op, max_size=100))
def test_book_levels_agree_with_a_dict_of_orders(ops: list[tuple]) -> None:
    """The book allows crossed adds (it never matches): only its bookkeeping is checked."""
    book = OrderBook()
    model: dict[int, list[int]] = {}  # id -> [side, price, qty], insertion-ordered
    for op in ops:
        if op[0] == "add":
            order_id = book.mint_id()
            book.add(order_id, op[1], op[2], op[3])
            model[order_id] = [op[1], op[2], op[3]]
        elif model:
            order_id = list(model)[op[1] % len(model)]
            if op[0] == "reduce":
                removed = book.reduce(order_id, op[2])
                assert removed == min(op[2], model[order_id][2])
                model[order_id][2] -= removed
                if not model[order_id][2]:
                    del model[order_id]
            else:
                assert book.delete(order_id) == model.pop(order_id)[2]
        assert check_integrity(book, allow_crossed=True) == []
        for side in (1, -1):
            prices = sorted({p for s, p, _ in model.values() if s == side}, reverse=side > 0)
            assert book.prices(side) == prices
            for price in prices:
                fifo = [(i, q) for i, (s, p, q) in model.items() if s == side and p == price]
                assert list(book.level(side, price).orders.items()) == fifo
            assert book.depth(side, 3) == [
                (p, sum(q for s, pp, q in model.values() if s == side and pp == p))
                for p in prices[:3]
            ]


@settings(max_examples=100, deadline=None)
@given(st.lists(book_op, max_size=40), st.lists(book_op, max_size=40))
def test_book_fork_is_independent_and_mints_its_own_ids(
    before: list[tuple], after: list[tuple]
) -> None:
    book = OrderBook()
    for op in before:
        if op[0] == "add":
            book.add(book.mint_id(), op[1], op[2], op[3])
    snapshot = book.snapshot(20).tolist()
    child = book.fork()
    minted = set()
    for op in after:
        if op[0] == "add":
            order_id = child.mint_id()
            minted.add(order_id)
            child.add(order_id, op[1], op[2], op[3])
        elif len(child):
            held = list(book_orders(child))
            victim = held[op[1] % len(held)]
            if op[0] == "reduce":
                child.reduce(victim, op[2])
            else:
                child.delete(victim)
    assert book.snapshot(20).tolist() == snapshot
    assert not minted & set(book_orders(book))
    assert check_integrity(book, allow_crossed=True) == []

"""The rollout engine: N simulated futures forked from one book, driven by an order generator.

MarS (paper, Sec. 2.2) interleaves generation and matching: every generated order is matched in
the simulated clearing house, and the resulting book is what the next order is conditioned on.
``fork_rollouts`` does that for ``n`` independent futures at once:

1. the book is forked ``n`` times, each fork behind its own ``ClearingHouse`` (forked books
   mint their own order ids, so rollouts never share state);
2. ``generator.begin`` sees all the forks, the real history and the seed once;
3. each step makes ONE batched ``generator.next_orders`` call for every rollout still running
   (a model samples the whole batch in one forward pass), then applies each rollout's order to
   that rollout's own clearing house;
4. a rollout's clock advances by the order's ``interval_ns``; the first order that would land
   after ``start_ns + horizon_ns`` is discarded and the rollout stops (or after ``max_orders``).

How a generated order is applied:

- ``BID`` / ``ASK``: ``submit_limit`` (GTC; IOC when the order says ``ioc``). A marketable
  price trades at the resting prices, the rest rests (IOC: is dropped); the order is recorded
  as *aggressive* when it was marketable on arrival.
  Orders the rules refuse (off-tick, outside the price band, ...) are recorded with
  ``applied=False`` and counted in ``rejected`` (so is a cancel of a non-positive size).
- ``CANCEL`` carries a price but no order id, so the engine picks what it cancels:

  * **side**: ask if ``price >= best ask``, bid if ``price <= best bid``; a price strictly
    inside the spread goes to the side whose touch is nearer (at the mid: the ask); with one
    side empty, the other side.
  * **level**: the level at that price; if none rests there, the *nearest* level on that side
    (ties: the level nearer the touch), counted in ``redirected_cancels`` (an ``exact``
    cancel is void instead).
  * **orders** (``cancel_policy``): ``"newest"`` (default) removes ``qty`` shares from the
    level's most recent orders first (later orders are cancelled more often, and older
    orders keep their queue priority); ``"random"`` takes orders uniformly at random with the
    rollout's seeded generator. At most the level's volume is removed.
  * a cancel that finds nothing at all (its side is empty, or, under ``max_depth``, its price
    lies below the deepest tracked level of a full side) is a **void cancel**: recorded with
    ``applied=False`` and counted in ``void_cancels``.

Depth (``max_depth``, off by default): every rollout book is kept to N levels per side, as the
replayed real book is (``FeedReplayer.reconcile_depth``); dropped orders are counted in
``depth_dropped``. Why: a level-N feed never cancels orders below level N; kept, they drift back.

Refill (``refill=True``, with ``max_depth``): after every applied order, each side holding fewer
than N levels gets new levels behind its deepest one (an emptied side: behind the deepest price
it last had) until it holds N again. Each new level's gap to the one before it and its size are
drawn (``REFILL_STREAM``) from the gaps and the sizes behind the touch of the forked book itself.
A refilled level is one resting order, is not recorded as an event, is counted in
``depth_refilled``, and never crosses the other side's best price. Why: a level-N feed shows the
level behind a removed one with no message, so an order model never generates it.

The measurements behind the cancel policy, the depth limit and refill are in
``docs/decisions/rollout-depth-and-cancels.md``.

Agents (``agents``, ``simulator.agents``): before a rollout applies the model's next order, every
agent of that rollout whose wake time has come (by that order's time, and by the horizon) sends
its limit order at its wake time, matched and recorded like a model order (``agent_orders``);
an agent with a ``market_volume`` hook is first told the shares the rollout has traded so far;
the model is stepped for every live rollout each time, so it sees the book the agents leave.

Determinism: rollout ``i`` of seed ``s`` draws from ``rollout_rng(s, i)`` (a numpy
``SeedSequence`` with spawn key ``(i, stream)``); generators are expected to do the same with
their own stream number, so a rollout does not depend on how many siblings it has.

The engine is stdlib + numpy only. It knows nothing about models or tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any, Protocol

import numpy as np

from simulator.book import EMPTY_ASK_PRICE, EMPTY_BID_PRICE, OrderBook
from simulator.matching import ClearingHouse, MatchingRules, OrderStatus, TimeInForce
from simulator.orderstream import OrderStream, OrderType

ENGINE_STREAM = 0  # rollout_rng stream used by the engine itself (cancel choice)
GENERATOR_STREAM = 1  # the stream a generator should use for its own sampling
REFILL_STREAM = 2  # the engine's draws for depth refill (``DepthRefill``)
AGENT_STREAM = 3  # what agents acting inside a rollout draw from (``simulator.agents``)
NEVER = 1 << 62  # a wake time no rollout reaches

_ASK = int(OrderType.ASK)
_BID = int(OrderType.BID)
_CANCEL = int(OrderType.CANCEL)
_REJECTED = OrderStatus.REJECTED
_IOC = TimeInForce.IOC


class RolloutError(Exception):
    """A generator broke the protocol (wrong batch size, negative interval, unknown type)."""


class ContextError(ValueError):
    """A generator cannot fork from this context (no orders, no two-sided book in them): the
    window is left unscored, not a bug."""


@dataclass(slots=True)
class GeneratedOrder:
    """One order as a generator emits it (the MarS order token, decoded to integer units)."""

    type: int  # OrderType: ASK, BID, CANCEL
    price: int  # absolute price units
    qty: int  # shares > 0
    interval_ns: int  # since the rollout's previous order, >= 0
    # BID/ASK: True = immediate-or-cancel (what is not marketable on arrival does not rest)
    ioc: bool = False
    # CANCEL: True = only the level at exactly ``price``; a miss is a void cancel, never
    # redirected to the nearest level (a replayed real cancel names its order's price)
    exact: bool = False


@dataclass(frozen=True, slots=True)
class CancelOrder:
    """An agent's cancel of one of its own resting orders (``qty`` None: all of it)."""

    order_id: int
    qty: int | None = None


@dataclass(frozen=True, slots=True)
class AgentFill:
    """Shares of an agent's order that traded: as the aggressor (``passive`` False) or resting
    (a model order, or another agent's, took it)."""

    ts_ns: int
    agent: int  # index of the agent among the request's factories
    order_id: int
    side: int  # the agent order's side: 1 buy, -1 sell
    price: int
    qty: int
    passive: bool


@dataclass(frozen=True, slots=True)
class SeenOrder:
    """An agent's order as the order model should read it (MarS conditions the next generated
    order on the orders users inject): what was sent, when, and the rollout's book just before
    and just after it (LOBSTER rows, ``OBSERVED_LEVELS`` levels a side)."""

    ts_ns: int
    type: int  # OrderType: BID, ASK, or CANCEL (an agent's cancel of its own order)
    price: int
    qty: int  # shares it took if it traded, else shares sent (a cancel: shares it removed)
    rows_before: np.ndarray
    rows_after: np.ndarray


@dataclass(slots=True)
class AgentTurn:
    """What the agents of one rollout did between two of the model's orders: the model's last
    order was at ``since_ns``; ``orders`` went in then, and the model's order already sampled
    (``next_order``: type, price, qty as sent and its time) followed them, on the book they
    left. A sampler with ``observe_agents`` reads it before its next step."""

    since_ns: int
    orders: list[SeenOrder] = field(default_factory=list)
    next_order: tuple[int, int, int, int] | None = None


# The levels a side of the books kept for an order model's reading of agent orders.
OBSERVED_LEVELS = 10


class OrderGenerator(Protocol):
    """What the rollout engine needs from an order model.

    ``begin`` is called once per ``fork_rollouts`` with every forked book (index ``i`` is
    rollout ``i``), the real orders before the fork (``history``; ``history_rows[j]`` is the
    level-N book row just before ``history[j]``, LOBSTER layout, or ``None``), the mid price at
    the open, the fork time and the seed.

    ``next_orders`` is called once per step with the books of the rollouts still running, in
    rollout order: the *same objects* that ``begin`` received, a subsequence of that list once
    some rollouts have stopped (a generator keeping per-rollout state can key it by position in
    ``begin``'s list, e.g. ``{id(book): i}``). ``ts_ns[k]`` is the simulated time of
    ``books[k]``. It returns exactly one order per book.

    A generator that can also ``join`` another fork's books to a running ``begin`` (same
    arguments) lets the engine step many requests' rollouts in one call
    (``simulator.engine.BatchSampler``). One whose ``reads_agents`` is true is told, through its
    ``observe_agents(book, turn)``, after each step in which a rollout's agents acted, what they
    sent (``AgentTurn``), so it can condition the rollout's next order on them.
    """

    def begin(
        self,
        books: list[OrderBook],
        history: OrderStream,
        history_rows: np.ndarray | None,
        open_mid: float,
        ts_ns: int,
        seed: int,
    ) -> None: ...

    def next_orders(self, books: list[OrderBook], ts_ns: list[int]) -> list[GeneratedOrder]: ...


def rollout_seed(seed: int, index: int, stream: int = ENGINE_STREAM) -> np.random.SeedSequence:
    """The seed sequence of rollout ``index`` (``stream`` separates engine and generator)."""
    return np.random.SeedSequence(seed, spawn_key=(index, stream))


def rollout_rng(seed: int, index: int, stream: int = ENGINE_STREAM) -> np.random.Generator:
    """A numpy generator for rollout ``index`` of a run seeded with ``seed``.

    >>> int(rollout_rng(7, 3).integers(1000)) == int(rollout_rng(7, 3).integers(1000))
    True
    """
    return np.random.default_rng(rollout_seed(seed, index, stream))


@dataclass(slots=True)
class RolloutResult:
    """What one rollout did, columnar (one entry per generated order, in order).

    ``best_bid`` / ``best_ask`` are the touch *after* the order was applied (the book's empty
    sentinels ``EMPTY_BID_PRICE`` / ``EMPTY_ASK_PRICE`` when a side is empty); ``bid0`` /
    ``ask0`` are the touch at the fork. ``side`` is the order's side (for a cancel: the side
    it was applied to, 0 for a void cancel). ``applied`` is False for rejected orders and void
    cancels (the book did not change).
    """

    index: int
    start_ns: int
    end_ns: int  # start_ns + horizon_ns
    bid0: int
    ask0: int
    ts_ns: np.ndarray  # int64
    type: np.ndarray  # int8 OrderType
    side: np.ndarray  # int8 Side (1 bid, -1 ask, 0 none)
    price: np.ndarray  # int64, as generated
    qty: np.ndarray  # int64, as generated
    aggressive: np.ndarray  # bool, marketable on arrival
    applied: np.ndarray  # bool
    # int64 clearing-house id: a limit order's own id; a cancel's first order removed (0: none)
    order_id: np.ndarray
    filled_qty: np.ndarray  # int64, traded by this order as the aggressor
    best_bid: np.ndarray  # int64
    best_ask: np.ndarray  # int64
    bid_qty: np.ndarray  # int64, shares at the best bid after the order (0 when empty)
    ask_qty: np.ndarray  # int64, shares at the best ask after the order
    trade_ts_ns: np.ndarray  # int64, one entry per fill
    trade_price: np.ndarray  # int64
    trade_qty: np.ndarray  # int64
    trade_aggressor: np.ndarray  # int8 Side of the incoming order
    stop: str = "horizon"  # "horizon" or "max_orders"
    rejected: int = 0
    void_cancels: int = 0
    redirected_cancels: int = 0
    depth_dropped: int = 0
    depth_refilled: int = 0  # levels added behind the deepest one (``refill``)
    levels_per_side: float = 0.0  # mean over events of the book's levels per side after each
    qty0: tuple[int, int] = (0, 0)  # shares at the best bid and best ask at the fork
    # the book at each of ``fork_rollouts``'s ``snapshot_times_ns`` (``OrderBook.snapshot``)
    snapshots: list[np.ndarray] = field(default_factory=list)
    # (position among the orders above, agent index) of every order an agent sent
    agent_orders: list[tuple[int, int]] = field(default_factory=list)
    agent_fills: list[AgentFill] = field(default_factory=list)
    # the rollout's book at its end (``keep_books``); None otherwise
    book: OrderBook | None = None

    def __len__(self) -> int:
        return len(self.ts_ns)

    @property
    def two_sided(self) -> np.ndarray:
        """Events after which both sides of the book had liquidity."""
        return (self.best_bid != EMPTY_BID_PRICE) & (self.best_ask != EMPTY_ASK_PRICE)

    def spread_ticks(self, tick_size: int = 100) -> np.ndarray:
        """Spread in ticks after every event (meaningful where ``two_sided``)."""
        return (self.best_ask - self.best_bid) // tick_size

    @property
    def mid(self) -> np.ndarray:
        """Mid price after every event, float price units (NaN where one side is empty)."""
        mid = (self.best_ask + self.best_bid) / 2.0
        mid[~self.two_sided] = np.nan
        return mid


def rollout_stream(result: RolloutResult) -> OrderStream:
    """The orders of a rollout that reached its market (``applied``), as an ``OrderStream``:
    the order model's context when a later fork continues from the rollout's final book.
    Generated orders have no feed row (``source_row`` -1)."""
    keep = result.applied
    n = int(keep.sum())
    return OrderStream(
        ts_ns=result.ts_ns[keep],
        type=result.type[keep],
        side=result.side[keep],
        price=result.price[keep],
        qty=result.qty[keep],
        order_id=result.order_id[keep],
        aggressive=result.aggressive[keep],
        source_row=np.full(n, -1, dtype=np.int64),
    )


class _Recorder:
    """Per-rollout append-only columns (plain lists: cheaper than growing arrays per order)."""

    __slots__ = (
        "agent_fills",
        "agent_orders",
        "aggressive",
        "applied",
        "ask_qty",
        "best_ask",
        "best_bid",
        "bid_qty",
        "dropped",
        "filled",
        "levels",
        "order_id",
        "owned",
        "price",
        "qty",
        "redirected",
        "refilled",
        "rejected",
        "side",
        "snapshots",
        "stop",
        "trade_aggressor",
        "trade_price",
        "trade_qty",
        "trade_ts",
        "ts",
        "type",
        "void",
    )

    def __init__(self) -> None:
        self.ts: list[int] = []
        self.type: list[int] = []
        self.side: list[int] = []
        self.price: list[int] = []
        self.qty: list[int] = []
        self.aggressive: list[bool] = []
        self.applied: list[bool] = []
        self.filled: list[int] = []
        self.order_id: list[int] = []
        self.best_bid: list[int] = []
        self.best_ask: list[int] = []
        self.bid_qty: list[int] = []
        self.ask_qty: list[int] = []
        self.trade_ts: list[int] = []
        self.trade_price: list[int] = []
        self.trade_qty: list[int] = []
        self.trade_aggressor: list[int] = []
        self.stop = "horizon"
        self.rejected = 0
        self.void = 0
        self.redirected = 0
        self.dropped = 0
        self.refilled = 0
        self.levels = 0  # levels on both sides after each event, summed
        self.snapshots: list[np.ndarray] = []
        self.agent_orders: list[tuple[int, int]] = []
        self.agent_fills: list[AgentFill] = []
        # resting agent orders: id -> (agent index, the agent); model cancels never touch them
        self.owned: dict[int, tuple[int, Any]] = {}

    def note(
        self,
        book: OrderBook,
        touch: tuple[int, int, int, int, int, int] | None,
        ts: int,
        kind: int,
        side: int,
        price: int,
        qty: int,
        aggressive: bool,
        applied: bool,
        oid: int,
        filled: int,
    ) -> None:
        """Record one order and the touch after it (``touch``: ``book.touch()``, if read)."""
        self.ts.append(ts)
        self.type.append(kind)
        self.side.append(side)
        self.price.append(price)
        self.qty.append(qty)
        self.aggressive.append(aggressive)
        self.applied.append(applied)
        self.order_id.append(oid)
        self.filled.append(filled)
        if touch is None:
            touch = book.touch()
        bid, bid_qty, ask, ask_qty, bid_levels, ask_levels = touch
        self.levels += bid_levels + ask_levels
        self.best_bid.append(bid)
        self.bid_qty.append(bid_qty)
        self.best_ask.append(ask)
        self.ask_qty.append(ask_qty)

    def result(
        self, index: int, start_ns: int, end_ns: int, bid0: int, ask0: int, qty0: tuple[int, int]
    ) -> RolloutResult:
        i64 = np.int64
        return RolloutResult(
            index=index,
            start_ns=start_ns,
            end_ns=end_ns,
            bid0=bid0,
            ask0=ask0,
            ts_ns=np.array(self.ts, dtype=i64),
            type=np.array(self.type, dtype=np.int8),
            side=np.array(self.side, dtype=np.int8),
            price=np.array(self.price, dtype=i64),
            qty=np.array(self.qty, dtype=i64),
            aggressive=np.array(self.aggressive, dtype=bool),
            applied=np.array(self.applied, dtype=bool),
            order_id=np.array(self.order_id, dtype=i64),
            filled_qty=np.array(self.filled, dtype=i64),
            best_bid=np.array(self.best_bid, dtype=i64),
            best_ask=np.array(self.best_ask, dtype=i64),
            bid_qty=np.array(self.bid_qty, dtype=i64),
            ask_qty=np.array(self.ask_qty, dtype=i64),
            trade_ts_ns=np.array(self.trade_ts, dtype=i64),
            trade_price=np.array(self.trade_price, dtype=i64),
            trade_qty=np.array(self.trade_qty, dtype=i64),
            trade_aggressor=np.array(self.trade_aggressor, dtype=np.int8),
            stop=self.stop,
            rejected=self.rejected,
            void_cancels=self.void,
            redirected_cancels=self.redirected,
            depth_dropped=self.dropped,
            depth_refilled=self.refilled,
            levels_per_side=self.levels / (2 * len(self.ts)) if self.ts else 0.0,
            qty0=qty0,
            snapshots=self.snapshots,
            agent_orders=self.agent_orders,
            agent_fills=self.agent_fills,
        )


def cancel_side(book: OrderBook, price: int) -> int:
    """The side a price-only cancel applies to (module docstring); 0 when the book is empty."""
    bid, ask = book.best_prices()
    if ask is not None and price >= ask:
        return -1
    if bid is not None and price <= bid:
        return 1
    if bid is None:
        return -1 if ask is not None else 0
    if ask is None:
        return 1
    # Strictly inside the spread: the nearer touch; at the mid, the ask (as the tokenizer reads
    # a cancel's signed offset from the mid).
    return -1 if (ask - price) <= (price - bid) else 1


def available_qty(book: OrderBook, type_: int, price: int, limit: int | None = None) -> int:
    """Shares resting on the opposite side of a ``type_`` (BID / ASK) order up to ``price``:
    what it can take if marketable. The count stops once it reaches ``limit``, when given."""
    side = -1 if type_ == _BID else 1
    available = 0
    for level in book.iter_levels(side):
        if (level.price > price) if side < 0 else (level.price < price):
            break
        available += level.qty
        if limit is not None and available >= limit:
            break
    return available


def marketable_qty(book: OrderBook, type_: int, price: int, qty: int) -> int:
    """``qty`` capped at what rests on the opposite side up to ``price`` (at least 1)."""
    return max(min(qty, available_qty(book, type_, price, qty)), 1)


def nearest_level_price(book: OrderBook, side: int, price: int) -> int | None:
    """The resting price on ``side`` nearest to ``price`` (ties: nearer the touch)."""
    prices = book.prices(side)  # best first
    if not prices:
        return None
    # Best first, so on a tie the first seen (nearer the touch) wins.
    return min(prices, key=lambda p: abs(p - price))


def apply_cancel(
    house: ClearingHouse,
    price: int,
    qty: int,
    ts_ns: int,
    *,
    policy: str = "newest",
    rng: np.random.Generator | None = None,
    max_depth: int | None = None,
    exact: bool = False,
    protected: Container[int] = (),
) -> tuple[int, int, bool, int]:
    """Apply a price-only cancel under the module's policy.

    Returns ``(side, removed_qty, redirected, order_id)``; ``side`` is 0 for a void cancel,
    ``order_id`` the first resting order it took shares from (0 if none). ``exact``: nothing
    resting at ``price`` makes it a void cancel (no redirection). ``protected``: ids the cancel
    never takes (agents' resting orders: another trader cannot cancel them).
    """
    book = house.book
    side = cancel_side(book, price)
    if side == 0:
        return 0, 0, False, 0
    redirected = False
    # The newest policy's first pick doubles as the check that a level rests at the price.
    newest = book.newest_order(side, price) if policy == "newest" else None
    if newest is None and book.level(side, price) is None:
        if exact:
            return 0, 0, False, 0
        if max_depth is not None and book.level_count(side) >= max_depth:
            deepest = book.deepest_price(side)
            assert deepest is not None
            if (price < deepest) if side > 0 else (price > deepest):
                return 0, 0, False, 0  # below the tracked depth: nothing the rollout knows of
        near = nearest_level_price(book, side, price)
        if near is None:
            return 0, 0, False, 0
        price = near
        redirected = True
    left = qty
    removed = 0
    first = 0
    if protected and any(o in protected for o, _ in book.orders_at(side, price)):
        # Rare (an agent rests at this level): the policy runs on the level's other orders.
        return _cancel_around(house, side, price, qty, ts_ns, policy, rng, protected, redirected)
    if policy == "newest":
        while left > 0:
            if newest is None:
                newest = book.newest_order(side, price)
                if newest is None:  # the level is gone
                    break
            order_id, resting = newest
            newest = None
            take = left if left < resting else resting
            first = first or order_id
            house.cancel(order_id, take, ts_ns)
            left -= take
            removed += take
    elif policy == "random":
        if rng is None:
            raise ValueError("the random cancel policy needs the rollout's generator")
        # Only this loop changes the level, so a copy stays in step: an order cancelled in full
        # leaves it, a partial cancel ends the loop.
        resting_orders = book.orders_at(side, price)
        while left > 0 and resting_orders:
            k = int(rng.integers(len(resting_orders)))
            order_id, resting = resting_orders[k]
            take = left if left < resting else resting
            first = first or order_id
            house.cancel(order_id, take, ts_ns)
            if take == resting:
                del resting_orders[k]
            left -= take
            removed += take
    else:
        raise ValueError(f"unknown cancel policy {policy!r}")
    return side, removed, redirected, first


def _cancel_around(
    house: ClearingHouse,
    side: int,
    price: int,
    qty: int,
    ts_ns: int,
    policy: str,
    rng: np.random.Generator | None,
    protected: Container[int],
    redirected: bool,
) -> tuple[int, int, bool, int]:
    """``apply_cancel`` at a level holding protected orders: newest or random among the rest."""
    orders = [(o, q) for o, q in house.book.orders_at(side, price) if o not in protected]
    if policy == "newest":
        orders.reverse()
    elif rng is None:
        raise ValueError("the random cancel policy needs the rollout's generator")
    left, removed, first = qty, 0, 0
    while left > 0 and orders:
        k = int(rng.integers(len(orders))) if policy == "random" and rng is not None else 0
        order_id, resting = orders.pop(k)
        take = left if left < resting else resting
        first = first or order_id
        house.cancel(order_id, take, ts_ns)
        left -= take
        removed += take
    return (side if removed else 0), removed, redirected, first


class DepthRefill:
    """The hidden depth behind a rollout book's deepest tracked level (module docstring).

    ``gaps`` (ticks between adjacent levels) and ``sizes`` (shares of the levels behind the
    touch) are the forked book's own; ``None`` from ``of`` when the book has too few levels to
    show either.
    """

    __slots__ = ("depth", "gaps", "sizes", "tick")

    def __init__(self, gaps: np.ndarray, sizes: np.ndarray, depth: int, tick: int) -> None:
        self.gaps = np.asarray(gaps, np.int64)
        self.sizes = np.asarray(sizes, np.int64)
        self.depth = depth
        self.tick = tick

    @classmethod
    def of(cls, book: OrderBook, depth: int, tick: int) -> DepthRefill | None:
        gaps: list[int] = []
        sizes: list[int] = []
        for side in (1, -1):
            levels = book.depth(side, depth)
            prices = [p for p, _ in levels]
            gaps += [abs(a - b) // tick for a, b in pairwise(prices)]
            sizes += [q for _, q in levels[1:]]
        gaps = [g for g in gaps if g > 0]
        sizes = [q for q in sizes if q > 0]
        if not gaps or not sizes:
            return None
        return cls(np.array(gaps), np.array(sizes), depth, tick)

    def fill(self, book: OrderBook, anchors: list[int], rng: np.random.Generator) -> int:
        """Bring both sides of ``book`` back to ``depth`` levels; returns the levels added.

        ``anchors[0]`` / ``anchors[1]``: the deepest bid / ask price last seen, where an
        emptied side starts again. Updated in place.
        """
        added = 0
        for k, side in ((0, 1), (1, -1)):
            deepest = book.deepest_price(side)
            if deepest is not None:
                anchors[k] = deepest
            missing = self.depth - book.level_count(side)
            if missing <= 0 or not 0 < anchors[k] < EMPTY_ASK_PRICE:
                continue
            gaps = self.gaps[rng.integers(len(self.gaps), size=missing)]
            sizes = self.sizes[rng.integers(len(self.sizes), size=missing)]
            opposite = book.best_ask if side > 0 else book.best_bid
            price = anchors[k]
            for gap, qty in zip(gaps.tolist(), sizes.tolist(), strict=True):
                price = price - gap * self.tick if side > 0 else price + gap * self.tick
                if price <= 0:
                    break
                if opposite is not None and (price >= opposite if side > 0 else price <= opposite):
                    continue  # an emptied side starting again behind a moved touch
                book.add(book.mint_id(), side, price, qty)
                added += 1
            deepest = book.deepest_price(side)
            if deepest is not None:
                anchors[k] = deepest
        return added


class RolloutGroup:
    """The rollouts of one fork in flight: what ``fork_rollouts`` runs for one request, held
    as state so that an engine can step the rollouts of many requests in one generator call.

    Build it, hand ``books`` (with the history) to the generator's ``begin`` or ``join``, then
    call ``start()``; each step, ask the generator for one order per book of ``live_books``
    (times ``live_clocks()``) and give them to ``apply``; when ``done``, ``results()``. Rollout
    ``i`` draws only from its own seeded streams, so a group steps identically alone or beside
    others (docs/decisions/batched-forking.md).
    """

    __slots__ = (
        "agent_sets",
        "agents",
        "anchors",
        "ask0",
        "bid0",
        "books",
        "cancel_policy",
        "clock",
        "counts",
        "depth_refill",
        "end_ns",
        "houses",
        "keep_books",
        "live",
        "live_books",
        "max_depth",
        "max_orders",
        "n",
        "next_snap",
        "next_wake",
        "qty0",
        "recs",
        "refill_rngs",
        "rngs",
        "seed",
        "snap_times",
        "snapshot_levels",
        "start_ns",
        "turns",
        "watch_agents",
    )

    def __init__(
        self,
        book: OrderBook,
        *,
        n: int,
        start_ns: int,
        horizon_ns: int,
        seed: int,
        rules: MatchingRules | None = None,
        max_orders: int | None = None,
        cancel_policy: str = "newest",
        max_depth: int | None = None,
        refill: bool = False,
        snapshot_times_ns: Sequence[int] = (),
        snapshot_levels: int = 10,
        agents: Sequence[Callable[[int, np.random.Generator], Any]] = (),
        keep_books: bool = False,
    ) -> None:
        if n <= 0:
            raise ValueError(f"need at least one rollout, got n={n}")
        if horizon_ns < 0:
            raise ValueError(f"horizon must be >= 0 ns, got {horizon_ns}")
        if cancel_policy not in ("newest", "random"):
            raise ValueError(f"unknown cancel policy {cancel_policy!r}")
        if max_depth is not None and max_depth <= 0:
            raise ValueError(f"max_depth must be positive or None, got {max_depth}")
        if max_orders is not None and max_orders <= 0:
            raise ValueError(f"max_orders must be positive or None, got {max_orders}")
        if refill and max_depth is None:
            raise ValueError("refill needs max_depth (the depth window it keeps full)")
        snap_times = list(snapshot_times_ns)
        if snap_times != sorted(snap_times):
            raise ValueError("snapshot times must be ascending")
        self.n = n
        self.seed = seed
        self.start_ns = start_ns
        self.end_ns = end_ns = start_ns + horizon_ns
        self.max_orders = max_orders
        self.cancel_policy = cancel_policy
        self.max_depth = max_depth
        self.snap_times = snap_times
        self.snapshot_levels = snapshot_levels
        self.keep_books = keep_books
        self.agents = tuple(agents)
        # the next snapshot time per rollout; past the horizon when none is asked for
        self.next_snap = [snap_times[0] if snap_times else end_ns + 1] * n
        self.books = books = [book.fork() for _ in range(n)]
        self.houses = [ClearingHouse(b, rules) for b in books]
        self.rngs = [rollout_rng(seed, i) for i in range(n)]
        self.recs = recs = [_Recorder() for _ in range(n)]
        self.clock = [start_ns] * n
        self.bid0, bid_qty0, self.ask0, ask_qty0, _, _ = book.touch()
        self.qty0 = (bid_qty0, ask_qty0)
        tick = (rules or MatchingRules()).tick_size
        self.depth_refill = DepthRefill.of(book, max_depth, tick) if refill and max_depth else None
        self.refill_rngs = (
            [rollout_rng(seed, i, REFILL_STREAM) for i in range(n)] if self.depth_refill else []
        )
        self.anchors = [[self.bid0, self.ask0] for _ in range(n)]
        if self.depth_refill is not None:
            for i, b in enumerate(books):
                recs[i].refilled += self.depth_refill.fill(b, self.anchors[i], self.refill_rngs[i])
        self.agent_sets: list[list[Any]] = []
        self.next_wake: list[int] = []
        self.live = list(range(n))
        self.live_books = list(books)
        self.counts = [0] * n
        # Set by a driver whose sampler reads agent orders (``observe_agents``): each step's
        # ``AgentTurn`` per rollout whose agents acted, until ``take_turns``.
        self.watch_agents = False
        self.turns: dict[int, AgentTurn] = {}

    def start(self) -> None:
        """Build each rollout's agents (after the generator has seen the books)."""
        seed = self.seed
        self.agent_sets = [
            [f(i, rollout_rng(seed, i, AGENT_STREAM)) for f in self.agents] for i in range(self.n)
        ]
        self.next_wake = [_next_wake(a) for a in self.agent_sets]

    @property
    def done(self) -> bool:
        return not self.live

    def live_clocks(self) -> list[int]:
        clock = self.clock
        return [clock[i] for i in self.live]

    def apply(self, orders: Sequence[GeneratedOrder]) -> None:
        """One generated order per live rollout (``live_books`` order) into its clearing house."""
        live = self.live
        if len(orders) != len(live):
            raise RolloutError(f"generator returned {len(orders)} orders for {len(live)} rollouts")
        clock, recs, next_wake, next_snap = self.clock, self.recs, self.next_wake, self.next_snap
        books, houses, counts = self.books, self.houses, self.counts
        end_ns, max_depth, max_orders = self.end_ns, self.max_depth, self.max_orders
        snap_times, snapshot_levels = self.snap_times, self.snapshot_levels
        depth_refill, cancel_policy = self.depth_refill, self.cancel_policy
        stopped = False
        for i, order in zip(live, orders, strict=True):
            interval = order.interval_ns
            if interval < 0:
                raise RolloutError(f"negative interval {interval} ns from the generator")
            rec = recs[i]
            ts = clock[i] + interval
            turn = None
            if ts >= next_wake[i] and next_wake[i] <= end_ns:  # agents act first
                if self.watch_agents:
                    turn = AgentTurn(clock[i])
                next_wake[i] = _agents_act(
                    self.agent_sets[i],
                    houses[i],
                    books[i],
                    rec,
                    clock[i],
                    min(ts, end_ns),
                    max_depth,
                    (snap_times, snapshot_levels, end_ns),
                    None if turn is None else turn.orders,
                )
            if ts > next_snap[i]:
                next_snap[i] = _snapshots(rec, books[i], snap_times, ts, snapshot_levels, end_ns)
            if ts > end_ns:
                clock[i] = end_ns
                rec.stop = "horizon"
                counts[i] = -1
                stopped = True
                continue
            clock[i] = ts
            house = houses[i]
            b = books[i]
            kind = order.type
            price = order.price
            qty = order.qty
            if turn is not None and turn.orders:
                turn.next_order = (kind, price, qty, ts)
                self.turns[i] = turn
            if kind in (_BID, _ASK):
                side = 1 if kind == _BID else -1
                aggressive, applied, oid, filled, touch = _submit(
                    house, b, rec, side, price, qty, ts, order.ioc, max_depth
                )
            elif kind == _CANCEL:
                touch = None
                aggressive = False
                filled = 0
                if qty <= 0:
                    side, removed, redirected, oid = 0, 0, False, 0
                    rec.rejected += 1
                    rec_void = False
                else:
                    side, removed, redirected, oid = apply_cancel(
                        house,
                        price,
                        qty,
                        ts,
                        policy=cancel_policy,
                        rng=self.rngs[i],
                        max_depth=max_depth,
                        exact=order.exact,
                        protected=rec.owned,
                    )
                    rec_void = side == 0
                applied = removed > 0
                if rec_void:
                    rec.void += 1
                elif redirected:
                    rec.redirected += 1
            else:
                raise RolloutError(f"unknown order type {kind!r} from the generator")
            if depth_refill is not None and applied:
                added = depth_refill.fill(b, self.anchors[i], self.refill_rngs[i])
                if added:
                    rec.refilled += added
                    touch = None
            rec.note(b, touch, ts, kind, side, price, qty, aggressive, applied, oid, filled)
            counts[i] += 1
            if max_orders is not None and counts[i] >= max_orders:
                rec.stop = "max_orders"
                counts[i] = -1
                stopped = True
        if stopped:
            self.live = [i for i in live if counts[i] >= 0]
            self.live_books = [books[i] for i in self.live]

    def take_turns(self) -> list[tuple[OrderBook, AgentTurn]]:
        """The agent turns of live rollouts since the last call (``watch_agents``), each with
        its rollout's book; a rollout that stopped needs no next order, so its turn is
        dropped."""
        if not self.turns:
            return []
        turns, self.turns = self.turns, {}
        books = self.books
        return [(books[i], turns[i]) for i in self.live if i in turns]

    def results(self) -> list[RolloutResult]:
        books, snap_times = self.books, self.snap_times
        for i, rec in enumerate(self.recs):  # a rollout stopped by max_orders keeps its last book
            while len(rec.snapshots) < len(snap_times):
                rec.snapshots.append(books[i].snapshot(self.snapshot_levels))
        results = [
            rec.result(i, self.start_ns, self.end_ns, self.bid0, self.ask0, self.qty0)
            for i, rec in enumerate(self.recs)
        ]
        if self.keep_books:
            for r, b in zip(results, books, strict=True):
                r.book = b
        return results


def fork_rollouts(
    book: OrderBook,
    history: OrderStream,
    history_rows: np.ndarray | None,
    generator: OrderGenerator,
    *,
    n: int,
    start_ns: int,
    horizon_ns: int,
    open_mid: float,
    seed: int,
    rules: MatchingRules | None = None,
    max_orders: int | None = None,
    cancel_policy: str = "newest",
    max_depth: int | None = None,
    refill: bool = False,
    snapshot_times_ns: Sequence[int] = (),
    snapshot_levels: int = 10,
    agents: Sequence[Callable[[int, np.random.Generator], Any]] = (),
    keep_books: bool = False,
) -> list[RolloutResult]:
    """Fork ``n`` rollouts from ``book`` at ``start_ns`` and run each to the horizon.

    ``book`` itself is never modified. See the module docstring for the order-application and
    cancel policies. ``snapshot_times_ns`` (ascending): each rollout keeps its book at those
    times (``snapshot_levels`` per side), after every order at or before each. ``agents``:
    factories of the agents acting inside every rollout (``simulator.agents``); an agent's
    order goes out at its wake time, before the model's next order, and the model's later
    orders see the book it leaves. ``keep_books``: each result carries its rollout's book at
    the end (``RolloutResult.book``), e.g. to fork again from it.
    """
    group = RolloutGroup(
        book,
        n=n,
        start_ns=start_ns,
        horizon_ns=horizon_ns,
        seed=seed,
        rules=rules,
        max_orders=max_orders,
        cancel_policy=cancel_policy,
        max_depth=max_depth,
        refill=refill,
        snapshot_times_ns=snapshot_times_ns,
        snapshot_levels=snapshot_levels,
        agents=agents,
        keep_books=keep_books,
    )
    return run_group(group, generator, history, history_rows, open_mid)


def run_group(
    group: RolloutGroup,
    generator: OrderGenerator,
    history: OrderStream,
    history_rows: np.ndarray | None,
    open_mid: float,
) -> list[RolloutResult]:
    """Drive one group alone to its horizon: the generator begun on its books, one
    ``next_orders`` call per step over its live rollouts."""
    generator.begin(group.books, history, history_rows, open_mid, group.start_ns, group.seed)
    group.start()
    reads = group.agents and getattr(generator, "reads_agents", False)
    observe = generator.observe_agents if reads else None  # type: ignore[attr-defined]
    group.watch_agents = observe is not None
    while group.live:
        group.apply(generator.next_orders(group.live_books, group.live_clocks()))
        if observe is not None:
            for book, turn in group.take_turns():
                observe(book, turn)
    return group.results()


def _submit(
    house: ClearingHouse,
    book: OrderBook,
    rec: _Recorder,
    side: int,
    price: int,
    qty: int,
    ts: int,
    ioc: bool,
    max_depth: int | None,
    agent: tuple[int, Any] | None = None,
) -> tuple[bool, bool, int, int, tuple[int, int, int, int, int, int] | None]:
    """A limit order into a rollout's clearing house: ``(aggressive, applied, order id, filled,
    the book's touch() after it if read)``; trades, rejections and depth drops are recorded, and
    so are the fills of agents' orders (``agent``: (index, agent) when an agent sent it)."""
    res = (
        house.submit_limit(side, price, qty, ts, None, _IOC)
        if ioc
        else house.submit_limit(side, price, qty, ts)
    )
    if res.status is _REJECTED:
        # A refused order left the book as it was: its touch tells marketability.
        best = book.best_ask if side > 0 else book.best_bid
        rec.rejected += 1
        return (
            best is not None and (best <= price if side > 0 else best >= price),
            False,
            0,
            0,
            None,
        )
    touch = None
    if max_depth is not None:
        touch = book.touch()
        if (touch[4] if side > 0 else touch[5]) > max_depth:  # side's levels
            rec.dropped += len(book.truncate(side, max_depth))
            touch = None
    for tr in res.trades:
        rec.trade_ts.append(ts)
        rec.trade_price.append(tr.price)
        rec.trade_qty.append(tr.qty)
        rec.trade_aggressor.append(side)
    if rec.owned or agent is not None:
        _note_agent_fills(rec, book, res, side, ts, agent)
    # Rollout orders have no owner (no self-trade prevention), so an accepted order trades at
    # least one share exactly when it was marketable.
    return res.filled_qty > 0, True, res.order_id, res.filled_qty, touch


def _note_agent_fills(
    rec: _Recorder,
    book: OrderBook,
    res: Any,
    side: int,
    ts: int,
    agent: tuple[int, Any] | None,
) -> None:
    """Record and tell the agents their shares that traded in ``res``: resting agent orders
    the incoming order took, and the incoming order's own fills when an agent sent it."""
    owned = rec.owned
    for tr in res.trades:
        maker = owned.get(tr.maker_order_id)
        if maker is not None:
            fill = AgentFill(ts, maker[0], tr.maker_order_id, -side, tr.price, tr.qty, True)
            _tell(rec, maker[1], fill)
            if tr.maker_order_id not in book:
                del owned[tr.maker_order_id]
        if agent is not None:
            _tell(
                rec, agent[1], AgentFill(ts, agent[0], res.order_id, side, tr.price, tr.qty, False)
            )
    if agent is not None and res.order_id in book:
        owned[res.order_id] = agent


def _tell(rec: _Recorder, agent: Any, fill: AgentFill) -> None:
    rec.agent_fills.append(fill)
    hook = getattr(agent, "filled", None)
    if hook is not None:
        hook(fill)


def _next_wake(agents: list[Any]) -> int:
    wakes = [w for w in (a.wake_ns() for a in agents) if w is not None]
    return min(wakes) if wakes else NEVER


def _agents_act(
    agents: list[Any],
    house: ClearingHouse,
    book: OrderBook,
    rec: _Recorder,
    floor_ns: int,
    until_ns: int,
    max_depth: int | None,
    snap: tuple[list[int], int, int],
    observed: list[SeenOrder] | None = None,
) -> int:
    """Every agent order due by ``until_ns``, in wake order (no earlier than the rollout's last
    event, ``floor_ns``), matched and recorded like a model order (and, with ``observed``,
    kept there for the order model); the next wake time."""
    while True:
        due = [(w, a) for a, w in enumerate(x.wake_ns() for x in agents) if w is not None]
        if not due or min(due)[0] > until_ns:
            return min(due)[0] if due else NEVER
        wake, a = min(due)
        ts = max(wake, floor_ns)
        tell_volume = getattr(agents[a], "market_volume", None)
        if tell_volume is not None:  # what a participation agent reads: the shares traded so far
            tell_volume(house.traded_qty)
        actions = agents[a].act(book, wake)
        after = agents[a].wake_ns()
        if after is not None and after <= wake:
            raise RolloutError(f"agent {a} did not move its wake time past {wake} ns")
        if actions is None:
            continue
        if len(rec.snapshots) < len(snap[0]):
            _snapshots(rec, book, snap[0], ts, snap[1], snap[2])
        for action in actions if isinstance(actions, list | tuple) else (actions,):
            _agent_action(agents[a], a, action, house, book, rec, ts, max_depth, observed)
        floor_ns = ts


def _agent_action(
    agent: Any,
    a: int,
    action: GeneratedOrder | CancelOrder,
    house: ClearingHouse,
    book: OrderBook,
    rec: _Recorder,
    ts: int,
    max_depth: int | None,
    observed: list[SeenOrder] | None = None,
) -> None:
    """One agent action, matched and recorded like a model order; with ``observed``, what the
    order model is to read of it (``SeenOrder``)."""
    before = None if observed is None else book.snapshot(OBSERVED_LEVELS)
    if isinstance(action, CancelOrder):
        owner = rec.owned.get(action.order_id)
        if owner is None or owner[0] != a:
            return  # filled, or not its own: nothing to cancel
        if action.order_id not in book:  # dropped beyond the depth a level-N feed keeps
            del rec.owned[action.order_id]
            return
        side, price, _ = book.order(action.order_id)
        res = house.cancel(action.order_id, action.qty, ts)
        if action.order_id not in book:
            del rec.owned[action.order_id]
        rec.agent_orders.append((len(rec.ts), a))
        removed = res.cancelled_qty
        rec.note(
            book,
            None,
            ts,
            _CANCEL,
            int(side),
            price,
            removed,
            False,
            removed > 0,
            action.order_id,
            0,
        )
        if observed is not None and removed > 0:
            after = book.snapshot(OBSERVED_LEVELS)
            observed.append(SeenOrder(ts, _CANCEL, price, removed, before, after))
        return
    if action.type not in (_BID, _ASK):
        raise RolloutError(f"agent {a} sent a {action.type!r}: agents send limit orders")
    side = 1 if action.type == _BID else -1
    aggressive, applied, oid, filled, touch = _submit(
        house, book, rec, side, action.price, action.qty, ts, action.ioc, max_depth, (a, agent)
    )
    rec.agent_orders.append((len(rec.ts), a))
    rec.note(
        book,
        touch,
        ts,
        action.type,
        side,
        action.price,
        action.qty,
        aggressive,
        applied,
        oid,
        filled,
    )
    if observed is not None and (filled > 0 or (applied and not action.ioc)):
        # as a feed shows it: an order that traded as the shares it took (what rested of it
        # stays on the book the model reads next), an immediate-or-cancel that took nothing
        # not at all
        qty = filled if filled > 0 else action.qty
        after = book.snapshot(OBSERVED_LEVELS)
        observed.append(SeenOrder(ts, action.type, action.price, qty, before, after))
    placed = getattr(agent, "placed", None)
    if placed is not None and applied:
        placed(oid, filled, book.order(oid)[2] if oid in book else 0)


def _snapshots(
    rec: _Recorder, book: OrderBook, times: list[int], ts: int, levels: int, end_ns: int
) -> int:
    """Keep ``book`` for every snapshot time before ``ts`` not yet kept; the next time due."""
    k = len(rec.snapshots)
    while k < len(times) and times[k] < ts:
        rec.snapshots.append(book.snapshot(levels))
        k += 1
    return times[k] if k < len(times) else end_ns + 1


@dataclass(slots=True)
class RolloutSummary:
    """Counts over a set of rollouts (for reports and benchmarks)."""

    rollouts: int = 0
    orders: int = 0
    trades: int = 0
    rejected: int = 0
    void_cancels: int = 0
    redirected_cancels: int = 0
    depth_dropped: int = 0
    depth_refilled: int = 0
    levels_per_side: float = 0.0  # mean over rollouts and their events
    stops: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, results: list[RolloutResult]) -> RolloutSummary:
        s = cls(rollouts=len(results))
        for r in results:
            s.orders += len(r)
            s.trades += len(r.trade_qty)
            s.rejected += r.rejected
            s.void_cancels += r.void_cancels
            s.redirected_cancels += r.redirected_cancels
            s.depth_dropped += r.depth_dropped
            s.depth_refilled += r.depth_refilled
            s.levels_per_side += r.levels_per_side * len(r)
            s.stops[r.stop] = s.stops.get(r.stop, 0) + 1
        if s.orders:
            s.levels_per_side /= s.orders
        return s

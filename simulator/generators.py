"""Trivial order generators for the rollout engine: baselines and test doubles, no model.

- ``EmpiricalGenerator`` samples real orders i.i.d. from the history before the fork and
  re-prices them relative to each rollout's current touch: the zero-intelligence baseline that
  the order model must beat, and a way to test the engine and the metrics without torch.
- ``ReplayGenerator`` replays a given real order stream verbatim in every rollout.

Both follow ``simulator.rollout.OrderGenerator``.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from heapq import heappop, heappush

import numpy as np

from simulator.book import EMPTY_ASK_PRICE, EMPTY_BID_PRICE, OrderBook
from simulator.orderstream import OrderStream, OrderType, intervals_ns
from simulator.rollout import (
    GENERATOR_STREAM,
    AgentTurn,
    ContextError,
    GeneratedOrder,
    OrderGenerator,
    marketable_qty,
    rollout_rng,
)

_ASK_TYPE, _BID_TYPE, _CANCEL_TYPE = int(OrderType.ASK), int(OrderType.BID), int(OrderType.CANCEL)
_BLOCK = 1024  # draws per refill of a rollout's pre-sampled indices
_NEVER = 1 << 62  # an interval past any horizon: the rollout stops


def order_fates(history: OrderStream, horizon: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What became of each limit order in the history, within ``horizon`` orders.

    Returns ``(cancel_at, linked, censored)``: ``cancel_at[j]`` is the position of the first
    cancel of order ``j``'s id (``-1``: not cancelled within ``horizon`` orders); ``linked[k]``
    marks cancels of an order added in the history; ``censored[j]`` marks adds too close to the
    end of the history for their fate to be known.

    >>> from simulator.orderstream import OrderStream
    >>> h = OrderStream(ts_ns=np.arange(4), type=np.array([1, 0, 2, 2], dtype=np.int8),
    ...     side=np.array([1, -1, 1, 1], dtype=np.int8), price=np.array([9, 11, 9, 8]),
    ...     qty=np.ones(4, dtype=np.int64), order_id=np.array([5, 6, 5, 7]),
    ...     aggressive=np.zeros(4, dtype=bool), source_row=np.arange(4))
    >>> cancel_at, linked, censored = order_fates(h, horizon=10)
    >>> cancel_at.tolist(), linked.tolist()
    ([2, -1, -1, -1], [False, False, True, False])
    """
    n = len(history)
    cancel_at = np.full(n, -1, dtype=np.int64)
    linked = np.zeros(n, dtype=bool)
    added: dict[int, int] = {}
    kinds = history.type.tolist()
    for j, (kind, oid) in enumerate(zip(kinds, history.order_id.tolist(), strict=True)):
        if not oid:
            continue
        if kind == _CANCEL_TYPE:
            at = added.pop(oid, None)
            if at is not None:
                linked[j] = True
                if j - at <= horizon:
                    cancel_at[at] = j
        else:
            added.setdefault(oid, j)
    censored = np.zeros(n, dtype=bool)
    censored[max(0, n - horizon) :] = True
    censored &= np.array([k != _CANCEL_TYPE for k in kinds], dtype=bool)
    return cancel_at, linked, censored


def history_touch(
    history: OrderStream, history_rows: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Best bid and best ask (price units) just before each history order.

    Taken from ``history_rows`` (LOBSTER layout: ask_px_1, ask_sz_1, bid_px_1, bid_sz_1, ...;
    the book's empty sentinels where a side is empty).
    """
    if history_rows is None:
        raise ValueError("EmpiricalGenerator needs history_rows (the book before each order)")
    if len(history_rows) != len(history):
        raise ValueError(f"history_rows has {len(history_rows)} rows for {len(history)} orders")
    bid = np.where(history_rows[:, 3] > 0, history_rows[:, 2], EMPTY_BID_PRICE)
    ask = np.where(history_rows[:, 1] > 0, history_rows[:, 0], EMPTY_ASK_PRICE)
    return bid.astype(np.int64), ask.astype(np.int64)


class EmpiricalGenerator:
    """Orders drawn i.i.d. from the recent real order flow, priced relative to the touch, each
    cancelled as its real counterpart was.

    ``begin`` keeps the last ``context_orders`` history orders whose book was two-sided. Each
    step of a rollout either emits a *due cancel* (below) or draws a history order ``j``
    uniformly (per rollout, seeded with ``rollout_rng(seed, i, GENERATOR_STREAM)``) and emits
    its type and size, the interval that preceded it in the real stream, and its price moved
    with the book: a passive order at or behind its side's best price (and a cancel) keeps its
    distance in ticks to that price; a passive order inside the spread keeps the *fraction* of
    the spread it stepped in (rounded down to whole ticks, so it never crosses); an aggressive
    order keeps its distance to the opposite best price (how deep it sweeps) and is cut to the
    quantity resting up to its price (its real counterpart took exactly what was there; a
    remainder would rest inside the spread and close it). Fixed offsets from the mid, or
    inside-spread steps in absolute ticks, collapsed the spread in rollouts: every such step
    narrows a spread that nothing widens again (figures:
    ``docs/decisions/rollout-depth-and-cancels.md``).

    Cancels follow their orders (``cancel_by_fate``, default): real cancels mostly remove
    recent orders. Cancels are therefore not drawn on their own: when drawn order ``j`` was
    cancelled ``a`` orders after it arrived (within ``fate_horizon`` orders), the rollout
    schedules a cancel of the same size at the generated price ``a`` orders later, with the
    interval that preceded the real cancel; it is dropped if nothing rests at that price by then
    (the order traded), unless the price now lies below the book's deepest level (the order fell
    out of a depth-limited book: the cancel is still sent, as the real feed would show it, and
    the engine records it as a void cancel). Cancels of orders added before the
    history (unknown age) are drawn like other orders. Orders of the last ``fate_horizon``
    history positions, whose fate is not yet known, are not drawn (the fork must not see the
    future). ``cancel_by_fate=False`` gives pure i.i.d. sampling.

    >>> from simulator.orderstream import OrderStream
    >>> h = OrderStream(
    ...     ts_ns=np.array([0, 10, 30]), type=np.array([1, 0, 1], dtype=np.int8),
    ...     side=np.array([1, -1, 1], dtype=np.int8), price=np.array([900, 1100, 900]),
    ...     qty=np.array([5, 7, 5]), order_id=np.zeros(3, dtype=np.int64),
    ...     aggressive=np.zeros(3, dtype=bool), source_row=np.arange(3))
    >>> rows = np.array([[1100, 1, 900, 1]] * 3)
    >>> book = OrderBook(); book.add(1, 1, 1900, 10); book.add(2, -1, 2100, 10)
    >>> gen = EmpiricalGenerator(cancel_by_fate=False)
    >>> gen.begin([book], h, rows, 1000.0, 0, seed=1)
    >>> order = gen.next_orders([book], [0])[0]
    >>> order.price in (1900, 2100)  # at the new touch, like the history orders
    True
    """

    def __init__(
        self,
        *,
        tick_size: int = 100,
        context_orders: int | None = None,
        cancel_by_fate: bool = True,
        fate_horizon: int = 2_000,
        spread_buckets: int = 8,
    ) -> None:
        if tick_size <= 0:
            raise ValueError("tick_size must be positive")
        self.tick_size = tick_size
        self.context_orders = context_orders
        self.cancel_by_fate = cancel_by_fate
        self.fate_horizon = fate_horizon
        self.spread_buckets = spread_buckets
        self._pool_of: list[_Pool] = []  # per rollout of the run: its fork's pool
        self._slot: dict[int, int] = {}
        self._rngs: list[np.random.Generator] = []
        self._draws: list[list[int]] = []
        self._pos: list[int] = []
        self._due: list[list[tuple[int, int, int, int, int, int]]] = []
        self._step: list[int] = []
        self._seq = 0

    def begin(
        self,
        books: list[OrderBook],
        history: OrderStream,
        history_rows: np.ndarray | None,
        open_mid: float,
        ts_ns: int,
        seed: int,
    ) -> None:
        """Start a run with one fork's rollouts (``join`` adds more forks to it)."""
        self._slot = {}
        self._pool_of = []
        self._rngs = []
        self._draws = []
        self._pos = []
        self._due = []
        self._step = []
        self.join(books, history, history_rows, open_mid, ts_ns, seed)

    def join(
        self,
        books: list[OrderBook],
        history: OrderStream,
        history_rows: np.ndarray | None,
        open_mid: float,
        ts_ns: int,
        seed: int,
    ) -> None:
        """Add one more fork's rollouts to the run, with the pool of its own history; its
        rollouts draw from their own streams, so they are the same beside other forks."""
        if self.context_orders is not None:
            cut = max(0, len(history) - self.context_orders)
            history = history.take(slice(cut, None))
            if history_rows is not None:
                history_rows = history_rows[cut:]
        touch = history_touch(history, history_rows)
        ts = history.ts_ns.astype(np.int64)
        interval = intervals_ns(ts)
        bid, ask = touch
        keep = (bid > EMPTY_BID_PRICE) & (ask < EMPTY_ASK_PRICE) & (ask > bid) & (history.qty > 0)
        keep[:1] = False  # the first order has no preceding interval
        fates: list[tuple[int, int, int] | None] = [None] * len(history)
        if self.cancel_by_fate:
            horizon = min(self.fate_horizon, len(history) // 2)
            cancel_at, linked, censored = order_fates(history, horizon)
            keep &= ~linked & ~censored
            qty = history.qty.tolist()
            for j in np.flatnonzero(cancel_at >= 0).tolist():
                k = int(cancel_at[j])
                fates[j] = (k - j, qty[k], int(interval[k]))
        idx = np.flatnonzero(keep)
        if len(idx) == 0:
            raise ContextError("EmpiricalGenerator needs history orders with a two-sided book")
        types = history.type[idx].astype(np.int64).tolist()
        qtys = history.qty[idx].astype(np.int64).tolist()
        # reference: 1 = best bid, -1 = best ask (the touch the price keeps its distance to)
        kind = history.type[idx].astype(np.int64)
        price = history.price[idx].astype(np.int64)
        side = np.where(kind == _BID_TYPE, 1, np.where(kind == _ASK_TYPE, -1, history.side[idx]))
        aggressive = np.where(side > 0, price >= ask[idx], price <= bid[idx]) & (kind != 2)
        ref = np.where(aggressive, -side, side)
        offset = price - np.where(ref > 0, bid[idx], ask[idx])
        # inside the spread: the fraction of the spread the order stepped in (0 < f < 1)
        inside = ~aggressive & (side * offset > 0)
        spread = (ask[idx] - bid[idx]).astype(np.float64)
        refs = ref.tolist()
        offsets = offset.tolist()
        insides = np.where(inside, np.abs(offset) / spread, 0.0).tolist()
        intervals = interval[idx].tolist()
        pool_fates = [fates[j] for j in idx.tolist()]
        # spread buckets: quantile edges of the history spread (in ticks), and each bucket's
        # pool positions; a bucket with fewer than 50 orders is merged into its neighbour
        spread_ticks = (ask[idx] - bid[idx]) // self.tick_size
        edges = np.unique(np.quantile(spread_ticks, np.linspace(0, 1, self.spread_buckets + 1)))
        edges = edges[1:-1] if len(edges) > 2 else np.zeros(0)
        bucket = np.searchsorted(edges, spread_ticks, side="right")
        members = [np.flatnonzero(bucket == b) for b in range(len(edges) + 1)]
        merged_edges: list[float] = []
        merged: list[list[int]] = []
        for b, m in enumerate(members):
            if merged and len(merged[-1]) < 50:
                merged[-1].extend(m.tolist())
                if b - 1 < len(edges) and merged_edges:
                    merged_edges[-1] = float(edges[b]) if b < len(edges) else merged_edges[-1]
            else:
                merged.append(m.tolist())
                if b < len(edges):
                    merged_edges.append(float(edges[b]))
        if len(merged) > 1 and len(merged[-1]) < 50:
            merged[-2].extend(merged.pop())
        merged_edges = merged_edges[: len(merged) - 1]
        pool = _Pool(
            types, qtys, offsets, refs, insides, intervals, pool_fates, merged_edges, merged
        )
        first = len(self._rngs)
        for i, b in enumerate(books):
            self._slot[id(b)] = first + i
        self._pool_of += [pool] * len(books)
        self._rngs += [rollout_rng(seed, i, GENERATOR_STREAM) for i in range(len(books))]
        self._draws += [[] for _ in books]
        self._pos += [0] * len(books)
        self._due += [[] for _ in books]
        self._step += [0] * len(books)

    def next_orders(self, books: list[OrderBook], ts_ns: list[int]) -> list[GeneratedOrder]:
        out = []
        slot_of, pool_of, tick, rngs = self._slot, self._pool_of, self.tick_size, self._rngs
        positions, pools = self._pos, self._draws
        for book in books:
            slot = slot_of[id(book)]
            pool = pool_of[slot]
            types, qtys, offsets, intervals = pool.type, pool.qty, pool.offset, pool.interval
            fates, refs, inside = pool.fate, pool.ref, pool.inside
            edges, buckets = pool.edges, pool.buckets
            step = self._step[slot] = self._step[slot] + 1
            due = self._due[slot]
            emitted = False
            while due and due[0][0] <= step:
                _, _, side, price, qty, interval = heappop(due)
                if book.level(side, price) is not None or _below_book(book, side, price):
                    out.append(GeneratedOrder(_CANCEL_TYPE, price, qty, interval))
                    emitted = True
                    break
            if emitted:
                continue
            bid, ask = book.best_prices()
            # A one-sided book draws from the widest spread bucket.
            spread_ticks = (ask - bid) // tick if bid is not None and ask is not None else 1 << 40
            # A uniform draw from the pool of the spread's bucket, from pre-sampled blocks
            # (inline: a helper call per order is measurable in rollouts).
            pos = positions[slot]
            draws = pools[slot]
            if pos >= len(draws):
                draws = pools[slot] = rngs[slot].random(_BLOCK).tolist()
                pos = 0
            positions[slot] = pos + 1
            members = buckets[bisect_right(edges, spread_ticks)]
            j = members[int(draws[pos] * len(members))]
            kind = types[j]
            step_in = inside[j]
            if step_in and bid is not None and ask is not None:
                improve = int(step_in * spread_ticks) * tick
                price = bid + improve if refs[j] > 0 else ask - improve
            elif refs[j] > 0:
                base = bid if bid is not None else (ask if ask is not None else 0)
                price = base + offsets[j]
            else:
                base = ask if ask is not None else (bid if bid is not None else 0)
                price = base + offsets[j]
            qty = qtys[j]
            if refs[j] != (1 if kind == _BID_TYPE else -1) and kind != _CANCEL_TYPE:
                qty = marketable_qty(book, kind, price, qty)
            fate = fates[j]
            if fate is not None:
                self._seq += 1
                side = 1 if kind == _BID_TYPE else -1
                heappush(due, (step + fate[0], self._seq, side, price, fate[1], fate[2]))
            out.append(GeneratedOrder(kind, price, qty, intervals[j]))
        return out


class _Pool:
    """What ``EmpiricalGenerator`` draws from for one fork: the history orders it keeps (type,
    size, price offset and its reference touch, step into the spread, preceding interval, and
    the fate of each, ``(age, qty, interval)`` of its cancel) and the spread buckets."""

    __slots__ = ("buckets", "edges", "fate", "inside", "interval", "offset", "qty", "ref", "type")

    def __init__(
        self,
        type_: list[int],
        qty: list[int],
        offset: list[int],
        ref: list[int],
        inside: list[float],
        interval: list[int],
        fate: list[tuple[int, int, int] | None],
        edges: list[float],
        buckets: list[list[int]],
    ) -> None:
        self.type, self.qty, self.offset, self.ref = type_, qty, offset, ref
        self.inside, self.interval, self.fate = inside, interval, fate
        self.edges, self.buckets = edges, buckets


def _below_book(book: OrderBook, side: int, price: int) -> bool:
    """Whether ``price`` lies beyond the deepest level of a side (where a rollout kept to the
    feed's depth has dropped orders the real trader may still cancel)."""
    deepest = book.deepest_price(side)
    if deepest is None:
        return False
    return price < deepest if side > 0 else price > deepest


class ReplayGenerator:
    """Every rollout replays the same real orders (from the first at or after the fork time).

    Intervals are the real ones (the first is measured from the fork time). When the stream is
    exhausted the generator emits a cancel far in the future, which stops the rollout at the
    horizon.

    The orders are applied as ``simulator.fidelity`` replays them (``faithful``, default):

    - an aggressive order with no resting id (its real counterpart left no rest: the stream
      holds only its fills) is immediate-or-cancel; as GTC, whatever the fork's book could not
      fill would rest as a phantom order inside the spread that no real cancel removes;
    - a cancel removes liquidity at exactly its price or nothing (a void cancel): the real
      cancel names an order at that price; redirected to the nearest level it would remove
      liquidity that is still there in reality.

    The figures behind both rules are in ``docs/decisions/rollout-depth-and-cancels.md``.

    ``faithful=False`` replays the stream as plain price-only GTC orders, the way a generated
    stream is applied.
    """

    def __init__(self, stream: OrderStream, *, faithful: bool = True) -> None:
        self.stream = stream
        self.faithful = faithful
        self._slot: dict[int, int] = {}
        self._next: list[int] = []
        self._last_ts: list[int] = []
        self._cols: tuple[list[int], ...] = ([], [], [], [], [])

    def begin(
        self,
        books: list[OrderBook],
        history: OrderStream,
        history_rows: np.ndarray | None,
        open_mid: float,
        ts_ns: int,
        seed: int,
    ) -> None:
        first = int(np.searchsorted(self.stream.ts_ns, ts_ns, side="left"))
        self._slot = {id(b): i for i, b in enumerate(books)}
        self._next = [first] * len(books)
        self._last_ts = [ts_ns] * len(books)
        self._cols = (
            self.stream.ts_ns.tolist(),
            self.stream.type.tolist(),
            self.stream.price.tolist(),
            self.stream.qty.tolist(),
            (self.stream.aggressive & (self.stream.order_id == 0)).tolist(),
        )

    def next_orders(self, books: list[OrderBook], ts_ns: list[int]) -> list[GeneratedOrder]:
        ts_col, type_col, price_col, qty_col, fill_col = self._cols
        faithful = self.faithful
        out = []
        for book in books:
            slot = self._slot[id(book)]
            k = self._next[slot]
            if k >= len(ts_col):
                out.append(GeneratedOrder(int(OrderType.CANCEL), 0, 1, _NEVER))
                continue
            ts = ts_col[k]
            kind = type_col[k]
            out.append(
                GeneratedOrder(
                    kind,
                    price_col[k],
                    qty_col[k],
                    ts - self._last_ts[slot],
                    ioc=faithful and fill_col[k],
                    exact=faithful and kind == _CANCEL_TYPE,
                )
            )
            self._next[slot] = k + 1
            self._last_ts[slot] = ts
        return out


class MixtureGenerator:
    """Several generators sharing one fork: rollout ``i`` is driven by member ``i % M``.

    Each member sees only its own rollouts' books (in rollout order) and is seeded with its own
    stream of the run's seed, so a mixture is deterministic for a seed and its members never
    share random numbers. The pooled rollouts sample the equal-weight mixture of the members'
    distributions, whose overlap with any target distribution is at least the mean of the
    members' (``min(f, sum_m g_m / M) >= sum_m min(f, g_m) / M`` pointwise; a finite number of
    rollouts estimates it with noise): a mixture of independently trained order models
    averages out the biases they do not share (measured: ``surveillance.studies.realism``).
    """

    def __init__(self, members: Sequence[OrderGenerator]) -> None:
        if not members:
            raise ValueError("a mixture needs at least one member generator")
        self.members = list(members)
        self._member: dict[int, int] = {}
        self._begun: set[int] = set()  # members begun in this run (the rest join)

    def begin(
        self,
        books: list[OrderBook],
        history: OrderStream,
        history_rows: np.ndarray | None,
        open_mid: float,
        ts_ns: int,
        seed: int,
    ) -> None:
        self._member, self._begun = {}, set()
        self._start(books, (history, history_rows, open_mid, ts_ns), seed)

    def _start(
        self,
        books: list[OrderBook],
        context: tuple[OrderStream, np.ndarray | None, float, int],
        seed: int,
    ) -> None:
        """Give each member its share of a fork's books: a member's first share of the run
        begins its run, later ones join it (a fork with fewer rollouts than members leaves
        some members without a share)."""
        m = len(self.members)
        for i, b in enumerate(books):
            self._member[id(b)] = i % m
        for k, member in enumerate(self.members):
            own = books[k::m]
            if own:
                member_seed = int(np.random.SeedSequence([seed, k]).generate_state(1)[0])
                if k in self._begun:
                    member.join(own, *context, member_seed)  # type: ignore[attr-defined]
                else:
                    self._begun.add(k)
                    member.begin(own, *context, member_seed)

    def next_orders(self, books: list[OrderBook], ts_ns: list[int]) -> list[GeneratedOrder]:
        groups: dict[int, list[int]] = {}
        for pos, book in enumerate(books):
            groups.setdefault(self._member[id(book)], []).append(pos)
        out: list[GeneratedOrder | None] = [None] * len(books)
        for k, positions in groups.items():
            orders = self.members[k].next_orders(
                [books[p] for p in positions], [ts_ns[p] for p in positions]
            )
            for p, order in zip(positions, orders, strict=True):
                out[p] = order
        return out  # type: ignore[return-value]

    @property
    def reads_agents(self) -> bool:
        return any(getattr(m, "reads_agents", False) for m in self.members)

    def observe_agents(self, book: OrderBook, turn: AgentTurn) -> None:
        """Agent orders go to the member driving the rollout, if it reads them."""
        member = self.members[self._member[id(book)]]
        if getattr(member, "reads_agents", False):
            member.observe_agents(book, turn)  # type: ignore[attr-defined]


class BatchMixture(MixtureGenerator):
    """A mixture whose members all join forks to a run (the engine's ``BatchSampler``): the
    forks of one engine call step together, each member stepping its share of every fork's
    rollouts in one call, and a fork gets the futures it gets alone (each member's fork
    begins or joins with the same books and seed either way)."""

    def join(
        self,
        books: list[OrderBook],
        history: OrderStream,
        history_rows: np.ndarray | None,
        open_mid: float,
        ts_ns: int,
        seed: int,
    ) -> None:
        self._start(books, (history, history_rows, open_mid, ts_ns), seed)


def mixture(members: Sequence[OrderGenerator]) -> MixtureGenerator:
    """The mixture of ``members``: batched when every member can join forks to a run."""
    if all(callable(getattr(m, "join", None)) for m in members):
        return BatchMixture(members)
    return MixtureGenerator(members)

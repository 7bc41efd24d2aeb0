"""Limit order book: price-time priority, FIFO per level, O(1) cancel by order id.

The book is plain state. It never matches: adding an order that crosses the opposite side is
allowed here (a feed replay must accept whatever the venue printed) and it is the clearing house
(``simulator.matching``) that decides what trades. ``check_integrity`` reports problems as data.

Layout, chosen for the replay hot path:

- each side keeps ``price -> Level``; a ``Level`` holds its orders in a dict (insertion-ordered,
  so FIFO with O(1) removal by id) and their total quantity;
- each side keeps a sorted list of keys with the best price at the end, so the touch is
  ``keys[-1]`` and removing the touch level is an O(1) pop. Bid keys are prices, ask keys are
  negated prices;
- ``_orders`` maps order id to ``(side, price)``.

That layout is this module's business only. Other modules read and change the book through its
public methods: ``add`` and ``add_passive`` (an order that must not trade), ``reduce`` and
``delete`` (feed events, raising on unknown ids), ``remove`` (a cancel that may miss), ``take``
(trade away the best levels), ``truncate``, and queries such as ``touch``, ``best_prices``,
``deepest_price``, ``level_count``, ``newest_order``, ``orders_at`` and ``anonymous_orders``. A ``Level`` handed out by ``level``/``best``/``iter_levels`` is a read-only
view.

Order ids minted by a book (seed liquidity, simulated orders) are negative and count down from
``-1``; venue ids are positive, so the two never collide. ``fork`` copies the counter, so a
fork keeps minting fresh ids in its own book without touching the parent's.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Callable, Iterable, Iterator, KeysView
from dataclasses import dataclass

import numpy as np

from simulator.types import BookEvent, EventKind, Side

EMPTY_ASK_PRICE = 9_999_999_999
EMPTY_BID_PRICE = -9_999_999_999


class BookError(Exception):
    """Base class of order-book errors."""


class UnknownOrder(BookError):
    def __init__(self, order_id: int) -> None:
        super().__init__(f"unknown order id {order_id}")
        self.order_id = order_id


class DuplicateOrder(BookError):
    def __init__(self, order_id: int) -> None:
        super().__init__(f"order id {order_id} is already resting")
        self.order_id = order_id


class InvalidQuantity(BookError):
    def __init__(self, qty: int) -> None:
        super().__init__(f"quantity must be positive, got {qty}")
        self.qty = qty


@dataclass(frozen=True, slots=True)
class OrdersCrossed:
    best_bid: int
    best_ask: int


@dataclass(frozen=True, slots=True)
class LevelQuantityMismatch:
    side: Side
    price: int
    level_qty: int
    orders_qty: int


@dataclass(frozen=True, slots=True)
class OrderIndexMismatch:
    order_id: int
    detail: str


IntegrityProblem = OrdersCrossed | LevelQuantityMismatch | OrderIndexMismatch


class Level:
    """All resting orders at one price, oldest first (``orders``: id -> shares).

    Read-only outside this module: only ``OrderBook`` keeps ``qty`` and the id index in step.
    """

    __slots__ = ("orders", "price", "qty")

    def __init__(self, price: int) -> None:
        self.price = price
        self.qty = 0
        self.orders: dict[int, int] = {}

    def copy(self) -> Level:
        level = Level.__new__(Level)
        level.price = self.price
        level.qty = self.qty
        level.orders = self.orders.copy()
        return level

    def __repr__(self) -> str:
        return f"Level(price={self.price}, qty={self.qty}, orders={len(self.orders)})"


class OrderBook:
    """A limit order book for one instrument."""

    __slots__ = ("_ask_keys", "_asks", "_bid_keys", "_bids", "_next_id", "_orders", "symbol")

    def __init__(self, symbol: str = "") -> None:
        self.symbol = symbol
        self._bids: dict[int, Level] = {}
        self._asks: dict[int, Level] = {}
        self._bid_keys: list[int] = []  # ascending prices, best bid last
        self._ask_keys: list[int] = []  # ascending negated prices, best ask last
        self._orders: dict[int, tuple[int, int]] = {}  # id -> (side, price)
        self._next_id = -1

    # ------------------------------------------------------------------ mutation
    def mint_id(self) -> int:
        """A fresh order id owned by this book (negative, never a venue id)."""
        order_id = self._next_id
        self._next_id = order_id - 1
        return order_id

    def add(self, order_id: int, side: int, price: int, qty: int) -> None:
        """Rest a new order at the back of its price level."""
        if qty <= 0:
            raise InvalidQuantity(qty)
        orders = self._orders
        if order_id in orders:
            raise DuplicateOrder(order_id)
        if side > 0:
            levels, keys, key = self._bids, self._bid_keys, price
        else:
            levels, keys, key = self._asks, self._ask_keys, -price
        level = levels.get(price)
        if level is None:
            level = levels[price] = Level(price)
            if not keys or key > keys[-1]:
                keys.append(key)
            else:
                insort(keys, key)
        level.orders[order_id] = qty
        level.qty += qty
        orders[order_id] = (side, price)
        if order_id <= self._next_id:  # a book-style id from elsewhere: never mint it again
            self._next_id = order_id - 1

    def add_passive(self, order_id: int, side: int, price: int, qty: int) -> bool:
        """``add`` an order that must not trade: at or through the opposite best price it is not
        added and False comes back (a clearing house decides and rests in one call)."""
        if side > 0:
            if self._ask_keys and -self._ask_keys[-1] <= price:
                return False
        elif self._bid_keys and self._bid_keys[-1] >= price:
            return False
        self.add(order_id, side, price, qty)
        return True

    def reduce(self, order_id: int, qty: int) -> int:
        """Remove up to ``qty`` from a resting order (partial cancel or fill).

        Returns the quantity removed; the order leaves the book when nothing is left.
        """
        if qty <= 0:
            raise InvalidQuantity(qty)
        entry = self._orders.get(order_id)
        if entry is None:
            raise UnknownOrder(order_id)
        side, price = entry
        level = (self._bids if side > 0 else self._asks)[price]
        resting = level.orders[order_id]
        if qty >= resting:
            self._remove(order_id, side, level, resting)
            return resting
        level.orders[order_id] = resting - qty
        level.qty -= qty
        return qty

    def delete(self, order_id: int) -> int:
        """Remove an order entirely; returns the quantity it still had."""
        entry = self._orders.get(order_id)
        if entry is None:
            raise UnknownOrder(order_id)
        side, price = entry
        level = (self._bids if side > 0 else self._asks)[price]
        resting = level.orders[order_id]
        self._remove(order_id, side, level, resting)
        return resting

    def remove(self, order_id: int, qty: int | None = None) -> int:
        """Take up to ``qty`` shares (``None``: all) from a resting order; never raises for an
        unknown id. Returns what the order held before, 0 when the id is not resting.

        What is left keeps its place in the queue. For callers that expect misses (a simulated
        cancel of an order that has already traded); ``qty`` must be positive.
        """
        index = self._orders
        entry = index.get(order_id)
        if entry is None:
            return 0
        side, price = entry
        level = (self._bids if side > 0 else self._asks)[price]
        orders = level.orders
        resting = orders[order_id]
        if qty is None or qty >= resting:
            # ``_remove`` inlined: a simulated cancel is one of the two hottest calls.
            del orders[order_id]
            del index[order_id]
            level.qty -= resting
            if not orders:
                if side > 0:
                    del self._bids[price]
                    keys, key = self._bid_keys, price
                else:
                    del self._asks[price]
                    keys, key = self._ask_keys, -price
                if keys[-1] == key:
                    keys.pop()
                else:
                    del keys[bisect_left(keys, key)]
        elif qty > 0:
            orders[order_id] = resting - qty
            level.qty -= qty
        else:
            raise InvalidQuantity(qty)
        return resting

    def take(
        self,
        side: int,
        qty: int,
        limit: int | None = None,
        max_levels: int | None = None,
        skip: Callable[[int], bool] | None = None,
    ) -> list[tuple[int, int, int]]:
        """Trade away up to ``qty`` shares resting on ``side``: best price first, oldest order
        first within a price. Returns the fills as ``(order_id, price, qty)`` in that order.

        Stops before the first price worse than ``limit`` (below it for bids, above it for asks)
        and after ``max_levels`` price levels. A resting order for which ``skip(order_id)`` is
        true is removed without trading (self-trade prevention). Filled orders and emptied
        levels leave the book; a partly filled order keeps its place.
        """
        index = self._orders
        if side > 0:
            levels, keys, sign = self._bids, self._bid_keys, 1
        else:
            levels, keys, sign = self._asks, self._ask_keys, -1
        fills: list[tuple[int, int, int]] = []
        append = fills.append
        remaining = qty
        swept = 0
        while remaining and keys:
            price = sign * keys[-1]
            if limit is not None and (price < limit if side > 0 else price > limit):
                break
            if max_levels is not None and swept >= max_levels:
                break
            swept += 1
            level = levels[price]
            orders = level.orders
            gone: list[int] = []
            traded = 0
            for order_id, resting in orders.items():
                if skip is not None and skip(order_id):
                    gone.append(order_id)
                    level.qty -= resting
                    continue
                if remaining >= resting:
                    fill = resting
                    gone.append(order_id)
                else:
                    fill = remaining
                    orders[order_id] = resting - fill  # same key: safe while iterating
                append((order_id, price, fill))
                traded += fill
                remaining -= fill
                if not remaining:
                    break
            level.qty -= traded
            # Deleted after the walk: a dict cannot shrink while it is iterated.
            for order_id in gone:
                del orders[order_id]
                del index[order_id]
            if not orders:
                del levels[price]
                keys.pop()
        return fills

    def _remove(self, order_id: int, side: int, level: Level, resting: int) -> None:
        del level.orders[order_id]
        del self._orders[order_id]
        level.qty -= resting
        if not level.orders:
            price = level.price
            if side > 0:
                del self._bids[price]
                keys, key = self._bid_keys, price
            else:
                del self._asks[price]
                keys, key = self._ask_keys, -price
            if keys[-1] == key:
                keys.pop()
            else:
                del keys[bisect_left(keys, key)]

    def apply(self, event: BookEvent) -> int:
        """Apply one feed event; returns the quantity added or removed.

        Executions of hidden liquidity, crosses and halts leave the book unchanged.
        """
        kind = event.kind
        if kind == EventKind.ADD:
            self.add(event.order_id, int(event.side), event.price, event.qty)
            return event.qty
        if kind == EventKind.CANCEL or kind == EventKind.EXECUTE:
            return self.reduce(event.order_id, event.qty)
        if kind == EventKind.DELETE:
            return self.delete(event.order_id)
        return 0

    def truncate(self, side: int, depth: int) -> list[tuple[int, int, int]]:
        """Drop every level beyond the best ``depth`` on one side.

        Returns the removed orders as ``(order_id, price, qty)``. Used to keep a book to the
        depth a level-N feed can observe.
        """
        keys = self._bid_keys if side > 0 else self._ask_keys
        removed: list[tuple[int, int, int]] = []
        while len(keys) > depth:
            key = keys[0]
            price = key if side > 0 else -key
            level = (self._bids if side > 0 else self._asks)[price]
            for order_id, qty in list(level.orders.items()):
                self._remove(order_id, side, level, qty)
                removed.append((order_id, price, qty))
        return removed

    def clear(self) -> None:
        self._bids.clear()
        self._asks.clear()
        self._bid_keys.clear()
        self._ask_keys.clear()
        self._orders.clear()

    # ------------------------------------------------------------------ copies
    def fork(self) -> OrderBook:
        """An independent copy: same resting orders, same priorities, own id counter."""
        book = OrderBook.__new__(OrderBook)
        book.symbol = self.symbol
        book._bids = {p: lvl.copy() for p, lvl in self._bids.items()}
        book._asks = {p: lvl.copy() for p, lvl in self._asks.items()}
        book._bid_keys = self._bid_keys.copy()
        book._ask_keys = self._ask_keys.copy()
        book._orders = self._orders.copy()
        book._next_id = self._next_id
        return book

    @classmethod
    def restore(
        cls, symbol: str, orders: Iterable[tuple[int, int, int, int]], next_id: int
    ) -> OrderBook:
        """A book from ``(side, price, order_id, qty)`` in queue order (each level oldest
        first) and the id counter ``next_id``: what a serialized book (``streams.windows``)
        needs to come back with the same priorities and the same minted ids."""
        book = cls(symbol)
        for side, price, order_id, qty in orders:
            book.add(order_id, side, price, qty)
        book._next_id = next_id
        return book

    @property
    def next_id(self) -> int:
        """The id ``mint_id`` hands out next."""
        return self._next_id

    # ------------------------------------------------------------------ queries
    def __len__(self) -> int:
        return len(self._orders)

    def __contains__(self, order_id: object) -> bool:
        return order_id in self._orders

    def order_ids(self) -> KeysView[int]:
        """Ids of every resting order: a live view, valid for the life of the book."""
        return self._orders.keys()

    def order(self, order_id: int) -> tuple[Side, int, int]:
        """``(side, price, qty)`` of a resting order."""
        entry = self._orders.get(order_id)
        if entry is None:
            raise UnknownOrder(order_id)
        side, price = entry
        level = (self._bids if side > 0 else self._asks)[price]
        return Side(side), price, level.orders[order_id]

    @property
    def best_bid(self) -> int | None:
        return self._bid_keys[-1] if self._bid_keys else None

    @property
    def best_ask(self) -> int | None:
        return -self._ask_keys[-1] if self._ask_keys else None

    def best_prices(self) -> tuple[int | None, int | None]:
        """``(best bid, best ask)`` in one call (``None`` for an empty side)."""
        bid_keys, ask_keys = self._bid_keys, self._ask_keys
        return (bid_keys[-1] if bid_keys else None, -ask_keys[-1] if ask_keys else None)

    def best(self, side: int) -> Level | None:
        if side > 0:
            return self._bids[self._bid_keys[-1]] if self._bid_keys else None
        return self._asks[-self._ask_keys[-1]] if self._ask_keys else None

    def touch(self) -> tuple[int, int, int, int, int, int]:
        """``(best bid, shares there, best ask, shares there, bid levels, ask levels)`` in one
        call: the touch and how many levels stand on each side. An empty side reads as
        ``EMPTY_BID_PRICE`` / ``EMPTY_ASK_PRICE`` with 0 shares and 0 levels."""
        bid_keys, ask_keys = self._bid_keys, self._ask_keys
        if bid_keys:
            bid = bid_keys[-1]
            bid_qty = self._bids[bid].qty
        else:
            bid, bid_qty = EMPTY_BID_PRICE, 0
        if ask_keys:
            ask = -ask_keys[-1]
            ask_qty = self._asks[ask].qty
        else:
            ask, ask_qty = EMPTY_ASK_PRICE, 0
        return bid, bid_qty, ask, ask_qty, len(bid_keys), len(ask_keys)

    def touch_qty(self) -> tuple[int, int]:
        """Shares resting at the best bid and at the best ask (0 for an empty side)."""
        bid = self._bids[self._bid_keys[-1]].qty if self._bid_keys else 0
        ask = self._asks[-self._ask_keys[-1]].qty if self._ask_keys else 0
        return bid, ask

    def level(self, side: int, price: int) -> Level | None:
        return (self._bids if side > 0 else self._asks).get(price)

    def level_count(self, side: int = 0) -> int:
        """Price levels on one side; ``side=0``: on both sides together."""
        if not side:
            return len(self._bid_keys) + len(self._ask_keys)
        return len(self._bid_keys if side > 0 else self._ask_keys)

    def deepest_price(self, side: int) -> int | None:
        """The price of a side's level furthest from the touch (``None``: the side is empty)."""
        if side > 0:
            return self._bid_keys[0] if self._bid_keys else None
        return -self._ask_keys[0] if self._ask_keys else None

    def newest_order(self, side: int, price: int) -> tuple[int, int] | None:
        """``(order_id, qty)`` of the most recent order resting at a price (``None``: no level)."""
        level = (self._bids if side > 0 else self._asks).get(price)
        if level is None:
            return None
        order_id = next(reversed(level.orders))
        return order_id, level.orders[order_id]

    def anonymous_orders(self, side: int, price: int) -> list[int]:
        """Ids of the anonymous orders (negative ids) resting at a price, oldest first."""
        level = (self._bids if side > 0 else self._asks).get(price)
        return [o for o in level.orders if o < 0] if level is not None else []

    def orders_at(self, side: int, price: int) -> list[tuple[int, int]]:
        """``(order_id, qty)`` of every order resting at a price, oldest first (a copy)."""
        level = (self._bids if side > 0 else self._asks).get(price)
        return list(level.orders.items()) if level is not None else []

    def prices(self, side: int) -> list[int]:
        """Prices of one side, best first."""
        if side > 0:
            return self._bid_keys[::-1]
        return [-k for k in reversed(self._ask_keys)]

    def iter_levels(self, side: int) -> Iterator[Level]:
        """Levels of one side, best first."""
        if side > 0:
            levels = self._bids
            for key in reversed(self._bid_keys):
                yield levels[key]
        else:
            levels = self._asks
            for key in reversed(self._ask_keys):
                yield levels[-key]

    def depth(self, side: int, k: int) -> list[tuple[int, int]]:
        """The best ``k`` levels of one side as ``(price, qty)``, best first."""
        if side > 0:
            levels, keys, sign = self._bids, self._bid_keys, 1
        else:
            levels, keys, sign = self._asks, self._ask_keys, -1
        out = []
        for key in keys[: -k - 1 : -1] if k else ():
            price = sign * key
            out.append((price, levels[price].qty))
        return out

    def volume(self, side: int) -> int:
        levels = self._bids if side > 0 else self._asks
        return sum(level.qty for level in levels.values())

    @property
    def mid(self) -> float | None:
        if not self._bid_keys or not self._ask_keys:
            return None
        return (self._bid_keys[-1] - self._ask_keys[-1]) / 2

    @property
    def spread(self) -> int | None:
        if not self._bid_keys or not self._ask_keys:
            return None
        return -self._ask_keys[-1] - self._bid_keys[-1]

    def snapshot(self, k: int) -> np.ndarray:
        """A LOBSTER-style row: ask_px_1, ask_sz_1, bid_px_1, bid_sz_1, ... for ``k`` levels."""
        row = np.empty(4 * k, dtype=np.int64)
        row[0::4] = EMPTY_ASK_PRICE
        row[2::4] = EMPTY_BID_PRICE
        row[1::4] = 0
        row[3::4] = 0
        for i, (price, qty) in enumerate(self.depth(Side.ASK, k)):
            row[4 * i] = price
            row[4 * i + 1] = qty
        for i, (price, qty) in enumerate(self.depth(Side.BID, k)):
            row[4 * i + 2] = price
            row[4 * i + 3] = qty
        return row

    def __repr__(self) -> str:
        return (
            f"OrderBook({self.symbol!r}, bid={self.best_bid}, ask={self.best_ask}, "
            f"orders={len(self._orders)})"
        )


def check_integrity(book: OrderBook, *, allow_crossed: bool = False) -> list[IntegrityProblem]:
    """Every inconsistency in the book, as data (an empty list means the book is sound)."""
    problems: list[IntegrityProblem] = []
    bid, ask = book.best_bid, book.best_ask
    if not allow_crossed and bid is not None and ask is not None and bid >= ask:
        problems.append(OrdersCrossed(bid, ask))
    seen = 0
    for side in (Side.BID, Side.ASK):
        for level in book.iter_levels(side):
            total = sum(level.orders.values())
            if total != level.qty or total <= 0 or any(q <= 0 for q in level.orders.values()):
                problems.append(LevelQuantityMismatch(side, level.price, level.qty, total))
            for order_id in level.orders:
                seen += 1
                if book._orders.get(order_id) != (int(side), level.price):
                    problems.append(OrderIndexMismatch(order_id, "level holds an unindexed order"))
        prices = book.prices(side)
        ordered = sorted(prices, reverse=side is Side.BID)
        if prices != ordered or len(set(prices)) != len(prices):
            problems.append(OrderIndexMismatch(0, f"{side.name} price keys out of order"))
    if seen != len(book):
        problems.append(OrderIndexMismatch(0, f"index has {len(book)} orders, levels {seen}"))
    return problems

"""The MarS order stream: what the order model reads and writes.

One entry per order, of three types (paper, App. B): ``ASK`` and ``BID`` limit orders (passive or
aggressive; an aggressive order is marketable on arrival and trades in the clearing house) and
``CANCEL`` (removes quantity from a resting order at a price). Columnar, integer units.

``from_lobster`` (``convert_messages`` for the counts) converts a LOBSTER feed into this stream; see its docstring for how aggressive
orders are reconstructed from executions.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from simulator.lobster import LobsterDay, Messages


class OrderType(IntEnum):
    ASK = 0
    BID = 1
    CANCEL = 2


@dataclass(slots=True)
class OrderStream:
    """Columnar MarS orders (all arrays have one entry per order)."""

    ts_ns: np.ndarray  # int64 arrival time
    type: np.ndarray  # int8 OrderType
    side: np.ndarray  # int8 Side of the order (for CANCEL: side of the cancelled order)
    price: np.ndarray  # int64 limit price (CANCEL: price of the cancelled order)
    qty: np.ndarray  # int64 shares (CANCEL: shares removed)
    order_id: (
        np.ndarray
    )  # int64 venue id (limit: the id that rests; CANCEL: the id cancelled; 0 if none)
    aggressive: np.ndarray  # bool: marketable on arrival
    # int64 index of the first feed message this order accounts for; the book just before the
    # order is the feed's book after message source_row - 1 (LOBSTER orderbook row source_row - 1)
    source_row: np.ndarray

    def __len__(self) -> int:
        return len(self.ts_ns)

    def take(self, index: slice | np.ndarray) -> OrderStream:
        """The orders at ``index`` (a slice or an index/mask array)."""
        return OrderStream(
            ts_ns=self.ts_ns[index],
            type=self.type[index],
            side=self.side[index],
            price=self.price[index],
            qty=self.qty[index],
            order_id=self.order_id[index],
            aggressive=self.aggressive[index],
            source_row=self.source_row[index],
        )


@dataclass(slots=True)
class ConversionStats:
    limit_orders: int = 0
    cancels: int = 0
    aggressive_orders: int = 0
    executions_merged: int = 0
    residuals_merged: int = 0
    hidden_executions_skipped: int = 0
    other_skipped: int = 0


def intervals_ns(ts_ns, prev_ts_ns: int | None = None) -> np.ndarray:
    """Nanoseconds from each order to the one before it (the first order: from ``prev_ts_ns``,
    or 0 without it), never negative: the interval field of the MarS order token."""
    ts = np.asarray(ts_ns, np.int64)
    first = ts[:1] if prev_ts_ns is None else np.array([prev_ts_ns], np.int64)
    return np.maximum(np.diff(ts, prepend=first), 0)


def convert_messages(messages: Messages) -> tuple[OrderStream, ConversionStats]:
    """Convert a LOBSTER message stream into MarS orders.

    - Type 1 (new limit order) -> ``BID``/``ASK``, passive.
    - Types 2 and 3 (partial cancel, delete) -> ``CANCEL`` of the given quantity.
    - Type 4 (visible executions) that share a timestamp and the resting side are the fills of
      one incoming order: they become one aggressive order on the opposite side, priced at the
      worst level it reached, sized at the sum of the fills. If the next message at the same
      timestamp adds an order on the aggressor's side at a price at least as aggressive as that
      level, it is the unfilled rest of the same marketable limit order: it is merged in (price
      and id of the resting rest, quantity = fills + rest).
    - Type 5 (hidden executions) trade against liquidity no book shows; they are not orders a
      visible book can replay and are skipped (counted). Types 6 and 7 carry no order.
    """
    kind = messages.kind.tolist()
    ts = messages.ts_ns.tolist()
    oid = messages.order_id.tolist()
    qty = messages.qty.tolist()
    price = messages.price.tolist()
    side = messages.side.tolist()
    n = len(kind)
    stats = ConversionStats()
    out_ts: list[int] = []
    out_type: list[int] = []
    out_side: list[int] = []
    out_price: list[int] = []
    out_qty: list[int] = []
    out_id: list[int] = []
    out_aggr: list[bool] = []
    out_row: list[int] = []

    def emit(t: int, typ: int, s: int, p: int, q: int, o: int, aggr: bool, row: int) -> None:
        out_ts.append(t)
        out_type.append(typ)
        out_side.append(s)
        out_price.append(p)
        out_qty.append(q)
        out_id.append(o)
        out_aggr.append(aggr)
        out_row.append(row)

    i = 0
    while i < n:
        k = kind[i]
        if k == 1:
            emit(
                ts[i],
                OrderType.BID if side[i] > 0 else OrderType.ASK,
                side[i],
                price[i],
                qty[i],
                oid[i],
                False,
                i,
            )
            stats.limit_orders += 1
            i += 1
        elif k == 2 or k == 3:
            emit(ts[i], OrderType.CANCEL, side[i], price[i], qty[i], oid[i], False, i)
            stats.cancels += 1
            i += 1
        elif k == 4:
            resting = side[i]
            aggressor = -resting
            t = ts[i]
            j = i
            total = 0
            worst = price[i]
            while j < n and kind[j] == 4 and ts[j] == t and side[j] == resting:
                total += qty[j]
                # A buy aggressor lifts asks upwards; a sell aggressor hits bids downwards.
                worst = max(worst, price[j]) if aggressor > 0 else min(worst, price[j])
                j += 1
            stats.executions_merged += j - i
            order_price, order_qty, order_id = worst, total, 0
            if (
                j < n
                and kind[j] == 1
                and ts[j] == t
                and side[j] == aggressor
                and (price[j] >= worst if aggressor > 0 else price[j] <= worst)
            ):
                order_price, order_qty, order_id = price[j], total + qty[j], oid[j]
                stats.residuals_merged += 1
                j += 1
            emit(
                t,
                OrderType.BID if aggressor > 0 else OrderType.ASK,
                aggressor,
                order_price,
                order_qty,
                order_id,
                True,
                i,
            )
            stats.aggressive_orders += 1
            i = j
        elif k == 5:
            stats.hidden_executions_skipped += 1
            i += 1
        else:
            stats.other_skipped += 1
            i += 1
    stream = OrderStream(
        ts_ns=np.asarray(out_ts, dtype=np.int64),
        type=np.asarray(out_type, dtype=np.int8),
        side=np.asarray(out_side, dtype=np.int8),
        price=np.asarray(out_price, dtype=np.int64),
        qty=np.asarray(out_qty, dtype=np.int64),
        order_id=np.asarray(out_id, dtype=np.int64),
        aggressive=np.asarray(out_aggr, dtype=bool),
        source_row=np.asarray(out_row, dtype=np.int64),
    )
    return stream, stats


def from_lobster(day: LobsterDay | Messages) -> OrderStream:
    """The MarS order stream of a LOBSTER day (see ``convert_messages``)."""
    messages = day.messages if isinstance(day, LobsterDay) else day
    return convert_messages(messages)[0]

"""How faithfully the clearing house reproduces a real book when fed the real order stream.

The MarS stream of a LOBSTER day (``orderstream.from_lobster``) is submitted order by order to a
``ClearingHouse`` seeded with the opening book. After each order the simulated book is compared
with the real one at that point: order ``j + 1`` starts at feed message ``source_row[j + 1]``,
so the real book after order ``j`` is orderbook row ``source_row[j + 1] - 1`` (the last row for
the last order). Aggressive orders trade in the simulated book, so the comparison measures the
matching engine and the stream reconstruction together, not a copy of the feed.

Policies (all counted in ``FidelityReport``):

- **Seed.** The book just before the first order, one anonymous order per level, exactly as
  ``replay.seed_from_first_row`` does.
- **Aggressive orders without a resting id** are submitted IOC: the venue printed no resting
  rest for them, so whatever the simulated book cannot fill at the order's limit is dropped
  rather than resting as a phantom order (``aggressive_tif`` switches this to GTC).
- **Cancels of ids the simulated book does not hold** (orders resting before the open, entering
  from depth, or already consumed by a simulated trade that did not happen in reality) are
  resolved against anonymous liquidity at the cancel's side and price, oldest first, like
  ``replay.FeedReplayer`` does; what cannot be found is ``unresolved_cancel_qty``.
- **Depth.** A level-N file has no message for liquidity beyond its N levels. At each
  checkpoint the book is reconciled the way ``replay.check_lobster`` does: levels beyond N are
  dropped, and liquidity that appears beyond the deepest level the book knows is added back as
  anonymous orders (``entered_from_depth``). Nothing inside the known depth is ever overwritten.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import asdict, dataclass, field

from simulator.book import EMPTY_ASK_PRICE, EMPTY_BID_PRICE, OrderBook
from simulator.lobster import LobsterDay
from simulator.matching import ClearingHouse, MatchingRules, OrderStatus, TimeInForce
from simulator.orderstream import OrderStream, OrderType
from simulator.replay import FeedReplayer, seed_levels_before

_CANCEL = int(OrderType.CANCEL)
_REJECTED = OrderStatus.REJECTED


@dataclass(slots=True)
class FidelityReport:
    """Simulated vs real book over one replayed order stream (floats only here, in metrics)."""

    instrument: str
    levels: int
    orders: int = 0
    checkpoints: int = 0
    best_price_rows: int = 0  # best bid and best ask prices identical
    top_n_rows: int = 0  # all N levels identical, prices and sizes
    top_n_price_rows: int = 0  # all N level prices identical (sizes may differ)
    mid_error_ticks_sum: float = 0.0
    mid_rows: int = 0  # checkpoints where both books have a mid
    sim_trades: int = 0
    sim_traded_qty: int = 0
    real_executions: int = 0  # visible executions (type 4) in the replayed span
    real_executed_qty: int = 0
    real_hidden_executions: int = 0  # type 5: liquidity no book shows, not in the stream
    real_hidden_qty: int = 0
    aggressive_orders: int = 0
    aggressive_without_fill: int = 0
    passive_orders_that_traded: int = 0  # marketable in the simulated book but not in reality
    unknown_cancels: int = 0
    unresolved_cancel_qty: int = 0
    overcancel_qty: int = 0  # a cancel larger than what the simulated order had left
    seeded_levels: int = 0
    entered_from_depth: int = 0
    dropped_beyond_depth: int = 0
    rejects: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    # first checkpoints whose top-N differs: order index, orderbook row, real and simulated rows
    first_mismatches: list[dict[str, object]] = field(default_factory=list)

    @property
    def best_price_match(self) -> float:
        return self.best_price_rows / self.checkpoints if self.checkpoints else 1.0

    @property
    def top_n_match(self) -> float:
        return self.top_n_rows / self.checkpoints if self.checkpoints else 1.0

    @property
    def top_n_price_match(self) -> float:
        return self.top_n_price_rows / self.checkpoints if self.checkpoints else 1.0

    @property
    def mean_abs_mid_error_ticks(self) -> float | None:
        return self.mid_error_ticks_sum / self.mid_rows if self.mid_rows else None

    def as_dict(self) -> dict[str, object]:
        out = asdict(self)
        out.update(
            best_price_match=self.best_price_match,
            top_n_match=self.top_n_match,
            top_n_price_match=self.top_n_price_match,
            mean_abs_mid_error_ticks=self.mean_abs_mid_error_ticks,
            trade_count_ratio=(
                self.sim_trades / self.real_executions if self.real_executions else None
            ),
            traded_qty_ratio=(
                self.sim_traded_qty / self.real_executed_qty if self.real_executed_qty else None
            ),
            orders_per_s=self.orders / self.seconds if self.seconds > 0 else None,
        )
        return out


def _sim_row(book: OrderBook, levels: int) -> list[int]:
    """The book as a LOBSTER row (list form: cheaper than ``snapshot`` per checkpoint)."""
    row = [EMPTY_ASK_PRICE, 0, EMPTY_BID_PRICE, 0] * levels
    for i, (price, qty) in enumerate(book.depth(-1, levels)):
        row[4 * i] = price
        row[4 * i + 1] = qty
    for i, (price, qty) in enumerate(book.depth(1, levels)):
        row[4 * i + 2] = price
        row[4 * i + 3] = qty
    return row


def measure_fidelity(
    day: LobsterDay,
    stream: OrderStream,
    *,
    rules: MatchingRules | None = None,
    max_orders: int | None = None,
    aggressive_tif: TimeInForce = TimeInForce.IOC,
    keep_mismatches: int = 3,
) -> FidelityReport:
    """Replay ``stream`` (converted from ``day``) through a clearing house; compare every step.

    ``rules`` default to the instrument's with the price band off: the venue already accepted
    every order of a real stream, so a band would only reject real orders.
    """
    if day.orderbook is None:
        raise ValueError("fidelity needs the orderbook file")
    levels = day.levels
    instrument = day.instrument
    if rules is None:
        rules = MatchingRules.from_instrument(instrument, price_band_bps=None)
    n = len(stream) if max_orders is None else min(max_orders, len(stream))
    rows = day.orderbook
    src = stream.source_row[:n].tolist()
    last_row = len(rows) - 1
    report = FidelityReport(day.symbol, levels, orders=n)
    if n == 0:
        return report

    # Checkpoint rows: the real book after order j is the row before order j + 1's first message.
    check_rows = [s - 1 for s in src[1:]]
    end_row = (int(stream.source_row[n]) - 1) if n < len(stream) else last_row
    check_rows.append(end_row)

    # Real executions inside the replayed span of messages.
    m = day.messages
    first, stop = src[0], end_row + 1
    kinds = m.kind[first:stop]
    qtys = m.qty[first:stop]
    report.real_executions = int((kinds == 4).sum())
    report.real_executed_qty = int(qtys[kinds == 4].sum())
    report.real_hidden_executions = int((kinds == 5).sum())
    report.real_hidden_qty = int(qtys[kinds == 5].sum())

    book = OrderBook(day.symbol)
    depth = FeedReplayer(book)  # seeding and depth reconciliation, same policy as check_lobster
    if first == 0:
        bids, asks = seed_levels_before(
            rows[0], int(m.kind[0]), int(m.qty[0]), int(m.price[0]), int(m.side[0])
        )
    else:
        bids, asks = seed_levels_before(rows[first - 1], 0, 0, 0, 1)
    depth.seed(bids, asks)
    ch = ClearingHouse(book, rules)
    submit = ch.submit_limit
    cancel = ch.cancel
    tick = rules.tick_size
    width = 4 * levels
    rejects: Counter[str] = Counter()
    start = time.perf_counter()

    columns = zip(
        stream.type[:n].tolist(),
        stream.side[:n].tolist(),
        stream.price[:n].tolist(),
        stream.qty[:n].tolist(),
        stream.order_id[:n].tolist(),
        stream.ts_ns[:n].tolist(),
        stream.aggressive[:n].tolist(),
        check_rows,
        strict=True,
    )
    for j, (typ, side, price, qty, order_id, ts, aggressive, row_index) in enumerate(columns):
        if typ == _CANCEL:
            if order_id in book:
                left = book.order(order_id)[2]
                if qty > left:
                    report.overcancel_qty += qty - left
                res = cancel(order_id, qty, ts)
            else:
                report.unknown_cancels += 1
                report.unresolved_cancel_qty += _cancel_anonymous(ch, side, price, qty, ts)
                res = None
        else:
            if aggressive:
                report.aggressive_orders += 1
                tif = aggressive_tif if order_id == 0 else TimeInForce.GTC
            else:
                tif = TimeInForce.GTC
            res = submit(side, price, qty, ts, order_id or None, tif)
            if aggressive and not res.filled_qty:
                report.aggressive_without_fill += 1
            elif not aggressive and res.trades:
                report.passive_orders_that_traded += 1
        if res is not None and res.status is _REJECTED:
            rejects[res.reject.name if res.reject is not None else "?"] += 1

        real = rows[row_index]
        depth.reconcile_depth(real, levels)
        real_list = real.tolist()
        sim = _sim_row(book, levels)
        report.checkpoints += 1
        same = sim == real_list[:width]
        if same:
            report.top_n_rows += 1
        elif len(report.first_mismatches) < keep_mismatches:
            report.first_mismatches.append(
                {"order": j, "row": row_index, "real": real_list[:width], "sim": sim}
            )
        if sim[0] == real_list[0] and sim[2] == real_list[2]:
            report.best_price_rows += 1
        if sim[0::2] == real_list[0:width:2]:
            report.top_n_price_rows += 1
        if (
            sim[0] != EMPTY_ASK_PRICE
            and sim[2] != EMPTY_BID_PRICE
            and real_list[0] != EMPTY_ASK_PRICE
            and real_list[2] != EMPTY_BID_PRICE
        ):
            report.mid_rows += 1
            report.mid_error_ticks_sum += abs((sim[0] + sim[2]) - (real_list[0] + real_list[2])) / (
                2 * tick
            )

    report.seconds = time.perf_counter() - start
    report.sim_trades = ch.trades
    report.sim_traded_qty = ch.traded_qty
    report.seeded_levels = depth.stats.seeded_levels
    report.entered_from_depth = depth.stats.entered_from_depth
    report.dropped_beyond_depth = depth.stats.dropped_beyond_depth
    report.rejects = dict(rejects)
    return report


def _cancel_anonymous(ch: ClearingHouse, side: int, price: int, qty: int, ts_ns: int) -> int:
    """Cancel ``qty`` from anonymous (book-minted) orders at a level, oldest first.

    Returns the quantity that could not be found there.
    """
    resting_orders = ch.book.orders_at(side, price)
    if not resting_orders:
        return qty
    for order_id, resting in resting_orders:
        if qty <= 0:
            break
        if order_id >= 0:
            continue
        take = min(qty, resting)
        ch.cancel(order_id, take, ts_ns)
        qty -= take
    return max(qty, 0)

"""The simulated clearing house: a continuous double auction with price-time priority.

``MatchingRules`` is the paper's MTCH_R: what a venue checks and how it matches. A
``ClearingHouse`` owns one ``OrderBook`` and is its only writer during a simulation: incoming
orders are validated, marketable orders sweep the opposite side level by level at the resting
prices (FIFO within a level), and what is left rests (GTC) or is cancelled (IOC, market orders).
FOK orders trade in full or not at all.

A rejected order is not an error: the model may sample an off-tick price or cancel an order that
was just filled. Rejections come back as data in ``OrderResult.reject`` (and are counted); only
programming errors (a book that lost its integrity) raise.

The house changes the book only through its public methods (``add``, ``remove``, ``take``), so
the book's invariants stay the book's. Rollouts push millions of mostly passive orders and
cancels through here: a passive order costs one ``add_passive`` call, a cancel one
``remove``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum, IntEnum

from simulator.book import OrderBook
from simulator.types import Instrument, Side, Trade


class TimeInForce(IntEnum):
    """How long the unfilled part of a limit order lives. ``GTC`` is 0 so it tests false."""

    GTC = 0  # rest until cancelled
    IOC = 1  # trade what is marketable now, cancel the rest
    FOK = 2  # trade the whole quantity now or nothing


class OrderStatus(IntEnum):
    ACCEPTED = 0  # rests in full, nothing traded
    PARTIALLY_FILLED = 1  # traded part; the rest rests (GTC) or was cancelled (IOC, market)
    FILLED = 2  # traded in full
    CANCELLED = 3  # a cancel succeeded, or an IOC order found nothing to trade
    REJECTED = 4  # refused by validation; the book is unchanged


class RejectReason(IntEnum):
    NON_POSITIVE_QTY = 1
    OFF_TICK = 2
    OFF_LOT = 3
    OUTSIDE_PRICE_BAND = 4
    UNKNOWN_ORDER = 5
    DUPLICATE_ORDER_ID = 6
    MARKET_ORDERS_DISABLED = 7
    NO_LIQUIDITY = 8
    FOK_NOT_FILLABLE = 9
    INVALID_SIDE = 10
    NON_POSITIVE_PRICE = 11


class BandReference(Enum):
    """The price a limit price is banded around."""

    LAST_MID = "last_mid"  # mid of the book when the order arrives (last trade if one-sided)
    LAST_TRADE = "last_trade"  # last simulated trade price (mid until the first trade)


class SelfTradePrevention(Enum):
    OFF = "off"
    CANCEL_RESTING = "cancel_resting"  # the resting order of the same owner is cancelled


@dataclass(frozen=True, slots=True)
class MatchingRules:
    """MTCH_R: the rules of the continuous double auction (price-time priority).

    Prices and quantities are in the book's integer units: ``tick_size`` price units per tick,
    ``lot_size`` shares per lot. ``max_sweep_levels`` protects market orders from sweeping a thin
    book: a market order trades at no more than that many price levels and the rest is
    cancelled (``None``: unlimited).
    """

    tick_size: int = 1
    lot_size: int = 1
    price_band_bps: int | None = None
    band_reference: BandReference = BandReference.LAST_MID
    allow_market_orders: bool = True
    max_sweep_levels: int | None = None
    self_trade_prevention: SelfTradePrevention = SelfTradePrevention.OFF
    default_tif: TimeInForce = TimeInForce.GTC

    def __post_init__(self) -> None:
        if self.tick_size <= 0 or self.lot_size <= 0:
            raise ValueError("tick_size and lot_size must be positive")
        if self.price_band_bps is not None and self.price_band_bps <= 0:
            raise ValueError("price_band_bps must be positive or None")
        if self.max_sweep_levels is not None and self.max_sweep_levels <= 0:
            raise ValueError("max_sweep_levels must be positive or None")

    @classmethod
    def from_instrument(cls, instrument: Instrument, **overrides: object) -> MatchingRules:
        """The rules of an instrument's listing; keyword arguments override single fields."""
        base: dict[str, object] = {
            "tick_size": instrument.tick_size,
            "lot_size": instrument.lot_size,
            "price_band_bps": instrument.price_band_bps,
        }
        base.update(overrides)
        return cls(**base)  # type: ignore[arg-type]


@dataclass(slots=True)
class OrderResult:
    """What happened to one request. ``trades`` are in execution order (best price first)."""

    status: OrderStatus
    order_id: int
    filled_qty: int = 0
    resting_qty: int = 0  # what the order still has in the book afterwards
    trades: list[Trade] = field(default_factory=list)
    reject: RejectReason | None = None
    cancelled_qty: int = 0  # removed by a cancel, or the unfilled part of an IOC/market order

    @property
    def ok(self) -> bool:
        return self.status is not OrderStatus.REJECTED


_ACCEPTED = OrderStatus.ACCEPTED
_PARTIAL = OrderStatus.PARTIALLY_FILLED
_FILLED = OrderStatus.FILLED
_CANCELLED = OrderStatus.CANCELLED
_REJECTED = OrderStatus.REJECTED
_BID = Side.BID
_ASK = Side.ASK


class ClearingHouse:
    """Validates and matches orders against one ``OrderBook`` under ``MatchingRules``.

    Counters (``accepted``, ``rejected``, ``cancels``, ``trades``, ``traded_qty``) are cumulative
    and carried over by ``fork``. Order ids left as ``None`` are minted by the book (negative,
    fork-local), so a rollout never collides with venue ids or with a sibling rollout.

    An optional keyword ``owner`` (non-zero) on orders enables self-trade prevention; owner 0
    means anonymous and never self-trades.
    """

    __slots__ = (
        "_band_bps",
        "_band_on_trade",
        "_book",
        "_ids",
        "_last_trade_price",
        "_lot",
        "_owners",
        "_rules",
        "_stp",
        "_tick",
        "_tif",
        "accepted",
        "cancels",
        "rejected",
        "traded_qty",
        "trades",
    )

    def __init__(self, book: OrderBook, rules: MatchingRules | None = None) -> None:
        self._book = book
        self._ids = book.order_ids()
        self._rules = rules if rules is not None else MatchingRules()
        self._init_rule_cache()
        self._owners: dict[int, int] = {}  # order id -> owner, only for owned resting orders
        self._last_trade_price: int | None = None
        self.accepted = 0
        self.rejected = 0
        self.cancels = 0
        self.trades = 0
        self.traded_qty = 0

    def _init_rule_cache(self) -> None:
        # Plain attributes: reading a frozen dataclass field and comparing enums per order is
        # measurable at 200k orders/s.
        rules = self._rules
        self._tick = rules.tick_size
        self._lot = rules.lot_size
        self._band_bps = rules.price_band_bps
        self._band_on_trade = rules.band_reference is BandReference.LAST_TRADE
        self._stp = rules.self_trade_prevention is SelfTradePrevention.CANCEL_RESTING
        self._tif = rules.default_tif

    @classmethod
    def for_instrument(cls, instrument: Instrument, book: OrderBook | None = None) -> ClearingHouse:
        return cls(
            book if book is not None else OrderBook(instrument.symbol),
            MatchingRules.from_instrument(instrument),
        )

    # ------------------------------------------------------------------ state
    @property
    def book(self) -> OrderBook:
        return self._book

    @property
    def rules(self) -> MatchingRules:
        return self._rules

    @property
    def last_trade_price(self) -> int | None:
        """Price of the latest simulated trade (``None`` before the first)."""
        return self._last_trade_price

    def counters(self) -> dict[str, int]:
        return {
            "accepted": self.accepted,
            "rejected": self.rejected,
            "cancels": self.cancels,
            "trades": self.trades,
            "traded_qty": self.traded_qty,
        }

    def fork(self) -> ClearingHouse:
        """An independent clearing house on a fork of the book (own id counter, same rules)."""
        ch = ClearingHouse.__new__(ClearingHouse)
        ch._book = self._book.fork()
        ch._ids = ch._book.order_ids()
        ch._rules = self._rules
        ch._init_rule_cache()
        ch._owners = self._owners.copy()
        ch._last_trade_price = self._last_trade_price
        ch.accepted = self.accepted
        ch.rejected = self.rejected
        ch.cancels = self.cancels
        ch.trades = self.trades
        ch.traded_qty = self.traded_qty
        return ch

    # ------------------------------------------------------------------ orders
    def _reject(self, reason: RejectReason, order_id: int = 0) -> OrderResult:
        self.rejected += 1
        return OrderResult(_REJECTED, order_id, 0, 0, [], reason)

    def submit_limit(
        self,
        side: int,
        price: int,
        qty: int,
        ts_ns: int = 0,
        order_id: int | None = None,
        tif: TimeInForce | None = None,
        *,
        owner: int = 0,
    ) -> OrderResult:
        """A limit order: trade what is marketable, then rest (GTC) or cancel (IOC) the rest.

        ``tif`` defaults to the rules' ``default_tif`` (GTC unless configured otherwise).
        """
        if qty <= 0:
            return self._reject(RejectReason.NON_POSITIVE_QTY, order_id or 0)
        if side != 1 and side != -1:
            return self._reject(RejectReason.INVALID_SIDE, order_id or 0)
        if price <= 0:
            return self._reject(RejectReason.NON_POSITIVE_PRICE, order_id or 0)
        if price % self._tick:
            return self._reject(RejectReason.OFF_TICK, order_id or 0)
        if qty % self._lot:
            return self._reject(RejectReason.OFF_LOT, order_id or 0)
        book = self._book
        band = self._band_bps
        if band is not None:
            # Inline, not a helper: a call per order is measurable in rollouts.
            ref: float | None = self._last_trade_price
            if not (self._band_on_trade and ref is not None):
                bid, ask = book.best_prices()
                if bid is not None and ask is not None:
                    ref = (bid + ask) / 2  # the mid; the last trade when a side is empty
            # No reference yet (or a non-positive one): nothing to band around.
            if ref is not None and ref > 0 and abs(price - ref) * 10_000 > band * ref:
                return self._reject(RejectReason.OUTSIDE_PRICE_BAND, order_id or 0)
        if order_id is None:
            order_id = book.mint_id()
        elif order_id in self._ids:  # the book's live id view: no Python call per order
            return self._reject(RejectReason.DUPLICATE_ORDER_ID, order_id)
        if tif is None:
            tif = self._tif
        if not tif:
            # GTC, the common case: one call rests a passive order, or refuses a marketable one.
            if book.add_passive(order_id, side, price, qty):
                if owner:
                    self._owners[order_id] = owner
                self.accepted += 1
                return OrderResult(_ACCEPTED, order_id, 0, qty)
        else:
            best = book.best_ask if side > 0 else book.best_bid
            if best is None or (best > price if side > 0 else best < price):
                if tif == TimeInForce.FOK:
                    return self._reject(RejectReason.FOK_NOT_FILLABLE, order_id)
                self.accepted += 1  # IOC with nothing to trade
                return OrderResult(_CANCELLED, order_id, 0, 0, [], None, qty)
        if tif == TimeInForce.FOK and self._available(side, price, qty, owner) < qty:
            return self._reject(RejectReason.FOK_NOT_FILLABLE, order_id)
        self.accepted += 1
        trades: list[Trade] = []
        filled = self._match(side, price, qty, ts_ns, order_id, None, owner, trades)
        left = qty - filled
        if not left:
            return OrderResult(_FILLED, order_id, filled, 0, trades)
        if tif:  # IOC: the rest is cancelled (FOK cannot get here with a rest)
            status = _PARTIAL if filled else _CANCELLED
            return OrderResult(status, order_id, filled, 0, trades, None, left)
        book.add(order_id, side, price, left)
        if owner:
            self._owners[order_id] = owner
        return OrderResult(_PARTIAL if filled else _ACCEPTED, order_id, filled, left, trades)

    def submit_market(self, side: int, qty: int, ts_ns: int = 0, *, owner: int = 0) -> OrderResult:
        """A market order: sweep the opposite side (at most ``max_sweep_levels`` levels), never
        rest; what cannot trade is cancelled."""
        if not self._rules.allow_market_orders:
            return self._reject(RejectReason.MARKET_ORDERS_DISABLED)
        if qty <= 0:
            return self._reject(RejectReason.NON_POSITIVE_QTY)
        if side != 1 and side != -1:
            return self._reject(RejectReason.INVALID_SIDE)
        if qty % self._lot:
            return self._reject(RejectReason.OFF_LOT)
        book = self._book
        if not book.level_count(-side):
            return self._reject(RejectReason.NO_LIQUIDITY)
        order_id = book.mint_id()
        self.accepted += 1
        trades: list[Trade] = []
        filled = self._match(
            side, None, qty, ts_ns, order_id, self._rules.max_sweep_levels, owner, trades
        )
        left = qty - filled
        if not left:
            return OrderResult(_FILLED, order_id, filled, 0, trades)
        status = _PARTIAL if filled else _CANCELLED
        return OrderResult(status, order_id, filled, 0, trades, None, left)

    def cancel(self, order_id: int, qty: int | None = None, ts_ns: int = 0) -> OrderResult:
        """Cancel a resting order, in full or (``qty`` given) in part.

        A partial cancel keeps the order's time priority; cancelling at least what is left
        removes the order. ``ts_ns`` is taken for symmetry with the order calls (the book keeps
        no timestamps).
        """
        book = self._book
        if qty is not None and qty <= 0:
            # An unknown id is the first reason, as for a positive size.
            if order_id not in self._ids:
                return self._reject(RejectReason.UNKNOWN_ORDER, order_id)
            return self._reject(RejectReason.NON_POSITIVE_QTY, order_id)
        resting = book.remove(order_id, qty)
        if not resting:
            return self._reject(RejectReason.UNKNOWN_ORDER, order_id)
        self.cancels += 1
        if qty is None or qty >= resting:
            if self._owners:
                self._owners.pop(order_id, None)
            return OrderResult(_CANCELLED, order_id, 0, 0, [], None, resting)
        return OrderResult(_CANCELLED, order_id, 0, resting - qty, [], None, qty)

    # ------------------------------------------------------------------ matching
    def _available(self, side: int, price: int | None, qty: int, owner: int) -> int:
        """Opposite-side quantity an order could trade now (stops counting at ``qty``)."""
        book = self._book
        stp_owner = owner if self._stp else 0
        owners = self._owners
        total = 0
        for level in book.iter_levels(-side):
            best = level.price
            if price is not None and (best > price if side > 0 else best < price):
                break
            if stp_owner:
                total += sum(q for o, q in level.orders.items() if owners.get(o) != stp_owner)
            else:
                total += level.qty
            if total >= qty:
                break
        return total

    def _match(
        self,
        side: int,
        price: int | None,
        qty: int,
        ts_ns: int,
        taker_id: int,
        max_levels: int | None,
        owner: int,
        trades: list[Trade],
    ) -> int:
        """Trade an incoming order against the opposite side; returns the quantity filled.

        The book's ``take`` walks the levels (best price first, oldest order first); with
        self-trade prevention on, the owner's own resting orders are cancelled on the way.
        """
        book = self._book
        owners = self._owners
        skip = None
        stp_cancelled: list[int] = []
        if owner and self._stp:

            def skip(maker_id: int) -> bool:
                if owners.get(maker_id) == owner:
                    stp_cancelled.append(maker_id)
                    return True
                return False

        fills = book.take(-side, qty, price, max_levels, skip)
        aggressor = _BID if side > 0 else _ASK
        append = trades.append
        filled = 0
        for maker_id, best, fill in fills:
            append(Trade(ts_ns, best, fill, aggressor, maker_id, taker_id))
            filled += fill
        if owners:
            for maker_id in stp_cancelled:
                owners.pop(maker_id, None)
            for maker_id, _, _ in fills:
                if maker_id not in self._ids:  # filled in full
                    owners.pop(maker_id, None)
        if filled:
            self._last_trade_price = trades[-1].price
            self.trades += len(trades)
            self.traded_qty += filled
        return filled

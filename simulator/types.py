"""Market-data vocabulary in integer units.

Prices are integers in the venue's price units (LOBSTER: USD x 10,000; one tick = 100 units),
quantities are integer shares, timestamps are integer nanoseconds since midnight (or any epoch
the feed uses consistently). Floats appear only in metrics, never in book state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum


class Side(IntEnum):
    """Side of a resting order. Values follow LOBSTER's direction column (1 buy, -1 sell)."""

    BID = 1
    ASK = -1

    @property
    def opposite(self) -> Side:
        return Side.ASK if self is Side.BID else Side.BID


class EventKind(IntEnum):
    """Market-by-order event kinds. Values follow LOBSTER's message type column."""

    ADD = 1  # new limit order rests in the book
    CANCEL = 2  # partial cancellation: qty is the amount removed
    DELETE = 3  # full deletion of the remaining quantity
    EXECUTE = 4  # execution of a visible resting order: qty is the amount traded
    EXECUTE_HIDDEN = 5  # execution against hidden liquidity (no book change)
    CROSS = 6  # auction cross trade (no book change)
    HALT = 7  # trading halt indicator (no book change)


@dataclass(frozen=True, slots=True)
class BookEvent:
    """One market-by-order event. ``qty`` is the quantity the event adds, removes or trades."""

    ts_ns: int
    kind: EventKind
    order_id: int
    qty: int
    price: int
    side: Side
    instrument: str = ""
    seq: int = 0  # position in the instrument's feed (ties on ts_ns keep feed order)
    synthetic: bool = False  # made by a reconciliation policy, not printed by the venue

    def __reduce__(self) -> tuple[type[BookEvent], tuple]:
        # A closed window goes to a scoring process with tens of thousands of events; the
        # dataclass default builds each one's state through ``fields()`` (measured in
        # docs/decisions/worker-group-and-scorers.md, "Sustained load").
        return BookEvent, (
            self.ts_ns,
            self.kind,
            self.order_id,
            self.qty,
            self.price,
            self.side,
            self.instrument,
            self.seq,
            self.synthetic,
        )


@dataclass(frozen=True, slots=True)
class Instrument:
    """What the matching rules need to know about a listed instrument.

    ``price_band_bps`` bounds a limit price around a reference price (the last mid or close);
    ``None`` disables the band.
    """

    symbol: str
    tick_size: int = 100  # price units per tick
    lot_size: int = 1  # quantity units per lot (shares, contracts, satoshi)
    price_scale: int = 10_000  # price units per currency unit
    price_band_bps: int | None = 1_000  # +-10% around the reference price
    # Venue facts carried with a converted feed (``simulator.normalized`` writes them beside
    # the events); the defaults describe the LOBSTER NASDAQ samples.
    venue: str = "NASDAQ"
    timezone: str = "America/New_York"  # where the session hours are read
    session_open: str = "09:30"  # HH:MM local; open == close "00:00"/"24:00" means 24 hours
    session_close: str = "16:00"
    qty_scale: int = 1  # quantity units per unit the venue quotes (BTC: 1e8 satoshi)
    # weekdays of the trade dates (``simulator.sessions``: a session across midnight trades for
    # the day it closes on, so CME's "Mon-Fri" opens Sunday evening)
    trade_days: str = "Mon-Fri"
    # price levels per side the feed shows (a LOBSTER level-N file: N); None: every order
    # (an order-by-order feed) or not known. A calibration is read at the depth it was fitted on.
    feed_depth: int | None = None

    def __post_init__(self) -> None:
        if self.tick_size <= 0 or self.lot_size <= 0 or self.price_scale <= 0:
            raise ValueError(f"instrument {self.symbol!r}: tick, lot and scale must be positive")
        if self.feed_depth is not None and (
            type(self.feed_depth) is not int or self.feed_depth <= 0
        ):
            raise ValueError(f"instrument {self.symbol!r}: feed depth must be a positive integer")
        if self.qty_scale <= 0:
            raise ValueError(f"instrument {self.symbol!r}: quantity scale must be positive")
        if self.price_band_bps is not None and self.price_band_bps <= 0:
            raise ValueError(f"instrument {self.symbol!r}: price band must be positive or None")

    @property
    def continuous(self) -> bool:
        """Trades around the clock (crypto): no open or close to align windows with."""
        return self.session_open == "00:00" and self.session_close in ("00:00", "24:00")

    def session_ns(self) -> tuple[int, int]:
        """The continuous session as (open, length), ns after midnight in the venue's time
        zone: what an order model's time-of-day features count the day by (24 hours for
        crypto)."""

        def ns(clock: str) -> int:
            hours, minutes = (int(x) for x in clock.split(":"))
            return (hours * 60 + minutes) * 60 * 1_000_000_000

        if self.continuous:
            return 0, 24 * 3600 * 1_000_000_000
        open_ns, close_ns = ns(self.session_open), ns(self.session_close)
        if close_ns <= open_ns:  # a session across midnight (futures): it ends the next day
            close_ns += 24 * 3600 * 1_000_000_000
        return open_ns, close_ns - open_ns

    def as_dict(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Instrument:
        """The inverse of ``as_dict``; unknown keys are ignored (a newer writer's fields)."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        if not isinstance(known.get("symbol"), str):
            raise ValueError("instrument metadata lacks a symbol")
        return cls(**known)  # type: ignore[arg-type]

    def to_ticks(self, price: int) -> int:
        return price // self.tick_size

    def to_currency(self, price: int) -> float:
        return price / self.price_scale


@dataclass(frozen=True, slots=True)
class Trade:
    """A fill between an incoming (aggressor) order and a resting (maker) order."""

    ts_ns: int
    price: int
    qty: int
    aggressor_side: Side  # side of the incoming order: BID means a buyer-initiated trade
    maker_order_id: int
    taker_order_id: int

"""``OrderTokenizer``: fitted bins, encoding and decoding of orders, and its JSON form."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.tokenizer.bins import Bins, _bins_with_edge
from models.tokenizer.features import (
    DEPTH_DIM,
    GAP_SCALE,
    LOB_DIM,
    LOB_DIM_GAPS,
    LOB_SCALE,
    MID_MAX_BUCKET,
    N_LEVELS,
    SPREAD_MAX_TICKS,
    SPREAD_SCALE,
    TOD_DIM,
    TokenFeatures,
    features_from_rows,
)
from models.tokenizer.flow import (
    FLOW_DIM,
    FLOW_HALF_LIVES,
    FLOW_PRIOR,
    FLOW_SIGNALS,
    _flow_from_dict,
)
from models.tokenizer.prices import (
    INSIDE_STEPS,
    MARKETABLE_BASE,
    cancel_level_codes,
    cancel_level_prices,
    cancel_prices,
    limit_prices,
    price_codes,
)
from models.tokenizer.slots import (
    N_INTERVAL,
    N_PRICE,
    N_TYPES,
    N_VOLUME,
    VOCAB_SIZE,
    token_fields,
    token_id,
)
from models.tokenizer.sweep import (
    _SWEEP_LO,
    SWEEP_SLOT,
    available_from_rows,
    marketable_mask,
    sweep_mask,
)
from models.tokenizer.units import (
    REFERENCE_INTERVAL_NS,
    REFERENCE_SIZE,
    SCALE_LOOKBACK,
    UnitScale,
)
from simulator.orderstream import OrderStream, OrderType, intervals_ns

TOKENIZER_VERSION = 3  # what training fits by default; v2 and v4 (``sweep``) load too
_VERSIONS = (2, 3, 4)


@dataclass(slots=True)
class DecodedOrders:
    type: np.ndarray  # int64 OrderType
    price: np.ndarray  # int64 price units, tick multiples
    qty: np.ndarray  # int64 shares >= 1
    interval_ns: np.ndarray  # int64 >= 0


class OrderTokenizer:
    """Fitted bins for price (per limit/cancel), volume (per limit/cancel) and interval."""

    def __init__(
        self,
        price: dict[str, Bins],
        volume: dict[str, Bins],
        interval: Bins,
        tick: int = 100,
        *,
        cancel_levels: bool = False,
        level_gaps: bool = False,
        sweep: bool = False,
        flow: bool = False,
        clock_span: tuple[int, int] | None = None,
        feed_depth: bool = False,
        session: tuple[int, int] | None = None,
        relative_units: bool = False,
    ) -> None:
        self.price = price
        self.volume = volume
        self.interval = interval
        self.tick = tick
        # v3: cancel price codes are level ranks (``cancel_level_codes``); they need the rows
        self.cancel_levels = cancel_levels
        # the model it belongs to reads level gaps too (``features_from_rows(gaps=True)``)
        self.level_gaps = level_gaps
        # the model it belongs to reads order-flow averages too (``flow_features``), after the
        # book features
        self.flow = flow
        # the model it belongs to reads the feed's depth too (``features_from_rows(depth=...)``)
        self.feed_depth = feed_depth
        # v4: ``SWEEP_SLOT`` marks a marketable order taking exactly what rests up to its price
        self.sweep = sweep
        if sweep and not cancel_levels:
            raise ValueError("a sweep slot needs a v3 (cancels by level) tokenizer")
        # sizes and intervals in the instrument's own scale (``models.tokenizer.units``): every
        # encode, decode and feature call then takes the ``UnitScale`` it reads against
        self.relative_units = relative_units
        if relative_units and (sweep or flow):
            raise ValueError(
                "relative units are not implemented with the sweep slot or order-flow features"
            )
        # times of day (ns after midnight) of the first and last training order (``clock``)
        self.clock_span = _clock_span(clock_span)
        # the venue's session (open, ns after midnight, and length) the time features read;
        # None: NASDAQ's 09:30-16:00, what the bundled models were trained with
        self.session = None if session is None else (int(session[0]), int(session[1]))

    @property
    def version(self) -> int:
        return 4 if self.sweep else 3 if self.cancel_levels else 2

    def clock(self, ts_ns) -> np.ndarray:
        """The time of day the model's time features read for orders at ``ts_ns``: held inside
        ``clock_span``, the times the model was trained on (unchanged without a span).

        A rollout past the end of the training span would otherwise feed the time features
        values the model never saw, and their sines and cosines do not extrapolate: past 14:30
        the 2-pi pair turns back towards the values of the open. Measurements:
        docs/decisions/held-clock.md.
        """
        ts = np.asarray(ts_ns, np.int64)
        if self.session is not None:
            # a venue model meets epoch clocks in replays and streams (times of day in the
            # benchmark): read both as UTC times of day, the venue day of a crypto feed
            ts = np.where(ts >= _NS_PER_DAY, ts % _NS_PER_DAY, ts)
        if self.clock_span is None:
            return ts
        return np.clip(ts, *self.clock_span)

    def rollout_features(
        self,
        rows: np.ndarray,
        open_mid: float,
        ts_ns,
        depth: int | None = None,
        scale: UnitScale | None = None,
    ) -> TokenFeatures:
        """What a rollout feeds the model for books ``rows`` at ``ts_ns``: ``features_from_rows``
        with this tokenizer's tick, level gaps and (``feed_depth``) the feed's ``depth``, its
        time features read at ``clock``; with ``relative_units``, the book's sizes read against
        ``scale``."""
        if self.feed_depth and depth is None:
            raise ValueError("this tokenizer's features include the feed depth: pass depth")
        return features_from_rows(
            self._rows_in(rows, scale),
            open_mid,
            self.clock(ts_ns),
            self.tick,
            self.level_gaps,
            depth if self.feed_depth else None,
            self.session,
        )

    # ------------------------------------------------------------------ fields
    def encode_fields(
        self,
        type_,
        price,
        qty,
        interval_ns,
        best_ask,
        best_bid,
        rows=None,
        scale: UnitScale | None = None,
    ) -> np.ndarray:
        """Token ids of orders given the best ask and bid of the book each meets (and, for a
        v3 tokenizer, that book's ``rows``, LOBSTER layout); with ``relative_units``, sizes and
        intervals read against ``scale`` (one per order, or one for all)."""
        type_ = np.asarray(type_, np.int64)
        if self.relative_units:
            scale = self._need(scale)
            qty, interval_ns = scale.qty_in(qty), scale.interval_in(interval_ns)
        code = price_codes(type_, price, best_ask, best_bid, self.tick)
        cancel = type_ == OrderType.CANCEL
        if self.cancel_levels:
            if rows is None:
                raise ValueError("a v3 tokenizer encodes cancels by level: pass the book rows")
            code = np.where(cancel, cancel_level_codes(price, rows, self.tick), code)
        price_slot = np.where(
            cancel, self.price["cancel"].encode(code), self.price["limit"].encode(code)
        )
        volume_slot = np.where(
            cancel, self.volume["cancel"].encode(qty), self.volume["limit"].encode(qty)
        )
        if self.sweep:
            sweep = sweep_mask(type_, price, qty, best_ask, best_bid, rows)
            volume_slot = np.where(sweep, SWEEP_SLOT, volume_slot)
        return token_id(type_, price_slot, volume_slot, self.interval.encode(interval_ns))

    def encode(
        self,
        stream: OrderStream,
        rows_before: np.ndarray,
        prev_ts_ns: int | None = None,
        scale: UnitScale | None = None,
    ):
        """Token ids of a stream; ``rows_before[i]`` is the book row just before order ``i``."""
        interval = intervals_ns(stream.ts_ns, prev_ts_ns)
        rows = np.asarray(rows_before, np.int64)
        return self.encode_fields(
            stream.type, stream.price, stream.qty, interval, rows[:, 0], rows[:, 2], rows, scale
        )

    def decode(
        self,
        ids,
        best_ask,
        best_bid,
        rng: np.random.Generator | None = None,
        u: np.ndarray | None = None,
        rows: np.ndarray | None = None,
        scale: UnitScale | None = None,
    ) -> DecodedOrders:
        """Concrete orders for token ids at books with the given best ask and bid (v3: and the
        books' ``rows``, to find the level a cancel names); with ``relative_units``, sizes and
        intervals in the instrument's units of ``scale`` (one per id, or one for all).

        Draws use ``u`` (shape ``ids.shape + (3,)``: price, volume, interval) when given, so a
        caller can keep one random stream per sequence; otherwise ``rng``. A BID / ASK crosses
        the book only if its token is marketable.
        """
        ids = np.asarray(ids, np.int64)
        if u is None:
            if rng is None:
                raise ValueError("decode needs an rng or uniforms")
            u = rng.random((*ids.shape, 3))
        type_, ps, vs, is_ = token_fields(ids)
        ask = np.broadcast_to(np.asarray(best_ask, np.int64), ids.shape)
        bid = np.broadcast_to(np.asarray(best_bid, np.int64), ids.shape)
        cancel = type_ == OrderType.CANCEL
        price = np.empty(ids.shape, np.int64)
        qty = np.empty(ids.shape, np.int64)
        at = (
            None
            if rows is None
            else np.broadcast_to(np.asarray(rows, np.int64), (*ids.shape, rows.shape[-1]))
        )
        for kind, sel in (("limit", ~cancel), ("cancel", cancel)):
            if not sel.any():
                continue
            uk = u[sel]  # (n, 3)
            bins = self.price[kind]
            code = bins.decode(ps[sel], u=uk[:, 0])
            if kind == "cancel" and self.cancel_levels:
                if at is None:
                    raise ValueError("a v3 tokenizer decodes cancels by level: pass the rows")
                price[sel] = cancel_level_prices(code, at[sel], self.tick)
            elif kind == "cancel":
                price[sel] = cancel_prices(code, ask[sel], bid[sel], self.tick)
            else:
                lo = bins.lo[ps[sel]]
                hi = np.append(bins.lo[1:] - 1, np.iinfo(np.int64).max)[ps[sel]]
                price[sel] = limit_prices(type_[sel], code, ask[sel], bid[sel], lo, hi, self.tick)
            qty[sel] = self.volume[kind].decode(vs[sel], u=uk[:, 1])
        interval = np.maximum(self.interval.decode(is_, u=u[..., 2]), 0)
        if self.relative_units:
            scale = self._need(scale)
            qty, interval = scale.qty_out(qty), scale.interval_out(interval)
        if self.sweep and at is not None:
            sweep = (vs == SWEEP_SLOT) & marketable_mask(type_, price, ask, bid)
            available = available_from_rows(type_[sweep], price[sweep], at[sweep])
            qty[sweep] = np.where(available > 0, available, qty[sweep])
        return DecodedOrders(type_, price, np.maximum(qty, 1), interval)

    def _need(self, scale: UnitScale | None) -> UnitScale:
        if scale is None:
            raise ValueError(
                "this tokenizer reads sizes and intervals in relative units: pass scale"
            )
        return scale

    def _rows_in(self, rows, scale: UnitScale | None):
        return self._need(scale).rows_in(rows) if self.relative_units else rows

    # ------------------------------------------------------------------ fitting
    @classmethod
    def fit(
        cls,
        type_,
        price,
        qty,
        interval_ns,
        best_ask,
        best_bid,
        *,
        seed: int = 0,
        tick: int = 100,
        max_samples: int = 64,
        rows=None,
        sweep: bool = False,
    ) -> OrderTokenizer:
        """Fit all bins on training orders (``best_ask`` / ``best_bid``: the touch each met).

        With ``rows`` (the book each order met) the tokenizer is v3: cancels by level rank.
        ``sweep`` (needs ``rows``) makes it v4: marketable orders that take exactly what rests
        up to their price get ``SWEEP_SLOT``, and the other limit sizes share the other 31 bins.
        """
        if sweep and rows is None:
            raise ValueError("a sweep slot needs the book rows")
        rng = np.random.default_rng(seed)
        type_ = np.asarray(type_, np.int64)
        qty = np.asarray(qty, np.int64)
        off = price_codes(type_, price, best_ask, best_bid, tick)
        cancel = type_ == OrderType.CANCEL
        if rows is not None:
            off = np.where(cancel, cancel_level_codes(price, rows, tick), off)

        def bins(values, k: int, min_value: int | None = None) -> Bins:
            return Bins.fit(values, k, rng, max_samples=max_samples, min_value=min_value)

        price_bins = {
            # no bin may mix marketable and passive codes, or the two sides of the book
            "limit": _bins_with_edge(off[~cancel], N_PRICE, MARKETABLE_BASE, 3, rng, max_samples),
            "cancel": _bins_with_edge(off[cancel], N_PRICE, 0, N_PRICE // 2, rng, max_samples),
        }
        limit = ~cancel
        if sweep:
            swept = sweep_mask(type_, price, qty, best_ask, best_bid, rows)
            limit &= ~swept
        volume_bins = {
            "limit": bins(qty[limit], N_VOLUME - 1 if sweep else N_VOLUME, 1),
            "cancel": bins(qty[cancel], N_VOLUME, 1),
        }
        if sweep:
            # the sweep slot decodes (off a marketable price) to a size some sweep had
            plain = volume_bins["limit"]
            sizes = qty[swept] if swept.any() else np.array([1], np.int64)
            if sizes.size > max_samples:
                sizes = rng.choice(sizes, max_samples, replace=False)
            volume_bins["limit"] = Bins(
                np.append(plain.lo, _SWEEP_LO), [*plain.samples, np.sort(sizes)], plain.min_value
            )
        interval_bins = bins(interval_ns, N_INTERVAL, 0)
        return cls(
            price_bins,
            volume_bins,
            interval_bins,
            tick,
            cancel_levels=rows is not None,
            sweep=sweep,
        )

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "tick": self.tick,
            "vocab_size": VOCAB_SIZE,
            "slots": {
                "type": N_TYPES,
                "price": N_PRICE,
                "volume": N_VOLUME,
                "interval": N_INTERVAL,
            },
            "features": {
                "levels": N_LEVELS,
                "lob_scale": LOB_SCALE,
                "mid_max_bucket": MID_MAX_BUCKET,
                "tod_dim": TOD_DIM,
                "spread_max_ticks": SPREAD_MAX_TICKS,
                "spread_scale": SPREAD_SCALE,
                **({"level_gaps": True, "gap_scale": GAP_SCALE} if self.level_gaps else {}),
                **({"feed_depth": True} if self.feed_depth else {}),
                **(
                    {
                        "flow": True,
                        "flow_half_lives": list(FLOW_HALF_LIVES),
                        "flow_signals": list(FLOW_SIGNALS),
                        "flow_prior": FLOW_PRIOR.tolist(),
                    }
                    if self.flow
                    else {}
                ),
                **({"clock_span_ns": list(self.clock_span)} if self.clock_span is not None else {}),
                **({"session_ns": list(self.session)} if self.session is not None else {}),
                **(
                    {
                        "relative_units": {
                            "reference_size": REFERENCE_SIZE,
                            "reference_interval_ns": REFERENCE_INTERVAL_NS,
                            "lookback_orders": SCALE_LOOKBACK,
                            "size": "geometric mean",
                        }
                    }
                    if self.relative_units
                    else {}
                ),
            },
            "price_codes": {
                "inside_steps": INSIDE_STEPS,
                "marketable_base": MARKETABLE_BASE,
            },
            "price": {k: b.to_dict() for k, b in self.price.items()},
            "volume": {k: b.to_dict() for k, b in self.volume.items()},
            "interval": self.interval.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OrderTokenizer:
        if d.get("version") not in _VERSIONS:
            raise ValueError(f"unsupported tokenizer version {d.get('version')!r}")
        features = d.get("features", {})
        return cls(
            {k: Bins.from_dict(b) for k, b in d["price"].items()},
            {k: Bins.from_dict(b) for k, b in d["volume"].items()},
            Bins.from_dict(d["interval"]),
            int(d["tick"]),
            cancel_levels=d["version"] >= 3,
            sweep=d["version"] >= 4,
            level_gaps=bool(features.get("level_gaps", False)),
            flow=_flow_from_dict(features),
            clock_span=features.get("clock_span_ns"),
            feed_depth=bool(features.get("feed_depth", False)),
            session=features.get("session_ns"),
            relative_units=_relative_from_dict(features),
        )

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict()))

    @property
    def lob_dim(self) -> int:
        """Width of the ``lob`` features the model of this tokenizer reads."""
        return (
            (LOB_DIM_GAPS if self.level_gaps else LOB_DIM)
            + (DEPTH_DIM if self.feed_depth else 0)
            + (FLOW_DIM if self.flow else 0)
        )

    @classmethod
    def load(cls, path: str | Path) -> OrderTokenizer:
        return cls.from_dict(json.loads(Path(path).read_text()))


_NS_PER_DAY = 86_400 * 1_000_000_000


def _relative_from_dict(features: dict[str, Any]) -> bool:
    """Whether saved features read relative units, with the reference scale this code uses (a
    checkpoint fitted against another would read every size and interval wrong, silently)."""
    saved = features.get("relative_units")
    if not saved:
        return False
    ours = {
        "reference_size": REFERENCE_SIZE,
        "reference_interval_ns": REFERENCE_INTERVAL_NS,
        "lookback_orders": SCALE_LOOKBACK,
        "size": "geometric mean",
    }
    if {k: saved.get(k) for k in ours} != ours:
        raise ValueError(f"relative units {saved} differ from this code's {ours}")
    return True


def _clock_span(span) -> tuple[int, int] | None:
    if span is None:
        return None
    lo, hi = (int(t) for t in span)
    if not 0 <= lo <= hi:
        raise ValueError(f"clock span must be two times of day, first <= last: {span!r}")
    return lo, hi

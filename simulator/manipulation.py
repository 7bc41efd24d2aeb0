"""Manipulation injectors: insert a manipulator's messages into a real market-by-order feed.

The detection benchmark needs real days with known manipulation. An injector replays one
instrument's normalized events (``simulator.normalized``) through a book and, at scheduled times
inside a campaign's interval, inserts the messages a venue would print for the manipulator:
``add`` of its orders, ``delete`` when it cancels them, and ``execute`` events of resting orders
when its aggressive orders trade (one per maker order, FIFO, like LOBSTER prints a sweep).
Injected events look like venue events (positive ids above every real id, ``synthetic`` false);
what was injected is known only from the campaign and its window labels.

Typologies (``intensity`` 1.0 is "moderate"; sizes and rates scale with it):

- spoofing: a large order joins the touch on one side, the manipulator's genuine order rests on
  the other side and trades, then the large order is cancelled; repeated in cycles.
- layering: as spoofing, with large orders on several price levels at once.
- quote stuffing: bursts of adds cancelled within microseconds, at and just behind the touch.
- momentum ignition: aggressive orders that each sweep several whole levels of one side, in
  quick succession, moving the price; the rest of the market follows the move for a while (real
  orders added then rest that many ticks higher or lower), then the manipulator sells into the
  move and the real flow returns to its own prices.
- pump and dump: a run of aggressive buys (pump), then aggressive sells unloading the position.
- marking the close: aggressive orders of one side in the campaign's interval (the last minutes
  before the close), ever more frequent towards its end and a quarter of them in its last five
  seconds, each taking one or two levels, so the price the session closes at is moved; the
  position is held through the close (no unwind).

What "moderate" means, per 25-minute window: 24 spoof cycles (about one a minute), each spoof
order 7 times the typical touch size resting about 5 to 10 seconds (layering: 4 levels);
8 ignitions of two sweeps through 3 levels each, each move followed for 30 to 60 seconds;
24 quote-stuffing bursts of 150 orders, each added and cancelled; a pump of 40 aggressive buys
and a dump of 24 sells; marking the close, 30 sweeps per 25 minutes of its interval (12 in the
last 10 minutes). "low" is half of that (sporadic), "high" twice (an algorithm working
the book all session).

Consistency policy for real messages that refer to liquidity the injected flow consumed: every
real event that removes liquidity (cancel, delete, execution) removes what is left of it. Its
quantity is clipped to what was left (``clipped_real_events``) and an event with nothing left is
dropped (``dropped_real_events``). Real executions keep their makers; the manipulator's genuine
order is filled by injected executions of that order (a counterparty who took it). A real order
that arrives at a price the manipulator's resting orders now cross (it was passive in the real
feed) trades with them first, as it would have at the venue (``manipulator_filled_qty``); what is
left of it rests, or it is dropped if nothing is left. While the market follows an ignition,
real adds are shifted by the ignition's move (the deepest level swept, plus a tick) and every
later message about such an order carries its shifted price; hidden executions are shifted too.
A shifted (or, after the move fades, unshifted) real order that crosses resting real orders
trades with them the same way (``real_crossed_qty``). This is the one place the injector changes
real prices: a fixed feed cannot react to manipulation, and momentum ignition is defined by the
reaction it provokes; without it the sweeps are absorbed within seconds and leave only the
footprint of ordinary aggressive flow. The resulting feed replays with no unresolved quantity
and never crosses the book.

A feed that shows only its best N levels (``feed_depth``; LOBSTER level 1, 5, 10) hides what rests
behind them, but the manipulator trades against the whole book. When a sweep has taken every
level the feed shows and wants more, it goes on into hidden levels, as a venue's level-N feed
would print it: each hidden level enters the feed as anonymous liquidity (a ``synthetic`` add, as
the LOBSTER conversion writes liquidity entering its levels from deeper in the book) and is
executed at once; what the sweep leaves of the last one rests as the new touch. A hidden level
holds the day's typical touch size and sits the day's typical gap between levels behind the one
before it (``typical_level_gap``: how far a side's best price moves when its touch empties).
What a sweep left of one stands in for real liquidity the feed did not show: a real execution
printed at a worse price meets it first (``trade_through``). Without hidden levels a level-1
feed's sweep could never take more than the touch, and pump and dump or marking the close
would leave no sweep in it at all. The same feed does not print the injected
orders that rest behind its depth (layering's deeper orders on a level-1 feed, a spoof the market
has left more than N levels behind): one placed there is not printed, one cancelled there leaves
no message, and one entering or leaving the feed's levels as the book moves is printed as a
``synthetic`` add or delete, as the LOBSTER conversion writes real orders doing the same.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from functools import partial

import numpy as np
import pandas as pd

from simulator.book import OrderBook
from simulator.normalized import COLUMNS, KIND_NAMES, KINDS, SIDES
from simulator.replay import FeedReplayer
from simulator.types import EventKind
from simulator.units import NS_PER_MS, NS_PER_S

WINDOW_25M_NS = 25 * 60 * NS_PER_S

_ADD, _DELETE, _EXECUTE = int(EventKind.ADD), int(EventKind.DELETE), int(EventKind.EXECUTE)
_EXECUTE_HIDDEN = int(EventKind.EXECUTE_HIDDEN)

# Event tuple: (ts_ns, kind, order_id, qty, price, side, synthetic)
Event = tuple[int, int, int, int, int, int, bool]


class Typology(StrEnum):
    SPOOFING = "spoofing"
    LAYERING = "layering"
    QUOTE_STUFFING = "quote_stuffing"
    MOMENTUM_IGNITION = "momentum_ignition"
    PUMP_AND_DUMP = "pump_and_dump"
    MARKING_THE_CLOSE = "marking_the_close"


INTENSITIES = {"low": 0.5, "moderate": 1.0, "high": 2.0}
# Episodes per 25 minutes at intensity 1 ("moderate": an algorithm working the window, about
# one spoof cycle a minute, several hundred a day if it ran all session; "low" is sporadic).
SPOOF_CYCLES_25M = 24
IGNITIONS_25M = 8
# How long the rest of the market follows an ignition's move before it fades (seconds).
IGNITION_FOLLOW_S = (30.0, 60.0)
# Marking the close: its last sweeps land in the final seconds before the interval's end.
MARK_BURST_NS = 5 * NS_PER_S


@dataclass(frozen=True, slots=True)
class Campaign:
    """One manipulation episode on one instrument."""

    typology: Typology
    start_ns: int
    end_ns: int
    intensity: float = 1.0
    seed: int = 0
    tick: int = 100
    lot: int = 100

    def __post_init__(self) -> None:
        if self.end_ns <= self.start_ns:
            raise ValueError("campaign must end after it starts")
        if self.intensity <= 0:
            raise ValueError("intensity must be positive")


@dataclass(slots=True)
class InjectionStats:
    injected_events: int = 0
    injected_orders: int = 0
    injected_executions: int = 0
    injected_traded_qty: int = 0
    clipped_real_events: int = 0
    dropped_real_events: int = 0
    skipped_actions: int = 0
    manipulator_filled_qty: int = 0  # the manipulator's resting orders taken by real orders
    real_crossed_qty: int = 0  # real orders crossed by real orders the market moved (ignition)
    hidden_levels: int = 0  # levels behind the feed's depth that sweeps brought into view
    unshown_orders: int = 0  # orders placed behind the feed's depth (printed only if in view)
    hidden_filled_qty: int = 0  # real executions met what sweeps left of hidden levels first

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class HiddenDepth:
    """What rests behind a depth-limited feed's last level, as the injector assumes it."""

    feed_depth: int  # levels per side the feed shows
    gap: int  # price units between hidden levels (and from the deepest shown one)
    qty: int  # shares at each hidden level

    def __post_init__(self) -> None:
        if self.feed_depth <= 0 or self.gap <= 0 or self.qty <= 0:
            raise ValueError(f"hidden depth needs positive depth, gap and size: {self}")


@dataclass(slots=True)
class Injection:
    frame: pd.DataFrame
    campaign: Campaign
    stats: InjectionStats = field(default_factory=InjectionStats)


class _Manipulator:
    """Emits the manipulator's messages against the current book."""

    def __init__(
        self,
        book: OrderBook,
        first_id: int,
        out: list[Event],
        stats: InjectionStats,
        hidden: HiddenDepth | None = None,
    ):
        self.book = book
        self.hidden = hidden
        self.next_id = first_id
        self.out = out
        self.stats = stats
        self.own: set[int] = set()
        # Injected resting orders (own, and what sweeps left of hidden levels) behind a
        # depth-limited feed, by whether the feed shows them now: ``refresh`` moves them
        # between the two as the book moves, printing what a level-N feed would
        self.shown: set[int] = set()
        self.unshown: set[int] = set()
        self.stand_ins: set[int] = set()  # what sweeps left of hidden levels
        # Price offset the real flow follows (momentum ignition): real orders added while it
        # is set rest ``shift`` higher (or lower) than they did in the real feed.
        self.shift = 0
        self.last_sweep_price: int | None = None  # the deepest price the last sweep traded at

    def _emit(self, event: Event) -> None:
        self.out.append(event)
        self.stats.injected_events += 1

    def place(self, ts: int, side: int, price: int, qty: int) -> int | None:
        if qty <= 0:
            return None
        best_opposite = self.book.best_ask if side > 0 else self.book.best_bid
        if best_opposite is not None and (
            price >= best_opposite if side > 0 else price <= best_opposite
        ):
            self.stats.skipped_actions += 1  # would cross: the injector never crosses the book
            return None
        order_id = self.next_id
        self.next_id += 1
        self.book.add(order_id, side, price, qty)
        self.own.add(order_id)
        self.stats.injected_orders += 1
        if self.hidden is not None and not self._in_view(side, price):
            self.unshown.add(order_id)  # behind the feed's depth: not printed
            self.stats.unshown_orders += 1
            return order_id
        if self.hidden is not None:
            self.shown.add(order_id)
        self._emit((ts, _ADD, order_id, qty, price, side, False))
        return order_id

    def cancel(self, ts: int, order_id: int | None) -> None:
        if order_id is None or order_id not in self.book:
            return
        side, price, qty = self.book.order(order_id)
        self.book.delete(order_id)
        if order_id in self.unshown:
            self.unshown.discard(order_id)  # the feed never showed it: nothing to print
            return
        self.shown.discard(order_id)
        self._emit((ts, _DELETE, order_id, qty, price, int(side), False))

    def fill_own(self, ts: int, order_id: int | None) -> None:
        """A counterparty takes the manipulator's resting order in full."""
        if order_id is None or order_id not in self.book:
            return
        side, price, qty = self.book.order(order_id)
        self._show(ts, order_id)
        self.book.delete(order_id)
        self._emit((ts, _EXECUTE, order_id, qty, price, int(side), False))
        self.stats.injected_executions += 1
        self.stats.injected_traded_qty += qty

    def _in_view(self, side: int, price: int) -> bool:
        """Whether a feed of ``hidden.feed_depth`` levels shows this price of one side."""
        if self.hidden is None:
            return True
        depth = self.hidden.feed_depth
        levels = self.book.depth(side, depth)
        if len(levels) < depth:
            return True
        return price >= levels[-1][0] if side > 0 else price <= levels[-1][0]

    def _show(self, ts: int, order_id: int) -> None:
        """An injected order the feed does not show enters it (synthetic), before it trades."""
        if order_id in self.unshown:
            side, price, qty = self.book.order(order_id)
            self.unshown.discard(order_id)
            self.shown.add(order_id)
            self.out.append((ts, _ADD, order_id, qty, price, int(side), True))

    def refresh(self, ts: int) -> None:
        """Print injected orders entering or leaving the feed's levels as the book moved (as
        the LOBSTER conversion writes levels entering and leaving its depth)."""
        if not (self.shown or self.unshown):
            return
        depth = self.hidden.feed_depth if self.hidden is not None else 0
        edge = {}
        for side in (1, -1):
            levels = self.book.depth(side, depth)
            edge[side] = levels[-1][0] if len(levels) == depth else None
        book = self.book
        for order_id in [*self.shown, *self.unshown]:
            if order_id not in book:
                self.shown.discard(order_id)
                self.unshown.discard(order_id)
                continue
            side, price, qty = book.order(order_id)
            side = int(side)
            cut = edge[side]
            seen = cut is None or (price >= cut if side > 0 else price <= cut)
            if seen and order_id in self.unshown:
                self._show(ts, order_id)
            elif not seen and order_id in self.shown:
                self.shown.discard(order_id)
                self.unshown.add(order_id)
                self.out.append((ts, _DELETE, order_id, qty, price, side, True))

    def levels(self, side: int, k: int) -> list[tuple[int, int]]:
        """The best ``k`` levels of one side as ``(price, qty)``, hidden ones included: what a
        manipulator who sees the whole book would size a sweep against."""
        shown = self.book.depth(side, k)
        return shown + self._hidden_levels(side, k - len(shown))

    def _hidden_levels(self, side: int, k: int) -> list[tuple[int, int]]:
        """Up to ``k`` levels behind the deepest the feed shows (none unless it shows its full
        depth on that side: a level-N feed with fewer levels shows all there is)."""
        hidden = self.hidden
        if hidden is None or k <= 0:
            return []
        if self.book.level_count(side) < hidden.feed_depth:
            return []
        # behind everything the injected book holds there (leftovers of earlier hidden levels
        # can rest beyond the feed's N), so a sweep never steps back to a better price
        deepest = self.book.depth(side, self.book.level_count(side))[-1][0]
        away = hidden.gap if side < 0 else -hidden.gap  # asks further up, bids further down
        return [(deepest + away * (j + 1), hidden.qty) for j in range(k)]

    def sweep(self, ts: int, aggressor: int, qty: int, max_levels: int) -> int:
        """An aggressive order: trade ``qty`` against the opposite side, FIFO, level by level
        (into hidden levels once the feed's are taken, see the module docstring)."""
        resting = -aggressor
        behind = self._hidden_levels(resting, max_levels)  # read before the shown levels go
        traded = 0
        walked = 0
        blocked = False
        for _ in range(max_levels):
            level = self.book.best(resting)
            if level is None or traded >= qty:
                break
            walked += 1
            price = level.price
            for maker, maker_qty in self.book.orders_at(resting, price):
                if traded >= qty:
                    break
                if maker in self.own:
                    continue  # no trading with itself
                take = min(maker_qty, qty - traded)
                self.last_sweep_price = price
                self._show(ts, maker)
                self.book.reduce(maker, take)
                self._emit((ts, _EXECUTE, maker, take, price, resting, False))
                self.stats.injected_executions += 1
                self.stats.injected_traded_qty += take
                traded += take
            if self.book.level(resting, price) is not None and traded < qty:
                blocked = True
                break  # only own orders left at this level
        if not blocked and self.book.best(resting) is None:
            for price, size in behind[: max_levels - walked]:
                if traded >= qty:
                    break
                traded += self._take_hidden(ts, resting, price, size, qty - traded)
        if traded == 0:
            self.stats.skipped_actions += 1
        return traded

    def _take_hidden(self, ts: int, side: int, price: int, size: int, want: int) -> int:
        """A hidden level enters the feed (anonymous, synthetic) and the sweep trades with it."""
        order_id = self.next_id
        self.next_id += 1
        self.book.add(order_id, side, price, size)
        self.out.append((ts, _ADD, order_id, size, price, side, True))
        self.shown.add(order_id)
        self.stand_ins.add(order_id)
        self.stats.hidden_levels += 1
        take = min(size, want)
        self.last_sweep_price = price
        self.book.reduce(order_id, take)
        self._emit((ts, _EXECUTE, order_id, take, price, side, False))
        self.stats.injected_executions += 1
        self.stats.injected_traded_qty += take
        return take

    def absorb(self, ts: int, side: int, price: int, qty: int) -> int:
        """A real order arriving at a price that resting orders now cross (the manipulator's,
        or real ones a moved market left behind) trades with them first; returns what is left."""
        resting = -side
        while qty > 0:
            level = self.book.best(resting)
            if level is None or (price < level.price if side > 0 else price > level.price):
                break
            for maker, maker_qty in self.book.orders_at(resting, level.price):
                take = min(maker_qty, qty)
                self._show(ts, maker)
                self.book.reduce(maker, take)
                self._emit((ts, _EXECUTE, maker, take, level.price, resting, False))
                if maker in self.own:
                    self.stats.manipulator_filled_qty += take
                else:
                    self.stats.real_crossed_qty += take
                qty -= take
                if qty == 0:
                    break
        return qty

    def trade_through(self, ts: int, side: int, price: int, qty: int) -> int:
        """A real execution at ``price`` on ``side``'s resting orders meets what sweeps left of
        hidden levels at better prices first (they stand in for real liquidity the feed did
        not show); returns what is left of it for the real maker."""
        book = self.book
        for order_id in [o for o in self.stand_ins if o not in book]:
            self.stand_ins.discard(order_id)
        better = []
        for order_id in self.stand_ins:
            o_side, o_price, _ = book.order(order_id)
            if int(o_side) == side and (o_price > price if side > 0 else o_price < price):
                better.append((-o_price if side > 0 else o_price, order_id))
        for _, order_id in sorted(better):
            if qty == 0:
                break
            _, o_price, o_qty = book.order(order_id)
            take = min(o_qty, qty)
            self._show(ts, order_id)
            book.reduce(order_id, take)
            self._emit((ts, _EXECUTE, order_id, take, o_price, side, False))
            self.stats.hidden_filled_qty += take
            qty -= take
        return qty

    def touch_qty(self, side: int) -> int:
        level = self.book.best(side)
        return level.qty if level is not None else 0


def _round_lot(qty: float, lot: int) -> int:
    return max(lot, round(qty / lot) * lot)


def _times(rng: np.random.Generator, start: int, end: int, count: int) -> list[int]:
    """``count`` action times spread over ``[start, end)`` with jitter, sorted."""
    span = end - start
    slots = (np.arange(count) + rng.uniform(0.1, 0.9, size=count)) / max(count, 1)
    return sorted(int(start + s * span) for s in slots)


class _Plan:
    """The campaign's schedule: (time, step) pairs run against the book of that moment."""

    def __init__(self, campaign: Campaign, typical_touch_qty: float) -> None:
        self.c = campaign
        self.rng = np.random.default_rng(campaign.seed)
        self.touch = max(typical_touch_qty, campaign.lot)
        self.steps: list[tuple[int, int, object]] = []  # (ts, order, closure)
        self._n = 0
        scale = (campaign.end_ns - campaign.start_ns) / WINDOW_25M_NS
        builder = getattr(self, f"_plan_{campaign.typology.value}")
        builder(campaign.intensity, scale)
        self.steps.sort(key=lambda s: (s[0], s[1]))

    def at(self, ts: int, step: object) -> None:
        if self.c.start_ns <= ts < self.c.end_ns:
            self.steps.append((ts, self._n, step))
            self._n += 1

    # -- typologies -------------------------------------------------------------------------
    def _spoof_cycles(self, intensity: float, scale: float, levels: int) -> None:
        c, rng = self.c, self.rng
        cycles = max(1, round(SPOOF_CYCLES_25M * intensity * scale))
        size = _round_lot(self.touch * (3 + 4 * intensity), c.lot)
        for t0 in _times(rng, c.start_ns, c.end_ns - 10 * NS_PER_S, cycles):
            push = 1 if rng.random() < 0.5 else -1  # the side the fake interest sits on
            state: dict[str, object] = {}

            def spoof(m: _Manipulator, ts: int, i: int, push=push, state=state) -> None:
                if i == 0:
                    state["best"] = m.book.best_bid if push > 0 else m.book.best_ask
                best = state["best"]
                if best is None:
                    m.stats.skipped_actions += 1
                    return
                step = -c.tick if push > 0 else c.tick
                state[f"spoof{i}"] = m.place(ts, push, best + i * step, size)  # type: ignore[operator]

            def genuine(m: _Manipulator, ts: int, push=push, state=state) -> None:
                best = m.book.best_ask if push > 0 else m.book.best_bid
                if best is None:
                    return
                state["genuine"] = m.place(ts, -push, best, _round_lot(self.touch, c.lot))

            def trade(m: _Manipulator, ts: int, state=state) -> None:
                m.fill_own(ts, state.get("genuine"))  # type: ignore[arg-type]

            def withdraw(m: _Manipulator, ts: int, i: int, state=state) -> None:
                m.cancel(ts, state.get(f"spoof{i}"))  # type: ignore[arg-type]

            hold = int(rng.uniform(2.0, 6.0) * NS_PER_S)
            withdraw_at = t0 + hold + int(rng.uniform(2.5, 4.0) * NS_PER_S)
            for i in range(levels):
                self.at(t0 + i * 1_000, partial(spoof, i=i))
                self.at(withdraw_at + i * 1_000, partial(withdraw, i=i))
            self.at(t0 + hold, genuine)
            self.at(t0 + hold + int(rng.uniform(0.5, 2.0) * NS_PER_S), trade)

    def _plan_spoofing(self, intensity: float, scale: float) -> None:
        self._spoof_cycles(intensity, scale, levels=1)

    def _plan_layering(self, intensity: float, scale: float) -> None:
        self._spoof_cycles(intensity, scale, levels=2 + round(2 * intensity))

    def _plan_quote_stuffing(self, intensity: float, scale: float) -> None:
        c, rng = self.c, self.rng
        bursts = max(1, round(24 * intensity * scale))
        per_burst = max(10, round(150 * intensity))
        for t0 in _times(rng, c.start_ns, c.end_ns - NS_PER_S, bursts):
            for i in range(per_burst):
                state: dict[str, int | None] = {}

                def add(m: _Manipulator, ts: int, state=state) -> None:
                    side = 1 if rng.random() < 0.5 else -1
                    best = m.book.best_bid if side > 0 else m.book.best_ask
                    if best is None:
                        return
                    behind = int(rng.integers(0, 3)) * c.tick
                    state["id"] = m.place(
                        ts, side, best - behind if side > 0 else best + behind, c.lot
                    )

                def cancel(m: _Manipulator, ts: int, state=state) -> None:
                    m.cancel(ts, state.get("id"))

                t = t0 + i * 40_000  # 40 microseconds apart, each cancelled 15 microseconds later
                self.at(t, add)
                self.at(t + 15_000, cancel)

    def _plan_momentum_ignition(self, intensity: float, scale: float) -> None:
        c, rng = self.c, self.rng
        ignitions = max(1, round(IGNITIONS_25M * intensity * scale))
        depth = 1 + round(2 * intensity)  # levels one sweep walks through (moderate: 3)
        parts = 2  # sweeps a few milliseconds apart, each taking ``depth`` whole levels
        starts = _times(rng, c.start_ns, c.end_ns - 5 * NS_PER_S, ignitions)
        for k, t0 in enumerate(starts):
            direction = 1 if rng.random() < 0.5 else -1
            state: dict[str, int | None] = {"position": 0, "from": None}
            # The market follows for IGNITION_FOLLOW_S (drawn), cut short by the next
            # ignition or the campaign's end, then the manipulator unwinds into it.
            follow = int(rng.uniform(*IGNITION_FOLLOW_S) * NS_PER_S)
            next_start = starts[k + 1] if k + 1 < len(starts) else c.end_ns
            unwind_at = min(t0 + follow, next_start - NS_PER_S, c.end_ns - NS_PER_MS)

            def ignite(m: _Manipulator, ts: int, i: int, direction=direction, state=state) -> None:
                if i == 0:
                    state["from"] = m.book.best_ask if direction > 0 else m.book.best_bid
                    m.last_sweep_price = None
                    m.shift = 0  # an earlier move that was never unwound ends here
                levels = m.levels(-direction, depth)
                state["position"] += m.sweep(  # type: ignore[operator]
                    ts, direction, max(c.lot, sum(q for _, q in levels)), depth
                )
                if i == parts - 1:
                    before, deepest = state["from"], m.last_sweep_price
                    if before is not None and deepest is not None:
                        # the move the real flow now follows: past the deepest level taken
                        m.shift = deepest - before + direction * c.tick

            def unwind(m: _Manipulator, ts: int, direction=direction, state=state) -> None:
                m.shift = 0  # the momentum fades: real flow returns to its own prices
                position = int(state["position"] or 0)
                if position > 0:
                    m.sweep(ts, -direction, position, 2 * depth)  # trade out into the move

            for i in range(parts):
                self.at(t0 + i * 3 * NS_PER_MS, partial(ignite, i=i))
            if unwind_at > t0 + parts * 3 * NS_PER_MS:
                self.at(unwind_at, unwind)

    def _plan_pump_and_dump(self, intensity: float, scale: float) -> None:
        c, rng = self.c, self.rng
        span = c.end_ns - c.start_ns
        pump_end = c.start_ns + int(0.7 * span)
        buys = max(2, round(40 * intensity * scale))
        position = {"qty": 0}
        for t in _times(rng, c.start_ns, pump_end, buys):

            def buy(m: _Manipulator, ts: int) -> None:
                qty = _round_lot(m.touch_qty(-1) * (0.6 + 0.6 * intensity), c.lot)
                position["qty"] += m.sweep(ts, 1, qty, 2)

            self.at(t, buy)
        sells = max(2, round(buys * 0.6))
        for t in _times(rng, pump_end, c.end_ns, sells):

            def sell(m: _Manipulator, ts: int, left=sells) -> None:
                qty = _round_lot(position["qty"] / max(left, 1) * 1.5, c.lot)
                position["qty"] -= m.sweep(ts, -1, qty, 3)

            self.at(t, sell)

    def _plan_marking_the_close(self, intensity: float, scale: float) -> None:
        c, rng = self.c, self.rng
        side = 1 if rng.random() < 0.5 else -1
        sweeps = max(4, round(30 * intensity * scale))
        span = c.end_ns - c.start_ns
        # Beta(3, 1): the orders bunch towards the close; the last quarter of them come in its
        # final seconds, too late for the rest of the market to take the price back
        final = max(1, sweeps // 4)
        burst = min(MARK_BURST_NS, span // 2)
        offsets = np.sort(rng.beta(3.0, 1.0, sweeps - final)) * (span - burst)
        times = [c.start_ns + int(x) for x in offsets]
        times += sorted(c.end_ns - burst + int(x) for x in rng.uniform(0, burst - 1, final))
        for t in times:

            def mark(m: _Manipulator, ts: int) -> None:
                qty = _round_lot(m.touch_qty(-side) * (0.8 + 0.6 * intensity), c.lot)
                m.sweep(ts, side, qty, 2)

            self.at(t, mark)


def _columns(frame: pd.DataFrame) -> tuple[list[int], ...]:
    return (
        frame["ts_ns"].tolist(),
        frame["kind"].map({n: int(k) for n, k in KINDS.items()}).tolist(),
        frame["order_id"].tolist(),
        frame["qty"].tolist(),
        frame["price"].tolist(),
        frame["side"].map({n: int(s) for n, s in SIDES.items()}).tolist(),
        frame["synthetic"].tolist(),
    )


def typical_touch_qty(frame: pd.DataFrame, sample: int = 2_000) -> float:
    """Median quantity at the best bid and ask over the day (the scale for order sizes)."""
    replayer = FeedReplayer(OrderBook())
    ts, kind, oid, qty, price, side, _ = _columns(frame)
    every = max(1, len(ts) // sample)
    seen: list[int] = []
    for i in range(len(ts)):
        replayer.apply(kind[i], oid[i], qty[i], price[i], side[i])
        if i % every == 0:
            for s in (1, -1):
                level = replayer.book.best(s)
                if level is not None:
                    seen.append(level.qty)
    return float(np.median(seen)) if seen else 100.0


def typical_level_gap(frame: pd.DataFrame, tick: int) -> int:
    """Median distance (price units) a side's best price moves away when its touch empties:
    the gap to the next level, which a feed of any depth shows at its touch. ``tick`` when the
    frame never shows one."""
    replayer = FeedReplayer(OrderBook())
    book = replayer.book
    ts, kind, oid, qty, price, side, _ = _columns(frame)
    gaps: list[int] = []
    # the last best price each side showed: a level-1 feed's side is empty for a message
    # between its touch emptying and the next level entering
    bid = ask = None
    for i in range(len(ts)):
        replayer.apply(kind[i], oid[i], qty[i], price[i], side[i])
        new_bid, new_ask = book.best_bid, book.best_ask
        if new_bid is not None:
            if bid is not None and new_bid < bid:
                gaps.append(bid - new_bid)
            bid = new_bid
        if new_ask is not None:
            if ask is not None and new_ask > ask:
                gaps.append(new_ask - ask)
            ask = new_ask
    if not gaps:
        return tick
    return max(tick, round(float(np.median(gaps)) / tick) * tick)


def inject(
    frame: pd.DataFrame,
    campaign: Campaign,
    *,
    touch_qty: float | None = None,
    book: OrderBook | None = None,
    feed_depth: int | None = None,
    level_gap: int | None = None,
) -> Injection:
    """Insert ``campaign`` into one instrument's normalized events (see the module docstring).

    ``book`` is the book before the first event of ``frame`` (left unchanged; a fork is used),
    so a slice of a day can be manipulated without replaying the day from the open.
    ``feed_depth``: the levels per side the feed shows (None: the whole book); sweeps go on
    behind them into hidden levels ``level_gap`` apart (default: ``typical_level_gap``).
    """
    if frame["instrument"].nunique() > 1:
        raise ValueError("inject works on one instrument's events at a time")
    instrument = str(frame["instrument"].iloc[0]) if len(frame) else ""
    stats = InjectionStats()
    plan = _Plan(campaign, typical_touch_qty(frame) if touch_qty is None else touch_qty)
    replayer = FeedReplayer(book.fork() if book is not None else OrderBook(instrument))
    out: list[Event] = []
    first_id = int(max(frame["order_id"].max(), 0)) + 1 if len(frame) else 1
    if book is not None:
        first_id = max(first_id, max((o for o in book.order_ids() if o > 0), default=0) + 1)
    hidden = None
    if feed_depth is not None:
        gap = typical_level_gap(frame, campaign.tick) if level_gap is None else level_gap
        hidden = HiddenDepth(feed_depth, gap, _round_lot(plan.touch, campaign.lot))
    manipulator = _Manipulator(replayer.book, first_id, out, stats, hidden)
    steps = plan.steps
    next_step = 0
    ts, kind, oid, qty, price, side, synthetic = _columns(frame)
    shift_of: dict[int, int] = {}  # real orders added while the market followed an ignition
    apply = replayer.apply
    for i in range(len(ts)):
        t = ts[i]
        while next_step < len(steps) and steps[next_step][0] <= t:
            step_ts, _, step = steps[next_step]
            step(manipulator, step_ts)  # type: ignore[operator]
            manipulator.refresh(step_ts)
            next_step += 1
        k, q, p = kind[i], qty[i], price[i]
        if k == _ADD:
            if manipulator.shift:
                p += manipulator.shift
                shift_of[oid[i]] = manipulator.shift
        elif k == _EXECUTE_HIDDEN:
            p += manipulator.shift
        elif shift_of:
            p += shift_of.get(oid[i], 0)  # a removal prints the price its order rests at
        if k == _ADD and q > 0:
            left = manipulator.absorb(t, side[i], p, q)
            if left == 0:
                stats.dropped_real_events += 1
                manipulator.refresh(t)
                continue
            if left < q:
                stats.clipped_real_events += 1
                q = left
        if k == _EXECUTE and q > 0 and manipulator.stand_ins:
            left = manipulator.trade_through(t, side[i], p, q)
            if left == 0:
                stats.dropped_real_events += 1
                manipulator.refresh(t)
                continue
            if left < q:
                stats.clipped_real_events += 1
                q = left
        changed = apply(k, oid[i], q, p, side[i])
        if k in (2, 3, 4) and q > 0 and changed < q:
            if changed == 0:
                stats.dropped_real_events += 1
                continue
            stats.clipped_real_events += 1
            q = changed
        out.append((t, k, oid[i], q, p, side[i], synthetic[i]))
        manipulator.refresh(t)
    while next_step < len(steps):  # a campaign running past the feed's last event
        step_ts, _, step = steps[next_step]
        step(manipulator, step_ts)  # type: ignore[operator]
        manipulator.refresh(step_ts)
        next_step += 1
    rows = out  # every step ran at its own time, so the events are already in time order
    kind_names = {int(k): n for k, n in KIND_NAMES.items()}
    frame_out = pd.DataFrame(
        {
            "ts_ns": np.asarray([r[0] for r in rows], dtype=np.int64),
            "instrument": instrument,
            "kind": [kind_names[r[1]] for r in rows],
            "order_id": np.asarray([r[2] for r in rows], dtype=np.int64),
            "side": ["bid" if r[5] > 0 else "ask" for r in rows],
            "price": np.asarray([r[4] for r in rows], dtype=np.int64),
            "qty": np.asarray([r[3] for r in rows], dtype=np.int64),
            "seq": np.arange(len(rows), dtype=np.int64),
            "synthetic": np.asarray([r[6] for r in rows], dtype=bool),
        },
        columns=COLUMNS,
    )
    return Injection(frame_out, campaign, stats)


def window_labels(
    campaigns: list[Campaign], start_ns: int, end_ns: int, window_ns: int = WINDOW_25M_NS
) -> list[dict[str, object]]:
    """One label per window of the grid: manipulated if any campaign overlaps it."""
    labels: list[dict[str, object]] = []
    t = start_ns
    while t < end_ns:
        w_end = min(t + window_ns, end_ns)
        hits = [c for c in campaigns if c.start_ns < w_end and c.end_ns > t]
        labels.append(
            {
                "window_start_ns": t,
                "window_end_ns": w_end,
                "manipulated": bool(hits),
                "typology": hits[0].typology.value if hits else None,
                "intensity": hits[0].intensity if hits else None,
            }
        )
        t = w_end
    return labels

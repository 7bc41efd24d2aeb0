"""Realism of simulated order flow: stylized facts of rollouts vs the real windows they forecast.

Method (paper, App. J and Table 7): at the start of each of ``windows`` consecutive windows the
real book is rebuilt by replaying the feed (seeded from the first orderbook row, kept to the
file's depth exactly as ``simulator.replay.check_lobster`` does), ``rollouts`` futures are forked
from it with the recent real orders as context, and when the real window has played out the
stylized facts of the real window and of every rollout are pooled (``surveillance.detection.metrics``).
The report gives the overlap coefficient per fact, next to the paper's Table 7, and a spread
budget per window (``spread_budget``): how many ticks resting orders narrowed the spread by and
how many aggressive orders and cancels widened it, real against simulated. A spread that settles
at the wrong level shows there as the mechanism that is off.

Windows are forked through the engine (``simulator.engine``, one ``ForkRequest`` each, seeded by
the engine's window seed rule), with rollout books kept to the file's depth
(``max_depth=day.levels``), as the replayed real book is. Every report also carries three yardsticks for its overlaps: the
persistence reference (``previous_span_overlaps``: the real span just before the windows), the
best real analog of the training hours (``best_real_analog``) and, with two or more rollouts,
the exchangeable ceiling (``exchangeable_overlaps``: each rollout in turn against the others).
``--refill`` (``ForkRequest.refill``) draws the levels the feed would bring into view
from the forked book's own depth; it is off by default because, with the bundled model, it
lowered the mean overlap of the facts and the detector's calibrated AUC.

Measured reference points (the engine replaying real orders, the bundled and other models,
refill, the three yardsticks, mixtures of models) are in docs/studies/realism.md.

Held-out period: the order model is trained on the day up to 14:30; windows should start at or
after ``HELD_OUT_START_NS`` (the report says whether they do).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from simulator.book import EMPTY_ASK_PRICE, EMPTY_BID_PRICE
from simulator.dayforks import DayForks, real_trajectory
from simulator.engine import Engine, fork_in_processes
from simulator.lobster import LobsterDay
from simulator.orderstream import OrderStream, OrderType, from_lobster
from simulator.rollout import OrderGenerator, RolloutSummary
from simulator.units import NS_PER_MIN, NS_PER_S, clock
from surveillance.detection.metrics import (
    DISCRETE_FACTS,
    FACTS,
    PAPER_TABLE7,
    StylizedFacts,
    Trajectory,
    compare,
    window_facts,
)

HELD_OUT_START_NS = (14 * 60 + 30) * NS_PER_MIN
SESSION_OPEN_NS = (9 * 60 + 30) * NS_PER_MIN  # the grid ``best_real_analog`` starts spans on
SPREAD_BAR = 0.90  # the project's acceptance bar on held-out windows
FACT_BAR = 0.80
# Facts held to FACT_BAR: the paper's list (Table 7) plus the cancel ratio and inter-arrival.
# The spread is held to SPREAD_BAR; the time-weighted spread is reported beside it, not held.
BAR_FACTS = tuple(f for f in FACTS if f not in DISCRETE_FACTS)


BUDGET_CLASSES = ("passive", "aggressive", "cancel")
_BUDGET_FIELDS = (
    "events",
    "narrowing_events",
    "narrowed_ticks",
    "widening_events",
    "widened_ticks",
)


def spread_budget(w: Trajectory) -> np.ndarray:
    """Where a window's spread moves: one row per ``BUDGET_CLASSES`` entry (limit orders that
    rest, marketable ones, cancels) with the columns of ``_BUDGET_FIELDS``.

    Only events with a two-sided book before and after count toward the ticks. The budget
    explains a spread level: over a window, ticks narrowed and ticks widened roughly balance, so
    a simulated spread that settles too narrow shows up as less widening per event (for
    instance aggressive orders that rarely clear the touch) or more narrowing.
    """
    before_bid = np.concatenate([[w.bid0], w.best_bid[:-1]])
    before_ask = np.concatenate([[w.ask0], w.best_ask[:-1]])
    ok = w.two_sided() & (before_bid != EMPTY_BID_PRICE) & (before_ask != EMPTY_ASK_PRICE)
    delta = np.where(ok, ((w.best_ask - w.best_bid) - (before_ask - before_bid)) // w.tick_size, 0)
    cancel = w.type == int(OrderType.CANCEL)
    aggressive = ~cancel & w.aggressive.astype(bool)
    out = np.zeros((len(BUDGET_CLASSES), len(_BUDGET_FIELDS)))
    for row, m in enumerate((~cancel & ~aggressive, aggressive, cancel)):
        d = delta[m]
        out[row] = (m.sum(), (d < 0).sum(), -d[d < 0].sum(), (d > 0).sum(), d[d > 0].sum())
    return out


def levels_per_side(rows: np.ndarray) -> float:
    """Mean number of levels per side in LOBSTER orderbook rows (what a rollout book is
    compared with: ``RolloutSummary.levels_per_side``)."""
    if len(rows) == 0:
        return 0.0
    asks = (rows[:, 0::4] != EMPTY_ASK_PRICE) & (rows[:, 1::4] > 0)
    bids = (rows[:, 2::4] != EMPTY_BID_PRICE) & (rows[:, 3::4] > 0)
    return round(float((asks.sum(1) + bids.sum(1)).mean()) / 2, 3)


class SpreadBudget:
    """``spread_budget`` summed over windows, reported per window."""

    def __init__(self) -> None:
        self.total = np.zeros((len(BUDGET_CLASSES), len(_BUDGET_FIELDS)))
        self.windows = 0

    def update(self, w: Trajectory) -> None:
        self.total += spread_budget(w)
        self.windows += 1

    def as_dict(self) -> dict[str, dict[str, float]]:
        per = self.total / max(self.windows, 1)
        return {
            cls: {f: round(float(v), 2) for f, v in zip(_BUDGET_FIELDS, row, strict=True)}
            for cls, row in zip(BUDGET_CLASSES, per, strict=True)
        }


class RealismError(ValueError):
    """The requested windows cannot be evaluated on this data (user error)."""


def bar_of(fact: str) -> float | None:
    """The project's bar for a fact's overlap, None for a fact only reported."""
    if fact == "spread":
        return SPREAD_BAR
    return FACT_BAR if fact in BAR_FACTS else None


def passed(overlaps: dict[str, float | None]) -> dict[str, bool | None]:
    """Each held fact's overlap against its bar (spread 0.90, the others 0.80); None for a
    fact with no bar or no overlap."""
    out: dict[str, bool | None] = {}
    for fact, v in overlaps.items():
        bar = bar_of(fact)
        out[fact] = None if v is None or bar is None else v >= bar
    return out


FactsOfWindow = dict[str, tuple[np.ndarray, np.ndarray | None]]  # ``window_facts``' result


def exchangeable_overlaps(
    rollout_facts: list[list[FactsOfWindow]],
) -> list[dict[str, float | None]]:
    """Leave one rollout out: for each rollout index r, rollout r of every window plays the
    real market and the other rollouts of those windows the simulation (``rollout_facts[w][r]``:
    the facts of rollout r of window w).

    If the real market were one more draw of the generator (a generator exchangeable with
    it: the best a forecast can be), the real report's overlaps would be distributed like
    these. They are the noise ceiling of the report: one real path per window gives only so
    many samples (25 per-minute values, 21 overlapping 5-minute returns), and a fact whose
    real distribution is that thin overlaps a correct forecast's imperfectly.
    """
    n = min((len(w) for w in rollout_facts), default=0)
    out = []
    for r in range(n):
        pseudo_real, rest = StylizedFacts(), StylizedFacts()
        for window in rollout_facts:
            for k, facts in enumerate(window):
                (pseudo_real if k == r else rest).add(facts)
        out.append(compare(pseudo_real, rest))
    return out


@dataclass(slots=True)
class ExchangeableCeiling:
    """``exchangeable_overlaps`` summarized: per fact the median and the 10% quantile over the
    left-out rollouts, and the share of them at the bar on every fact."""

    draws: list[dict[str, float | None]]

    def fact(self, fact: str, observed: float | None = None) -> dict[str, float | None] | None:
        """One fact's ceiling; with the generator's ``observed`` overlap, also its ``rank``:
        the share of left-out rollouts that scored no better. A rank near 0 is a shortfall
        that the thin real sample does not explain; one near 0.5 is as good as the ceiling."""
        vals = [v for d in self.draws if (v := d.get(fact)) is not None]
        if not vals:
            return None
        q10, q50 = np.quantile(vals, [0.1, 0.5])
        bar = bar_of(fact)
        return {
            "median": float(q50),
            "q10": float(q10),
            "at_bar": None if bar is None else float(np.mean([v >= bar for v in vals])),
            "rank": None if observed is None else float(np.mean([v <= observed for v in vals])),
        }

    @property
    def all_passed_share(self) -> float:
        """Share of the left-out rollouts at the bar on every fact (as ``all_passed``)."""
        return float(np.mean([all(v is not False for v in passed(d).values()) for d in self.draws]))

    def as_dict(self) -> dict[str, object]:
        return {"draws": len(self.draws), "all_passed_share": self.all_passed_share}


@dataclass(slots=True)
class WindowRun:
    start: str
    end: str
    real_orders: int
    sim_orders_mean: float
    seconds: float
    summary: dict[str, object]
    # this window alone: its real facts against its rollouts' (``compare``). Per-minute facts
    # have one real value a minute, so a 25-minute window's figures are coarse; they show which
    # window a pooled shortfall comes from (a regime that builds up within the span).
    overlaps: dict[str, float | None] = field(default_factory=dict)


@dataclass(slots=True)
class RealismReport:
    instrument: str
    generator: str
    rollouts: int
    window_ns: int
    held_out: bool
    overlaps: dict[str, float | None]
    real: dict[str, dict[str, float | int | None]]
    sim: dict[str, dict[str, float | int | None]]
    windows: list[WindowRun] = field(default_factory=list)
    seconds: float = 0.0
    orders_per_s: float | None = None
    notes: list[str] = field(default_factory=list)
    # per window: real windows, and each rollout counted as one window
    budget: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    # the persistence forecast: the real span just before the windows against the windows
    # (``previous_span_overlaps``); empty when the data does not reach back that far
    reference: dict[str, float | None] = field(default_factory=dict)
    # what a generator exchangeable with the market would score (``exchangeable_overlaps``);
    # None with fewer than two rollouts
    ceiling: ExchangeableCeiling | None = None
    # the best-matching real span of the training hours (``best_real_analog``); None if none
    analog: RealAnalog | None = None

    @property
    def passed(self) -> dict[str, bool | None]:
        """Each fact against the project's bar (spread 0.90, the other facts 0.80)."""
        return passed(self.overlaps)

    def as_dict(self) -> dict[str, object]:
        held = self.passed
        return {
            "instrument": self.instrument,
            "generator": self.generator,
            "rollouts": self.rollouts,
            "window_s": self.window_ns / NS_PER_S,
            "held_out": self.held_out,
            "windows": [
                {
                    "start": w.start,
                    "end": w.end,
                    "real_orders": w.real_orders,
                    "sim_orders_mean": w.sim_orders_mean,
                    "seconds": w.seconds,
                    "summary": w.summary,
                    "overlaps": w.overlaps,
                }
                for w in self.windows
            ],
            "facts": {
                fact: {
                    "overlap": self.overlaps[fact],
                    "paper": PAPER_TABLE7[fact],
                    "bar": bar_of(fact),
                    "passed": held[fact],
                    "reference": self.reference.get(fact),
                    "analog": None if self.analog is None else self.analog.overlaps.get(fact),
                    "ceiling": None
                    if self.ceiling is None
                    else self.ceiling.fact(fact, self.overlaps[fact]),
                    "real": self.real[fact],
                    "sim": self.sim[fact],
                }
                for fact in FACTS
            },
            "all_passed": all(v is not False for v in held.values()),
            "ceiling": None if self.ceiling is None else self.ceiling.as_dict(),
            "analog": None if self.analog is None else self.analog.as_dict(),
            "spread_budget": self.budget,
            "seconds": self.seconds,
            "orders_per_s": self.orders_per_s,
            "notes": self.notes,
        }


@dataclass(slots=True)
class RealAnalog:
    """The real span of the training hours whose facts come closest to the windows' own: the
    most held facts at their bar, then the highest mean overlap over them (``best_real_analog``).
    """

    start: str
    end: str
    overlaps: dict[str, float | None]
    spans: int  # candidate spans compared
    spans_at_bar: int  # of them, those at the bar on every held fact

    @property
    def at_bar(self) -> int:
        return sum(1 for v in passed(self.overlaps).values() if v)

    def as_dict(self) -> dict[str, object]:
        return {
            "start": self.start,
            "end": self.end,
            "facts_at_bar": self.at_bar,
            # held facts with a figure (a return longer than the windows has none)
            "held_facts": sum(1 for v in passed(self.overlaps).values() if v is not None),
            "overlaps": self.overlaps,
            "spans": self.spans,
            "spans_at_bar": self.spans_at_bar,
        }


def best_real_analog(
    day: LobsterDay,
    stream: OrderStream,
    real: StylizedFacts,
    *,
    windows: int,
    window_ns: int,
    end_ns: int,
    step_ns: int = 5 * NS_PER_MIN,
) -> RealAnalog | None:
    """Every real span of ``windows`` windows that starts on a ``step_ns`` grid from the session
    open and ends by ``end_ns`` (the end of the training hours, or the windows' own start if
    earlier), against the real windows' facts (``real``); the best one, or None if none fits.

    It is chosen in hindsight, so it is what a generator would score that reproduced exactly
    the real flow of the best-matching stretch of the hours it learned from: a bar that no span
    reaches asks for a regime those hours do not hold (figures: docs/studies/realism.md)."""
    span_ns = windows * window_ns
    first = SESSION_OPEN_NS
    while first < int(day.messages.ts_ns[0]):
        first += step_ns
    held = [f for f in FACTS if bar_of(f) is not None]
    tick = day.instrument.tick_size
    cache: dict[int, dict] = {}

    def facts_of(start: int) -> dict:
        if start not in cache:
            cache[start] = window_facts(
                real_trajectory(day, stream, start, start + window_ns, tick)
            )
        return cache[start]

    best: tuple[tuple[int, float], int, dict[str, float | None]] | None = None
    spans = spans_at_bar = 0
    for start in range(first, end_ns - span_ns + 1, step_ns):
        span = StylizedFacts()
        for w in range(windows):
            span.add(facts_of(start + w * window_ns))
        overlaps = compare(real, span)
        ok = passed(overlaps)
        at_bar = sum(1 for f in held if ok[f])
        rank = (at_bar, float(np.mean([overlaps[f] or 0.0 for f in held])))
        spans += 1
        spans_at_bar += all(ok[f] is not False for f in held)  # as ``all_passed``
        if best is None or rank > best[0]:
            best = (rank, start, overlaps)
    if best is None:
        return None
    _, start, overlaps = best
    return RealAnalog(clock(start), clock(start + span_ns), overlaps, spans, spans_at_bar)


def previous_span_overlaps(
    day: LobsterDay,
    stream: OrderStream,
    real: StylizedFacts,
    *,
    start_ns: int,
    windows: int,
    window_ns: int,
) -> dict[str, float | None] | None:
    """Overlaps of the real windows' facts (``real``) with those of the ``windows`` real
    windows just before ``start_ns``: the persistence forecast ("the next span looks like the
    last one"), the reference any generator should beat. ``None`` if the day does not reach back
    that far. It also shows how far a day's facts drift within the horizon of one forecast
    (figures: docs/studies/realism.md)."""
    first = start_ns - windows * window_ns
    if first < int(day.messages.ts_ns[0]):
        return None
    previous = StylizedFacts()
    for w in range(windows):
        w_start = first + w * window_ns
        previous.update(
            real_trajectory(day, stream, w_start, w_start + window_ns, day.instrument.tick_size)
        )
    return compare(real, previous)


def evaluate_realism(
    day: LobsterDay,
    generator: OrderGenerator,
    *,
    generator_name: str,
    start_ns: int,
    windows: int,
    window_ns: int,
    rollouts: int,
    seed: int = 0,
    context_ns: int = 30 * NS_PER_MIN,
    max_orders: int | None = None,
    stream: OrderStream | None = None,
    progress: Callable[[str], None] | None = None,
    refill: bool = False,
    jobs: int = 1,
    generator_factory: Callable[[], OrderGenerator] | None = None,
) -> RealismReport:
    """Fork rollouts at the start of ``windows`` consecutive windows and score their realism.

    ``jobs`` > 1 forks the windows in that many worker processes, each with its own generator
    from ``generator_factory`` (a picklable callable; ``generator`` then forks only a single
    window).
    A window's rollouts depend on its seed and its fork alone, so the report is the same as
    with one job; only ``seconds`` and ``orders_per_s`` differ."""
    if windows <= 0 or rollouts <= 0:
        raise RealismError("need at least one window and one rollout")
    if jobs < 1:
        raise RealismError(f"jobs must be at least 1, got {jobs}")
    if jobs > 1 and generator_factory is None:
        raise RealismError("forking windows in several processes needs a generator factory")
    if day.orderbook is None:
        raise RealismError("realism needs the LOBSTER orderbook file (book rows)")
    first_ts, last_ts = int(day.messages.ts_ns[0]), int(day.messages.ts_ns[-1])
    end_ns = start_ns + windows * window_ns
    if start_ns < first_ts or end_ns > last_ts + NS_PER_S:
        raise RealismError(
            f"{windows} window(s) of {window_ns // NS_PER_S} s from {clock(start_ns)} end at "
            f"{clock(end_ns)}, outside the data ({clock(first_ts)} to {clock(last_ts)})"
        )
    t0 = time.perf_counter()
    notes: list[str] = []
    if stream is None:
        stream = from_lobster(day)
    tick = day.instrument.tick_size
    forker = DayForks(day, stream, context_ns)
    # Each window's fork: the real book at its start, the real orders before it and the rows
    # they met (``simulator.dayforks``). Forks never touch them.
    starts = [start_ns + w * window_ns for w in range(windows)]
    firsts = [forker.first_order(s) for s in starts]  # each window's first order
    for i0, w_start in zip(firsts, starts, strict=True):
        if i0 >= len(stream):
            raise RealismError(f"no orders after {clock(w_start)}")
    forks = [
        forker.request(s, window_ns, rollouts, seed, max_orders=max_orders, refill=refill)
        for s in starts
    ]
    rows = forker.rows
    real, sim = StylizedFacts(), StylizedFacts()
    real_budget, sim_budget = SpreadBudget(), SpreadBudget()
    rollout_facts: list[list[FactsOfWindow]] = []
    runs: list[WindowRun] = []
    sim_orders = 0
    sim_seconds = 0.0
    forked = fork_in_processes(
        forks, generator_factory or (lambda: generator), jobs, engine=Engine(generator)
    )
    for w, futures in enumerate(forked):
        results, seconds = futures.results, futures.seconds
        w_start = start_ns + w * window_ns
        w_end = w_start + window_ns
        i0 = firsts[w]
        sim_seconds += seconds
        summary = RolloutSummary.of(results)
        sim_orders += summary.orders
        real_w = real_trajectory(day, stream, w_start, w_end, tick)
        i1 = i0 + len(real_w.ts_ns)  # the window's orders are stream[i0:i1]
        real_facts = window_facts(real_w)
        real.add(real_facts)
        real_budget.update(real_w)
        real_here, sim_here = StylizedFacts(), StylizedFacts()  # this window alone
        real_here.add(real_facts)
        rollout_facts.append([])
        for r in results:
            traj = Trajectory.from_rollout(r, tick_size=tick)
            facts = window_facts(traj)
            sim.add(facts)
            sim_here.add(facts)
            rollout_facts[-1].append(facts)
            sim_budget.update(traj)
        runs.append(
            WindowRun(
                clock(w_start),
                clock(w_end),
                len(real_w.ts_ns),
                summary.orders / rollouts,
                seconds,
                {
                    "trades": summary.trades,
                    "rejected": summary.rejected,
                    "void_cancels": summary.void_cancels,
                    "redirected_cancels": summary.redirected_cancels,
                    "depth_dropped": summary.depth_dropped,
                    "depth_refilled": summary.depth_refilled,
                    "levels_per_side": {
                        "real": levels_per_side(rows[stream.source_row[i0:i1]]),
                        "sim": round(summary.levels_per_side, 3),
                    },
                    "two_sided_share": float(
                        np.mean([r.two_sided.mean() if len(r) else 1.0 for r in results])
                    ),
                    "stops": summary.stops,
                },
                compare(real_here, sim_here),
            )
        )
        if progress is not None:
            progress(
                f"window {clock(w_start)}-{clock(w_end)}: {len(real_w.ts_ns)} real orders, "
                f"{summary.orders / rollouts:.0f} simulated per rollout, {seconds:.1f} s"
            )
    reference = previous_span_overlaps(
        day, stream, real, start_ns=start_ns, windows=windows, window_ns=window_ns
    )
    if reference is None:
        notes.append(
            "no persistence reference: the span before the windows would start at "
            f"{clock(start_ns - windows * window_ns)}, before the data"
        )
    held_out = start_ns >= HELD_OUT_START_NS
    if not held_out:
        notes.append(f"windows start before {clock(HELD_OUT_START_NS)}: not held out from training")
    return RealismReport(
        instrument=day.symbol,
        generator=generator_name,
        rollouts=rollouts,
        window_ns=window_ns,
        held_out=held_out,
        overlaps=compare(real, sim),
        real={f: real.summary(f) for f in FACTS},
        sim={f: sim.summary(f) for f in FACTS},
        windows=runs,
        seconds=time.perf_counter() - t0,
        orders_per_s=sim_orders / sim_seconds if sim_seconds > 0 else None,
        notes=notes,
        budget={"real": real_budget.as_dict(), "sim": sim_budget.as_dict()},
        reference=reference or {},
        ceiling=ExchangeableCeiling(exchangeable_overlaps(rollout_facts)) if rollouts > 1 else None,
        analog=best_real_analog(
            day,
            stream,
            real,
            windows=windows,
            window_ns=window_ns,
            end_ns=min(start_ns, HELD_OUT_START_NS),
        ),
    )

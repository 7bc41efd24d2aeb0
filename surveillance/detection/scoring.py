"""The detection path: from a closed window to its score. One path for every caller: the
offline replay and the stream worker (``SimulationScorer``), the manipulation benchmark and the
demo.

1. ``fork_request``: the window's ``ForkRequest`` for the engine (the book at its start, the
   previous window's orders as the model's context, the day's open mid, the window seed).
   ``simulate`` forks a batch of windows in one ``Engine.fork`` call and fits each window's
   simulation-versus-simulation null (``Simulation``).
2. ``score_window``: the real window's facts against its simulation, the baselines against the
   instrument's earlier windows, and the calibration: a ``WindowScore``.

It sees plain data and an engine; it never touches files, Kafka, a database or torch.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from simulator.book import OrderBook
from simulator.engine import Engine, ForkRequest, window_seed
from simulator.matching import MatchingRules
from simulator.orderstream import OrderStream
from simulator.replay import FeedReplayer
from simulator.trajectory import (
    Trajectory,
    TrajectoryRecorder,
    order_stream,
    trajectory_from_events,
)
from simulator.types import BookEvent, Instrument
from simulator.units import NS_PER_MIN
from surveillance.detection.coldstart import profile_of
from surveillance.detection.detector import (
    DETECTION_FACTS,
    Calibration,
    FactSamples,
    SimulationNull,
    historical_diff,
    spread_zscore,
)
from surveillance.detection.evidence import evidence
from surveillance.detection.metrics import FACTS_REVISION, TAIL_FACTS, window_facts
from surveillance.detection.orders import order_evidence
from surveillance.detection.pipeline import ClosedWindow, WindowScore
from surveillance.detection.timeofday import TimeOfDay


@dataclass(frozen=True, slots=True)
class DetectionConfig:
    """What a detection run is, beyond its input: every field goes into the config version."""

    window_ns: int = 25 * NS_PER_MIN
    rollouts: int = 16  # what the bundled calibrations (models/checkpoints/) were fitted with
    seed: int = 0
    history_orders: int = 256  # real orders given to the model as context
    max_depth: int | None = 10  # rollout books kept to the depth the feed can observe
    facts: tuple[str, ...] = DETECTION_FACTS
    far: float = 0.05  # target false-alarm rate for the alert threshold
    baseline_windows: int = 6  # earlier windows the baselines compare with
    tick_size: int = 100
    price_scale: int = 10_000
    facts_revision: int = FACTS_REVISION  # what the facts measure (surveillance.detection.metrics)
    # rollout books kept full to max_depth (``simulator.rollout``, refill); added after the
    # bundled calibrations, so it enters the digest only when on
    refill: bool = False

    def __post_init__(self) -> None:
        if self.refill and self.max_depth is None:
            raise ValueError("refill keeps rollout books at max_depth levels: set max_depth")

    def version(self) -> str:
        """A short stable digest of the configuration (part of every alert)."""
        names = [f for f in self.__dataclass_fields__ if f != "refill" or self.refill]
        text = repr(tuple(getattr(self, f) for f in names))
        return f"cfg-{zlib.crc32(text.encode()):08x}"


@dataclass(slots=True)
class HistoryContext:
    """The real window before a fork, replayed once: the model's context (its last orders and
    the book row each of them met) and that window's trajectory (the tail facts' floor)."""

    orders: OrderStream
    rows: np.ndarray | None
    trajectory: Trajectory | None


def history_context(
    history: Sequence[BookEvent],
    n: int,
    history_book: OrderBook | None = None,
    levels: int = 10,
    span: tuple[int, int] | None = None,
    tick_size: int = 100,
) -> HistoryContext:
    """The last ``n`` real orders before a window, as the model's context.

    With ``history_book`` (the book before the first history event) the book before each order
    is rebuilt as a LOBSTER-style row of ``levels`` levels, so the context carries the book its
    orders saw; without it the rows are ``None`` (the generator uses the current book). With a
    ``span`` as well, the same pass records the history's trajectory over that span.
    """
    first = np.array([i for i, e in enumerate(history) if not e.synthetic], dtype=np.int64)
    orders = order_stream(history)
    stream = orders[0]
    starts = first[stream.source_row] if len(stream) else np.zeros(0, np.int64)
    k = max(len(stream) - n, 0)
    stream = stream.take(slice(k, None))
    if history_book is None:
        return HistoryContext(stream, None, None)
    replayer = FeedReplayer(history_book.fork())
    book = replayer.book
    recorder = TrajectoryRecorder(book) if span is not None else None
    snapshots = np.empty((len(history) + 1, 4 * levels), dtype=np.int64)
    snapshots[0] = book.snapshot(levels)
    for i, e in enumerate(history):
        replayer.apply_event(e)
        snapshots[i + 1] = book.snapshot(levels)
        if recorder is not None:
            recorder.note()
    trajectory = None
    if recorder is not None and span is not None:
        trajectory = recorder.finish(history, span[0], span[1], tick_size, orders)
    # the book before an order is the book after the message preceding its first message
    return HistoryContext(stream, snapshots[starts[k:]], trajectory)


@dataclass(slots=True)
class Simulation:
    """The rollouts forked at one window's start, ready to score real windows against."""

    sims: list[Trajectory]
    sim_facts: list[FactSamples]
    null: SimulationNull
    orders: int  # generated orders, all rollouts
    # of them, the orders the real window's feed would show (all of them but on a level-1
    # feed): what the real window's order count is compared with (``simulation_check``)
    visible_orders: int | None = None

    @classmethod
    def of(
        cls,
        sims: list[Trajectory],
        config: DetectionConfig,
        reference: FactSamples | None,
        feed_depth: int | None = None,
    ) -> Simulation:
        """The simulation of these rollout trajectories (forked now, or read back from the
        fork cache); ``reference``: the facts of the real window before the fork. A feed that
        shows only the touch (``feed_depth`` 1) is compared with the rollouts' orders such a
        feed would show (``Trajectory.touch_view``): the real window holds no others."""
        seen = [s.touch_view() for s in sims] if feed_depth == 1 else sims
        sim_facts = [window_facts(s) for s in seen]
        null = SimulationNull.fit(sim_facts, config.facts, reference)
        return cls(
            sims,
            sim_facts,
            null,
            int(sum(len(s.ts_ns) for s in sims)),
            int(sum(len(s.ts_ns) for s in seen)),
        )


# A simulation whose orders per rollout or median spread is this many times off the real
# window's (either way) is read as off the market: its facts' z then mostly measure the order
# model's failure (a rollout flooded with orders, a spread collapsed to the touch). Wide on
# purpose: a moderate campaign moves neither by that much (quote stuffing at moderate
# intensity adds about 60% to a GOOG window's orders; docs/decisions/simulation-check.md).
SIMULATION_CHECK_FACTOR = 3.0


def simulation_check(
    real: Trajectory, real_facts: FactSamples, simulation: Simulation
) -> dict[str, Any]:
    """Whether the rollouts look like the real window at all: the orders per rollout (those
    the feed would show) against the real window's orders, and the rollouts' median spread in
    ticks against the real one's; ``faithful`` False, with the measures that are
    ``SIMULATION_CHECK_FACTOR`` or more times off either way in ``off``, when they do not.
    Off says the two disagree, not which is unusual: mostly the order model (a flood, a
    collapsed spread), but a real window far busier than any the model learnt from reads
    the same way."""
    rollouts = max(len(simulation.sims), 1)
    shown = simulation.orders if simulation.visible_orders is None else simulation.visible_orders
    per_rollout = shown / rollouts
    real_orders = len(real.ts_ns)
    real_spread = _median_spread([real_facts])
    sim_spread = _median_spread(simulation.sim_facts)  # the typical rollout's, not the busiest's
    ratios = {
        "orders": per_rollout / max(real_orders, 1),
        "spread": None
        if real_spread is None or sim_spread is None
        else max(sim_spread, 1.0) / max(real_spread, 1.0),
    }
    off = [
        name
        for name, r in ratios.items()
        if r is not None and not 1 / SIMULATION_CHECK_FACTOR < r < SIMULATION_CHECK_FACTOR
    ]
    return {
        "faithful": not off,
        "off": off,
        "orders_per_rollout": round(per_rollout, 1),
        "real_orders": real_orders,
        "order_ratio": round(ratios["orders"], 3),
        "spread_ticks": {"real": real_spread, "rollouts": sim_spread},
        "spread_ratio": None if ratios["spread"] is None else round(ratios["spread"], 3),
    }


def _median_spread(facts: Sequence[FactSamples]) -> float | None:
    """The median over windows of each window's median spread in ticks (so a rollout with
    many orders does not outweigh the others)."""
    medians = [float(np.median(f["spread"][0])) for f in facts if len(f.get("spread", ((),))[0])]
    return float(np.median(medians)) if medians else None


def window_rules(instrument: str, config: DetectionConfig) -> MatchingRules:
    return MatchingRules.from_instrument(
        Instrument(instrument, tick_size=config.tick_size, price_band_bps=None)
    )


def open_mid_of(window: ClosedWindow) -> float:
    """The day's open mid the model's mid-move feature reads (the window's own opening mid
    when the stream never saw a two-sided book before it)."""
    if window.open_mid is not None:
        return window.open_mid
    mid = window.opening_book.mid
    return float(mid) if mid is not None else 0.0


def reference_span(window: ClosedWindow) -> tuple[int, int] | None:
    """The span of the real window before the fork whose facts floor the tail facts' cut
    (``SimulationNull``); None without that window's opening book or no tail fact scored."""
    if window.history_book is None or not window.history:
        return None
    start, end = window.start_ns, window.horizon_end_ns
    return min(start - (end - start), window.history[0].ts_ns), start


def fork_request(
    window: ClosedWindow, config: DetectionConfig
) -> tuple[ForkRequest, HistoryContext]:
    """The engine request of one window, and the replayed history it was built from."""
    span = reference_span(window) if any(f in TAIL_FACTS for f in config.facts) else None
    context = history_context(
        window.history,
        config.history_orders,
        window.history_book,
        span=span,
        tick_size=config.tick_size,
    )
    request = ForkRequest(
        instrument=window.instrument,
        book=window.opening_book,
        context=context.orders,
        context_rows=context.rows,
        open_mid=open_mid_of(window),
        start_ns=window.start_ns,
        horizon_ns=window.horizon_end_ns - window.start_ns,
        rollouts=config.rollouts,
        seed=window_seed(config.seed, window.instrument, window.start_ns),
        rules=window_rules(window.instrument, config),
        max_depth=config.max_depth,
        refill=config.refill,
    )
    return request, context


def simulate(
    windows: Sequence[ClosedWindow], engine: Engine, config: DetectionConfig
) -> list[Simulation]:
    """Fork every window's rollouts in one engine call and fit each window's null."""
    prepared = [fork_request(w, config) for w in windows]
    futures = engine.fork([request for request, _ in prepared])
    return [
        Simulation.of(f.trajectories, config, _facts(context.trajectory), w.feed_depth)
        for f, w, (_, context) in zip(futures, windows, prepared, strict=True)
    ]


def reference_facts(window: ClosedWindow, config: DetectionConfig) -> FactSamples | None:
    """The facts ``simulate`` floors the tail facts with, for a simulation read back from a
    cache (one more replay of the history than ``simulate`` needs)."""
    span = reference_span(window) if any(f in TAIL_FACTS for f in config.facts) else None
    if span is None or window.history_book is None:
        return None
    return window_facts(
        trajectory_from_events(
            window.history_book, window.history, span[0], span[1], config.tick_size
        )
    )


def _facts(trajectory: Trajectory | None) -> FactSamples | None:
    return None if trajectory is None else window_facts(trajectory)


def skipped(window: ClosedWindow) -> str | None:
    """Why a window is decided without a score, or None. The model forks from the book *and*
    the recent order flow; a stream's first window has no earlier flow (never an alert)."""
    if not window.events:
        return "no events"
    if not window.history:
        return "no earlier order flow as context"
    bid, ask = window.opening_book.best_prices()
    if bid is None or ask is None or bid >= ask:
        # a venue's pre-open (CME before its opening auction) may cross the book: no
        # continuous market to fork from
        return "book crossed or one-sided at the window's start"
    return None


def baselines(
    window: ClosedWindow, facts: FactSamples | None, config: DetectionConfig
) -> dict[str, float | None]:
    """The baseline detectors' scores: the window's facts against the instrument's earlier
    windows."""
    earlier = list(window.earlier_facts)
    out: dict[str, float | None] = {"historical_diff": None, "spread_zscore": None}
    if facts is not None:
        out["historical_diff"] = historical_diff(facts, earlier, config.facts)  # type: ignore[arg-type]
        out["spread_zscore"] = spread_zscore(facts, earlier)  # type: ignore[arg-type]
    return out


def score_window(
    window: ClosedWindow,
    simulation: Simulation | None,
    config: DetectionConfig,
    calibration: Calibration | None,
    *,
    with_evidence: bool = True,
    not_simulated: str | None = None,
) -> WindowScore:
    """The decision's score of one window: its real facts against ``simulation`` (None for a
    window ``skipped`` says why), the baselines, and the calibrated threshold when there is
    a calibration (else the raw score, never an alert)."""
    reason = skipped(window)
    real = window.real_trajectory
    real_facts = window.real_facts
    if reason is None and real is None:
        real = trajectory_from_events(
            window.opening_book,
            window.events,
            window.start_ns,
            window.horizon_end_ns,
            config.tick_size,
        )
    if real_facts is None and real is not None:
        real_facts = window_facts(real)
    base = baselines(window, real_facts, config)
    if reason is not None or simulation is None or real is None or real_facts is None:
        return WindowScore(
            score=None,
            p_value=None,
            alert=False,
            baselines=base,
            detail={
                "skipped": reason or not_simulated or "not simulated",
                "calibrated": calibration is not None,
            },
        )
    verdict = simulation.null.score(real_facts)
    diverged = tuple(verdict.diverged())
    cal = calibration
    # the window's time of day, by the calibration's buckets (the default ones without one,
    # so a replay that fits its own threshold can learn them too)
    bucket = (
        cal.bucket(window.start_ns, window.end_ns, window.session)
        if cal is not None
        else TimeOfDay().bucket(window.start_ns, window.end_ns, window.session)
    )
    profile = profile_of(real, window.feed_depth)
    # a window the calibration has no norms for (an unseen instrument, or a feed of a known one
    # at another depth) is read cold: norms pooled by likeness (coldstart), adapted later by
    # whoever keeps the instrument's own windows (ColdStarts)
    cold = (
        cal.cold(verdict.fact_z(), bucket, profile)
        if cal is not None and cal.calibrated_key(window.instrument, window.feed_depth) is None
        else None
    )
    threshold = cal.threshold if cal is not None else None
    if cold is not None:
        score, threshold = cold.score, cold.threshold
    elif cal is not None:
        score = cal.score(verdict.score, verdict.fact_z(), window.instrument, bucket)
    else:
        score = verdict.score
    detail: dict[str, Any] = {
        "bucket": bucket,
        "raw_score": verdict.score,
        "facts": {f: e.as_dict() for f, e in verdict.facts.items()},
        "p_value_sim": verdict.p_value,
        "p_value_sim_normal": verdict.p_value_normal,
        "null_scores": [round(x, 4) for x in verdict.null_scores],
        "rollouts": verdict.rollouts,
        "rollout_orders": simulation.orders,
        "real_orders": len(real.ts_ns),
        # do the rollouts look like the market at all (their order rate and spread)?
        "simulation": simulation_check(real, real_facts, simulation),
        "seed": window_seed(config.seed, window.instrument, window.start_ns),
        "calibrated": cal is not None,
        # which bucket and how many windows stand behind the norms the score was read with
        "calibration": cold.explain
        if cold is not None
        else cal.explain(window.instrument, bucket, verdict.fact_z())
        if cal is not None
        else None,
        # what the window's instrument looks like (what a cold calibration pools by)
        "profile": None if profile is None else profile.as_dict(),
        "feed_depth": window.feed_depth,
        "evidence": (
            evidence(real, real_facts, simulation.sims, simulation.sim_facts, config.price_scale)
            if with_evidence
            else {}
        ),
        # the real orders behind each diverged fact and a typology guess: cheap (masks and one
        # pass over the events), so every scored decision carries it
        "orders": order_evidence(
            real,
            diverged,
            null=simulation.null,
            events=window.events,
            history=window.history,
            price_scale=config.price_scale,
        ).as_dict(),
    }
    return WindowScore(
        score=score,
        # calibrated on normal windows when a calibration exists, else against the rollouts
        p_value=cold.p_value
        if cold is not None
        else cal.p_value(score)
        if cal is not None
        else verdict.p_value,
        alert=cal.is_alert(score, threshold) if cal is not None else False,
        facts={f: e.ovl for f, e in verdict.facts.items() if e.ovl is not None},
        diverged=diverged,
        baselines=base,
        expected={f: e.null_mean for f, e in verdict.facts.items() if e.null_mean is not None},
        threshold=threshold,
        severity=cal.severity(score, threshold) if cal is not None else "none",
        detail=detail,
    )

"""From a window of real events to a verdict: real trajectory, rollouts, overlaps, evidence.

This is the detection core shared by the offline replay and the stream worker. It sees plain
data (the book at the window's start, the window's events, the events before it) and a
generator; it never touches files, Kafka or a database.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from simulator.book import EMPTY_ASK_PRICE, EMPTY_BID_PRICE, OrderBook
from simulator.lobster import Messages
from simulator.matching import MatchingRules
from simulator.orderstream import OrderStream, convert_messages
from simulator.replay import FeedReplayer
from simulator.rollout import OrderGenerator, RolloutResult, fork_rollouts
from simulator.types import BookEvent, Instrument
from surveillance.detection.detector import DETECTION_FACTS, FactSamples, SimulationNull, Verdict
from surveillance.detection.metrics import (
    FACTS_REVISION,
    NS_PER_S,
    TAIL_FACTS,
    Trajectory,
    window_facts,
)

NS_PER_MIN = 60 * NS_PER_S


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


def window_seed(seed: int, instrument: str, start_ns: int) -> int:
    """The rollout seed of one window, from (seed, instrument, window): a replay reproduces a
    live run whatever else ran before."""
    ss = np.random.SeedSequence([seed, zlib.crc32(instrument.encode()), start_ns // NS_PER_S])
    return int(ss.generate_state(1)[0])


def _messages(events: Sequence[BookEvent]) -> Messages:
    return Messages(
        ts_ns=np.fromiter((e.ts_ns for e in events), np.int64, len(events)),
        kind=np.fromiter((int(e.kind) for e in events), np.int8, len(events)),
        order_id=np.fromiter((e.order_id for e in events), np.int64, len(events)),
        qty=np.fromiter((e.qty for e in events), np.int64, len(events)),
        price=np.fromiter((e.price for e in events), np.int64, len(events)),
        side=np.fromiter((int(e.side) for e in events), np.int8, len(events)),
    )


def order_stream(events: Sequence[BookEvent]) -> tuple[OrderStream, np.ndarray]:
    """MarS orders of real events (synthetic reconciliation events are not orders).

    Returns the stream and, per order, the index in ``events`` of its last message (the book
    after that message is the book after the order).
    """
    real = np.fromiter((not e.synthetic for e in events), bool, len(events))
    index = np.flatnonzero(real)
    stream, _ = convert_messages(_messages([events[i] for i in index]))
    first = index[stream.source_row] if len(stream) else np.zeros(0, np.int64)
    # an order's messages end just before the next order's first message
    last = np.empty(len(first), dtype=np.int64)
    if len(first):
        last[:-1] = first[1:] - 1
        last[-1] = len(events) - 1
    return stream, last


def trajectory_from_events(
    opening_book: OrderBook,
    events: Sequence[BookEvent],
    start_ns: int,
    end_ns: int,
    tick_size: int = 100,
) -> Trajectory:
    """The real window as a ``Trajectory``: its orders and the touch after each of them."""
    replayer = FeedReplayer(opening_book.fork())
    book = replayer.book
    bid0 = book.best_bid if book.best_bid is not None else EMPTY_BID_PRICE
    ask0 = book.best_ask if book.best_ask is not None else EMPTY_ASK_PRICE
    qty0 = book.touch_qty()
    bids = np.empty(len(events), dtype=np.int64)
    asks = np.empty(len(events), dtype=np.int64)
    bid_qty = np.zeros(len(events), dtype=np.int64)
    ask_qty = np.zeros(len(events), dtype=np.int64)
    for i, e in enumerate(events):
        replayer.apply(int(e.kind), e.order_id, e.qty, e.price, int(e.side))
        bid, ask = book.best(1), book.best(-1)
        if bid is None:
            bids[i] = EMPTY_BID_PRICE
        else:
            bids[i], bid_qty[i] = bid.price, bid.qty
        if ask is None:
            asks[i] = EMPTY_ASK_PRICE
        else:
            asks[i], ask_qty[i] = ask.price, ask.qty
    stream, last = order_stream(events)
    return Trajectory(
        start_ns=start_ns,
        end_ns=end_ns,
        bid0=bid0,
        ask0=ask0,
        ts_ns=stream.ts_ns,
        type=stream.type,
        qty=stream.qty,
        aggressive=stream.aggressive,
        best_bid=bids[last],
        best_ask=asks[last],
        tick_size=tick_size,
        bid_qty=bid_qty[last],
        ask_qty=ask_qty[last],
        qty0=qty0,
        order_id=stream.order_id,
    )


# ------------------------------------------------------------------------------ evidence
PATH_STEP_NS = 10 * NS_PER_S


def _spread_pmf(samples: tuple[np.ndarray, np.ndarray | None]) -> dict[str, list]:
    values, weights = samples
    if len(values) == 0:
        return {"ticks": [], "weight": []}
    w = np.ones(len(values)) if weights is None else weights
    ticks, inverse = np.unique(values, return_inverse=True)
    mass = np.bincount(inverse, weights=w)
    mass = mass / mass.sum()
    return {"ticks": ticks.astype(int).tolist(), "weight": [round(float(x), 6) for x in mass]}


def evidence(
    real: Trajectory,
    real_facts: FactSamples,
    sims: Sequence[Trajectory],
    sim_facts: Sequence[FactSamples],
    price_scale: int,
) -> dict[str, object]:
    """What an investigator needs to see why a window scored as it did."""
    pooled = (
        np.concatenate([f["spread_time_weighted"][0] for f in sim_facts]),
        np.concatenate([f["spread_time_weighted"][1] for f in sim_facts]),  # type: ignore[misc]
    )
    grid = np.arange(real.start_ns, real.end_ns + 1, PATH_STEP_NS, dtype=np.int64)
    t_s = ((grid - real.start_ns) / NS_PER_S).round(1).tolist()
    real_mid = real.mid_at(grid) / price_scale
    paths = np.vstack([s.mid_at(grid) for s in sims]) / price_scale
    with np.errstate(all="ignore"):
        q = np.nanquantile(paths, [0.05, 0.25, 0.5, 0.75, 0.95], axis=0)

    def clean(a: np.ndarray) -> list[float | None]:
        return [None if not np.isfinite(x) else round(float(x), 4) for x in a]

    return {
        "spread_real": _spread_pmf(real_facts["spread_time_weighted"]),
        "spread_sim": _spread_pmf(pooled),  # type: ignore[arg-type]
        "price_real": {"t_s": t_s, "mid": clean(real_mid)},
        "price_fan": {
            "t_s": t_s,
            **{k: clean(q[i]) for i, k in enumerate(("q05", "q25", "q50", "q75", "q95"))},
        },
    }


# ------------------------------------------------------------------------------ scoring
@dataclass(slots=True)
class ScoredWindow:
    """The simulation side of one window's decision (baselines and threshold come later)."""

    instrument: str
    start_ns: int
    end_ns: int
    verdict: Verdict
    real_facts: FactSamples
    n_events: int
    n_orders: int
    rollout_orders: int
    evidence: dict[str, object] = field(default_factory=dict)


GeneratorFactory = Callable[[], OrderGenerator]


def history_context(
    history: Sequence[BookEvent],
    n: int,
    history_book: OrderBook | None = None,
    levels: int = 10,
) -> tuple[OrderStream, np.ndarray | None]:
    """The last ``n`` real orders before a window, as the model's context.

    With ``history_book`` (the book before the first history event) the book before each order
    is rebuilt as a LOBSTER-style row of ``levels`` levels, so the context carries the book its
    orders saw; without it the rows are ``None`` (the generator uses the current book).
    """
    first = np.array([i for i, e in enumerate(history) if not e.synthetic], dtype=np.int64)
    stream, _ = order_stream(history)
    starts = first[stream.source_row] if len(stream) else np.zeros(0, np.int64)
    k = max(len(stream) - n, 0)
    stream = stream.take(slice(k, None))
    if history_book is None:
        return stream, None
    replayer = FeedReplayer(history_book.fork())
    book = replayer.book
    snapshots = np.empty((len(history) + 1, 4 * levels), dtype=np.int64)
    snapshots[0] = book.snapshot(levels)
    for i, e in enumerate(history):
        replayer.apply(int(e.kind), e.order_id, e.qty, e.price, int(e.side))
        snapshots[i + 1] = book.snapshot(levels)
    # the book before an order is the book after the message preceding its first message
    return stream, snapshots[starts[k:]]


@dataclass(slots=True)
class Simulation:
    """The rollouts forked at one window's start, ready to score real windows against."""

    results: list[RolloutResult]
    sims: list[Trajectory]
    sim_facts: list[FactSamples]
    null: SimulationNull

    @property
    def orders(self) -> int:
        if self.results:
            return int(sum(len(r) for r in self.results))
        return int(sum(len(s.ts_ns) for s in self.sims))  # rebuilt from cached trajectories

    @classmethod
    def from_trajectories(
        cls,
        sims: list[Trajectory],
        config: DetectionConfig,
        reference: FactSamples | None = None,
    ) -> Simulation:
        """A simulation rebuilt from its rollouts' trajectories (``surveillance.studies.simcache``);
        ``reference``: as ``fork_simulation`` computes it (``reference_facts``)."""
        sim_facts = [window_facts(s) for s in sims]
        return cls([], sims, sim_facts, SimulationNull.fit(sim_facts, config.facts, reference))


def fork_simulation(
    *,
    instrument: str,
    start_ns: int,
    end_ns: int,
    opening_book: OrderBook,
    history: Sequence[BookEvent],
    open_mid: float,
    generator: OrderGenerator,
    config: DetectionConfig,
    history_book: OrderBook | None = None,
    rules: MatchingRules | None = None,
) -> Simulation:
    """Fork ``config.rollouts`` futures of ``[start_ns, end_ns)`` from the opening book."""
    if rules is None:
        rules = MatchingRules.from_instrument(
            Instrument(instrument, tick_size=config.tick_size, price_band_bps=None)
        )
    context, context_rows = history_context(history, config.history_orders, history_book)
    results: list[RolloutResult] = fork_rollouts(
        opening_book,
        context,
        context_rows,
        generator,
        n=config.rollouts,
        start_ns=start_ns,
        horizon_ns=end_ns - start_ns,
        open_mid=open_mid,
        seed=window_seed(config.seed, instrument, start_ns),
        rules=rules,
        max_depth=config.max_depth,
        refill=config.refill,
    )
    sims = [Trajectory.from_rollout(r, tick_size=config.tick_size) for r in results]
    sim_facts = [window_facts(s) for s in sims]
    reference = reference_facts(history, history_book, start_ns, end_ns, config)
    return Simulation(
        results, sims, sim_facts, SimulationNull.fit(sim_facts, config.facts, reference)
    )


def reference_facts(
    history: Sequence[BookEvent],
    history_book: OrderBook | None,
    start_ns: int,
    end_ns: int,
    config: DetectionConfig,
) -> FactSamples | None:
    """The facts of the real window before the fork (``[start - length, start)``, the model's
    context), which floor the tail facts' cut (``SimulationNull``); ``None`` without that
    window's opening book or when no tail fact is scored."""
    if history_book is None or not history or not any(f in TAIL_FACTS for f in config.facts):
        return None
    ref_start = min(start_ns - (end_ns - start_ns), history[0].ts_ns)
    return window_facts(
        trajectory_from_events(history_book, history, ref_start, start_ns, config.tick_size)
    )


def score_real(
    simulation: Simulation,
    *,
    instrument: str,
    start_ns: int,
    end_ns: int,
    opening_book: OrderBook,
    events: Sequence[BookEvent],
    config: DetectionConfig,
    real_facts: FactSamples | None = None,
    with_evidence: bool = True,
    real: Trajectory | None = None,
) -> ScoredWindow:
    """Score one real version of the window against its simulation (``real``: the window's
    trajectory when the caller already has it)."""
    if real is None:
        real = trajectory_from_events(opening_book, events, start_ns, end_ns, config.tick_size)
    if real_facts is None:
        real_facts = window_facts(real)
    verdict = simulation.null.score(real_facts)
    return ScoredWindow(
        instrument=instrument,
        start_ns=start_ns,
        end_ns=end_ns,
        verdict=verdict,
        real_facts=real_facts,
        n_events=len(events),
        n_orders=len(real.ts_ns),
        rollout_orders=simulation.orders,
        evidence=(
            evidence(real, real_facts, simulation.sims, simulation.sim_facts, config.price_scale)
            if with_evidence
            else {}
        ),
    )


def simulate_window(
    *,
    instrument: str,
    start_ns: int,
    end_ns: int,
    opening_book: OrderBook,
    events: Sequence[BookEvent],
    history: Sequence[BookEvent],
    open_mid: float,
    generator: OrderGenerator,
    config: DetectionConfig,
    history_book: OrderBook | None = None,
    rules: MatchingRules | None = None,
    real_facts: FactSamples | None = None,
    real: Trajectory | None = None,
) -> ScoredWindow:
    """Fork the rollouts at the window's start and score the real window against them."""
    simulation = fork_simulation(
        instrument=instrument,
        start_ns=start_ns,
        end_ns=end_ns,
        opening_book=opening_book,
        history=history,
        open_mid=open_mid,
        generator=generator,
        config=config,
        history_book=history_book,
        rules=rules,
    )
    return score_real(
        simulation,
        instrument=instrument,
        start_ns=start_ns,
        end_ns=end_ns,
        opening_book=opening_book,
        events=events,
        config=config,
        real_facts=real_facts,
        real=real,
    )

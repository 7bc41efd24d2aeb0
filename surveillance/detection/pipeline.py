"""The detection seam: per-instrument book + event-time windows, and the decision per window.

The same code runs offline (a file replayed in a loop) and in the stream worker:

- ``InstrumentPipeline`` keeps one instrument's ``OrderBook`` (through ``FeedReplayer`` and its
  policies) and its event-time windows; ``on_event`` returns the windows the event closed.
- A ``WindowScorer`` turns a ``ClosedWindow`` into a ``WindowScore`` (rollouts, stylized facts,
  overlap, calibration: the detection engineers' part). A closed window is plain picklable data
  (a fork of the opening book, the window's events, the previous window's events and opening
  book as the model's context, the session's open mid), so the worker scores it with
  ``loop.run_in_executor`` in a thread or process pool, off the event loop.
- ``decide`` combines the two into a ``WindowDecision``; ``WindowedDetector`` is the synchronous
  ``WindowDetector`` used offline.

Windows are on event time: ``[origin + k * length, origin + (k + 1) * length)``, session-aware:
with the venue's session hours (``session_bounds``) the window that would run past the close
ends at the close, so the last window of the day is a short one and its rollouts are forked for
that shorter horizon, never past the close. A window closes
when an event at or beyond its end arrives (before that event is applied), or at end of stream
(``flush``). Only windows that saw at least one event are closed; a gap in the feed produces no
empty windows. An event older than the open window (out of order) is applied to the book and
counted in the open window, and counted in ``late_events``.

Integrity: every fault the replayer sees (``simulator.replay``: an unresolved cancel or
execution, a crossed book, and, with ``check_seq``, a gap in the events' ``seq``) leaves the
book suspect until the feed's next snapshot (``InstrumentPipeline.resync``). A window that saw
a fault, or opened on a suspect book, is decided as *degraded*: it is not scored, never alerts,
and its decision says why (``degraded_score``), so no alert comes from a corrupt book.

>>> from simulator.types import BookEvent, EventKind, Side
>>> tracker = InstrumentPipeline("X", window_ns=10)
>>> tracker.on_event(BookEvent(3, EventKind.ADD, 1, 5, 100, Side.BID, "X"))
[]
>>> [(w.start_ns, w.end_ns, len(w.events)) for w in tracker.on_event(
...     BookEvent(12, EventKind.DELETE, 1, 5, 100, Side.BID, "X"))]
[(0, 10, 1)]
>>> [(w.start_ns, w.closed_by) for w in tracker.flush()]
[(10, 'end_of_stream')]
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from simulator.book import OrderBook
from simulator.replay import FeedReplayer
from simulator.trajectory import TrajectoryRecorder
from simulator.types import BookEvent
from surveillance.detection.metrics import Trajectory, window_facts

ClosedBy = Literal["event", "end_of_stream"]
# a window's faults by kind, in the order of ``InstrumentPipeline._fault_counts``
_FAULT_KINDS = ("unresolved_cancels", "crossed_books", "sequence_gaps")


@dataclass(frozen=True, slots=True)
class ClosedWindow:
    """What a scorer sees of one window: the book at its start and the real events in it."""

    instrument: str
    start_ns: int
    end_ns: int
    opening_book: OrderBook  # fork taken before the window's first event was applied
    events: tuple[BookEvent, ...]
    closed_by: ClosedBy
    # The order flow before the window (the model's context): the previous window's events
    # and its opening book (the book before the first of them). Empty for the first window.
    history: tuple[BookEvent, ...] = ()
    history_book: OrderBook | None = None
    open_mid: float | None = None  # first two-sided mid of the instrument's stream
    # The window's real stylized-fact samples and those of the instrument's earlier windows
    # (newest last), computed in order as windows close: the baselines compare with them.
    real_facts: Mapping[str, Any] | None = None
    earlier_facts: tuple[Mapping[str, Any], ...] = ()
    # Where the real window stops: end_ns, or just after the last event for a window closed by
    # the end of the stream (a session's last window is usually cut short).
    observed_end_ns: int | None = None
    # The real window as a trajectory (orders and touch after each), built while the live book
    # applied the events, so the scorer needs no second replay of the window.
    real_trajectory: Trajectory | None = None
    # Integrity faults while the window was open, by kind, and whether its book was suspect at
    # any time in it (a fault in it, or one before it not yet repaired by a snapshot).
    faults: Mapping[str, int] = field(default_factory=dict)
    degraded: bool = False
    # False when the window starts outside the venue's continuous session (a pre-open)
    in_session: bool = True
    # The continuous session the window starts in, (open, close) in the feed's clock; None
    # for a venue that never closes or a feed without session hours. A window on the grid
    # that would run past the close ends at it (``end_ns``), and so do its rollouts.
    session: tuple[int, int] | None = None
    # how many price levels per side the feed shows (LOBSTER level N; None: every order, or
    # not known): a calibration is read only on windows of the depth it was fitted on
    feed_depth: int | None = None

    @property
    def horizon_end_ns(self) -> int:
        return self.end_ns if self.observed_end_ns is None else self.observed_end_ns


@dataclass(frozen=True, slots=True)
class WindowScore:
    """A scorer's verdict on one window."""

    score: float | None
    p_value: float | None
    alert: bool
    facts: Mapping[str, float] = field(default_factory=dict)  # overlap per stylized fact
    diverged: tuple[str, ...] = ()  # facts that diverged from the simulated futures
    # Scores of the baseline detectors on the same window (historical_diff, spread_zscore).
    baselines: Mapping[str, float | None] = field(default_factory=dict)
    # Overlap expected of a normal window per fact (the simulation-versus-simulation mean).
    expected: Mapping[str, float] = field(default_factory=dict)
    threshold: float | None = None
    severity: str = "none"
    # Everything behind the verdict (per-fact null statistics, evidence for the report).
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class WindowDecision:
    """The decision for one closed window (alert or not); every closed window gets one: the
    window it is about and its scorer's verdict."""

    instrument: str
    start_ns: int
    end_ns: int
    model_version: str
    n_events: int
    closed_by: ClosedBy
    verdict: WindowScore

    @property
    def alert(self) -> bool:
        return self.verdict.alert


@runtime_checkable
class WindowScorer(Protocol):
    """Scores a closed window. Must be picklable when the worker uses a process pool.

    A scorer may also have a ``config_version`` attribute (e.g. a digest of its detection
    configuration); alerts then carry it instead of the ``SURV_CONFIG_VERSION`` setting.
    """

    model_version: str

    def __call__(self, window: ClosedWindow) -> WindowScore: ...


@runtime_checkable
class WindowDetector(Protocol):
    """Feed events in; get a decision for every window they close."""

    def on_event(self, event: BookEvent) -> list[WindowDecision]: ...

    def flush(self) -> list[WindowDecision]: ...


def decide(window: ClosedWindow, score: WindowScore, model_version: str) -> WindowDecision:
    return WindowDecision(
        instrument=window.instrument,
        start_ns=window.start_ns,
        end_ns=window.end_ns,
        model_version=model_version,
        n_events=len(window.events),
        closed_by=window.closed_by,
        verdict=score,
    )


def degraded_score(window: ClosedWindow) -> WindowScore:
    """The verdict on a window whose book was suspect: no score, no alert, and why."""
    faults = {k: v for k, v in window.faults.items() if v}
    why = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in faults.items()) or (
        "a fault before the window not yet repaired by a snapshot"
    )
    return WindowScore(
        score=None,
        p_value=None,
        alert=False,
        detail={"skipped": f"book suspect: {why}", "status": "degraded", "faults": faults},
    )


def decide_window(scorer: WindowScorer, window: ClosedWindow) -> WindowDecision:
    """Score and decide (a degraded window, or one outside the session, is decided unscored);
    a module-level function so a process pool can pickle the call."""
    if not window.in_session:
        outside = WindowScore(
            score=None,
            p_value=None,
            alert=False,
            detail={"skipped": "outside the continuous session", "status": "outside_session"},
        )
        return decide(window, outside, scorer.model_version)
    if window.degraded:
        return decide(window, degraded_score(window), scorer.model_version)
    return decide(window, scorer(window), scorer.model_version)


@runtime_checkable
class BatchScorer(WindowScorer, Protocol):
    """A ``WindowScorer`` that scores many windows in one call (one ``Engine.fork`` of all
    their rollouts); each score must equal what ``__call__`` gives that window alone."""

    def score_batch(
        self, windows: Sequence[ClosedWindow], *, max_batch: int | None = None
    ) -> list[WindowScore]: ...


def decide_windows(
    scorer: WindowScorer, windows: Sequence[ClosedWindow], *, max_batch: int | None = None
) -> list[WindowDecision]:
    """``decide_window`` for each of ``windows``, in order; the windows to be scored go to the
    scorer in one ``score_batch`` call when it has one (so their rollouts fork as one batch,
    at most ``max_batch`` rollouts in flight: the bound on the batch's memory)."""
    scored = [w for w in windows if w.in_session and not w.degraded]
    if isinstance(scorer, BatchScorer) and len(scored) > 1:
        scores = dict(
            zip(map(id, scored), scorer.score_batch(scored, max_batch=max_batch), strict=True)
        )
        return [
            decide(w, scores[id(w)], scorer.model_version)
            if id(w) in scores
            else decide_window(scorer, w)
            for w in windows
        ]
    return [decide_window(scorer, w) for w in windows]


class InstrumentPipeline:
    """One instrument: its book (fed through ``FeedReplayer``) and its event-time windows."""

    def __init__(
        self,
        instrument: str,
        *,
        window_ns: int,
        origin_ns: int = 0,
        replayer: FeedReplayer | None = None,
        tick_size: int = 100,
        baseline_windows: int = 6,
        check_seq: bool = False,
        in_session: Callable[[int], bool] | None = None,
        session_bounds: Callable[[int], tuple[int, int] | None] | None = None,
        feed_depth: int | None = None,
    ) -> None:
        if window_ns <= 0:
            raise ValueError(f"window length must be positive, got {window_ns} ns")
        self.instrument = instrument
        self.feed_depth = feed_depth  # levels per side the feed shows (None: all, or unknown)
        # events carry the feed's sequence numbers (normalized feeds): a gap is a fault
        self.check_seq = check_seq
        self._last_seq: int | None = None
        self.suspect = False  # a fault not yet repaired by a snapshot
        self._faults: dict[str, int] = {}
        self._suspect_in_window = False
        self.window_ns = window_ns
        self.origin_ns = origin_ns
        self.tick_size = tick_size
        self.session_bounds = session_bounds
        self._end_ns = 0  # the open window's end: the grid's, or the session's close
        self._last_end: int | None = None  # where the last closed window ended
        self._session: tuple[int, int] | None = None
        self._earlier: deque[Mapping[str, Any]] = deque(maxlen=baseline_windows)
        self.replayer = replayer if replayer is not None else FeedReplayer(OrderBook(instrument))
        self.replayer.in_session = in_session
        self._seen_faults = self._fault_counts()  # the replayer's counts by kind, last looked at
        self.late_events = 0
        self.open_mid: float | None = None
        self._start_ns: int | None = None
        self._opening: OrderBook | None = None
        self._events: list[BookEvent] = []
        # The touch after each of the window's events, noted as the live book applies them:
        # the real trajectory then needs no second replay of the window at close.
        self._recorder: TrajectoryRecorder | None = None
        self._history: tuple[BookEvent, ...] = ()
        self._history_book: OrderBook | None = None

    @property
    def book(self) -> OrderBook:
        return self.replayer.book

    @property
    def open_window(self) -> tuple[int, int] | None:
        if self._start_ns is None:
            return None
        return self._start_ns, self._end_ns

    def window_start(self, ts_ns: int) -> int:
        start = self.origin_ns + (ts_ns - self.origin_ns) // self.window_ns * self.window_ns
        # after a window cut at the close, the next grid slot may begin before the close
        if self._last_end is not None and start < self._last_end <= ts_ns:
            return self._last_end
        return start

    def on_event(self, event: BookEvent) -> list[ClosedWindow]:
        """Close the open window if ``event`` lies beyond it, then apply ``event``."""
        closed: list[ClosedWindow] = []
        start = self._start_ns
        if start is not None and event.ts_ns >= self._end_ns:
            closed.append(self._close("event"))
            start = None
        book = self.replayer.book
        if start is None:
            self._start_ns = self.window_start(event.ts_ns)
            # the grid's end (a window opened at a close runs to the grid's next boundary)
            grid = (self._start_ns - self.origin_ns) // self.window_ns * self.window_ns
            self._end_ns = self.origin_ns + grid + self.window_ns
            self._session = None
            if self.session_bounds is not None:
                self._session = self.session_bounds(self._start_ns)
                if self._session is not None:
                    self._end_ns = min(self._end_ns, self._session[1])
            self._opening = book.fork()
            self._recorder = TrajectoryRecorder(book)
        elif event.ts_ns < start:
            self.late_events += 1
        self._events.append(event)
        stats = self.replayer.stats
        faults = stats.integrity_faults
        if self.check_seq:
            self.replayer.note_seq(event.seq, self._last_seq)
            self._last_seq = event.seq
        self.replayer.apply_event(event)
        if stats.integrity_faults != faults:  # one int compared per event; kinds on a fault
            self._fault()
        assert self._recorder is not None
        self._recorder.note()
        if self.open_mid is None:
            self.open_mid = book.mid
        return closed

    def flush(self) -> list[ClosedWindow]:
        """End of stream: close the open window, if any."""
        return [] if self._start_ns is None else [self._close("end_of_stream")]

    def _fault(self) -> None:
        counts = self._fault_counts()
        for name, now, seen in zip(_FAULT_KINDS, counts, self._seen_faults, strict=True):
            if now != seen:
                self._faults[name] = self._faults.get(name, 0) + 1
        self._seen_faults = counts
        self.suspect = self._suspect_in_window = True

    def _fault_counts(self) -> tuple[int, int, int]:
        stats = self.replayer.stats
        return stats.unresolved_qty, stats.crossed_books, stats.sequence_gaps

    def snapshot(self, bids: dict[int, int], asks: dict[int, int], depth: int) -> str:
        """A snapshot of the feed's book (``depth`` levels per side, ``price -> qty``): it
        repairs a suspect book (``"repaired"``), confirms a trusted one (``"verified"``), or
        finds a trusted book wrong, which is a fault, and repairs it (``"mismatch"``); the
        window it falls in stays degraded after a repair."""
        if self.suspect:
            self.replayer.resync(bids, asks, depth)
            self.suspect = False
            return "repaired"
        book = self.replayer.book
        for side, levels in ((1, bids), (-1, asks)):
            shown = sorted(levels.items(), reverse=side > 0)
            if book.depth(side, len(shown) if len(shown) >= depth else depth) != shown:
                self._faults["snapshot_mismatches"] = self._faults.get("snapshot_mismatches", 0) + 1
                self._suspect_in_window = True
                self.replayer.resync(bids, asks, depth)
                return "mismatch"
        return "verified"

    def _close(self, closed_by: ClosedBy) -> ClosedWindow:
        assert self._start_ns is not None and self._opening is not None
        start, end = self._start_ns, self._end_ns
        events = tuple(self._events)
        observed_end = None
        at_close = self._session is not None and end == self._session[1]
        if closed_by == "end_of_stream" and events and not at_close:
            # a stream cut short inside a window; a window that ends at the close is complete
            observed_end = min(end, max(e.ts_ns for e in events) + 1)
        assert self._recorder is not None
        real = self._recorder.finish(events, start, observed_end or end, self.tick_size)
        facts = window_facts(real)
        window = ClosedWindow(
            self.instrument,
            start,
            end,
            self._opening,
            events,
            closed_by,
            self._history,
            self._history_book,
            self.open_mid,
            facts,
            tuple(self._earlier),
            observed_end,
            real,
            dict(self._faults),
            self._suspect_in_window,
            self.replayer.in_session is None or self.replayer.in_session(start),
            self._session,
            self.feed_depth,
        )
        self._last_end = end
        self._earlier.append(facts)
        self._history, self._history_book = window.events, window.opening_book
        self._start_ns = None
        self._opening = None
        self._events = []
        self._recorder = None
        self._faults = {}
        self._suspect_in_window = self.suspect  # the next window opens on a suspect book
        return window


def first_two_sided_mid(events: Iterable[BookEvent], instrument: str = "") -> float | None:
    """The open mid an ``InstrumentPipeline`` fed ``events`` from the start of the day settles
    on: the mid of the first book with both sides (None if none ever has)."""
    replayer = FeedReplayer(OrderBook(instrument))
    for e in events:
        replayer.apply_event(e)
        mid = replayer.book.mid
        if mid is not None:
            return float(mid)
    return None


class WindowedDetector:
    """``WindowDetector`` over all instruments: one ``InstrumentPipeline`` each, scored inline.

    The offline replay path. The stream worker runs the same pipelines but scores in a pool.
    """

    def __init__(
        self,
        scorer: WindowScorer,
        *,
        window_ns: int,
        origin_ns: int = 0,
        tick_size: int = 100,
        baseline_windows: int = 6,
        wanted: Callable[[ClosedWindow], bool] | None = None,
        check_seq: bool = False,
        feed_depth: int | None = None,
        in_session: Callable[[int], bool] | None = None,
        session_bounds: Callable[[int], tuple[int, int] | None] | None = None,
    ) -> None:
        self.scorer = scorer
        self.check_seq = check_seq
        self.in_session = in_session
        self.session_bounds = session_bounds
        self.window_ns = window_ns
        self.origin_ns = origin_ns
        self.tick_size = tick_size
        self.baseline_windows = baseline_windows
        # windows outside a case are closed (their facts and flow still feed the next ones)
        # but neither scored nor decided
        self.wanted = wanted
        self.feed_depth = feed_depth
        self.pipelines: dict[str, InstrumentPipeline] = {}

    def pipeline(self, instrument: str) -> InstrumentPipeline:
        pipe = self.pipelines.get(instrument)
        if pipe is None:
            pipe = self.pipelines[instrument] = InstrumentPipeline(
                instrument,
                window_ns=self.window_ns,
                origin_ns=self.origin_ns,
                tick_size=self.tick_size,
                baseline_windows=self.baseline_windows,
                check_seq=self.check_seq,
                in_session=self.in_session,
                session_bounds=self.session_bounds,
                feed_depth=self.feed_depth,
            )
        return pipe

    def on_event(self, event: BookEvent) -> list[WindowDecision]:
        closed = self.pipeline(event.instrument).on_event(event)
        return [decide_window(self.scorer, w) for w in closed if self._wanted(w)]

    def flush(self) -> list[WindowDecision]:
        out: list[WindowDecision] = []
        for pipe in self.pipelines.values():
            out.extend(decide_window(self.scorer, w) for w in pipe.flush() if self._wanted(w))
        return out

    def _wanted(self, window: ClosedWindow) -> bool:
        return self.wanted is None or self.wanted(window)

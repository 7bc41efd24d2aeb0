"""The surveillance stream worker (faust).

``build_app(settings, scorer=..., store=...)`` constructs everything from one typed settings
object; nothing connects at import. What it declares, plainly:

- topics: input events (raw bytes, key = instrument), alerts, dead letter (``streams.topics``);
- table ``dead_letters``: dead-lettered records counted per ``"partition:reason"``
  (changelogged, so the count survives a restart; the state page sums it per reason);
- agent ``surveillance-events`` on the input topic: decode the record, call the core
  (``EventProcessor``), send what comes out;
- web page ``/surveillance/state/``: counters, ingest timing (first/last record consumed,
  time spent in the core), a digest of every instrument's book, and the wall-clock close /
  scoring / publish times of the latest windows (``recent_windows``).

Without ``SURV_SCORER`` the worker scores with the product's ``SimulationScorer`` built from
the settings (``surveillance.cli.wiring.worker_scorer``: generator, rollouts, window, seed, calibration).

The core is ``EventProcessor``: plain Python, no faust. A record becomes either a dead letter
(with its reason) or an event applied to its instrument's ``InstrumentPipeline`` (book through
``FeedReplayer`` + event-time windows). Closed windows are scored by the injected
``WindowScorer`` in an executor (thread or process pool, off the event loop); each decision is
stored (``AlertStore.put_decision``), and an alert is published and stored (``put``, idempotent
on the deterministic id).

Input records are single events or batches of one instrument's events (``streams.records``);
a malformed event in a batch is dead-lettered alone and the rest of the batch is applied.

Venue metadata: an instrument control record (``surveillance feed`` sends one before an
instrument's first event) gives the instrument's tick, price scale and calendar. Its pipeline
then takes the tick, the window grid's origin (``simulator.sessions.grid_origin``: the session
open of the first event's trade date) and the session (``session_predicate``) from it, as the
offline replay does, and its windows are scored by a scorer built for it (the scorer factory
called with ``instrument=``: the venue's tick and price scale, its model or the empirical one).
An instrument without metadata falls back to the worker's settings, and a log line says so.

Roles (``SURV_ROLE``, ``worker --role``): ``both`` (the default, the demo) scores in this
process; ``ingest`` publishes closed windows to ``{prefix}.windows`` (``streams.windows``)
instead, for a group of ``scorer`` processes (``streams.scorer``) to score in batches.
Workers of either kind scale by joining their consumer group: Kafka spreads the partitions.

Delivery: alerts are at least once on the topic (consumers deduplicate on ``alert_id``), once in
the store. Book state is in memory: a worker assigned an input partition with a committed offset
(a restart, a rebalance) first re-reads it up to that offset (``streams.recovery``), so its books
and open windows are what an uninterrupted worker would hold; revoked partitions' books are
dropped. Windows closed during that re-read whose decision is not in the store (the previous
worker was killed while scoring them) are scored again, and records after the committed offset
are delivered again, so every window gets a decision, stored once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import datetime as dt
import functools
import importlib
import json
import logging
import multiprocessing
import shutil
import tempfile
import time
import weakref
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import faust

from alerts.schema import build_alert, decision_record, quality_record, window_id
from alerts.store import AlertStore
from simulator.book import OrderBook
from simulator.sessions import grid_origin, session_predicate, session_span
from simulator.types import BookEvent, Instrument
from simulator.units import NS_PER_DAY
from streams.records import (
    MalformedRecord,
    dead_letter,
    decode_instrument,
    decode_record,
    decode_snapshot,
    encode_event,
    is_end_of_stream,
    is_instrument,
    is_snapshot,
)
from streams.recovery import rebuild
from streams.settings import StreamSettings
from streams.topics import DEAD_LETTER_TABLE, TopicNames
from streams.transport import KafkaTransport
from streams.windows import encode_window
from surveillance.detection.coldstart import ColdStarts
from surveillance.detection.pipeline import (
    ClosedWindow,
    InstrumentPipeline,
    WindowDecision,
    WindowScorer,
    decide_windows,
)

log = logging.getLogger(__name__)

STATE_PATH = "/surveillance/state/"


def book_digest(book: OrderBook) -> dict[str, Any]:
    """Every level of both sides as ``[price, qty, orders]`` (best first) and the order count."""
    out: dict[str, Any] = {"orders": len(book)}
    for name, side in (("bids", 1), ("asks", -1)):
        out[name] = [[lvl.price, lvl.qty, len(lvl.orders)] for lvl in book.iter_levels(side)]
    return out


@dataclass(slots=True)
class Outcome:
    """What one input record (one event, a batch of events, or a control record) produced."""

    events: int = 0
    letters: list[tuple[str, bytes]] = field(default_factory=list)  # (reason, dead letter)
    closed: list[ClosedWindow] = field(default_factory=list)
    event: BookEvent | None = None  # the record's last good event

    @property
    def dead_letter(self) -> bytes | None:
        return self.letters[0][1] if self.letters else None

    @property
    def reason(self) -> str | None:
        return self.letters[0][0] if self.letters else None


def session_origin_ns(ts_ns: int, *, session_open: dt.time, tz: str) -> int:
    """Where the window grid of a stream whose first event is at ``ts_ns`` starts.

    The session open of that event's day: for a feed timed from midnight (LOBSTER) the open's
    offset from midnight (09:30 -> 34,200 s), for a feed in Unix-epoch time the open of the
    event's exchange-local day. The offline replay starts its grid at a LOBSTER file's start
    time (09:30 for these files), so live and replayed windows coincide.
    """
    offset = dt.timedelta(
        hours=session_open.hour, minutes=session_open.minute, seconds=session_open.second
    )
    if ts_ns < NS_PER_DAY:
        return int(offset.total_seconds()) * 1_000_000_000
    zone = ZoneInfo(tz)
    day = dt.datetime.fromtimestamp(ts_ns / 1e9, tz=zone).date()
    opening = dt.datetime.combine(day, session_open, tzinfo=zone)
    return int(opening.timestamp()) * 1_000_000_000


class EventProcessor:
    """The worker's core, without faust: records in, dead letters and closed windows out.

    ``origin_ns`` fixes the window grid's origin for every instrument; left None, each
    instrument's grid starts at the session open of its first event's day
    (``session_origin_ns``).
    """

    def __init__(
        self,
        *,
        window_ns: int,
        origin_ns: int | None = None,
        session_open: dt.time = dt.time(9, 30),
        tz: str = "America/New_York",
        tick_size: int = 100,
        baseline_windows: int = 6,
    ) -> None:
        self.window_ns = window_ns
        self.tick_size = tick_size
        self.baseline_windows = baseline_windows
        self.origin_ns = origin_ns
        self.session_open = session_open
        self.tz = tz
        self.pipelines: dict[str, InstrumentPipeline] = {}
        # venue metadata per instrument, from the feed's instrument control records
        self.instruments: dict[str, Instrument] = {}
        self.counts: Counter[str] = Counter()
        self.dead_letters: Counter[str] = Counter()
        self.partition_of: dict[str, tuple[str, int]] = {}
        # Wall-clock times the first and the latest record were consumed (ingest rate).
        self.first_record_at: float | None = None
        self.last_record_at: float | None = None
        self.busy_s = 0.0  # time spent in ``handle`` (the rest is the framework and waiting)

    def pipeline(self, instrument: str, first_ts_ns: int = 0) -> InstrumentPipeline:
        pipe = self.pipelines.get(instrument)
        if pipe is None:
            origin = self.origin_ns
            meta = self.instruments.get(instrument)
            tick = self.tick_size
            in_session = None
            bounds = None
            if meta is not None:
                # the venue's calendar and tick, placed as the offline replay places them
                tick = meta.tick_size
                in_session = session_predicate(meta, epoch=first_ts_ns >= NS_PER_DAY)
                # the last window of a session ends at its close, as in the offline replay
                bounds = session_span(meta, epoch=first_ts_ns >= NS_PER_DAY)
                if origin is None:
                    origin = grid_origin(meta, first_ts_ns)
            else:
                self.counts["instruments_without_metadata"] += 1
                log.warning(
                    "%s: no instrument metadata on the feed; its windows use the worker's "
                    "settings (tick %d, session open %s %s, no session hours)",
                    instrument,
                    self.tick_size,
                    self.session_open.strftime("%H:%M"),
                    self.tz,
                )
            if origin is None:
                origin = session_origin_ns(first_ts_ns, session_open=self.session_open, tz=self.tz)
            pipe = self.pipelines[instrument] = InstrumentPipeline(
                instrument,
                window_ns=self.window_ns,
                origin_ns=origin,
                tick_size=tick,
                baseline_windows=self.baseline_windows,
                check_seq=True,  # a lost event (a gap in seq) makes the book suspect
                in_session=in_session,
                session_bounds=bounds,
                feed_depth=None if meta is None else meta.feed_depth,
            )
        return pipe

    def handle(
        self,
        *,
        key: bytes | None,
        value: bytes | None,
        headers: Any,
        topic: str,
        partition: int,
        offset: int,
    ) -> Outcome:
        """Process one input record (``streams.records``); never raises for bad input."""
        start = time.perf_counter()
        try:
            return self._handle(key, value, headers, topic, partition, offset)
        finally:
            self.busy_s += time.perf_counter() - start

    def _handle(
        self,
        key: bytes | None,
        value: bytes | None,
        headers: Any,
        topic: str,
        partition: int,
        offset: int,
    ) -> Outcome:
        counts = self.counts
        counts["records"] += 1
        now = time.time()
        if self.first_record_at is None:
            self.first_record_at = now
        self.last_record_at = now
        if is_end_of_stream(headers):
            counts["end_of_stream"] += 1
            instrument = (key or b"").decode("utf-8", errors="replace")
            pipe = self.pipelines.get(instrument)
            closed = pipe.flush() if pipe is not None else []
            counts["windows_closed"] += len(closed)
            return Outcome(closed=closed)
        if is_snapshot(headers):
            return self._snapshot(key, value, topic, partition, offset)
        if is_instrument(headers):
            return self._instrument(key, value, topic, partition, offset)
        events, bad = decode_record(key, value)
        out = Outcome()
        for b in bad:
            self._dead_letter(
                out, key, b.value, b.reason, b.detail, topic, partition, offset, b.index
            )
        if not events:
            return out
        where = (topic, partition)
        pipe: InstrumentPipeline | None = None
        for i, event in enumerate(events):
            if pipe is None or pipe.instrument != event.instrument:
                pipe = self.pipeline(event.instrument, event.ts_ns)
                self.partition_of[event.instrument] = where
            try:
                closed = pipe.on_event(event)
            except Exception as exc:
                # A bug or an unforeseen input must not stop the agent (a crashed faust agent
                # leaves a worker that consumes nothing); the event is dead-lettered and logged.
                log.exception("processing failed at %s[%d]@%d", topic, partition, offset)
                counts["processing_errors"] += 1
                index = i if len(events) > 1 or bad else None
                raw = encode_event(event) if index is not None else value
                self._dead_letter(
                    out, key, raw, "processing_error", repr(exc), topic, partition, offset, index
                )
                continue
            if closed:
                out.closed.extend(closed)
        out.events = len(events)
        out.event = events[-1]
        counts["events"] += len(events)
        counts["windows_closed"] += len(out.closed)
        return out

    def _snapshot(
        self, key: bytes | None, value: bytes | None, topic: str, partition: int, offset: int
    ) -> Outcome:
        """A venue book snapshot: repair or check the instrument's book (``InstrumentPipeline
        .snapshot``); a malformed one is dead-lettered like a malformed event."""
        out = Outcome()
        try:
            snap = decode_snapshot(key, value)
        except MalformedRecord as exc:
            self._dead_letter(out, key, value, exc.reason, exc.detail, topic, partition, offset)
            return out
        self.counts["snapshots"] += 1
        pipe = self.pipeline(snap.instrument, snap.ts_ns)
        verdict = pipe.snapshot(snap.bids, snap.asks, snap.depth)
        if verdict != "verified":
            self.counts[f"snapshots_{verdict}"] += 1
            log.warning("%s: book %s from the snapshot at %d", snap.instrument, verdict, snap.ts_ns)
        return out

    def _instrument(
        self, key: bytes | None, value: bytes | None, topic: str, partition: int, offset: int
    ) -> Outcome:
        """An instrument's venue metadata: its pipeline (made at its first event) uses it; a
        malformed one is dead-lettered like a malformed event."""
        out = Outcome()
        try:
            meta = decode_instrument(key, value)
        except MalformedRecord as exc:
            self._dead_letter(out, key, value, exc.reason, exc.detail, topic, partition, offset)
            return out
        self.counts["instrument_records"] += 1
        if meta.symbol in self.pipelines and self.instruments.get(meta.symbol) != meta:
            # a pipeline's grid and tick are fixed at its first event, and its scorer must
            # score with the same tick: metadata that comes later is not taken
            self.counts["instrument_records_late"] += 1
            log.warning(
                "%s: instrument metadata arrived after its events; ignored, the instrument "
                "keeps the settings its windows started with",
                meta.symbol,
            )
            return out
        self.instruments[meta.symbol] = meta
        return out

    def _dead_letter(
        self,
        out: Outcome,
        key: bytes | None,
        value: bytes | None,
        reason: str,
        detail: str,
        topic: str,
        partition: int,
        offset: int,
        index: int | None = None,
    ) -> None:
        self.counts["dead_letters"] += 1
        self.dead_letters[reason] += 1
        letter = dead_letter(
            key=key,
            value=value,
            reason=reason,
            detail=detail,
            topic=topic,
            partition=partition,
            offset=offset,
            index=index,
        )
        out.letters.append((reason, letter))

    def drop_partitions(self, revoked: set[tuple[str, int]]) -> list[str]:
        """Forget the instruments of revoked partitions (their new owner rebuilds them).

        Returns the instruments dropped. Their open windows are lost, not decided.
        """
        dropped = sorted(i for i, tp in self.partition_of.items() if tp in revoked)
        for instrument in dropped:
            self.pipelines.pop(instrument, None)
            del self.partition_of[instrument]
        self.counts["instruments_dropped"] += len(dropped)
        return dropped

    def state(self) -> dict[str, Any]:
        first, last = self.first_record_at, self.last_record_at
        span = (last - first) if first is not None and last is not None else None
        return {
            "counts": dict(self.counts),
            "timing": {
                "first_record_at": first,
                "last_record_at": last,
                "events_per_s": self.counts["events"] / span if span else None,
                "busy_s": round(self.busy_s, 3),
            },
            "dead_letters": dict(self.dead_letters),
            "instruments": {
                name: {
                    "book": book_digest(pipe.book),
                    # what every fork's mid move is read from (the day's first two-sided mid)
                    "open_mid": pipe.open_mid,
                    "stats": pipe.replayer.stats.as_dict(),
                    "open_window": pipe.open_window,
                    "late_events": pipe.late_events,
                    # the venue metadata its windows follow (None: the worker's settings)
                    "metadata": (
                        self.instruments[name].as_dict() if name in self.instruments else None
                    ),
                }
                for name, pipe in sorted(self.pipelines.items())
            },
        }


def load_scorer_factory(
    spec: str | None, settings: StreamSettings
) -> Callable[[Instrument], WindowScorer] | None:
    """The per-venue scorer factory behind ``SURV_SCORER``: when its factory takes an
    ``instrument`` keyword (``worker_scorer`` does), ``instrument -> factory(settings,
    instrument=instrument)``; None for a factory that does not (its one scorer serves all)."""
    import inspect

    if not spec or spec.strip().lower() == "none":
        return None
    module_name, _, attr = spec.partition(":")
    factory = getattr(importlib.import_module(module_name), attr)
    if "instrument" not in inspect.signature(factory).parameters:
        return None

    def for_venue(instrument: Instrument) -> WindowScorer:
        scorer = factory(settings, instrument=instrument)
        if not isinstance(scorer, WindowScorer):
            raise TypeError(f"{spec} did not return a WindowScorer for {instrument.symbol}")
        return scorer

    return for_venue


def load_scorer(spec: str, settings: StreamSettings) -> WindowScorer | None:
    """``module:attribute`` of a factory ``(settings) -> WindowScorer``; ``none``: no scorer.

    The default, ``surveillance.cli.wiring:worker_scorer``, is the product's ``SimulationScorer``.
    """
    if spec.strip().lower() == "none":
        log.warning("SURV_SCORER=none: closed windows are not scored")
        return None
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(f"scorer must be 'module:factory', got {spec!r}")
    factory = getattr(importlib.import_module(module_name), attr)
    scorer = factory(settings)
    if not isinstance(scorer, WindowScorer):
        raise TypeError(f"{spec} did not return a WindowScorer (needs model_version, __call__)")
    return scorer


def _timed_decide(
    scorer: WindowScorer, windows: list[ClosedWindow], max_batch: int | None
) -> tuple[list[WindowDecision], float]:
    """``decide_windows`` and its duration (module level: a process pool pickles the call)."""
    start = time.perf_counter()
    decisions = decide_windows(scorer, windows, max_batch=max_batch)
    return decisions, time.perf_counter() - start


# The longest wait between two tries of writing a decision: the backoff doubles up to it.
_MAX_RECORD_WAIT_S = 30.0


class Decisions:
    """Scores closed windows off the event loop, stores decisions, publishes alerts.

    Windows queue up; each of ``executor_workers`` drain tasks takes what is queued (at most
    ``score_batch``) and scores it in one executor call, so windows that close together (a
    venue's instruments at the same boundary) fork their rollouts as one engine batch. A window
    already decided in the store (a redelivered record, a redelivered window record) is not
    scored or published again.
    """

    def __init__(
        self,
        *,
        settings: StreamSettings,
        scorer: WindowScorer | None,
        store: AlertStore | None,
        alerts_topic: Any,
        scorer_factory: Callable[[Instrument], WindowScorer] | None = None,
        instruments: Mapping[str, Instrument] | None = None,
        quality_topic: Any = None,
        decisions_topic: Any = None,
    ) -> None:
        self.settings = settings
        self.scorer = scorer
        # a scorer per venue metadata (tick, price scale, model), built when first needed
        self.scorer_factory = scorer_factory
        self.instruments: Mapping[str, Instrument] = instruments if instruments is not None else {}
        self._venue_scorers: dict[Instrument, WindowScorer | None] = {}
        self.store = store
        self.alerts_topic = alerts_topic
        # where a degraded window's data-quality record goes (None: only to the store), and
        # every window's decision record (None: not published)
        self.quality_topic = quality_topic
        self.decisions_topic = decisions_topic
        self.counts: Counter[str] = Counter()
        self._queue: deque[tuple[ClosedWindow, float, str]] = deque()  # window, closed at, id
        self._pending_ids: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._in_flight = 0
        # instruments with windows in a batch being scored: their other windows wait, so an
        # instrument's decisions (and its cold-start state) follow the order its windows closed
        self._busy: Counter[str] = Counter()
        self._pool: concurrent.futures.Executor | None = None
        # The store is written from one thread: SQLite connections and ordering stay simple.
        self._store_pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="store")
        self._warned = False
        # the own windows of instruments the calibration has no norms for, kept here (in the
        # event loop's process, in decision order) whatever pool scores them
        self.cold = ColdStarts()
        self._cold_locks: dict[str, asyncio.Lock] = {}
        self.recent: deque[dict[str, Any]] = deque(maxlen=200)

    @property
    def pending(self) -> int:
        """Windows submitted and not yet decided (queued or being scored)."""
        return len(self._queue) + self._in_flight

    @property
    def pool(self) -> concurrent.futures.Executor:
        if self._pool is None:
            n = self.settings.executor_workers
            if self.settings.executor == "process":
                # spawn, not fork: the worker has threads (the Kafka consumer) that a fork
                # would copy mid-lock; the scorer and its windows are pickled to the pool.
                context = multiprocessing.get_context("spawn")
                self._pool = concurrent.futures.ProcessPoolExecutor(n, mp_context=context)
            else:
                self._pool = concurrent.futures.ThreadPoolExecutor(n, thread_name_prefix="score")
        return self._pool

    def scorer_of(self, instrument: str) -> WindowScorer | None:
        """The scorer for an instrument's windows: built for its venue metadata when the feed
        sent some and the scorer factory takes an instrument, else the worker's."""
        meta = self.instruments.get(instrument)
        if meta is None or self.scorer_factory is None:
            return self.scorer
        if meta not in self._venue_scorers:
            try:
                self._venue_scorers[meta] = self.scorer_factory(meta)
            except Exception:
                # a NASDAQ-tick scorer would score this venue wrongly: leave it unscored
                self.counts["scorer_setup_errors"] += 1
                log.exception("cannot build a scorer for %s; its windows are not scored", meta)
                self._venue_scorers[meta] = None
        return self._venue_scorers[meta]

    def submit(self, windows: list[ClosedWindow]) -> None:
        if not windows:
            return
        # A window already queued or being scored here (a rebuild after a rebalance closes
        # it again) is not queued twice: one score, one alert.
        fresh = []
        for w in windows:
            scorer = self.scorer_of(w.instrument)
            if scorer is None:
                self.counts["windows_unscored"] += 1
                if not self._warned:
                    log.warning(
                        "no scorer for %s (SURV_SCORER=none, or its venue's could not be "
                        "built): closed windows are not scored",
                        w.instrument,
                    )
                    self._warned = True
                continue
            key = window_id(w.instrument, w.start_ns, w.end_ns, scorer.model_version)
            if key not in self._pending_ids:
                self._pending_ids.add(key)
                fresh.append((w, key, scorer))
            else:
                self.counts["windows_pending_twice"] += 1
        closed_at = time.time()
        self._queue.extend((w, closed_at, key, scorer) for w, key, scorer in fresh)
        while len(self._tasks) < self.settings.executor_workers and self._queue:
            task = asyncio.ensure_future(self._drain_queue())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _drain_queue(self) -> None:
        busy = self._busy
        while self._queue:
            # One batch is one scorer's (a venue's tick and model): the first queued window's
            # scorer, and the queued windows that share it, up to ``score_batch``. A window
            # whose instrument another batch is scoring stays queued: an instrument's windows
            # are decided, and its cold-start state read, in the order they closed.
            first = next((item for item in self._queue if item[0].instrument not in busy), None)
            if first is None:  # all wait for batches in flight, whose tasks drain them next
                return
            scorer = first[3]
            batch, rest = [], deque()
            held: set[str] = set()  # instruments with a window left queued: so are their later ones
            while self._queue:
                item = self._queue.popleft()
                instrument = item[0].instrument
                if (
                    item[3] is scorer
                    and len(batch) < self.settings.score_batch
                    and instrument not in busy
                    and instrument not in held
                ):
                    batch.append(item)
                else:
                    held.add(instrument)
                    rest.append(item)
            self._queue.extendleft(reversed(rest))
            mine = Counter(w.instrument for w, _, _, _ in batch)
            busy.update(mine)
            n = len(batch)
            self._in_flight += n
            try:
                await self.decide([w for w, _, _, _ in batch], closed_at=batch[0][1], scorer=scorer)
            except Exception:
                # This task must go on: the windows queued behind this batch's instruments wait
                # for it (other tasks leave them). Windows of the batch whose decision could not
                # be written in ``record_attempts`` tries are scored again when their partition
                # is next assigned (a restart or a rebalance: ``submit_undecided``), not before.
                self.counts["decide_errors"] += 1
                log.exception("deciding a batch of %d windows failed", n)
            finally:
                self._in_flight -= n
                self._pending_ids.difference_update(key for _, _, key, _ in batch)
                busy.subtract(mine)
                for instrument in mine:
                    if busy[instrument] <= 0:
                        del busy[instrument]

    async def submit_undecided(self, windows: list[ClosedWindow]) -> int:
        """Submit the windows whose decision is not in the store; returns how many."""
        if not windows or self.store is None:
            return 0
        todo = await self._undecided([w for w in windows if self.scorer_of(w.instrument)])
        if todo:
            log.warning(
                "%d window(s) closed before the restart were never decided; scoring them now",
                len(todo),
            )
            self.counts["windows_rescored"] += len(todo)
            self.submit(todo)
        return len(todo)

    async def _undecided(self, windows: list[ClosedWindow]) -> list[ClosedWindow]:
        if self.store is None:
            return windows
        ids = []
        for w in windows:
            scorer = self.scorer_of(w.instrument)
            assert scorer is not None
            ids.append(window_id(w.instrument, w.start_ns, w.end_ns, scorer.model_version))
        loop = asyncio.get_running_loop()
        done = await loop.run_in_executor(self._store_pool, self.store.decided, ids)
        return [w for w, i in zip(windows, ids, strict=True) if i not in done]

    async def decide_by_scorer(self, windows: list[ClosedWindow], *, closed_at: float) -> int:
        """``decide`` once per scorer (instruments of different venues fork with different
        scorers); windows without a scorer are counted unscored. Returns how many were
        decided."""
        groups: dict[int, tuple[WindowScorer | None, list[ClosedWindow]]] = {}
        for w in windows:
            scorer = self.scorer_of(w.instrument)
            groups.setdefault(id(scorer), (scorer, []))[1].append(w)
        done = 0
        for scorer, group in groups.values():
            if scorer is None:
                self.counts["windows_unscored"] += len(group)
            else:
                done += await self.decide(group, closed_at=closed_at, scorer=scorer)
        return done

    async def decide(
        self,
        windows: list[ClosedWindow],
        *,
        closed_at: float,
        scorer: WindowScorer | None = None,
    ) -> int:
        """Score ``windows`` (one instrument scorer's) as one batch, publish their alerts and
        store their decisions; returns how many were decided (windows already in the store
        are skipped)."""
        if scorer is None:
            scorer = self.scorer_of(windows[0].instrument) if windows else self.scorer
        assert scorer is not None
        todo = await self._undecided(windows)
        self.counts["windows_already_decided"] += len(windows) - len(todo)
        if not todo:
            return 0
        loop = asyncio.get_running_loop()
        try:
            decisions, score_s = await loop.run_in_executor(
                self.pool, _timed_decide, scorer, todo, self.settings.max_rollouts
            )
        except Exception:
            if len(todo) == 1:
                self.counts["scoring_errors"] += 1
                w = todo[0]
                log.exception(
                    "scoring failed for %s window %d..%d", w.instrument, w.start_ns, w.end_ns
                )
                return 0
            # One bad window must not cost the others their decision: each alone.
            log.exception("scoring a batch of %d windows failed; scoring each alone", len(todo))
            done = 0
            for w in todo:
                done += await self.decide([w], closed_at=closed_at, scorer=scorer)
            return done
        self.counts["score_batches"] += 1
        self.counts["windows_batched"] += len(todo)
        scored_at = time.time()
        cal = getattr(scorer, "calibration", None)
        for decision in decisions:  # an instrument's windows queue in the order they close
            decision = await self._cold(decision, cal)
            await self._record_retried(decision, scorer, closed_at, score_s, scored_at, len(todo))
            # kept as the instrument's own window only once written, as a takeover restores it;
            # no other read of its state comes between (its later windows wait: ``_busy``)
            self.cold.keep(decision.verdict.detail.get("calibration"))
        return len(decisions)

    async def _cold(self, decision: WindowDecision, cal: Any) -> WindowDecision:
        """``decision`` read with its instrument's own windows when ``cal`` has no norms for
        it (``ColdStarts.apply``), one decision per instrument at a time. Before the first one
        on such an instrument its own windows come from the store's earlier decisions of the
        same model, so a worker that takes it over after a rebalance or a restart goes on
        where the last one was."""
        if cal is None or not cal.norms or decision.verdict.score is None:
            return decision
        depth = decision.verdict.detail.get("feed_depth")  # the window's, as it was scored
        if cal.calibrated_key(decision.instrument, depth) is not None:
            return decision
        key = cal.cold_key(decision.instrument, depth)
        loop = asyncio.get_running_loop()
        async with self._cold_locks.setdefault(key, asyncio.Lock()):
            if key not in self.cold.states and self.store is not None:
                rows = await loop.run_in_executor(
                    self._store_pool,
                    self.store.calibrations,
                    decision.instrument,
                    decision.model_version,
                )
                state = self.cold.restore(key, rows)
                if state.count:
                    log.info("%s: %d own normal windows restored from the store", key, state.count)
            # refitting the own windows' norms takes up to a second: off the event loop
            verdict = await loop.run_in_executor(
                None,
                functools.partial(
                    self.cold.apply, decision.verdict, decision.instrument, depth, cal, keep=False
                ),
            )
        return dataclasses.replace(decision, verdict=verdict)

    async def _record_retried(self, decision: WindowDecision, *args: Any) -> None:
        """``_record``, tried again after a wait when a send or the store fails. Only the
        writing is repeated (each write is idempotent on the window id, or at least once on a
        topic): the decision, its cold-start state included, is made once."""
        attempts, wait = self.settings.record_attempts, self.settings.record_backoff_s
        stored: list[bool] = []  # whether a try stored the alert (a later one finds it there)
        for attempt in range(1, attempts + 1):
            try:
                alert, quality = await self._record(decision, *args, stored=stored)
            except Exception as exc:
                if attempt == attempts:
                    raise
                self.counts["record_retries"] += 1
                log.warning(
                    "writing the decision of %s window %d..%d failed (%s); again in %.1f s",
                    decision.instrument,
                    decision.start_ns,
                    decision.end_ns,
                    exc,
                    wait,
                )
                await asyncio.sleep(wait)
                wait = min(2 * wait, _MAX_RECORD_WAIT_S)
                continue
            # counted once per window, whatever the tries
            self.counts["decisions"] += 1
            if alert is not None:
                self.counts["alerts_published"] += 1
                self.counts["alerts_stored"] += any(stored)
            if quality is not None:
                self.counts["windows_degraded"] += 1
                self.counts["quality_published"] += self.quality_topic is not None
            self.counts["decisions_published"] += self.decisions_topic is not None
            return

    async def _record(
        self,
        decision: WindowDecision,
        scorer: WindowScorer,
        closed_at: float,
        score_s: float,
        scored_at: float,
        batch: int,
        *,
        stored: list[bool],
    ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """Publish and store one decision; returns its alert and data-quality record (None
        where it has none). ``stored`` gets True once the alert row is new in the store."""
        loop = asyncio.get_running_loop()
        meta = self.instruments.get(decision.instrument)
        tz = meta.timezone if meta is not None else self.settings.exchange_tz
        alert = None
        if decision.verdict.alert:
            alert = build_alert(
                decision,
                # A scorer that knows its configuration's version (a digest) stamps it.
                config_version=getattr(scorer, "config_version", None)
                or self.settings.config_version,
                session_date=self.settings.session_date,
                tz=tz,
            )
            await self.alerts_topic.send(
                key=decision.instrument.encode(),
                value=json.dumps(alert, separators=(",", ":")).encode(),
            )
        quality = quality_record(decision, session_date=self.settings.session_date, tz=tz)
        if quality is not None and self.quality_topic is not None:
            await self.quality_topic.send(
                key=decision.instrument.encode(),
                value=json.dumps(quality, separators=(",", ":")).encode(),
            )
        if self.decisions_topic is not None:
            record = decision_record(decision, session_date=self.settings.session_date, tz=tz)
            await self.decisions_topic.send(
                key=decision.instrument.encode(),
                value=json.dumps(record, separators=(",", ":")).encode(),
            )
        sent_at = time.time()
        if self.store is not None:
            await loop.run_in_executor(
                self._store_pool, self._store, decision, alert, quality, stored
            )
        # Wall-clock timings of the latest windows (state page; the latency benchmark).
        self.recent.append(
            {
                "instrument": decision.instrument,
                "start_ns": decision.start_ns,
                "alert": decision.verdict.alert,
                "closed_at": closed_at,
                "score_s": round(score_s, 6),  # the whole batch's scoring
                "batch": batch,
                "scored_at": scored_at,
                "sent_at": sent_at,
                "stored_at": time.time(),
            }
        )
        return alert, quality

    def _store(
        self,
        decision: WindowDecision,
        alert: dict[str, Any] | None,
        quality: dict[str, Any] | None,
        stored: list[bool],
    ) -> None:
        assert self.store is not None
        # The decision row is the "done" mark a restarted worker skips a window by: written
        # last, so a kill between them leaves the window undecided, never alert-less.
        if quality is not None:
            self.store.put_quality(record=quality)
        if alert is not None and self.store.put(alert=alert):
            stored.append(True)
        self.store.put_decision(decision=decision)

    async def wait_below(self, limit: int, poll_s: float = 0.05) -> None:
        """Return once at most ``limit`` windows are pending."""
        while self.pending > limit and self._tasks:
            await asyncio.sleep(poll_s)

    async def drain(self, timeout_s: float = 30.0) -> None:
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout_s)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self._store_pool.shutdown(wait=True)


@dataclass(slots=True)
class SurveillanceApp:
    """The faust app and what it declares, built by ``build_app``."""

    app: faust.App
    settings: StreamSettings
    topics: TopicNames
    processor: EventProcessor
    decisions: Decisions
    events_topic: Any
    alerts_topic: Any
    dead_letter_topic: Any
    dead_letter_table: Any
    agent: Any
    windows_topic: Any = None
    started_at: float = field(default_factory=time.time)


def build_app(
    settings: StreamSettings,
    *,
    scorer: WindowScorer | None = None,
    store: AlertStore | None = None,
    scorer_factory: Callable[[Instrument], WindowScorer] | None = None,
) -> SurveillanceApp:
    """Construct the faust app (no connection is made until a worker starts it).
    ``scorer_factory``: a scorer per instrument from the feed's venue metadata (``scorer``
    serves instruments without)."""
    names = TopicNames.for_prefix(settings.topic_prefix)
    # faust's default is "<app id>-data" in the working directory, which every run would leave
    # behind; without a configured one the app gets a temporary directory of its own.
    data_dir = settings.state_dir
    scratch = None
    if data_dir is None:
        scratch = data_dir = tempfile.mkdtemp(prefix=f"{settings.app_id}-")
    app = faust.App(
        settings.app_id,
        datadir=data_dir,
        broker=f"kafka://{settings.bootstrap}",
        store=settings.faust_store,
        topic_partitions=settings.partitions,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        broker_rebalance_timeout=settings.rebalance_timeout_s,
        broker_session_timeout=settings.session_timeout_s,
        consumer_max_fetch_size=settings.max_fetch_bytes,
        # a closed window (role ingest) is one record of up to max_window_bytes
        producer_max_request_size=settings.max_window_bytes,
        web_enabled=settings.web_enabled,
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_bind=settings.web_host,
        autodiscover=False,
    )
    if scratch is not None:
        weakref.finalize(app, shutil.rmtree, scratch, True)
    # Before anything asks the app for its transport (topics, tables): the worker consumer's
    # fetch wait is ours, not faust's fixed 1500 ms (streams.transport says why).
    app.transport = KafkaTransport(
        app.conf.broker_consumer, app, fetch_max_wait_ms=settings.fetch_max_wait_ms
    )

    def raw_topic(name: str, partitions: int) -> Any:
        # Bytes in, bytes out: decoding is ours, so a bad record becomes a dead letter.
        return app.topic(
            name,
            partitions=partitions,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
        )

    events_topic = raw_topic(names.events, settings.partitions)
    alerts_topic = raw_topic(names.alerts, settings.partitions)
    dead_letter_topic = raw_topic(names.dead_letter, 1)
    windows_topic = raw_topic(names.windows, settings.windows_partitions)
    quality_topic = raw_topic(names.quality, settings.partitions)
    decisions_topic = raw_topic(names.decisions, settings.partitions)
    ingest_only = settings.role == "ingest"
    dead_letter_table = app.Table(
        DEAD_LETTER_TABLE,
        default=int,
        partitions=settings.partitions,
        key_type=str,
        value_type=int,
        help="dead-lettered input records per reason",
    )
    detection = settings.detection().config()
    processor = EventProcessor(
        window_ns=detection.window_ns,
        origin_ns=settings.window_origin_ns,
        session_open=settings.session_open,
        tz=settings.exchange_tz,
        tick_size=detection.tick_size,
        baseline_windows=detection.baseline_windows,
    )
    decisions = Decisions(
        settings=settings,
        scorer=scorer,
        store=store,
        alerts_topic=alerts_topic,
        scorer_factory=scorer_factory,
        instruments=processor.instruments,
        quality_topic=quality_topic,
        decisions_topic=decisions_topic,
    )

    async def process_events(stream: Any) -> None:
        async for record in stream.events():
            msg = record.message
            outcome = processor.handle(
                key=record.key,
                value=record.value,
                headers=msg.headers,
                topic=msg.topic,
                partition=msg.partition,
                offset=msg.offset,
            )
            for reason, letter in outcome.letters:
                # Keyed by source partition: a key is then always written to the same
                # changelog partition (faust writes the event's), so recovery restores it.
                dead_letter_table[f"{msg.partition}:{reason}"] += 1
                await dead_letter_topic.send(key=record.key, value=letter)
            if outcome.closed and ingest_only:
                # Sent before this record's offset is committed (faust flushes the producer
                # before every commit), so a window closed before a committed offset is on
                # the windows topic: a worker that rebuilds the partition need not send it.
                for window in outcome.closed:
                    # Encoding a 25-minute window is slow next to an event: off the event
                    # loop, so the state page and the consumer's callbacks keep answering.
                    meta = processor.instruments.get(window.instrument)
                    value = await asyncio.to_thread(encode_window, window, meta)
                    await windows_topic.send(key=window.instrument.encode(), value=value)
                processor.counts["windows_published"] += len(outcome.closed)
            elif outcome.closed:
                decisions.submit(outcome.closed)
                if decisions.pending > settings.max_pending_windows:
                    # Every pending window holds two windows of events and books: memory
                    # stays bounded and the backlog waits on the topic instead.
                    processor.counts["backpressure_waits"] += 1
                    await decisions.wait_below(settings.max_pending_windows)

    agent = app.agent(events_topic, name="surveillance-events")(process_events)

    @app.page(STATE_PATH)
    async def state(web: Any, request: Any) -> Any:
        body = processor.state()
        per_reason: Counter[str] = Counter()
        for key, count in dead_letter_table.items():
            per_reason[key.partition(":")[2]] += count
        body["dead_letter_table"] = dict(per_reason)
        body["decisions"] = dict(decisions.counts) | {"pending": decisions.pending}
        body["recent_windows"] = list(decisions.recent)
        body["assignment"] = sorted(
            [tp.topic, tp.partition] for tp in app.assignor.assigned_actives()
        )
        # Ready: assigned, books rebuilt, tables recovered, no rebalance under way.
        body["ready"] = bool(
            body["assignment"]
            and not app.rebalancing
            and app.tables.recovery.completed.is_set()  # type: ignore[attr-defined]
            and not rebuilding
        )
        return web.json(body)

    owned: set[tuple[str, int]] = set()  # input partitions whose books this worker holds
    rebuilding: set[tuple[str, int]] = set()

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def on_assigned(app_: Any, assigned: Any, **kwargs: Any) -> None:
        log.info("partitions assigned: %s", sorted((tp.topic, tp.partition) for tp in assigned))
        inputs = {(tp.topic, tp.partition) for tp in assigned if tp.topic == names.events}
        new = sorted(inputs - owned)
        owned.intersection_update(inputs)
        owned.update(inputs)
        if not new or not settings.rebuild_on_assign:
            return
        # Partitions are paused during this signal: the agent resumes after the rebuild.
        rebuilding.update(new)
        recovered: list[ClosedWindow] = []
        try:
            report = await rebuild(
                processor,
                bootstrap=settings.bootstrap,
                group_id=app.conf.id,
                partitions=new,
                on_outcome=None if ingest_only else lambda o: recovered.extend(o.closed),
                fetch_max_wait_ms=settings.fetch_max_wait_ms,
            )
            processor.counts["rebuilt_records"] += report.records
            if ingest_only:
                return
            # Windows closed before the committed offset whose decision is not stored (the
            # previous worker died while scoring them) are scored now.
            await decisions.submit_undecided(recovered)
        except Exception:
            processor.counts["rebuild_failures"] += 1
            log.exception("could not rebuild the books of %s; they start empty", new)
            return
        finally:
            rebuilding.difference_update(new)

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def on_revoked(app_: Any, revoked: Any, **kwargs: Any) -> None:
        gone = {(tp.topic, tp.partition) for tp in revoked}
        owned.difference_update(gone)
        dropped = processor.drop_partitions(gone)
        for instrument in dropped:  # a later owner (maybe this worker) restores from the store
            decisions.cold.forget(instrument)
        if dropped:
            log.warning(
                "partitions revoked: dropped the in-memory books and open windows of %s",
                ", ".join(dropped),
            )

    @app.on_before_shutdown.connect  # type: ignore[arg-type]
    async def on_shutdown(app_: Any, **kwargs: Any) -> None:
        # Windows being scored finish and are stored before the worker stops (bounded).
        await decisions.drain(timeout_s=30.0)

    return SurveillanceApp(
        app=app,
        settings=settings,
        topics=names,
        processor=processor,
        decisions=decisions,
        events_topic=events_topic,
        alerts_topic=alerts_topic,
        dead_letter_topic=dead_letter_topic,
        dead_letter_table=dead_letter_table,
        agent=agent,
        windows_topic=windows_topic,
    )


def run_worker(surv: SurveillanceApp, *, loglevel: str = "info") -> None:
    """Run the worker until SIGTERM / SIGINT (blocking)."""
    import gc

    from faust.worker import Worker

    # Every event allocates a few small objects that live until its window closes: with the
    # default thresholds the cyclic collector runs every 700 allocations and scans them again
    # and again (about 20 % of ingest). Freeze what import made, collect young objects rarely.
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    worker = Worker(surv.app, loglevel=loglevel, quiet=True)
    try:
        worker.execute_from_commandline()
    finally:
        surv.decisions.close()

"""The worker's decision queue with several scoring tasks: an instrument's windows never sit
in two batches at once, so they are decided (and a cold instrument's own windows kept) in the
order they closed, whatever the other instruments' batches do."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter

from simulator.book import OrderBook
from streams.app import Decisions
from streams.settings import load_settings
from surveillance.detection.pipeline import ClosedWindow, WindowScore


class SlowFirstTestScorer:
    """Scores every window 1.0 (no alert). A's first window is scored only once B's second
    has been (other tasks must go on meanwhile). Records how many windows of one instrument
    were being scored at the same time."""

    model_version = "test-slow-first"

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.active: Counter[str] = Counter()
        self.most_at_once = 0
        self.scored: list[tuple[str, int]] = []
        self.b_scored = threading.Event()
        self.a_waited = False

    def __call__(self, window: ClosedWindow) -> WindowScore:
        with self.lock:
            self.active[window.instrument] += 1
            self.most_at_once = max(self.most_at_once, self.active[window.instrument])
        if (window.instrument, window.start_ns) == ("A", 0):
            self.a_waited = self.b_scored.wait(timeout=10)
        else:
            time.sleep(0.02)
        if (window.instrument, window.start_ns) == ("B", 10):
            self.b_scored.set()
        with self.lock:
            self.active[window.instrument] -= 1
            self.scored.append((window.instrument, window.start_ns))
        return WindowScore(score=1.0, p_value=None, alert=False, facts={}, diverged=())


def window(instrument: str, k: int) -> ClosedWindow:
    return ClosedWindow(instrument, k * 10, (k + 1) * 10, OrderBook(instrument), (), "event")


def test_an_instruments_windows_are_decided_in_the_order_they_closed() -> None:
    settings = load_settings(executor="thread", executor_workers=3, score_batch=1)
    scorer = SlowFirstTestScorer()
    decisions = Decisions(settings=settings, scorer=scorer, store=None, alerts_topic=None)

    async def run() -> None:
        # two submissions, as two window closes: A's later windows arrive while its first is
        # still being scored by one task and two other tasks are free
        decisions.submit([window("A", 0), window("B", 0)])
        await asyncio.sleep(0.05)
        decisions.submit([window("A", k) for k in (1, 2, 3)] + [window("B", 1)])
        for _ in range(200):
            await decisions.drain()
            if decisions.pending == 0 and not decisions._tasks:
                break
            await asyncio.sleep(0.01)

    try:
        asyncio.run(run())
    finally:
        decisions.close()
    assert scorer.most_at_once == 1
    for name, count in (("A", 4), ("B", 2)):
        mine = [r["start_ns"] for r in decisions.recent if r["instrument"] == name]
        assert mine == [10 * k for k in range(count)]
    assert decisions.counts["decisions"] == 6
    # the free tasks did not sit idle: B's windows were scored while A's first was
    assert scorer.a_waited


def test_a_window_left_queued_holds_back_its_instruments_later_windows() -> None:
    """X's metadata goes away between two of its windows (its scorer changes): the batch of
    the other scorer must not take X's later window ahead of its earlier one."""
    from simulator.types import Instrument
    from tests.streams.stream_doubles import EventCountTestScorer

    venue_scorer, default = EventCountTestScorer(), EventCountTestScorer()
    instruments = {"X": Instrument("X")}
    decisions = Decisions(
        settings=load_settings(executor="thread", executor_workers=1, score_batch=8),
        scorer=default,
        store=None,
        alerts_topic=None,
        scorer_factory=lambda meta: venue_scorer,
        instruments=instruments,
    )

    async def run() -> None:
        decisions.submit([window("Y", 0)])  # the default scorer's
        decisions.submit([window("X", 0)])  # the venue scorer's
        instruments.pop("X")
        decisions.submit([window("X", 1)])  # now the default scorer's, like Y's
        await decisions.drain()

    try:
        asyncio.run(run())
    finally:
        decisions.close()
    assert [(r["instrument"], r["start_ns"]) for r in decisions.recent] == [
        ("Y", 0),
        ("X", 0),
        ("X", 10),
    ]


class FailingTestTopic:
    """An alert topic whose sends fail: the first ``times`` of them, or every one for the
    alert of ``window`` (an instrument and a window start)."""

    def __init__(self, *, times: int = 0, window: tuple[str, int] | None = None) -> None:
        self.times, self.window, self.calls = times, window, 0

    async def send(self, *, key: bytes, value: bytes) -> None:
        import json

        self.calls += 1
        alert = json.loads(value)
        if self.calls <= self.times or (alert["instrument"], alert["window"]["start_ns"]) == (
            self.window
        ):
            raise ConnectionError("broker gone")


def decide_with(topic: FailingTestTopic, **settings) -> Decisions:
    from tests.streams.stream_doubles import EventCountTestScorer

    decisions = Decisions(
        settings=load_settings(executor="thread", executor_workers=1, score_batch=1, **settings),
        scorer=EventCountTestScorer(min_events=0),  # every window alerts
        store=None,
        alerts_topic=topic,
    )

    async def run() -> None:
        decisions.submit([window("A", 0), window("A", 1), window("B", 0)])
        await decisions.drain()

    try:
        asyncio.run(run())
    finally:
        decisions.close()
    return decisions


def test_a_decision_that_fails_to_be_written_is_written_again() -> None:
    """The broker is away for one send: the alert goes out on the next try, once decided."""
    topic = FailingTestTopic(times=1)
    decisions = decide_with(topic, record_backoff_s=0.01)
    assert decisions.counts["record_retries"] == 1 and decisions.counts["decide_errors"] == 0
    assert decisions.counts["decisions"] == 3 and topic.calls == 4
    assert decisions.counts["alerts_published"] == 3  # windows, not sends
    assert [(r["instrument"], r["start_ns"]) for r in decisions.recent] == [
        ("A", 0),
        ("A", 10),
        ("B", 0),
    ]


def test_a_batch_that_cannot_be_written_does_not_strand_the_windows_behind_it() -> None:
    """A's first alert can never be sent: after its tries the task logs the batch and goes
    on, so A's next window and B's (queued behind it) are still decided."""
    decisions = decide_with(
        FailingTestTopic(window=("A", 0)), record_attempts=3, record_backoff_s=0.01
    )
    assert decisions.pending == 0
    assert decisions.counts["record_retries"] == 2 and decisions.counts["decide_errors"] == 1
    assert [(r["instrument"], r["start_ns"]) for r in decisions.recent] == [("A", 10), ("B", 0)]


def test_an_alert_stored_by_a_try_that_failed_later_is_counted_once(tmp_path) -> None:
    """The store takes the alert, then fails on the decision row: the next try finds the alert
    there; it is counted as stored once, and the decision row is written."""
    from alerts.store import AlertStore
    from tests.streams.stream_doubles import CollectingTestTopic, EventCountTestScorer

    class DecisionRowFailsOnceTestStore(AlertStore):
        failed = False

        def put_decision(self, *, decision) -> bool:  # type: ignore[override]
            if not self.failed:
                self.failed = True
                raise OSError("database gone for a moment")
            return super().put_decision(decision=decision)

    store = DecisionRowFailsOnceTestStore(f"sqlite:///{tmp_path / 'alerts.db'}")
    store.create_schema()
    decisions = Decisions(
        settings=load_settings(executor="thread", record_backoff_s=0.0),
        scorer=EventCountTestScorer(min_events=0),
        store=store,
        alerts_topic=CollectingTestTopic(),
    )

    async def run() -> None:
        decisions.submit([window("A", 0)])
        await decisions.drain()

    try:
        asyncio.run(run())
    finally:
        decisions.close()
    assert decisions.counts["record_retries"] == 1
    assert decisions.counts["alerts_stored"] == 1 and decisions.counts["decisions"] == 1
    assert len(store.decisions()) == 1 and len(store.list(limit=10)) == 1

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


def test_a_batch_that_fails_to_record_does_not_strand_the_windows_behind_it() -> None:
    """Publishing A's first alert fails: the task logs it and goes on, so A's next window and
    B's (queued behind it) are still decided."""
    from tests.streams.stream_doubles import EventCountTestScorer

    class FailingOnceTestTopic:
        def __init__(self) -> None:
            self.calls = 0

        async def send(self, *, key: bytes, value: bytes) -> None:
            self.calls += 1
            if self.calls == 1:
                raise ConnectionError("broker gone for a moment")

    decisions = Decisions(
        settings=load_settings(executor="thread", executor_workers=1, score_batch=1),
        scorer=EventCountTestScorer(min_events=0),  # every window alerts
        store=None,
        alerts_topic=FailingOnceTestTopic(),
    )

    async def run() -> None:
        decisions.submit([window("A", 0), window("A", 1), window("B", 0)])
        await decisions.drain()

    try:
        asyncio.run(run())
    finally:
        decisions.close()
    assert decisions.pending == 0
    assert decisions.counts["decide_errors"] == 1
    assert [(r["instrument"], r["start_ns"]) for r in decisions.recent] == [("A", 10), ("B", 0)]

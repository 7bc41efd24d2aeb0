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

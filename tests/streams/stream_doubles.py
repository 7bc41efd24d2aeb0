"""Test doubles for the stream worker. Nothing here is a market score.

``EventCountTestScorer`` "scores" a window by its number of events, so tests can predict which
windows alert; it exists to exercise the plumbing (executor, decisions, alerts, store).
"""

from __future__ import annotations

import json
import os
from typing import Any

from surveillance.detection.pipeline import ClosedWindow, WindowScore

TEST_MODEL_VERSION = "test-double-event-count"


class EventCountTestScorer:
    """Alerts on windows with at least ``min_events`` events; score = event count."""

    model_version = TEST_MODEL_VERSION

    def __init__(self, min_events: int = 1) -> None:
        self.min_events = min_events

    def __call__(self, window: ClosedWindow) -> WindowScore:
        n = len(window.events)
        return WindowScore(
            score=float(n),
            p_value=None,
            alert=n >= self.min_events,
            facts={"test_fact": 0.5},
            diverged=("test_fact",),
            expected={"test_fact": 0.9},
        )


def make_test_scorer(settings: Any) -> EventCountTestScorer:
    """Factory for ``SURV_SCORER=tests.streams.stream_doubles:make_test_scorer``.

    The threshold comes from ``TEST_SCORER_MIN_EVENTS`` (default 1).
    """
    return EventCountTestScorer(min_events=int(os.environ.get("TEST_SCORER_MIN_EVENTS", "1")))


class CollectingTestTopic:
    """Stands in for an output topic in unit tests of the decision path: keeps what is sent,
    each value read back as JSON."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, Any]] = []

    async def send(self, *, key: bytes, value: bytes) -> None:
        self.sent.append((key, json.loads(value)))

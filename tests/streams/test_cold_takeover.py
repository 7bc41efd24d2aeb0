"""A worker that takes over an instrument the calibration has no norms for goes on where the
last one was: its own windows come back from the store's decision rows, so the decisions of
two workers one after the other equal those of one worker, and of the offline replay."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from alerts.store import AlertStore
from simulator.lobster import load_lobster
from simulator.normalized import iter_events, lobster_to_frame
from streams.app import Decisions
from streams.settings import load_settings
from surveillance.cli.wiring import EMPIRICAL_VERSION, SamplerSpec
from surveillance.detection.coldstart import ColdStarts
from surveillance.detection.detector import Calibration
from surveillance.detection.pipeline import InstrumentPipeline
from surveillance.detection.scorer import SimulationScorer
from surveillance.detection.scoring import DetectionConfig
from tests.conftest import lobster_zip
from tests.streams.stream_doubles import CollectingTestTopic

NS = 1_000_000_000
OPEN_NS = 34_200 * NS  # 09:30
CHECKPOINTS = Path(__file__).resolve().parents[2] / "models" / "checkpoints"


@pytest.fixture(scope="module")
def unseen(lobster_dir):
    """AMZN level 1 from the open in 5-minute windows, under a name no calibration knows."""
    frame = lobster_to_frame(load_lobster(lobster_zip(lobster_dir, "AMZN", 1)))
    frame = frame[frame.ts_ns < OPEN_NS + 45 * 60 * NS].reset_index(drop=True)
    pipe = InstrumentPipeline("NEWCO", window_ns=5 * 60 * NS, origin_ns=OPEN_NS)
    windows = []
    for event in iter_events(frame.assign(instrument="NEWCO")):
        windows += pipe.on_event(event)
    return windows


def decide(decisions: Decisions, windows) -> None:
    async def run() -> None:
        for w in windows:  # one window per close, as the stream delivers them
            decisions.submit([w])
            await decisions.drain()

    asyncio.run(run())


def test_a_worker_taking_over_a_cold_instrument_restores_its_own_windows(
    unseen, tmp_path: Path
) -> None:
    cal = Calibration.load(CHECKPOINTS / "calibration-empirical.json")
    assert "NEWCO" not in cal.norms
    config = DetectionConfig(window_ns=5 * 60 * NS, rollouts=4, seed=0)
    scorer = SimulationScorer(config, SamplerSpec("empirical"), EMPIRICAL_VERSION, cal)
    # the replay's reading: every window in order through one ColdStarts
    cold = ColdStarts()
    offline = [cold.apply(scorer(w), w.instrument, w.feed_depth, cal) for w in unseen]
    scored = [v for v in offline if v.score is not None]
    assert len(scored) >= 6
    statuses = [v.detail["calibration"]["status"] for v in scored]
    assert statuses[0] == "pooled" and "adapting" in statuses  # the own windows count

    def worker(store: AlertStore) -> Decisions:
        settings = load_settings(executor="thread", executor_workers=1, score_batch=4)
        return Decisions(
            settings=settings, scorer=scorer, store=store, alerts_topic=CollectingTestTopic()
        )

    url = f"sqlite:///{tmp_path / 'alerts.db'}"
    store = AlertStore(url)
    store.create_schema()
    first = worker(store)
    cut = 4  # the first worker decides the windows up to here, then another takes over
    try:
        decide(first, unseen[:cut])
    finally:
        first.close()
    second = worker(AlertStore(url))
    try:
        decide(second, unseen[cut:])
    finally:
        second.close()
    rows = AlertStore(url).decisions(instrument="NEWCO")
    assert [r["window_start_ns"] for r in rows] == [w.start_ns for w in unseen]

    def reading(score: Any) -> tuple:
        c = (
            score.get("calibration") if isinstance(score, dict) else score.detail.get("calibration")
        ) or {}
        s = score["score"] if isinstance(score, dict) else score.score
        return s, c.get("status"), c.get("own_windows"), c.get("threshold_windows")

    assert [reading(r) for r in rows] == [reading(v) for v in offline]
    # without the store's rows the second worker would have started from the prior again
    fresh = ColdStarts()
    restarted = [fresh.apply(scorer(w), w.instrument, w.feed_depth, cal) for w in unseen[cut:]]
    assert [reading(v) for v in restarted] != [reading(v) for v in offline[cut:]]


class FailingForOneTestTopic:
    """A decisions topic whose sends for one window start always fail."""

    def __init__(self, start_ns: int) -> None:
        self.start_ns = start_ns

    async def send(self, *, key: bytes, value: bytes) -> None:
        import json

        if json.loads(value)["window"]["start_ns"] == self.start_ns:
            raise ConnectionError("broker gone")


def test_a_window_that_could_not_be_written_is_not_kept_as_its_own(unseen, tmp_path: Path) -> None:
    """The worker keeps an unseen instrument's window as one of its own only once its decision
    is written: after a write that failed for good, its state is the one a takeover restores
    from the store, not one more window ahead."""
    cal = Calibration.load(CHECKPOINTS / "calibration-empirical.json")
    config = DetectionConfig(window_ns=5 * 60 * NS, rollouts=4, seed=0)
    scorer = SimulationScorer(config, SamplerSpec("empirical"), EMPIRICAL_VERSION, cal)
    url = f"sqlite:///{tmp_path / 'alerts.db'}"
    store = AlertStore(url)
    store.create_schema()
    lost = unseen[2]  # the second scored window (the first has no history)
    decisions = Decisions(
        settings=load_settings(executor="thread", record_attempts=2, record_backoff_s=0.0),
        scorer=scorer,
        store=store,
        alerts_topic=CollectingTestTopic(),
        decisions_topic=FailingForOneTestTopic(lost.start_ns),
    )
    try:
        decide(decisions, unseen[:5])
    finally:
        decisions.close()
    assert decisions.counts["decide_errors"] == 1
    rows = AlertStore(url).decisions(instrument="NEWCO")
    assert lost.start_ns not in [r["window_start_ns"] for r in rows] and len(rows) == 4
    [key] = decisions.cold.states
    restored = ColdStarts().restore(key, AlertStore(url).calibrations("NEWCO", EMPIRICAL_VERSION))
    assert decisions.cold.states[key].windows == restored.windows
    assert restored.count == 3  # the scored windows written (the first three are kept)

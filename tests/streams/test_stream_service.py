"""Proof that the streaming service is the product: same decisions as the offline replay,
every window decided across a SIGKILL, and ``surveillance demo`` end to end.

All tests use the session's embedded broker (``kafka_bootstrap``) and a real
``surveillance worker`` subprocess; each uses its own topic prefix and store.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from alerts.schema import validate_alert, window_id
from alerts.store import AlertStore
from simulator.lobster import load_lobster
from simulator.normalized import lobster_to_frame
from surveillance.cli.wiring import EMPIRICAL_VERSION, SamplerSpec
from surveillance.detection.detector import Calibration
from surveillance.detection.pipeline import ClosedWindow, WindowScore
from surveillance.detection.scorer import SimulationScorer
from surveillance.detection.scoring import DetectionConfig
from surveillance.replay import ReplayInput, replay
from tests.conftest import lobster_zip
from tests.streams.stream_doubles import EventCountTestScorer
from tests.streams.test_streams import (
    MIN_EVENTS,
    ROOT,
    WorkerSetup,
    offline_decisions,
    read_topic,
)

NS = 1_000_000_000
OPEN_NS = 34_200 * NS  # 09:30, the LOBSTER files' start time


def stored(url: str) -> tuple[list[dict], list[dict]]:
    store = AlertStore(url)
    try:
        return store.decisions(), store.list(limit=10_000)
    finally:
        store.close()


# ------------------------------------------------------------------------ golden test
GOLDEN_WINDOW = "5m"
GOLDEN_ROLLOUTS = 4


@pytest.fixture(scope="module")
def amzn_slice(lobster_dir) -> pd.DataFrame:
    """AMZN level 1, 09:30 to 10:15 (nine 5-minute windows)."""
    frame = lobster_to_frame(load_lobster(lobster_zip(lobster_dir, "AMZN", 1)))
    return frame[frame.ts_ns < OPEN_NS + 45 * 60 * NS].reset_index(drop=True)


@pytest.mark.kafka
def test_streamed_day_decides_exactly_like_the_offline_replay(
    kafka_bootstrap, amzn_slice, lobster_dir, tmp_path
) -> None:
    config = DetectionConfig(window_ns=5 * 60 * NS, rollouts=GOLDEN_ROLLOUTS, seed=0)
    scorer = SimulationScorer(config, SamplerSpec("empirical"), EMPIRICAL_VERSION)
    item = ReplayInput(lobster_zip(lobster_dir, "AMZN", 1), "AMZN", amzn_slice, OPEN_NS, None)
    first = replay([item], scorer).records
    # A fixed calibration: the median of the scores, so some windows alert and some do not.
    scores = sorted(r["score"] for r in first if r["score"] is not None)
    cal = Calibration.fit(scores, far=0.5, method="test", model_version=scorer.model_version)
    cal_path = tmp_path / "calibration.json"
    cal.save(cal_path)
    scorer.calibration = Calibration.load(cal_path)
    offline = replay([item], scorer).records
    alerting = [r for r in offline if r["alert"]]
    assert 0 < len(alerting) < len(offline)

    setup = WorkerSetup(kafka_bootstrap, tmp_path)
    setup.env.pop("SURV_SCORER")  # the worker's default: surveillance.cli.wiring:worker_scorer
    setup.env.pop("SURV_WINDOW_S")
    setup.env |= {
        "SURV_GENERATOR": "empirical",
        "SURV_ROLLOUTS": str(GOLDEN_ROLLOUTS),
        "SURV_WINDOW": GOLDEN_WINDOW,
        "SURV_SEED": "0",
        "SURV_CALIBRATION": str(cal_path),
    }
    worker = setup.start()
    try:
        asyncio.run(setup.publish(amzn_slice, end=True))
        worker.wait_for(
            lambda s: (
                s["counts"].get("end_of_stream") == 1
                and not s["decisions"]["pending"]
                and s["decisions"].get("decisions") == len(offline)
            ),
            timeout_s=60,
            what="a decision for every window",
        )
    finally:
        worker.stop()

    decisions, alerts = stored(setup.settings.store_url)

    def wid(instrument: str, start: int, end: int) -> str:
        return window_id(instrument, start, end, scorer.model_version)

    live = {
        d["window_id"]: (d["score"], d["p_value"], d["alert"], d["n_events"]) for d in decisions
    }
    want = {
        wid(r["instrument"], r["window_start_ns"], r["window_end_ns"]): (
            r["score"],
            r["p_value"],
            r["alert"],
            r["n_events"],
        )
        for r in offline
    }
    assert live == want  # same window ids, same scores (exact floats), same alert flags

    messages = read_topic(setup.settings.bootstrap, setup.names.alerts, len(alerting))
    on_topic = {a["alert_id"]: a for a in (json.loads(m.value) for m in messages)}
    assert on_topic == {a["alert_id"]: a for a in alerts}  # topic == store, message for message
    for r in alerting:
        alert = on_topic[wid(r["instrument"], r["window_start_ns"], r["window_end_ns"])]
        validate_alert(alert)
        assert (alert["score"], alert["p_value"], alert["threshold"], alert["severity"]) == (
            r["score"],
            r["p_value"],
            r["threshold"],
            r["severity"],
        )
        assert alert["diverged_facts"] == r["diverged"]
        assert alert["baselines"] == r["baselines"]
        assert alert["model_version"] == scorer.model_version
        assert alert["config_version"] == scorer.config_version


# ------------------------------------------------------------------ SIGKILL mid-stream
@pytest.fixture(scope="module")
def feed_frame(lobster_dir) -> pd.DataFrame:
    """The first 2,500 normalized events of AMZN and of GOOG, merged in event-time order (as
    in test_streams)."""
    parts = [
        lobster_to_frame(load_lobster(lobster_zip(lobster_dir, symbol, 1))).iloc[:2500]
        for symbol in ("AMZN", "GOOG")
    ]
    return pd.concat(parts).sort_values("ts_ns", kind="stable").reset_index(drop=True)


class SlowEventCountScorer(EventCountTestScorer):
    """``EventCountTestScorer`` that takes ``TEST_SCORER_DELAY_S`` per window, so windows are
    still being scored when the worker is killed."""

    def __call__(self, window: ClosedWindow) -> WindowScore:
        time.sleep(float(os.environ.get("TEST_SCORER_DELAY_S", "0")))
        return super().__call__(window)


def make_slow_scorer(settings: object) -> SlowEventCountScorer:
    """``SURV_SCORER=tests.streams.test_stream_service:make_slow_scorer``."""
    return SlowEventCountScorer(min_events=int(os.environ.get("TEST_SCORER_MIN_EVENTS", "1")))


def committed_to_end(setup: WorkerSetup) -> bool:
    """Whether the worker's group has committed every record of the input topic."""
    from kafka import KafkaConsumer, TopicPartition

    from streams.recovery import committed_offsets

    tps = [(setup.names.events, p) for p in range(setup.settings.partitions)]
    consumer = KafkaConsumer(bootstrap_servers=setup.settings.bootstrap)
    try:
        end = consumer.end_offsets([TopicPartition(t, p) for t, p in tps])
    finally:
        consumer.close()
    done = asyncio.run(committed_offsets(setup.settings.bootstrap, setup.settings.app_id, tps))
    return all(done.get((tp.topic, tp.partition), 0) >= n for tp, n in end.items())


@pytest.mark.kafka
def test_a_worker_killed_mid_stream_still_decides_every_window_once(
    kafka_bootstrap, feed_frame, tmp_path
) -> None:
    expected = offline_decisions(feed_frame)
    want_ids = {window_id(d.instrument, d.start_ns, d.end_ns, d.model_version) for d in expected}
    want_alerts = {
        window_id(d.instrument, d.start_ns, d.end_ns, d.model_version) for d in expected if d.alert
    }
    setup = WorkerSetup(kafka_bootstrap, tmp_path)
    setup.env |= {
        "SURV_SCORER": "tests.streams.test_stream_service:make_slow_scorer",
        "TEST_SCORER_DELAY_S": "0.4",
        # The killed member holds its partitions until its session expires.
        "SURV_SESSION_TIMEOUT_S": "6",
        "TEST_SCORER_MIN_EVENTS": str(MIN_EVENTS),
    }
    cut = len(feed_frame) * 2 // 3
    first = setup.start()
    try:
        asyncio.run(setup.publish(feed_frame.iloc[:cut], end=False))
        # Kill once the consumed offsets are committed while windows closed by those records
        # are still being scored: only the rebuild can then find them undecided.
        deadline = time.monotonic() + 30
        while not committed_to_end(setup):
            assert time.monotonic() < deadline, first.log_tail()
            time.sleep(0.2)
        state = first.state()
        first.process.send_signal(signal.SIGKILL)  # no shutdown, no drain, no final commit
        first.process.wait(timeout=10)
    finally:
        first.stop()
    before, _ = stored(setup.settings.store_url)
    assert state["decisions"]["pending"] > 0 and len(before) < len(expected)

    second = setup.start()
    try:
        asyncio.run(setup.publish(feed_frame.iloc[cut:], end=True))
        deadline = time.monotonic() + 60
        while len(stored(setup.settings.store_url)[0]) < len(expected):
            assert time.monotonic() < deadline, second.log_tail()
            assert second.process.poll() is None, second.log_tail()
            time.sleep(0.5)
        state, _ = second.wait_for(
            lambda s: s["counts"].get("end_of_stream") == 2 and not s["decisions"]["pending"],
            timeout_s=30,
            what="end of stream",
        )
    finally:
        second.stop()
    decisions, alerts = stored(setup.settings.store_url)
    ids = [d["window_id"] for d in decisions]
    assert len(ids) == len(set(ids)) == len(expected)  # every window, once
    assert set(ids) == want_ids
    assert {
        (d["instrument"], d["window_start_ns"], d["n_events"], d["alert"]) for d in decisions
    } == {(d.instrument, d.start_ns, d.n_events, d.alert) for d in expected}
    assert {a["alert_id"] for a in alerts} == want_alerts
    # The alert topic is at least once: redelivered windows may be published again, but no
    # alert is missing and consumers deduplicate on alert_id.
    messages = read_topic(setup.settings.bootstrap, setup.names.alerts, len(want_alerts))
    assert {json.loads(m.value)["alert_id"] for m in messages} == want_alerts
    # Windows the killed worker closed and committed but never decided were scored again.
    assert state["decisions"].get("windows_rescored", 0) > 0
    sys.stderr.write(
        f"\nSIGKILL test: {len(before)} of {len(expected)} windows decided before the kill; "
        f"rescored after restart: {state['decisions'].get('windows_rescored', 0)}; "
        f"alert messages {len(messages)} for {len(want_alerts)} alerts\n"
    )


# ------------------------------------------------------------------ the demo, end to end
def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead but not yet reaped by its parent.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


@pytest.mark.kafka
def test_demo_runs_end_to_end_and_leaves_no_processes(lobster_dir, tmp_path) -> None:
    # Every scored window alerts under this calibration: the topic/store cross-check then
    # has alerts to compare.
    cal = Calibration.fit([-1e9], far=0.5, method="test: alert on everything")
    cal.model_version = "empirical-v1"
    cal.save(tmp_path / "cal.json")
    store = tmp_path / "demo.sqlite"
    args = [
        *(sys.executable, "-m", "surveillance.cli", "demo"),
        str(lobster_zip(lobster_dir, "AMZN", 1)),
        *("--until", "09:50", "--window", "5m", "--rollouts", "4", "--speed", "max"),
        *("--generator", "empirical", "--calibration", str(tmp_path / "cal.json")),
        *("--inject", "quote_stuffing", "--at", "09:41", "--for", "3m"),
        *("--store", str(store)),
    ]
    start = time.monotonic()
    out = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=150)
    elapsed = time.monotonic() - start
    text = out.stdout + out.stderr
    assert out.returncode == 0, text
    assert "=== surveillance demo: AMZN 2012-06-21" in text
    assert "injected  quote_stuffing 09:41:00-09:44:00" in text
    m = re.search(r"windows   (\d+) decided of (\d+) closed, (\d+) alert\(s\)", text)
    assert m and int(m[1]) == int(m[2]) == 4 and int(m[3]) == 3, text  # the first: no context
    assert re.search(r"alert topic  3 message\(s\), 3 distinct alert id\(s\); store 3 alert", text)
    assert ": OK" in text and f"stored in    {store}" in text
    assert re.search(r"scoring   [0-9.]+ s per window \(median of [1-4]; slowest", text), text
    assert "ALERT " in text and "diverged facts:" in text
    assert re.search(r"severity \w+, p-value (-|[0-9.e-]{1,9})\n", text), text
    decisions, alerts = stored(f"sqlite:///{store}")
    assert len(decisions) == 4 and len(alerts) == 3
    pids = [int(p) for p in re.findall(r"pid (\d+)", text)]
    assert len(pids) == 2, text  # the broker and the worker
    assert not [p for p in pids if _alive(p)]
    sys.stderr.write(f"\ndemo test: {elapsed:.1f} s\n")

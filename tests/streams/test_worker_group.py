"""Workers that come and go: a group of ``surveillance worker`` processes shares a venue's
instruments by partition, and closed windows are scored by a group of scorer processes.

Both tests feed six instruments (the shared AMZN and GOOG days, three copies of each under
names that Kafka puts on six distinct partitions, shifted by 0, 23 and 51 s, so their windows
hold other events and their books differ) in 90-second windows, score with the empirical generator (3 rollouts) under a fixed
calibration, and hold the store and the alert topic to the offline replay of the same events:
same window ids, exact scores, same alerts, each decision stored once, none missing. One event
of one instrument is lost in transit, so its later windows are decided degraded: each has its
data-quality record in the store and on the data-quality topic.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from alerts.schema import window_id
from alerts.store import AlertStore
from simulator.lobster import load_lobster
from simulator.normalized import iter_events, lobster_to_frame
from surveillance.cli.wiring import EMPIRICAL_VERSION, SamplerSpec
from surveillance.detection.detector import Calibration
from surveillance.detection.pipeline import WindowDecision, WindowedDetector
from surveillance.detection.scorer import SimulationScorer
from surveillance.detection.scoring import DetectionConfig
from tests.conftest import lobster_zip
from tests.streams.test_stream_service import committed_to_end, stored
from tests.streams.test_streams import WorkerProcess, WorkerSetup, read_topic

NS = 1_000_000_000
OPEN_NS = 34_200 * NS
WINDOW_NS = 90 * NS
ROLLOUTS = 3
SHIFTS_S = (0, 23, 51)
PARTITIONS = 6


def spread_names(symbols: list[str], copies: int, partitions: int) -> dict[str, list[str]]:
    """Names for ``copies`` instruments of each symbol that Kafka's key partitioner puts on
    distinct partitions (AMZN, AMZN.1, AMZN.2, GOOG, ... land on 3 of 6), so every member of
    the group owns books and every rebalance moves some."""
    from aiokafka.partitioner import DefaultPartitioner

    partitioner, used = DefaultPartitioner(), set()
    all_ = list(range(partitions))
    out: dict[str, list[str]] = {}
    for symbol in symbols:
        out[symbol] = []
        for j in range(1000):
            name = symbol if j == 0 else f"{symbol}.{j}"
            p = partitioner(name.encode(), all_, all_)
            if p not in used:
                used.add(p)
                out[symbol].append(name)
            if len(out[symbol]) == copies:
                break
    return out


@pytest.fixture(scope="module")
def venue_feed(lobster_dir) -> pd.DataFrame:
    """Six instruments, 09:30 to 09:36 of each (about 15,000 events), in event-time order,
    one per partition. One event of the first AMZN copy is lost in transit (a gap in its
    ``seq``): its windows from there on are decided degraded."""
    parts = []
    names = spread_names(["AMZN", "GOOG"], len(SHIFTS_S), PARTITIONS)
    for symbol in ("AMZN", "GOOG"):
        day = lobster_to_frame(load_lobster(lobster_zip(lobster_dir, symbol, 1)))
        day = day[day.ts_ns < OPEN_NS + 6 * 60 * NS]
        for name, shift in zip(names[symbol], SHIFTS_S, strict=True):
            part = day.copy()
            part["ts_ns"] = part["ts_ns"] + shift * NS
            part["instrument"] = name
            if (symbol, shift) == ("AMZN", 0):
                part = part.drop(part.index[(part.ts_ns >= OPEN_NS + 4 * 60 * NS).argmax()])
            parts.append(part)
    return pd.concat(parts).sort_values("ts_ns", kind="stable").reset_index(drop=True)


def offline(frame: pd.DataFrame, scorer: SimulationScorer) -> list[WindowDecision]:
    """The offline replay's decisions: one detector over the events, scoring inline."""
    detector = WindowedDetector(
        scorer, window_ns=WINDOW_NS, origin_ns=OPEN_NS, tick_size=100, check_seq=True
    )
    return [d for e in iter_events(frame) for d in detector.on_event(e)] + detector.flush()


@pytest.fixture(scope="module")
def golden(venue_feed, tmp_path_factory):
    """The offline decisions under a calibration at the median score (some alert, some not),
    and that calibration's file for the workers."""
    config = DetectionConfig(window_ns=WINDOW_NS, rollouts=ROLLOUTS, seed=0)
    scorer = SimulationScorer(config, SamplerSpec("empirical"), EMPIRICAL_VERSION)
    scores = sorted(d.verdict.score for d in offline(venue_feed, scorer) if d.verdict.score)
    cal = Calibration.fit(scores, far=0.5, method="test", model_version=scorer.model_version)
    path = tmp_path_factory.mktemp("cal") / "calibration.json"
    cal.save(path)
    scorer.calibration = Calibration.load(path)
    decisions = offline(venue_feed, scorer)
    assert 0 < sum(d.alert for d in decisions) < len(decisions)
    return decisions, path


def group_setup(bootstrap: str, tmp: Path, calibration: Path) -> WorkerSetup:
    setup = WorkerSetup(bootstrap, tmp, partitions=PARTITIONS)
    setup.env.pop("SURV_SCORER")  # the product's scorer (surveillance.cli.wiring)
    setup.env.pop("SURV_WINDOW_S")
    setup.env |= {
        "SURV_GENERATOR": "empirical",
        "SURV_ROLLOUTS": str(ROLLOUTS),
        "SURV_WINDOW": "90s",
        "SURV_SEED": "0",
        "SURV_CALIBRATION": str(calibration),
        # a killed member holds its partitions until its session expires
        "SURV_SESSION_TIMEOUT_S": "6",
        "OMP_NUM_THREADS": "1",
    }
    return setup


def covering(workers: list[WorkerProcess], topic: str, n: int = PARTITIONS) -> bool:
    """All ``workers`` ready and their assignments of ``topic`` split its ``n`` partitions."""
    try:
        states = [w.state() for w in workers]
    except OSError:
        return False
    held = [p for s in states for t, p in s["assignment"] if t == topic]
    return all(s["ready"] for s in states) and sorted(held) == list(range(n))


def wait_until(predicate, *, timeout_s: float, what: str, workers: list[WorkerProcess]) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        for w in workers:
            assert w.process.poll() is None, f"a worker exited:\n{w.log_tail()}"
        if time.monotonic() > deadline:
            tails = "\n---\n".join(w.log_tail()[-1500:] for w in workers)
            pytest.fail(f"no {what} within {timeout_s} s:\n{tails}")
        time.sleep(0.3)


def check_against_offline(setup: WorkerSetup, expected: list[WindowDecision]) -> dict:
    """The store and the alert topic hold exactly the offline decisions; returns figures."""
    decisions, alerts = stored(setup.settings.store_url)
    ids = [d["window_id"] for d in decisions]
    assert len(ids) == len(set(ids)) == len(expected)  # every window, once

    def wid(d: WindowDecision) -> str:
        return window_id(d.instrument, d.start_ns, d.end_ns, d.model_version)

    live = {
        d["window_id"]: (d["score"], d["p_value"], d["alert"], d["n_events"]) for d in decisions
    }
    assert live == {
        wid(d): (d.verdict.score, d.verdict.p_value, d.alert, d.n_events) for d in expected
    }  # same windows, exact scores, same alert flags
    want_alerts = {wid(d) for d in expected if d.alert}
    assert {a["alert_id"] for a in alerts} == want_alerts
    # The alert topic is at least once: none missing, duplicates counted (and reported).
    messages = read_topic(setup.settings.bootstrap, setup.names.alerts, len(want_alerts))
    on_topic = Counter(json.loads(m.value)["alert_id"] for m in messages)
    assert set(on_topic) == want_alerts
    assert {len({d.instrument for d in expected})} == {6}
    # Degraded windows (the lost event's): a data-quality record each, in the store and on
    # the data-quality topic, at least once; never an alert.
    want_quality = {wid(d) for d in expected if d.verdict.detail.get("status") == "degraded"}
    assert want_quality and not want_quality & want_alerts
    store = AlertStore(setup.settings.store_url)
    try:
        records = store.quality()
    finally:
        store.close()
    assert sorted(r["record_id"] for r in records) == sorted(want_quality)
    # (records are sent before the decision row is stored: all are on the topics by now)
    messages = read_topic(setup.settings.bootstrap, setup.names.quality, None)
    assert {json.loads(m.value)["record_id"] for m in messages} == want_quality
    # every window's decision on the decisions topic (at least once), as stored
    messages = read_topic(setup.settings.bootstrap, setup.names.decisions, None)
    on_topic_decisions = {json.loads(m.value)["window_id"]: json.loads(m.value) for m in messages}
    assert set(on_topic_decisions) == set(ids)
    assert {w: (r["score"], r["alert"]) for w, r in on_topic_decisions.items()} == {
        w: (score, alert) for w, (score, _, alert, _) in live.items()
    }
    return {
        "windows": len(expected),
        "alerts": len(want_alerts),
        "alert_messages": sum(on_topic.values()),
        "degraded": len(want_quality),
    }


@pytest.mark.kafka
def test_a_worker_group_that_grows_and_loses_a_member_decides_every_window_once(
    kafka_bootstrap, venue_feed, golden, tmp_path
) -> None:
    expected, calibration = golden
    setup = group_setup(kafka_bootstrap, tmp_path, calibration)
    topic = setup.names.events
    t0 = time.monotonic()
    phases: dict[str, float] = {}
    workers: list[WorkerProcess] = []
    try:
        workers += [setup.launch(), setup.launch()]  # started together: one join
        wait_until(
            lambda: covering(workers, topic), timeout_s=90, what="two-way split", workers=workers
        )
        first, second = len(venue_feed) // 3, 2 * len(venue_feed) // 3
        phases["two joined"] = time.monotonic() - t0
        asyncio.run(setup.publish(venue_feed.iloc[:first], end=False))

        # A third worker joins mid-stream: the partitions move, their books are rebuilt.
        workers.append(setup.start())
        wait_until(
            lambda: covering(workers, topic), timeout_s=90, what="three-way split", workers=workers
        )
        phases["third joined"] = time.monotonic() - t0
        asyncio.run(setup.publish(venue_feed.iloc[first:second], end=False))
        wait_until(lambda: committed_to_end(setup), timeout_s=60, what="commit", workers=workers)

        # SIGKILL the member holding the most books: no drain, no final commit.
        phases["committed"] = time.monotonic() - t0
        states = [w.state() for w in workers]
        # one instrument per partition: each of the three holds books, the newcomer too
        assert all(s["instruments"] for s in states), [sorted(s["instruments"]) for s in states]
        victim = max(range(3), key=lambda i: len(states[i]["instruments"]))
        killed = workers.pop(victim)
        killed_pending = states[victim]["decisions"]["pending"]
        killed.process.send_signal(signal.SIGKILL)
        killed.process.wait(timeout=10)
        asyncio.run(setup.publish(venue_feed.iloc[second:], end=True))
        wait_until(
            lambda: covering(workers, topic),
            timeout_s=90,
            what="split after the kill",
            workers=workers,
        )

        phases["split after kill"] = time.monotonic() - t0

        def all_decided() -> bool:
            if len(stored(setup.settings.store_url)[0]) < len(expected):
                return False
            return all(not w.state()["decisions"]["pending"] for w in workers)

        wait_until(all_decided, timeout_s=120, what="a decision for every window", workers=workers)
        final = [w.state() for w in workers]
        phases["all decided"] = time.monotonic() - t0
    finally:
        for w in workers:
            w.stop()
    figures = check_against_offline(setup, expected)
    rebuilt = [s["counts"].get("rebuilt_records", 0) for s in final]
    assert sum(rebuilt)  # the killed member's partitions were rebuilt from the topic
    rescored = sum(s["decisions"].get("windows_rescored", 0) for s in final)
    sys.stderr.write(
        f"\nworker group: {figures}, killed member had {killed_pending} window(s) pending, "
        f"survivors rebuilt {rebuilt} record(s) and rescored {rescored} window(s); "
        f"{time.monotonic() - t0:.1f} s; phases { ({k: round(v, 1) for k, v in phases.items()}) }\n"
    )


@pytest.mark.kafka
def test_ingest_workers_hand_windows_to_a_scorer_group_that_scores_them_in_batches(
    kafka_bootstrap, venue_feed, golden, tmp_path
) -> None:
    expected, calibration = golden
    setup = group_setup(kafka_bootstrap, tmp_path, calibration)
    t0 = time.monotonic()
    ingest: list[WorkerProcess] = []
    scorers: list[WorkerProcess] = []
    try:
        ingest.append(setup.launch("ingest"))
        scorers += [setup.launch("scorer"), setup.launch("scorer")]
        everyone = ingest + scorers
        wait_until(
            lambda: covering(ingest, setup.names.events) and covering(scorers, setup.names.windows),
            timeout_s=90,
            what="ingest and scorer groups",
            workers=everyone,
        )
        joined_s = time.monotonic() - t0
        half = len(venue_feed) // 2
        asyncio.run(setup.publish(venue_feed.iloc[:half], end=False))
        # SIGKILL a scorer once windows are flowing: what it had not committed goes to the
        # other scorer, which skips the windows already in the store.
        wait_until(
            lambda: ingest[0].state()["counts"].get("windows_published", 0) >= 6,
            timeout_s=60,
            what="closed windows published",
            workers=everyone,
        )
        states = [w.state() for w in scorers]
        victim = max(range(2), key=lambda i: len(states[i]["assignment"]))
        killed_state = states[victim]
        scorers[victim].process.send_signal(signal.SIGKILL)
        scorers[victim].process.wait(timeout=10)
        scorers.pop(victim)
        asyncio.run(setup.publish(venue_feed.iloc[half:], end=True))
        wait_until(
            lambda: covering(scorers, setup.names.windows),
            timeout_s=60,
            what="the survivor taking every window partition",
            workers=ingest + scorers,
        )

        def all_decided() -> bool:
            if len(stored(setup.settings.store_url)[0]) < len(expected):
                return False
            return not scorers[0].state()["decisions"]["pending"]

        wait_until(
            all_decided, timeout_s=120, what="a decision for every window", workers=ingest + scorers
        )
        ingest_state, scorer_state = ingest[0].state(), scorers[0].state()
    finally:
        for w in ingest + scorers:
            w.stop()
    figures = check_against_offline(setup, expected)
    # Ingest only ingests: every closed window went to the windows topic, none scored there.
    counts = ingest_state["counts"]
    assert counts["windows_published"] == counts["windows_closed"] == len(expected)
    assert not ingest_state["decisions"].get("decisions")
    # The scorer scored what one poll brought as one batch (one Engine.fork call).
    batches = [r["batch"] for r in scorer_state["recent_windows"]]
    assert max(batches) > 1, batches
    d = scorer_state["decisions"]
    sys.stderr.write(
        f"\nscorer group: {figures}; killed scorer: {killed_state['decisions']}; survivor: "
        f"{d.get('decisions', 0)} decided in {d.get('score_batches', 0)} batches (largest "
        f"{max(batches)}), {d.get('windows_already_decided', 0)} redelivered already decided; "
        f"groups joined in {joined_s:.1f} s, {time.monotonic() - t0:.1f} s in all\n"
    )

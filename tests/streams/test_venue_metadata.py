"""Venue metadata travels with the feed: instrument control records, the worker's
per-instrument windows and scorers, and replay == stream on the Databento ES file."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest

from simulator.bitstamp import instrument as bitstamp_instrument
from simulator.databento import instrument_for
from simulator.normalized import event_to_dict
from simulator.types import BookEvent, EventKind, Instrument, Side
from streams.app import Decisions, EventProcessor, load_scorer_factory
from streams.records import CONTROL_HEADER, end_of_stream, instrument_record
from streams.settings import load_settings
from surveillance.detection.pipeline import decide_window
from tests.streams.stream_doubles import EventCountTestScorer

NS = 1_000_000_000
ES = instrument_for("ESH4", "GLBX.MDP3", 2_500)
T0 = 1_703_545_200 * NS  # 2023-12-25 23:00 UTC, 17:00 Chicago: the session's open
DBN_FILE = (
    Path(__file__).resolve().parents[2].parent
    / "shared/data/databento/esh4-glbx-mdp3-20231225.mbo.dbn.zst"
)
WHERE = {"topic": "in", "partition": 0}


def book_events(symbol: str, t0: int) -> list[BookEvent]:
    """A bid at 4800.00 and an ask at 4800.25 (one ES tick: 2,500 units), then a trade."""
    bid, ask = 48_000_000, 48_002_500
    return [
        BookEvent(t0, EventKind.ADD, 1, 5, bid, Side.BID, symbol, 0),
        BookEvent(t0 + NS, EventKind.ADD, 2, 5, ask, Side.ASK, symbol, 1),
        BookEvent(t0 + 2 * NS, EventKind.EXECUTE, 2, 1, ask, Side.ASK, symbol, 2),
    ]


def send(proc: EventProcessor, offset: int, events: list[BookEvent]):
    value = json.dumps([event_to_dict(e) for e in events]).encode()
    key = events[0].instrument.encode()
    return proc.handle(key=key, value=value, headers=[], offset=offset, **WHERE)


def close(proc: EventProcessor, symbol: str, offset: int):
    key, value, headers = end_of_stream(symbol)
    return proc.handle(key=key, value=value, headers=headers, offset=offset, **WHERE).closed


def test_the_es_tick_reaches_the_windows_facts_and_a_feed_without_metadata_falls_back(
    caplog,
) -> None:
    proc = EventProcessor(window_ns=1500 * NS)  # the worker's NASDAQ defaults: tick 100
    key, value, headers = instrument_record(ES)
    out = proc.handle(key=key, value=value, headers=headers, offset=0, **WHERE)
    assert out.dead_letter is None and proc.instruments["ESH4"] == ES
    send(proc, 1, book_events("ESH4", T0))
    with caplog.at_level(logging.WARNING, logger="streams.app"):
        send(proc, 2, book_events("NOMETA", T0))
    [es] = close(proc, "ESH4", 3)
    [other] = close(proc, "NOMETA", 4)
    assert es.real_facts is not None and other.real_facts is not None
    # one tick wide: 1 with ES's tick, 25 with the settings' NASDAQ tick of 100 units
    assert es.real_facts["spread"][0].tolist() == [1, 1]
    assert other.real_facts["spread"][0].tolist() == [25, 25]
    # ES's grid starts at its session open (17:00 Chicago), the other at 09:30 New York
    assert es.start_ns == T0 and other.start_ns != T0
    assert proc.counts["instruments_without_metadata"] == 1
    assert "NOMETA: no instrument metadata on the feed" in caplog.text
    assert "ESH4" not in caplog.text


def test_the_session_and_grid_come_from_the_metadata() -> None:
    proc = EventProcessor(window_ns=1500 * NS)
    for offset, meta in enumerate((ES, bitstamp_instrument())):
        key, value, headers = instrument_record(meta)
        proc.handle(key=key, value=value, headers=headers, offset=offset, **WHERE)
    halt = T0 - 30 * 60 * NS  # 16:30 Chicago: CME's daily halt
    send(proc, 2, book_events("ESH4", halt))
    windows = send(proc, 3, book_events("ESH4", T0 + 60 * NS)).closed + close(proc, "ESH4", 4)
    assert [(w.start_ns, w.in_session) for w in windows] == [
        (T0 - 3000 * NS, False),
        (T0, True),
    ]
    assert proc.pipeline("ESH4").origin_ns == T0
    send(proc, 5, book_events("BTCUSD", T0))
    assert proc.pipeline("BTCUSD").origin_ns == 1_703_462_400 * NS  # UTC midnight
    assert proc.pipeline("BTCUSD").tick_size == 100


def test_a_malformed_instrument_record_is_dead_lettered() -> None:
    proc = EventProcessor(window_ns=1500 * NS)
    header = [(CONTROL_HEADER, b"instrument")]
    bad = [
        (b"ESH4", b"{not json", "bad_instrument"),
        (b"ESH4", json.dumps(ES.as_dict() | {"tick_size": 0.25}).encode(), "bad_instrument"),
        (b"ESH4", json.dumps(ES.as_dict() | {"timezone": "Mars/Olympus"}).encode(), "bad_instrument"),
        (b"ESH4", json.dumps(ES.as_dict() | {"trade_days": "weekdays"}).encode(), "bad_instrument"),
        (b"NQH4", json.dumps(ES.as_dict()).encode(), "key_mismatch"),
    ]  # fmt: skip
    for offset, (key, value, _) in enumerate(bad):
        out = proc.handle(key=key, value=value, headers=header, offset=offset, **WHERE)
        assert out.events == 0
    assert proc.dead_letters == {"bad_instrument": 4, "key_mismatch": 1}
    assert proc.instruments == {}


def test_each_venue_gets_a_scorer_built_for_its_metadata() -> None:
    settings = load_settings(generator="empirical", calibration="none", rollouts=4)
    factory = load_scorer_factory("surveillance.cli.wiring:worker_scorer", settings)
    assert factory is not None
    # a factory without an instrument parameter serves every instrument with its one scorer
    assert load_scorer_factory("tests.streams.stream_doubles:make_test_scorer", settings) is None
    default = EventCountTestScorer()
    decisions = Decisions(
        settings=settings,
        scorer=default,
        store=None,
        alerts_topic=None,
        scorer_factory=factory,
        instruments={"ESH4": ES},
    )
    try:
        es = decisions.scorer_of("ESH4")
        assert es is decisions.scorer_of("ESH4")  # built once
        assert es.config.tick_size == 2_500 and es.config.price_scale == 10_000  # type: ignore[union-attr]
        assert decisions.scorer_of("AAPL") is default
    finally:
        decisions.close()


def replay_decisions(item) -> list[tuple]:
    from surveillance.detection.scoring import DetectionConfig
    from surveillance.replay import replay

    class Counting(EventCountTestScorer):
        config = DetectionConfig(tick_size=ES.tick_size)
        config_version = "test"

    records = replay([item], Counting(min_events=10**9)).records  # type: ignore[arg-type]
    return [(r["window_start_ns"], r["window_end_ns"], r["n_events"], r["score"]) for r in records]


@pytest.mark.kafka
def test_feed_and_worker_decide_the_es_file_like_the_replay(kafka_bootstrap) -> None:
    """The publisher sends the DBN file's events after its metadata (what ``feed`` does: the
    small file's test above goes through ``publish_file``); the worker's core, fed the records
    as they came off the topic, closes and decides the replay's windows exactly."""
    if not DBN_FILE.exists():
        pytest.skip(f"shared Databento data not found at {DBN_FILE}")
    import uuid

    from streams.publisher import publish_frame
    from streams.topics import TopicSpec, ensure_topics
    from surveillance.replay import read_inputs
    from tests.streams.test_streams import read_topic

    [item] = read_inputs(DBN_FILE, "databento")  # read once: the replay and the feed share it
    assert item.meta == ES
    topic = f"venue-{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka_bootstrap, [TopicSpec(topic, 1)])
    report = asyncio.run(
        publish_frame(
            item.frame,
            bootstrap=kafka_bootstrap,
            topic=topic,
            snapshots=item.snapshots,
            instruments={item.instrument: ES},
        )
    )
    assert report.instruments == 1 and report.control_records == 2  # metadata + end of stream
    records = read_topic(kafka_bootstrap, topic, report.records)
    assert len(records) == report.records
    first = records[0]
    assert dict(first.headers) == {CONTROL_HEADER: b"instrument"}
    assert Instrument.from_dict(json.loads(first.value)) == ES
    proc = EventProcessor(window_ns=1500 * NS)  # NASDAQ settings: the metadata must win
    scorer = EventCountTestScorer(min_events=10**9)
    stream = []
    for r in records:
        out = proc.handle(
            key=r.key, value=r.value, headers=r.headers, topic=topic, partition=0, offset=r.offset
        )
        assert out.dead_letter is None
        for w in out.closed:
            d = decide_window(scorer, w)
            stream.append((d.start_ns, d.end_ns, d.n_events, d.verdict.score))
    assert proc.instruments["ESH4"].tick_size == 2_500
    assert stream == replay_decisions(item)
    scored = [s for s in stream if s[3] is not None]
    assert len(scored) >= 2 and len(stream) > len(scored)  # the pre-open is decided unscored


def test_metadata_after_an_instruments_events_is_ignored_and_counted(caplog) -> None:
    proc = EventProcessor(window_ns=1500 * NS)
    send(proc, 0, book_events("ESH4", T0))
    key, value, headers = instrument_record(ES)
    with caplog.at_level(logging.WARNING, logger="streams.app"):
        proc.handle(key=key, value=value, headers=headers, offset=1, **WHERE)
    assert proc.instruments == {} and proc.counts["instrument_records_late"] == 1
    assert "ESH4: instrument metadata arrived after its events" in caplog.text
    [window] = close(proc, "ESH4", 2)
    assert window.real_facts is not None
    assert window.real_facts["spread"][0].tolist() == [25, 25]  # still the settings' tick


@pytest.mark.kafka
def test_feed_publishes_every_instrument_of_a_dbn_file_after_its_metadata(
    kafka_bootstrap, tmp_path
) -> None:
    import uuid

    from streams.publisher import publish_file
    from streams.topics import TopicSpec, ensure_topics
    from tests.simulator.test_databento_instruments import two_instruments
    from tests.streams.test_streams import read_topic

    path = two_instruments(tmp_path)
    topic = f"venue-{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka_bootstrap, [TopicSpec(topic, 1)])
    report = publish_file(path, fmt="databento", bootstrap=kafka_bootstrap, topic=topic)
    assert (report.events, report.instruments, report.control_records) == (7, 3, 6)
    records = read_topic(kafka_bootstrap, topic, report.records)
    proc = EventProcessor(window_ns=1500 * NS)
    for r in records:
        out = proc.handle(
            key=r.key, value=r.value, headers=r.headers, topic=topic, partition=0, offset=r.offset
        )
        assert out.dead_letter is None
    # each instrument's metadata came before its first event: no pipeline fell back
    assert sorted(proc.instruments) == ["17077", "NQH4", "ZZH4"]
    assert proc.counts["instruments_without_metadata"] == 0
    assert {s: p.tick_size for s, p in proc.pipelines.items()} == {
        "17077": 2_500,
        "NQH4": 2_500,
        "ZZH4": 1_000,
    }
    assert proc.counts["events"] == 7 and proc.counts["end_of_stream"] == 3

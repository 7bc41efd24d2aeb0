"""The closed-window record (``streams.windows``): what ingest workers send scorers must come
back as the same window, scored the same, and a reader must refuse what it cannot read."""

from __future__ import annotations

import dataclasses
import struct
import zlib

import numpy as np
import orjson
import pytest

from simulator.book import OrderBook
from simulator.lobster import load_lobster
from simulator.normalized import iter_events, lobster_to_frame
from simulator.types import Instrument
from streams.windows import (
    MAGIC,
    VERSION,
    WindowRecordError,
    decode_window,
    decode_window_record,
    encode_window,
)
from surveillance.cli.wiring import EMPIRICAL_VERSION, SamplerSpec
from surveillance.detection.pipeline import (
    ClosedWindow,
    InstrumentPipeline,
    decide_window,
    decide_windows,
)
from surveillance.detection.scorer import SimulationScorer
from surveillance.detection.scoring import DetectionConfig
from tests.conftest import lobster_zip

NS = 1_000_000_000
OPEN_NS = 34_200 * NS


@pytest.fixture(scope="module")
def windows(lobster_dir) -> list[ClosedWindow]:
    """AMZN level 1, 09:30 to 09:50 in 5-minute windows (the last closed by end of stream)."""
    frame = lobster_to_frame(load_lobster(lobster_zip(lobster_dir, "AMZN", 1)))
    frame = frame[frame.ts_ns < OPEN_NS + 18 * 60 * NS]
    pipe = InstrumentPipeline("AMZN", window_ns=5 * 60 * NS, origin_ns=OPEN_NS, check_seq=True)
    out = [w for e in iter_events(frame) for w in pipe.on_event(e)]
    return out + pipe.flush()


def book_rows(book: OrderBook | None) -> list | None:
    if book is None:
        return None
    levels = [
        (side, level.price, list(level.orders.items()))
        for side in (1, -1)
        for level in book.iter_levels(side)
    ]
    return [book.symbol, book.next_id, levels]


def same(a: object, b: object) -> bool:
    """Deep equality that compares numpy arrays by dtype and value."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (
            isinstance(a, np.ndarray)
            and isinstance(b, np.ndarray)
            and a.dtype == b.dtype
            and np.array_equal(a, b)
        )
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, tuple | list) and isinstance(b, tuple | list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if dataclasses.is_dataclass(a) and dataclasses.is_dataclass(b):
        return type(a) is type(b) and all(
            same(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a)
        )
    return type(a) is type(b) and a == b


def test_a_window_round_trips_field_for_field(windows) -> None:
    assert len(windows) == 4 and windows[-1].closed_by == "end_of_stream"
    for window in windows:
        back = decode_window(encode_window(window))
        for f in dataclasses.fields(ClosedWindow):
            a, b = getattr(window, f.name), getattr(back, f.name)
            if isinstance(a, OrderBook) or isinstance(b, OrderBook) or f.name.endswith("_book"):
                assert book_rows(a) == book_rows(b), f.name  # every order, in queue order
            elif f.name in ("events", "history"):
                assert a == b, f.name  # BookEvents: frozen dataclasses, exact
            else:
                assert same(dict(a) if f.name == "faults" else a, b), f.name
    # What could go wrong is there to go wrong: both books, context, facts, a trajectory.
    later = windows[2]
    assert later.history and later.history_book is not None and later.earlier_facts
    assert later.real_trajectory is not None and later.real_trajectory.price is not None
    assert len(later.opening_book) > 0


def test_a_decoded_book_mints_the_same_ids_as_the_original() -> None:
    book = OrderBook("X")
    book.add(5, 1, 100, 10)
    book.add(7, 1, 100, 3)  # behind 5 at the same price
    book.add(book.mint_id(), -1, 102, 4)
    book.add(book.mint_id(), -1, 103, 1)
    book.delete(-2)  # the counter is now below every resting order's id
    window = ClosedWindow("X", 0, 10, book, (), "event")
    back = decode_window(encode_window(window)).opening_book
    assert book_rows(back) == book_rows(book)
    assert back.mint_id() == book.fork().mint_id() == -3


def test_a_decoded_window_scores_exactly_like_the_original_and_batches_like_one_by_one(
    windows,
) -> None:
    config = DetectionConfig(window_ns=5 * 60 * NS, rollouts=3, seed=0)
    scorer = SimulationScorer(config, SamplerSpec("empirical"), EMPIRICAL_VERSION)
    decoded = [decode_window(encode_window(w)) for w in windows]
    alone = [decide_window(scorer, w) for w in windows]
    assert sum(d.verdict.score is not None for d in alone) >= 2  # some windows forked
    assert [decide_window(scorer, w) for w in decoded] == alone
    # One Engine.fork for all windows: the same decisions as one fork each, and with the
    # worker's cap on rollouts in flight (SURV_MAX_ROLLOUTS), windows waiting for slots.
    assert decide_windows(scorer, decoded) == alone
    assert decide_windows(scorer, decoded, max_batch=4) == alone


def test_a_reader_refuses_records_it_cannot_read(windows) -> None:
    record = encode_window(windows[1])
    assert record.startswith(MAGIC) and record[len(MAGIC)] == VERSION == 3
    newer = MAGIC + bytes([VERSION + 1]) + record[len(MAGIC) + 1 :]
    with pytest.raises(WindowRecordError, match="version 4") as err:
        decode_window(newer)
    assert err.value.reason == "unsupported_version"
    for bad, reason in (
        (b"", "not_a_window"),
        (b'{"instrument": "AMZN"}', "not_a_window"),
        (record[: len(record) // 2], "corrupt"),
        (MAGIC + bytes([VERSION]) + zlib.compress(b"\x00\x00\x00\x00"), "corrupt"),
    ):
        with pytest.raises(WindowRecordError) as err:
            decode_window(bad)
        assert err.value.reason == reason


def test_a_record_carries_the_session_and_the_venue_metadata_and_old_records_still_read(
    windows,
) -> None:
    # the session places a window in its time-of-day bucket: a scorer must see the same one
    at_close = dataclasses.replace(windows[1], session=(34_200 * NS, 57_600 * NS))
    assert decode_window(encode_window(at_close)).session == (34_200 * NS, 57_600 * NS)
    assert decode_window(encode_window(windows[1])).session is None
    # the feed's depth decides whether a calibration applies: a scorer must see it too
    shallow = dataclasses.replace(windows[1], feed_depth=1)
    assert decode_window(encode_window(shallow)).feed_depth == 1
    es = Instrument(
        "ESH4", tick_size=2_500, price_scale=10_000_000, venue="CME", timezone="America/Chicago"
    )
    window, meta = decode_window_record(encode_window(windows[1], es))
    assert meta == es and window.start_ns == windows[1].start_ns
    assert decode_window_record(encode_window(windows[1]))[1] is None
    # A version 1 writer's record: no venue field, version byte 1.
    body = zlib.decompress(encode_window(windows[1])[len(MAGIC) + 1 :])
    (n,) = struct.unpack_from("<I", body)
    header = orjson.loads(body[4 : 4 + n])
    del header["venue"], header["session"], header["feed_depth"]
    head = orjson.dumps(header)
    v1 = MAGIC + bytes([1]) + zlib.compress(struct.pack("<I", len(head)) + head + body[4 + n :])
    old, meta = decode_window_record(v1)
    assert meta is None and same(old.real_facts, windows[1].real_facts)
    assert old.feed_depth is None
    assert book_rows(old.opening_book) == book_rows(windows[1].opening_book)


@pytest.mark.kafka
def test_a_25_minute_goog_window_travels_through_the_windows_topic(
    kafka_bootstrap, lobster_dir
) -> None:
    """A real window is over a megabyte: the topic, the producer and the consumer settings
    must let it through (the default 1 MB request size does not)."""
    import asyncio

    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    from streams.settings import load_settings
    from streams.topics import TopicNames, app_topic_specs, ensure_topics

    frame = lobster_to_frame(load_lobster(lobster_zip(lobster_dir, "GOOG", 10)))
    frame = frame[frame.ts_ns < OPEN_NS + 76 * 60 * NS]
    pipe = InstrumentPipeline("GOOG", window_ns=25 * 60 * NS, origin_ns=OPEN_NS)
    window = [w for e in iter_events(frame) for w in pipe.on_event(e)][2]  # 10:20-10:45
    record = encode_window(window)
    assert len(record) > 1_048_576  # more than Kafka's default request and message size
    prefix = f"w{id(record) % 10**8}"
    settings = load_settings(bootstrap=kafka_bootstrap, topic_prefix=prefix, app_id=prefix)
    ensure_topics(kafka_bootstrap, app_topic_specs(settings))
    topic = TopicNames.for_prefix(prefix).windows

    async def roundtrip() -> bytes:
        producer = AIOKafkaProducer(
            bootstrap_servers=kafka_bootstrap, max_request_size=settings.max_window_bytes
        )
        await producer.start()
        try:
            await producer.send_and_wait(topic, record, key=b"GOOG")
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            bootstrap_servers=kafka_bootstrap,
            max_partition_fetch_bytes=settings.max_window_bytes,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            tps = [TopicPartition(topic, p) for p in range(settings.windows_partitions)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            for _ in range(30):
                for records in (await consumer.getmany(timeout_ms=1000)).values():
                    return records[0].value
        finally:
            await consumer.stop()
        raise AssertionError("the window record never came back")

    back = decode_window(asyncio.run(roundtrip()))
    assert back.events == window.events and book_rows(back.opening_book) == book_rows(
        window.opening_book
    )

"""Publish a historical feed file into the input topic, keyed by instrument.

Timing: the file's event times are replayed compressed by ``speed`` (``100`` plays 100 s of
market time per second); ``speed=None`` publishes as fast as the producer goes.

Batching: consecutive events of one instrument are packed into one batch record (a JSON array,
``streams.records``) of at most ``batch_events`` events; a batch is sent when full, when
another instrument's event comes, or before the publisher sleeps to pace the feed (so pacing
never holds an event back). ``batch_events=1`` sends one record per event. Kafka records are
further batched by the producer (``linger_ms``, ``max_batch_size``) and acknowledged in groups
of ``window`` in-flight sends. After the last event of each instrument an end-of-stream control
record is sent (see ``streams.records``) unless ``end_of_stream=False``. A feed's book snapshots
(a LOBSTER file's rows every 10 s) go out as snapshot control records in feed order. Each
instrument's metadata (tick, price scale, session: ``simulator.types.Instrument``), when the
file has it, goes out as an instrument control record before that instrument's first event,
so the worker's windows follow the venue and not its settings' defaults. A file of several
instruments (DBN) is published whole: its instruments' events merged in event-time order.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import pandas as pd

from simulator.normalized import COLUMNS, BookSnapshot
from simulator.types import Instrument
from streams.broker import wait_for_broker
from streams.records import (
    encode_batch,
    encode_event_dict,
    end_of_stream,
    instrument_record,
    snapshot_record,
)

log = logging.getLogger(__name__)

FeedFormat = Literal["lobster", "normalized", "databento", "bitstamp"]
_SPEED = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*x?\s*$", re.IGNORECASE)


def parse_speed(text: str) -> float | None:
    """``"100x"`` -> 100.0, ``"max"`` -> None (as fast as possible)."""
    if text.strip().lower() == "max":
        return None
    m = _SPEED.match(text)
    if m is None or float(m[1]) <= 0:
        raise ValueError(f"speed must look like 100x, 1x, 0.5x or max, got {text!r}")
    return float(m[1])


def load_feed(path: str | Path, fmt: FeedFormat) -> tuple[pd.DataFrame, int]:
    """Normalized events of a file (any venue adapter of ``simulator.feeds``), and the count
    of malformed rows skipped."""
    from simulator import feeds

    if fmt not in feeds.FORMATS:
        raise ValueError(f"unknown feed format {fmt!r}")
    feed = feeds.load_feed(path, fmt)
    return feed.frame, feed.malformed


@dataclass(slots=True)
class PublishReport:
    topic: str
    events: int
    records: int
    instruments: int
    control_records: int
    malformed_rows: int
    seconds: float
    speed: float | None

    @property
    def events_per_s(self) -> float | None:
        return self.events / self.seconds if self.seconds > 0 else None

    def as_dict(self) -> dict[str, object]:
        return asdict(self) | {"events_per_s": self.events_per_s}


async def publish_frame(
    frame: pd.DataFrame,
    *,
    bootstrap: str,
    topic: str,
    speed: float | None = None,
    end_of_stream_records: bool = True,
    window: int = 2000,
    linger_ms: int = 20,
    broker_timeout_s: float = 30.0,
    malformed_rows: int = 0,
    batch_events: int = 500,
    snapshots: Sequence[BookSnapshot] = (),
    instruments: Mapping[str, Instrument] | None = None,
) -> PublishReport:
    """Publish normalized events in frame order, paced by ``ts_ns / speed``; each of the
    feed's book ``snapshots`` goes out as a control record before the event at its position
    (``streams.records.snapshot_record``), and each of ``instruments`` (symbol -> metadata)
    as an instrument control record before that instrument's first event."""
    if batch_events < 1:
        raise ValueError("batch_events must be at least 1")
    from aiokafka import AIOKafkaProducer

    await asyncio.to_thread(wait_for_broker, bootstrap, timeout_s=broker_timeout_s)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id="surv-feed",
        linger_ms=linger_ms,
        max_batch_size=256 * 1024,
        acks=1,
    )
    await producer.start()
    columns = [frame[c].tolist() for c in COLUMNS]  # plain Python values, not numpy
    metadata = dict(instruments or {})  # sent before each instrument's first event
    seen: dict[str, None] = {}  # instruments published, in order of their first event
    pending: list[asyncio.Future[object]] = []
    start = time.perf_counter()
    ts0 = int(columns[0][0]) if len(frame) else 0
    sent = 0
    records = 0
    batch: list[dict[str, object]] = []
    batch_key = ""

    async def send(value: bytes, key: str, headers: list | None = None) -> None:
        nonlocal records
        pending.append(
            await producer.send(topic, value, key=key.encode(), headers=headers)  # type: ignore[arg-type]
        )
        records += 1
        if len(pending) >= window:
            await asyncio.gather(*pending)
            pending.clear()

    async def flush_batch() -> None:
        if batch:
            value = encode_batch(batch) if batch_events > 1 else encode_event_dict(batch[0])
            await send(value, batch_key)
            batch.clear()

    snaps = iter(snapshots)
    snap = next(snaps, None)
    sent_controls = 0
    try:
        for k, row in enumerate(zip(*columns, strict=True)):
            record = dict(zip(COLUMNS, row, strict=True))
            while snap is not None and snap.position <= k:
                await flush_batch()
                key, value, headers = snapshot_record(
                    str(record["instrument"]), snap.ts_ns, snap.depth, snap.bids, snap.asks
                )
                await send(value, key.decode(), headers)
                sent_controls += 1
                snap = next(snaps, None)
            if speed is not None:
                due = (int(record["ts_ns"]) - ts0) / 1e9 / speed
                ahead = due - (time.perf_counter() - start)
                if ahead > 0.002:
                    await flush_batch()
                    await asyncio.sleep(ahead)
            instrument = str(record["instrument"])
            if instrument != batch_key or len(batch) >= batch_events:
                await flush_batch()
                batch_key = instrument
            meta = metadata.pop(instrument, None)
            if meta is not None:  # before the instrument's first event (the batch is empty)
                key, value, headers = instrument_record(meta)
                await send(value, key.decode(), headers)
                sent_controls += 1
            seen.setdefault(instrument)
            batch.append(record)
            sent += 1
        await flush_batch()
        if end_of_stream_records:
            for instrument in seen:
                key, value, headers = end_of_stream(instrument)
                await send(value, key.decode(), headers)
        await asyncio.gather(*pending)
        await producer.flush()
    finally:
        await producer.stop()
    seconds = time.perf_counter() - start
    report = PublishReport(
        topic,
        sent,
        records,
        len(seen),
        (len(seen) if end_of_stream_records else 0) + sent_controls,
        malformed_rows,
        seconds,
        speed,
    )
    log.info(
        "published %d events of %d instrument(s) to %s in %.2f s",
        sent,
        len(seen),
        topic,
        seconds,
    )
    return report


def publish_file(
    path: str | Path,
    *,
    fmt: FeedFormat,
    bootstrap: str,
    topic: str,
    speed: float | None = None,
    end_of_stream_records: bool = True,
    broker_timeout_s: float = 30.0,
    batch_events: int = 500,
    instrument: str | None = None,
) -> PublishReport:
    """Load a feed file (every instrument it holds, or ``instrument``'s) and publish it, with
    its instruments' metadata and the book snapshots it offers (blocking; for the CLI)."""
    from simulator import feeds

    if fmt not in feeds.FORMATS:
        raise ValueError(f"unknown feed format {fmt!r}")
    loaded = feeds.load_feeds(path, fmt, instrument=instrument)
    frame, snapshots = feeds.merge_feeds(loaded)
    bad = sum(f.malformed for f in loaded)
    metadata = {f.instrument.symbol: f.instrument for f in loaded if f.instrument is not None}
    if not metadata:
        log.warning("%s carries no instrument metadata: the worker will use its settings", path)
    return asyncio.run(
        publish_frame(
            frame,
            snapshots=snapshots,
            instruments=metadata,
            bootstrap=bootstrap,
            topic=topic,
            speed=speed,
            end_of_stream_records=end_of_stream_records,
            broker_timeout_s=broker_timeout_s,
            malformed_rows=bad,
            batch_events=batch_events,
        )
    )

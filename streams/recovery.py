"""Rebuild in-memory books after a restart or a rebalance, from the input topic itself.

Books and open windows live in memory. When the worker is assigned an input partition that
already has a committed offset (a restart, or a partition moved from another worker), the
records before that offset were processed by someone else and are not delivered again. So
before the agent resumes, ``rebuild`` re-reads the partition from its beginning up to the
committed offset and applies it to the ``EventProcessor`` with every outcome discarded: no
dead letters re-sent. The open window at the committed offset is rebuilt with its events, so
its decision is the same as without the restart. Windows the rebuild closes were closed before
by the worker that consumed those records; ``on_outcome`` sees them, so the caller can score
again those whose decision never reached the store (a worker killed while scoring them).

This needs the input topic to retain the trading day (tansu's memory store retains everything
while it runs; on Kafka set ``retention.ms`` accordingly). A day of one liquid instrument is
a few hundred thousand records: seconds to re-read. Book snapshots at window boundaries would
bound that, and are left for later.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger(__name__)


class Handler(Protocol):
    def handle(
        self,
        *,
        key: bytes | None,
        value: bytes | None,
        headers: object,
        topic: str,
        partition: int,
        offset: int,
    ) -> Any: ...


@dataclass(slots=True)
class RebuildReport:
    partitions: dict[tuple[str, int], int]  # (topic, partition) -> records re-applied
    seconds: float

    @property
    def records(self) -> int:
        return sum(self.partitions.values())


async def committed_offsets(
    bootstrap: str, group_id: str, partitions: list[tuple[str, int]]
) -> dict[tuple[str, int], int]:
    """Committed offsets of ``group_id`` for ``partitions`` (absent: nothing committed)."""
    from aiokafka import TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="surv-recovery")
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(
            group_id, partitions=[TopicPartition(t, p) for t, p in partitions]
        )
    finally:
        await admin.close()
    return {
        (tp.topic, tp.partition): meta.offset
        for tp, meta in offsets.items()
        if meta is not None and meta.offset is not None and meta.offset > 0
    }


async def rebuild(
    handler: Handler,
    *,
    bootstrap: str,
    group_id: str,
    partitions: list[tuple[str, int]],
    timeout_s: float = 300.0,
    on_outcome: Callable[[Any], None] | None = None,
    fetch_max_wait_ms: int = 100,
) -> RebuildReport:
    """Re-apply every record before the group's committed offset of each partition.

    ``on_outcome`` is called with what ``handler.handle`` returned for each record.
    A partition read up to its offset is paused: a fetch of partitions with nothing left to
    give is held by the broker for ``fetch_max_wait_ms`` and holds up the others
    (``streams.transport``).
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition

    start = time.monotonic()
    upto = await committed_offsets(bootstrap, group_id, partitions)
    done: dict[tuple[str, int], int] = {tp: 0 for tp in upto}
    if not upto:
        return RebuildReport(done, time.monotonic() - start)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        client_id="surv-recovery",
        fetch_max_wait_ms=fetch_max_wait_ms,
    )
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t, p in upto]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        remaining = set(upto)

        def finished(key: tuple[str, int]) -> None:
            remaining.discard(key)
            consumer.pause(TopicPartition(*key))

        for tp in tps:
            if await consumer.position(tp) >= upto[(tp.topic, tp.partition)]:
                finished((tp.topic, tp.partition))
        while remaining:
            if time.monotonic() - start > timeout_s:
                raise TimeoutError(f"rebuild of {sorted(remaining)} took over {timeout_s} s")
            batches = await consumer.getmany(
                *[TopicPartition(t, p) for t, p in remaining], timeout_ms=1000
            )
            for tp, records in batches.items():
                key = (tp.topic, tp.partition)
                for record in records:
                    if record.offset >= upto[key]:
                        finished(key)
                        break
                    outcome = handler.handle(
                        key=record.key,
                        value=record.value,
                        headers=list(record.headers or ()),
                        topic=record.topic,
                        partition=record.partition,
                        offset=record.offset,
                    )
                    if on_outcome is not None:
                        on_outcome(outcome)
                    done[key] += 1
                    if record.offset + 1 >= upto[key]:
                        finished(key)
    finally:
        await consumer.stop()
    report = RebuildReport(done, time.monotonic() - start)
    log.info(
        "rebuilt books from %d record(s) of %s in %.2f s",
        report.records,
        sorted(upto),
        report.seconds,
    )
    return report

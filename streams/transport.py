"""faust's aiokafka transport, with the worker consumer's fetch wait taken from the settings.

Why: aiokafka keeps at most one fetch in flight per broker. Once a partition's fetched records
have waited longer than its prefetch backoff (100 ms) to be consumed, the fetcher sends a fetch
for the broker's *other* assigned partitions alone; in the worker that is the ``dead_letters``
table's changelog partition (faust assigns it to the same consumer; it is almost always
empty). A broker holds a fetch that finds no data for ``fetch_max_wait_ms`` (Apache Kafka and
tansu alike), and until it answers, the input partition cannot be fetched again. faust
hard-codes ``fetch_max_wait_ms=1500`` for its worker consumer: one worker ingesting a backlog
(the GOOG day, about 5 MB per fetch) stalled up to 1.25 s every second or third fetch, three
times in a 5 s run, and ingested about 46,000 events/s instead of well over 100,000.
``StreamSettings.fetch_max_wait_ms`` (100 ms by default) bounds that stall, at the price of an
idle worker polling the broker ten times a second. It must stay above 0: tansu answers a fetch
that may not wait with no records at all.
"""

from __future__ import annotations

from typing import Any

import aiokafka
from faust.transport.drivers import aiokafka as faust_aiokafka


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        # faust passes a fixed 1500 ms; the consumer hands this attribute to its fetcher when
        # it starts. Fail loudly if an aiokafka release renames it rather than silently
        # falling back to the stalls described above.
        if not hasattr(consumer, "_fetch_max_wait_ms"):
            raise RuntimeError(
                "aiokafka consumer has no _fetch_max_wait_ms; update streams/transport.py"
            )
        consumer._fetch_max_wait_ms = transport.fetch_max_wait_ms
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class KafkaTransport(faust_aiokafka.Transport):
    """``faust.transport.drivers.aiokafka.Transport`` whose worker consumer waits at most
    ``fetch_max_wait_ms`` for a fetch that finds no data."""

    Consumer = _Consumer

    def __init__(self, *args: Any, fetch_max_wait_ms: int, **kwargs: Any) -> None:
        if fetch_max_wait_ms <= 0:
            raise ValueError("fetch_max_wait_ms must be positive")
        super().__init__(*args, **kwargs)
        self.fetch_max_wait_ms = fetch_max_wait_ms

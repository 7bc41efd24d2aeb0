"""A window decided as degraded (its book was suspect) gets a data-quality record: on the
data-quality topic and in the store, saying why it was not scored; a sound window gets none,
and no degraded window ever alerts. Every decision, degraded or not, is on the decisions
topic."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
from pathlib import Path

from alerts.schema import quality_record
from alerts.store import AlertStore
from simulator.book import OrderBook
from streams.app import Decisions
from streams.settings import load_settings
from streams.topics import TopicNames, app_topic_specs
from surveillance.detection.pipeline import ClosedWindow, decide_window
from tests.streams.stream_doubles import CollectingTestTopic, EventCountTestScorer

NS = 1_000_000_000


def window(start_s: int, *, degraded: bool = False) -> ClosedWindow:
    faults = {"sequence_gaps": 2, "unresolved_cancels": 0} if degraded else {}
    return ClosedWindow(
        "AMZN",
        start_s * NS,
        (start_s + 60) * NS,
        OrderBook("AMZN"),
        (),
        "event",
        faults=faults,
        degraded=degraded,
    )


def test_the_record_says_why_a_window_was_not_scored() -> None:
    scorer = EventCountTestScorer(min_events=0)  # would alert on every window it scored
    bad = decide_window(scorer, window(34_200, degraded=True))
    record = quality_record(bad, session_date=dt.date(2012, 6, 21))
    assert record is not None and not bad.verdict.alert
    assert record["status"] == "degraded" and record["faults"] == {"sequence_gaps": 2}
    assert record["reason"] == "book suspect: 2 sequence gaps"
    assert record["window"]["start"] == "2012-06-21T13:30:00.000000Z"  # 09:30 New York
    assert quality_record(decide_window(scorer, window(34_260))) is None
    # faults as another worker's window record may carry them: what is not a count is left out
    odd = dataclasses.replace(
        bad, verdict=dataclasses.replace(bad.verdict, detail={**bad.verdict.detail, "faults": {
            "sequence_gaps": 1, "crossed": float("nan"), "unknown": "many"}}),
    )  # fmt: skip
    assert quality_record(odd)["faults"] == {"sequence_gaps": 1}  # type: ignore[index]
    listed = dataclasses.replace(
        bad, verdict=dataclasses.replace(bad.verdict, detail={"status": "degraded", "faults": [1]})
    )
    assert quality_record(listed)["faults"] == {}  # type: ignore[index]


def test_degraded_windows_reach_the_topic_and_the_store(tmp_path: Path) -> None:
    store = AlertStore(f"sqlite:///{tmp_path / 'alerts.db'}")
    store.create_schema()
    quality, alerts, decided = CollectingTestTopic(), CollectingTestTopic(), CollectingTestTopic()
    decisions = Decisions(
        settings=load_settings(executor="thread"),
        scorer=EventCountTestScorer(min_events=0),
        store=store,
        alerts_topic=alerts,
        quality_topic=quality,
        decisions_topic=decided,
    )

    async def run() -> None:
        decisions.submit([window(0), window(60, degraded=True), window(120)])
        await decisions.drain()

    try:
        asyncio.run(run())
    finally:
        decisions.close()
    assert [(k, r["window"]["start_ns"]) for k, r in quality.sent] == [(b"AMZN", 60 * NS)]
    assert store.quality(instrument="AMZN") == [r for _, r in quality.sent]
    assert len(store.decisions(instrument="AMZN")) == 3  # every window decided
    assert [a["window"]["start_ns"] for _, a in alerts.sent] == [0, 120 * NS]
    assert decisions.counts["windows_degraded"] == 1
    # every decision on the decisions topic, with its status, under the window's id
    records = [r for _, r in decided.sent]
    assert [(r["window"]["start_ns"], r["status"], r["alert"]) for r in records] == [
        (0, "scored", True),
        (60 * NS, "degraded", False),
        (120 * NS, "scored", True),
    ]
    assert records[1]["reason"] == "book suspect: 2 sequence gaps" and records[1]["score"] is None
    assert {r["window_id"] for r in records} == {d["window_id"] for d in store.decisions()}


def test_the_worker_declares_the_data_quality_and_decisions_topics() -> None:
    settings = load_settings(topic_prefix="venue", partitions=6)
    names = TopicNames.for_prefix("venue")
    specs = {s.name: s.partitions for s in app_topic_specs(settings)}
    assert names.quality == "venue.data-quality" and specs[names.quality] == 6
    assert names.decisions == "venue.decisions" and specs[names.decisions] == 6


def test_the_documented_records_are_what_the_worker_publishes() -> None:
    """alerts/SCHEMA.md's data-quality and decision examples: the builders' fields, and ids
    that are the windows' ids."""
    import re

    from alerts.schema import decision_record, window_id

    text = (Path(__file__).resolve().parents[2] / "alerts" / "SCHEMA.md").read_text()
    blocks = [json.loads(b) for b in re.findall(r"```json\n(.*?)```", text, re.S)]
    examples = {b.get("record"): b for b in blocks}
    scorer = EventCountTestScorer(min_events=0)
    bad = decide_window(scorer, window(34_200, degraded=True))
    made = {
        "data_quality": quality_record(bad),
        "decision": decision_record(decide_window(scorer, window(34_260))),
    }
    for kind, record in made.items():
        doc = examples[kind]
        assert record is not None and list(doc) == list(record)
        assert list(doc["window"]) == list(record["window"])
        key = "record_id" if kind == "data_quality" else "window_id"
        w = doc["window"]
        assert doc[key] == window_id(
            doc["instrument"], w["start_ns"], w["end_ns"], doc["model_version"]
        )

"""Alert schema (v1) and the SQL alert store, on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import re

import pytest

from alerts.schema import (
    AlertSchemaError,
    build_alert,
    event_time,
    load_schema,
    severity_for,
    validate_alert,
    window_id,
)
from alerts.store import AlertStore
from surveillance.detection.pipeline import WindowDecision, WindowScore

NS = 1_000_000_000
OPEN_NS = 34_200 * NS  # 09:30 after midnight (LOBSTER time)


def decision(
    instrument: str = "AMZN",
    start_ns: int = OPEN_NS,
    *,
    alert: bool = True,
    model_version: str = "lmm-test-1",
    p_value: float | None = 0.004,
) -> WindowDecision:
    return WindowDecision(
        instrument=instrument,
        start_ns=start_ns,
        end_ns=start_ns + 1500 * NS,
        model_version=model_version,
        n_events=1234,
        closed_by="event",
        verdict=WindowScore(
            score=3.2,
            p_value=p_value,
            alert=alert,
            facts={"spread": 0.61, "volatility": 0.88, "buy_ratio": 0.93},
            diverged=("spread",),
            baselines={"historical_diff": 0.21, "spread_zscore": None},
            expected={"spread": 0.97, "volatility": 0.87, "buy_ratio": 0.93},
        ),
    )


def alert_of(d: WindowDecision) -> dict:
    return build_alert(d, config_version="cfg-1", session_date=dt.date(2012, 6, 21))


# ------------------------------------------------------------------------------ schema
def test_schema_file_is_valid_json_schema() -> None:
    schema = load_schema(1)
    assert schema["properties"]["schema_version"] == {"const": 1}


def test_alert_id_is_deterministic_from_instrument_window_and_model() -> None:
    a, b = alert_of(decision()), alert_of(decision())
    assert (
        a["alert_id"]
        == b["alert_id"]
        == window_id("AMZN", OPEN_NS, OPEN_NS + 1500 * NS, "lmm-test-1")
    )
    assert alert_of(decision(model_version="lmm-test-2"))["alert_id"] != a["alert_id"]
    assert alert_of(decision("GOOG"))["alert_id"] != a["alert_id"]
    assert alert_of(decision(start_ns=OPEN_NS + 1500 * NS))["alert_id"] != a["alert_id"]


def test_lobster_time_is_rendered_in_utc_from_the_session_date() -> None:
    alert = alert_of(decision())
    # 09:30 New York on 2012-06-21 (EDT, UTC-4) is 13:30 UTC.
    assert alert["window"]["start"] == "2012-06-21T13:30:00.000000Z"
    assert alert["window"]["end"] == "2012-06-21T13:55:00.000000Z"
    assert event_time(0) == dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def test_facts_list_diverged_ones_with_overlap_and_expectation() -> None:
    alert = alert_of(decision())
    assert alert["facts"][0] == {
        "name": "spread",
        "overlap": 0.61,
        "expected": 0.97,
        "diverged": True,
        # v2: the fact's null statistics (none recorded by this decision)
        "z": None,
        "null_mean": None,
        "null_std": None,
        "p_value": None,
    }
    assert alert["baselines"] == {"historical_diff": 0.21, "spread_zscore": None}
    assert alert["diverged_facts"] == ["spread"]
    assert alert["severity"] == "medium"
    assert [severity_for(p) for p in (0.0001, 0.005, 0.2, None)] == [
        "high",
        "medium",
        "low",
        "medium",
    ]


@pytest.mark.parametrize(
    ("mutate", "where"),
    [
        (lambda a: a.pop("alert_id"), "(root)"),
        (lambda a: a.update(alert_id="not-a-uuid"), "alert_id"),
        (lambda a: a.update(severity="critical"), "severity"),
        (lambda a: a.update(p_value=1.5), "p_value"),
        (lambda a: a.update(score="high"), "score"),
        (lambda a: a.update(schema_version=3), "schema_version"),
        (lambda a: a.update(schema_version=1), "(root)"),  # v2 fields in a v1 message
        (lambda a: a.update(extra_field=1), "(root)"),
        (lambda a: a["window"].pop("end_ns"), "window"),
        (lambda a: a["window"].update(start="yesterday"), "window/start"),
        (lambda a: a["window"].update(end_ns=a["window"]["start_ns"]), "window"),
        (lambda a: a["facts"][0].update(overlap=1.2), "facts/0/overlap"),
        (lambda a: a.update(diverged_facts=["liquidity"]), "diverged_facts"),
        (lambda a: a.update(score=float("nan")), "score"),
    ],
)
def test_schema_validation_rejects_bad_alerts(mutate, where) -> None:
    alert = copy.deepcopy(alert_of(decision()))
    mutate(alert)
    with pytest.raises(AlertSchemaError, match=rf"^alert {re.escape(where)}"):
        validate_alert(alert)


def test_an_alert_needs_a_score() -> None:
    d = decision()
    no_score = dataclasses.replace(d, verdict=dataclasses.replace(d.verdict, score=None))
    with pytest.raises(AlertSchemaError, match="score"):
        alert_of(no_score)


# ------------------------------------------------------------------------------ store
def check_store(store: AlertStore) -> None:
    store.create_schema()
    store.create_schema()  # idempotent
    first = alert_of(decision("AMZN", OPEN_NS))
    assert store.put(alert=first) is True
    assert store.put(alert=first) is False  # same id: ignored
    assert store.put(alert=copy.deepcopy(first)) is False
    assert store.get(alert_id=first["alert_id"]) == first
    assert store.get(alert_id="00000000-0000-5000-8000-000000000000") is None

    later = alert_of(decision("AMZN", OPEN_NS + 1500 * NS))
    other = alert_of(decision("GOOG", OPEN_NS))
    assert store.put(alert=later) and store.put(alert=other)
    assert {a["alert_id"] for a in store.list()} == {
        first["alert_id"],
        later["alert_id"],
        other["alert_id"],
    }
    assert store.list()[0]["alert_id"] == later["alert_id"]  # newest window first
    assert [a["instrument"] for a in store.list(instrument="GOOG")] == ["GOOG"]
    assert [a["alert_id"] for a in store.list(since=OPEN_NS + 1)] == [later["alert_id"]]
    since = dt.datetime(2012, 6, 21, 13, 40, tzinfo=dt.UTC)
    assert [a["alert_id"] for a in store.list(since=since)] == [later["alert_id"]]
    assert len(store.list(limit=2)) == 2

    with pytest.raises(AlertSchemaError):
        store.put(alert={**first, "severity": "urgent"})

    # Every window gets one decision row, alert or not; a repeated decision is ignored.
    decisions = [decision("AMZN", OPEN_NS + i * 1500 * NS, alert=i == 1) for i in range(3)]
    assert [store.put_decision(decision=d) for d in decisions] == [True, True, True]
    assert store.put_decision(decision=decisions[0]) is False
    rows = store.decisions(instrument="AMZN")
    assert [r["window_start_ns"] for r in rows] == [d.start_ns for d in decisions]
    assert [r["alert"] for r in rows] == [False, True, False]
    assert rows[0]["facts"] == {"spread": 0.61, "volatility": 0.88, "buy_ratio": 0.93}
    assert store.count() == (3, 3)


def test_put_is_idempotent_on_sqlite(tmp_path) -> None:
    store = AlertStore(f"sqlite:///{tmp_path / 'alerts.db'}")
    try:
        check_store(store)
        # A second store on the same file sees the same rows and still ignores duplicates.
        again = AlertStore(f"sqlite:///{tmp_path / 'alerts.db'}")
        assert again.put(alert=alert_of(decision("AMZN", OPEN_NS))) is False
        again.close()
    finally:
        store.close()


@pytest.mark.postgres
def test_put_is_idempotent_on_postgres(postgres_url) -> None:
    store = AlertStore(postgres_url)
    try:
        check_store(store)
    finally:
        store.close()


def test_the_documented_example_is_a_valid_alert() -> None:
    import json
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "alerts" / "SCHEMA.md").read_text()
    example = json.loads(re.search(r"```json\n(.*?)```", text, re.S)[1])
    validate_alert(example)
    window = example["window"]
    assert example["alert_id"] == window_id(
        example["instrument"], window["start_ns"], window["end_ns"], example["model_version"]
    )

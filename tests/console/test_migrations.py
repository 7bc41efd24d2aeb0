"""The store's migrations keep what an earlier release wrote.

``data/store-release-bd319b3.sqlite`` was written by the release before the console (commit
bd319b3's ``alerts/store.py``, three v1 alerts and their decisions; see data/README.md). It is
migrated here as a deployed store would be; on PostgreSQL the same release schema is built by
revision 0001 (the release's tables, unchanged) and filled with the fixture's rows first.
"""

from __future__ import annotations

import json
import shutil
import uuid

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import DatabaseError

from alerts.migrate import current, head, migrate
from alerts.store import AlertStore
from alerts.workflow import Workflow
from tests.console.conftest import DATA, PASSWORD, v2_alerts

RELEASE_STORE = DATA / "store-release-bd319b3.sqlite"


def release_rows() -> tuple[list[dict], list[dict]]:
    assert RELEASE_STORE.stat().st_size > 0, f"{RELEASE_STORE} is missing from the checkout"
    engine = create_engine(f"sqlite:///{RELEASE_STORE}")
    with engine.connect() as conn:
        alerts = [dict(r) for r in conn.execute(text("SELECT * FROM alerts")).mappings()]
        decisions = [
            dict(r) for r in conn.execute(text("SELECT * FROM window_decisions")).mappings()
        ]
    engine.dispose()
    return alerts, decisions


def check_migrated(store: AlertStore, before: list[dict]) -> None:
    assert current(store.engine) == head()
    assert store.count()[0] >= len(before)
    for row in before:
        kept = store.get(alert_id=row["alert_id"])
        assert kept == json.loads(row["message"])  # the message, verbatim
    wf = Workflow(store.engine)
    case = wf.case(before[0]["alert_id"])
    assert case == {"state": "new", "assignee": None, "disposition": None}
    analyst = wf.add_user("ann", "analyst", PASSWORD)
    wf.act(analyst, before[0]["alert_id"], "escalate", reason="after the migration")
    assert wf.verify_chain() == (True, 2, None)
    with pytest.raises(DatabaseError), store.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_log"))
    # new alerts go on being stored, with their typology
    fresh = v2_alerts()[0]
    assert store.put(alert=fresh)
    assert store.list(limit=100)
    with store.engine.connect() as conn:
        label = conn.execute(
            text("SELECT typology FROM alerts WHERE alert_id = :i"), {"i": fresh["alert_id"]}
        ).scalar()
    assert label == fresh["typology"]["label"]
    # and degraded windows' data-quality records (migration 0004)
    record = {
        "record": "data_quality",
        "record_id": "00000000-0000-5000-8000-000000000001",
        "instrument": "AMZN",
        "window": {"start": "", "end": "", "start_ns": 1, "end_ns": 2},
        "status": "degraded",
        "reason": "book suspect: 1 sequence gaps",
        "faults": {"sequence_gaps": 1},
        "n_events": 3,
        "model_version": "m",
    }
    assert store.put_quality(record=record) and not store.put_quality(record=record)
    assert store.quality(instrument="AMZN") == [record]


def test_release_sqlite_store_is_migrated_keeping_its_alerts(tmp_path) -> None:
    path = tmp_path / "release.sqlite"
    shutil.copy(RELEASE_STORE, path)
    before, decisions = release_rows()
    assert len(before) == 3 and all(r["schema_version"] == 1 for r in before)
    assert "alembic_version" not in inspect(create_engine(f"sqlite:///{path}")).get_table_names()
    store = AlertStore(f"sqlite:///{path}")
    store.create_schema()
    check_migrated(store, before)
    assert len(store.decisions()) == len(decisions)
    store.create_schema()  # a second start changes nothing
    assert current(store.engine) == head()
    store.close()


def test_a_new_store_is_created_at_the_newest_revision(tmp_path) -> None:
    store = AlertStore(f"sqlite:///{tmp_path / 'new.sqlite'}")
    store.create_schema()
    assert current(store.engine) == head()
    tables = set(inspect(store.engine).get_table_names())
    assert {"alerts", "window_decisions", "audit_log", "console_users", "data_quality"} <= tables
    store.close()


@pytest.mark.postgres
def test_release_schema_on_postgresql_is_migrated_keeping_its_alerts(postgres_url) -> None:
    # a database of its own: the alert-store tests share the server's default one
    name = f"surv_migration_{uuid.uuid4().hex[:8]}"
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    url = postgres_url.replace("/postgres?", f"/{name}?")
    try:
        engine = create_engine(url)
        migrate(engine, "0001")  # the release's schema: alerts and window_decisions
        before, _ = release_rows()
        v2 = v2_alerts()[1]
        legacy_v2 = {**before[0], "alert_id": v2["alert_id"], "message": json.dumps(v2)}
        with engine.begin() as conn:
            for row in [*before, legacy_v2]:
                conn.execute(
                    text(
                        "INSERT INTO alerts VALUES (:alert_id, :instrument, :window_start_ns, "
                        ":window_end_ns, :window_start, :score, :p_value, :severity, "
                        ":model_version, :config_version, :schema_version, :message, "
                        ":stored_at)"
                    ),
                    row,
                )
        engine.dispose()
        store = AlertStore(url)
        store.create_schema()
        check_migrated(store, before)
        with store.engine.connect() as conn:
            label = conn.execute(
                text("SELECT typology FROM alerts WHERE alert_id = :i"), {"i": v2["alert_id"]}
            ).scalar()
        assert label == v2["typology"]["label"]  # backfilled from the stored message
        store.close()
        # the console over PostgreSQL: filters, hostile ones included
        from fastapi.testclient import TestClient

        from surveillance.console.app import create_app
        from tests.console.conftest import login

        app = create_app(url)
        with TestClient(app) as client:
            login(client, "ann")
            assert (
                client.get("/api/alerts", params={"typology": v2["typology"]["label"]}).json()[
                    "total"
                ]
                == 1
            )
            r = client.get("/api/alerts", params={"instrument": "x' OR 1=1; --"})
            assert r.status_code == 200 and r.json()["alerts"] == []
        app.state.store.close()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()

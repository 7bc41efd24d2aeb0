"""Workers of a group start together and each brings the store to the current schema: the
migrations must run one process at a time (``alerts.migrate.migration_lock``). Two workers
started at once on a new SQLite store failed without it: one created the tables, the other
found them unstamped, replayed the migrations and died on "duplicate column name: typology"
(``tests/streams/test_worker_group.py``)."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text

from alerts.migrate import _PG_LOCK_KEY, current, head, migration_lock
from alerts.store import AlertStore


def test_a_migration_waits_while_another_process_holds_the_lock(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    holder, other = AlertStore(url), AlertStore(url)
    done = threading.Event()

    def create() -> None:
        other.create_schema()
        done.set()

    try:
        with migration_lock(holder.engine):
            thread = threading.Thread(target=create, daemon=True)
            thread.start()
            # flock excludes another open file, in this process as in another one
            assert not done.wait(1.0)
            assert current(holder.engine) is None  # nothing migrated meanwhile
        assert done.wait(60)
        thread.join(10)
        assert current(holder.engine) == head()
        holder.create_schema()  # a second migration of a current store is a no-op
        assert holder.count() == (0, 0)
    finally:
        holder.close()
        other.close()


@pytest.mark.postgres
def test_the_postgresql_migration_lock_excludes_other_sessions(postgres_url) -> None:
    holder, other = AlertStore(postgres_url), AlertStore(postgres_url)
    probe = text("SELECT pg_try_advisory_lock(:k)")
    try:
        with migration_lock(holder.engine), other.engine.connect() as conn:
            assert conn.execute(probe, {"k": _PG_LOCK_KEY}).scalar() is False
        with other.engine.connect() as conn:
            assert conn.execute(probe, {"k": _PG_LOCK_KEY}).scalar() is True
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK_KEY})
        holder.create_schema()  # migrates under the lock on PostgreSQL too
    finally:
        holder.close()
        other.close()

"""Schema changes of the alert store, by Alembic migrations (``alerts/migrations/versions``).

``migrate(engine)`` is what ``AlertStore.create_schema`` runs, in the worker and the console
alike:

- an empty database gets the current tables at once (``create_all``) and is stamped with the
  newest revision (Alembic's advice for new databases: one step, no replay of history);
- a store written before migrations existed (tables ``alerts`` and ``window_decisions``, no
  ``alembic_version``) is stamped with ``0001`` (that release's schema, unchanged) and upgraded,
  so its alerts stay where they are;
- a migrated store is upgraded to the newest revision (nothing to do when it is current).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, text

BASELINE = "0001"  # the schema of the release before the console (alerts, window_decisions)


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).with_name("migrations")))
    config.attributes["engine"] = engine
    return config


def head() -> str:
    """The newest revision."""
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).with_name("migrations")))
    return str(ScriptDirectory.from_config(config).get_current_head())


def current(engine: Engine) -> str | None:
    """The revision the database is at (None: never migrated)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


# pg_advisory_lock key of the migration (any constant of ours; "surv" in ASCII)
_PG_LOCK_KEY = 0x73757276


@contextlib.contextmanager
def migration_lock(engine: Engine) -> Iterator[None]:
    """Held while one process migrates: workers of a group start together, and two that
    both find a new database would otherwise both create it (the second one's upgrade then
    fails on columns the first just made). PostgreSQL: a session advisory lock; a SQLite
    file: an exclusive ``flock`` on ``<database>.migrate-lock`` beside it."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_LOCK_KEY})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK_KEY})
                conn.commit()
        return
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    import fcntl

    with open(f"{database}.migrate-lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring ``engine``'s database to ``revision`` (see the module docstring); one process
    at a time (``migration_lock``)."""
    with migration_lock(engine):
        _migrate(engine, revision)


def _migrate(engine: Engine, revision: str) -> None:
    from alerts.store import Base
    from alerts.workflow import WORKFLOW_TABLES  # noqa: F401 - registers the tables on Base

    config = alembic_config(engine)
    tables = set(inspect(engine).get_table_names())
    if "alembic_version" not in tables:
        if "alerts" not in tables and revision == "head":
            Base.metadata.create_all(engine)
            from alerts.workflow import install_guards

            install_guards(engine)
            command.stamp(config, "head")
            return
        if "alerts" in tables:
            command.stamp(config, BASELINE)
    command.upgrade(config, revision)

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

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect

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


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring ``engine``'s database to ``revision`` (see the module docstring)."""
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

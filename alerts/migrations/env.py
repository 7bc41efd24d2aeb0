"""Alembic environment of the alert store: run on the engine ``alerts.migrate`` hands over."""

from __future__ import annotations

from alembic import context

engine = context.config.attributes["engine"]
with engine.begin() as connection:
    context.configure(connection=connection, render_as_batch=True)
    context.run_migrations()

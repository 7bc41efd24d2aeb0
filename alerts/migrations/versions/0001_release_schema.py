"""The alert store as the release before the console wrote it: alerts and window decisions.

A store created by that release has exactly these tables and no ``alembic_version``;
``alerts.migrate`` stamps it with this revision instead of running it.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("alert_id", sa.String(36), primary_key=True),
        sa.Column("instrument", sa.String(64), nullable=False),
        sa.Column("window_start_ns", sa.BigInteger, nullable=False),
        sa.Column("window_end_ns", sa.BigInteger, nullable=False),
        sa.Column("window_start", sa.String(40), nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("p_value", sa.Float, nullable=True),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("model_version", sa.String(128), nullable=False),
        sa.Column("config_version", sa.String(128), nullable=False),
        sa.Column("schema_version", sa.Integer, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("stored_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_alerts_instrument_window", "alerts", ["instrument", "window_start_ns"])
    op.create_table(
        "window_decisions",
        sa.Column("window_id", sa.String(36), primary_key=True),
        sa.Column("instrument", sa.String(64), nullable=False),
        sa.Column("window_start_ns", sa.BigInteger, nullable=False),
        sa.Column("window_end_ns", sa.BigInteger, nullable=False),
        sa.Column("model_version", sa.String(128), nullable=False),
        sa.Column("alert", sa.Boolean, nullable=False),
        sa.Column("score", sa.Float, nullable=True),
        sa.Column("p_value", sa.Float, nullable=True),
        sa.Column("n_events", sa.Integer, nullable=False),
        sa.Column("closed_by", sa.String(16), nullable=False),
        sa.Column("facts", sa.JSON, nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_decisions_instrument_window", "window_decisions", ["instrument", "window_start_ns"]
    )


def downgrade() -> None:
    op.drop_table("window_decisions")
    op.drop_table("alerts")

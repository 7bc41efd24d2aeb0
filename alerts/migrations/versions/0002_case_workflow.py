"""The console's case workflow: case columns on alerts, users, sessions, API tokens, comments,
the audit trail (append-only by trigger), and each stored v2 alert's typology.

Existing alerts stay as they were and start as ``new`` cases; their typology is read from the
stored message (v1 messages have none: null).

Revision ID: 0002
Revises: 0001
"""

import json

import sqlalchemy as sa
from alembic import op

from alerts.workflow import guard_statements

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.add_column(sa.Column("typology", sa.String(32), nullable=True))
        batch.add_column(sa.Column("state", sa.String(16), nullable=False, server_default="new"))
        batch.add_column(sa.Column("assignee", sa.String(64), nullable=True))
        batch.add_column(sa.Column("disposition", sa.String(32), nullable=True))
        batch.add_column(sa.Column("updated_at", _TS, nullable=True))
    op.create_index("ix_alerts_state", "alerts", ["state"])
    conn = op.get_bind()
    alerts = sa.table(
        "alerts",
        sa.column("alert_id", sa.String),
        sa.column("message", sa.Text),
        sa.column("typology", sa.String),
    )
    for alert_id, message in conn.execute(sa.select(alerts.c.alert_id, alerts.c.message)):
        try:
            label = (json.loads(message).get("typology") or {}).get("label")
        except (ValueError, AttributeError):
            label = None
        if label is not None:
            conn.execute(
                alerts.update().where(alerts.c.alert_id == alert_id).values(typology=label)
            )
    op.create_table(
        "console_users",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
    )
    op.create_table(
        "console_sessions",
        sa.Column("id_hash", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("console_users.id"), nullable=False),
        sa.Column("csrf", sa.String(64), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("expires_at", _TS, nullable=False),
    )
    op.create_table(
        "console_api_tokens",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("console_users.id"), nullable=False),
        sa.Column("label", sa.String(64), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("last_used_at", _TS, nullable=True),
        sa.Column("revoked", sa.Boolean, nullable=False),
    )
    op.create_table(
        "alert_comments",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("alert_id", sa.String(36), nullable=False),
        sa.Column("author", sa.String(64), nullable=False),
        sa.Column("at", _TS, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
    )
    op.create_index("ix_alert_comments_alert_id", "alert_comments", ["alert_id"])
    op.create_table(
        "audit_log",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("at", sa.String(40), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("alert_id", sa.String(36), nullable=True),
        sa.Column("before", sa.Text, nullable=False),
        sa.Column("after", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("hash", sa.String(64), nullable=False, unique=True),
    )
    op.create_index("ix_audit_alert", "audit_log", ["alert_id"])
    for statement in guard_statements(conn.dialect.name):
        op.execute(statement)


def downgrade() -> None:
    for name in ("audit_log", "alert_comments", "console_api_tokens", "console_sessions"):
        op.drop_table(name)
    op.drop_table("console_users")
    op.drop_index("ix_alerts_state", "alerts")
    with op.batch_alter_table("alerts") as batch:
        for column in ("updated_at", "disposition", "assignee", "state", "typology"):
            batch.drop_column(column)

"""Windows decided as degraded (they saw a feed fault, or opened on a book still suspect after
one) get a data-quality record of their own: why no score was given and the faults behind it.
The same record goes to the data-quality topic.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "data_quality",
        sa.Column("record_id", sa.String(36), primary_key=True),
        sa.Column("instrument", sa.String(64), nullable=False),
        sa.Column("window_start_ns", sa.BigInteger, nullable=False),
        sa.Column("window_end_ns", sa.BigInteger, nullable=False),
        sa.Column("model_version", sa.String(128), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("faults", sa.JSON, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("stored_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_quality_instrument_window", "data_quality", ["instrument", "window_start_ns"]
    )


def downgrade() -> None:
    op.drop_index("ix_quality_instrument_window", table_name="data_quality")
    op.drop_table("data_quality")

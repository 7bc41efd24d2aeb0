"""Every window decision records the threshold it was read against and how it was calibrated
(``detail.calibration``: calibrated, pooled, adapting or adapted, and the windows behind its
norms and threshold), so a decision on an instrument the calibration never saw says so.
Decisions stored before it have neither (null).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("window_decisions") as batch:
        batch.add_column(sa.Column("threshold", sa.Float, nullable=True))
        batch.add_column(sa.Column("calibration", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("window_decisions") as batch:
        batch.drop_column("calibration")
        batch.drop_column("threshold")

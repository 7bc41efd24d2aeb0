"""Every window decision records whether its rollouts looked like the market at all
(``detail.simulation``: orders per rollout and median spread against the real window's,
``scoring.simulation_check``), so a decision read against a flooded or collapsed simulation
says so in the store as on the topic. Decisions stored before it have none (null).

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("window_decisions") as batch:
        batch.add_column(sa.Column("simulation", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("window_decisions") as batch:
        batch.drop_column("simulation")

"""Write-ahead intents of shop creates (``schema.create_intents``).

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import op

from syncd.state.schema import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "create_intents",
        sa.Column("platform", sa.String(64), nullable=False),
        sa.Column("erp_number", sa.BigInteger(), nullable=False),
        sa.Column("shop_id", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("platform", "erp_number", name="pk_create_intents"),
    )


def downgrade() -> None:
    op.drop_table("create_intents")

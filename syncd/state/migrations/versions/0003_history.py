"""Per-address event history (``schema.history``) for ``syncd history``.

Revision ID: 0003
"""

import sqlalchemy as sa
from alembic import op

from syncd.state.schema import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "history",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True,
                  nullable=False),
        sa.Column("platform", sa.String(64), nullable=False),
        sa.Column("erp_number", sa.BigInteger(), nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("shop_id", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_history"),
    )
    op.create_index("ix_history_address", "history", ["erp_number", "at"])
    op.create_index("ix_history_at", "history", ["at"])


def downgrade() -> None:
    op.drop_index("ix_history_at", table_name="history")
    op.drop_index("ix_history_address", table_name="history")
    op.drop_table("history")

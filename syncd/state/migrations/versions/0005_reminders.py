"""Order-driven reminders (issue 16): the schedule per (platform, reminder, order).

Revision ID: 0005_reminders
"""

import sqlalchemy as sa
from alembic import op

from syncd.state.schema import UTCDateTime

revision = "0005_reminders"
down_revision = "0004_messages"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reminder_orders",
        sa.Column("platform", sa.String(64), nullable=False),
        sa.Column("reminder", sa.String(64), nullable=False),
        sa.Column("order_id", sa.String(64), nullable=False),
        sa.Column("order_number", sa.String(64), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("anchor_at", UTCDateTime(), nullable=False),
        sa.Column("next_due", UTCDateTime(), nullable=True),
        sa.Column("sent", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("context", sa.JSON(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("platform", "reminder", "order_id", name="pk_reminder_orders"),
    )
    op.create_index("ix_reminder_orders_due", "reminder_orders", ["platform", "next_due"])
    op.create_index("ix_reminder_orders_number", "reminder_orders", ["platform", "order_number"])


def downgrade() -> None:
    op.drop_index("ix_reminder_orders_number", table_name="reminder_orders")
    op.drop_index("ix_reminder_orders_due", table_name="reminder_orders")
    op.drop_table("reminder_orders")

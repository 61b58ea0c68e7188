"""Message jobs (event mails per customer group) and account approval states (issue 15).

Revision ID: 0004_messages
"""

import sqlalchemy as sa
from alembic import op

from syncd.state.schema import UTCDateTime

revision = "0004_messages"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "messages",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("platform", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("occurrence", sa.String(128), nullable=False),
        sa.Column("recipient", sa.String(320), nullable=False),
        sa.Column("erp_number", sa.BigInteger(), nullable=True),
        sa.Column("channel", sa.String(16), server_default=sa.text("'email'"), nullable=False),
        sa.Column("layout", sa.String(128), nullable=False),
        sa.Column("sender", sa.String(320), nullable=True),
        sa.Column("context", sa.JSON(), nullable=True),
        sa.Column("step", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("send_attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_messages"),
    )
    op.create_index("uq_messages_occurrence", "messages", ["platform", "kind", "occurrence", "recipient"],
                    unique=True)
    op.create_index("ix_messages_platform_step", "messages", ["platform", "step"])
    op.create_table(
        "approvals",
        sa.Column("platform", sa.String(64), nullable=False),
        sa.Column("shop_id", sa.String(64), nullable=False),
        sa.Column("erp_number", sa.BigInteger(), nullable=True),
        sa.Column("email", sa.String(320), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("requested_group", sa.String(64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("platform", "shop_id", name="pk_approvals"),
    )


def downgrade() -> None:
    op.drop_table("approvals")
    op.drop_index("ix_messages_platform_step", table_name="messages")
    op.drop_index("uq_messages_occurrence", table_name="messages")
    op.drop_table("messages")

"""Bounces (issue 18, [mail.bounces]): ``mail_bounces`` records each bounce read for a mail of
syncd (hard ones block the address until its ERP e-mail changes), ``bounce_keys`` the key of the
return-path tags.

Revision ID: 0007_bounces
"""

import sqlalchemy as sa
from alembic import op

from syncd.state.schema import UTCDateTime

revision = "0007_bounces"
down_revision = "0004_mail_golive"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mail_bounces",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("platform", sa.String(64), nullable=False),
        sa.Column("erp_number", sa.BigInteger(), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("severity", sa.String(8), nullable=False),
        sa.Column("status", sa.String(16), nullable=True),
        sa.Column("diagnostic", sa.Text(), nullable=True),
        sa.Column("source_id", sa.String(255), nullable=False),
        sa.Column("bounced_at", UTCDateTime(), nullable=False),
        sa.Column("cleared_at", UTCDateTime(), nullable=True),
        sa.Column("retried_job", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_mail_bounces"),
    )
    op.create_index("uq_mail_bounces_source", "mail_bounces", ["source_id", "kind", "job_id"], unique=True)
    op.create_index("ix_mail_bounces_open", "mail_bounces", ["platform", "cleared_at"])
    op.create_table(
        "bounce_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_bounce_keys"),
    )


def downgrade() -> None:
    op.drop_table("bounce_keys")
    op.drop_index("ix_mail_bounces_open", table_name="mail_bounces")
    op.drop_index("uq_mail_bounces_source", table_name="mail_bounces")
    op.drop_table("mail_bounces")

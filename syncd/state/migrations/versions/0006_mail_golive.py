"""Go-live and mail budget (issue 18): a credential job can be held (``credential_jobs.held``:
"go-live" for accounts of ERP rows older than ``send_credentials_since``), every mail sent is
logged in ``mail_sends`` so that ``[mail] max_per_minute`` / ``max_per_hour`` and the canary
count survive a restart, ``tombstones`` keep an erased address from being re-created, and
``account_activity`` holds each account's first and last shop login (activation tracking).

Revision ID: 0004_mail_golive (linked after 0005_reminders when issues 14, 15, 16 and 18 were merged;
one chain at merge. A state store migrated by the unmerged issue-18 branch lacks 0004_failure_fingerprint
and must be recreated; no released store has either.)
"""

import sqlalchemy as sa
from alembic import op

from syncd.state.schema import UTCDateTime

revision = "0004_mail_golive"
down_revision = "0005_reminders"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN (SQLite has it): a batch rebuild would have to carry the partial index.
    op.add_column("credential_jobs", sa.Column("held", sa.String(16), nullable=True))
    op.create_table(
        "mail_sends",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True,
                  nullable=False),
        sa.Column("platform", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_mail_sends"),
    )
    op.create_index("ix_mail_sends_at", "mail_sends", ["at"])
    op.create_table(
        "tombstones",
        sa.Column("platform", sa.String(64), nullable=False),
        sa.Column("erp_number", sa.BigInteger(), nullable=False),
        sa.Column("erased_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("platform", "erp_number", name="pk_tombstones"),
    )


    op.create_table(
        "account_activity",
        sa.Column("platform", sa.String(64), nullable=False),
        sa.Column("shop_id", sa.String(64), nullable=False),
        sa.Column("erp_number", sa.BigInteger(), nullable=False),
        sa.Column("first_login_at", UTCDateTime(), nullable=False),
        sa.Column("last_login_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("platform", "shop_id", name="pk_account_activity"),
    )


def downgrade() -> None:
    op.drop_table("account_activity")
    op.drop_table("tombstones")
    op.drop_index("ix_mail_sends_at", table_name="mail_sends")
    op.drop_table("mail_sends")
    with op.batch_alter_table("credential_jobs") as batch:
        batch.drop_column("held")

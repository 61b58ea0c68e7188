"""Credentials by SMS (issue 16): a credential job's SMS leg has its own step and send count, so
that a customer messaged on both channels gets each message once across crashes (I5 per channel).

Revision ID: 0008_sms_credentials
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_sms_credentials"
down_revision = "0007_bounces"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMNs (SQLite has them): a batch rebuild would have to carry the partial index.
    op.add_column("credential_jobs", sa.Column("channel", sa.String(8), nullable=True))
    op.add_column("credential_jobs", sa.Column("sms_step", sa.String(16), nullable=True))
    op.add_column("credential_jobs", sa.Column("sms_attempts", sa.Integer(), nullable=False,
                                               server_default=sa.text("0")))


def downgrade() -> None:
    with op.batch_alter_table("credential_jobs") as batch:
        batch.drop_column("sms_attempts")
        batch.drop_column("sms_step")
        batch.drop_column("channel")

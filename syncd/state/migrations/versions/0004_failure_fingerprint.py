"""A failed ERP -> shop record remembers what its ERP row looked like (``failures.fingerprint``),
so a row corrected without its change stamp moving is evaluated again (``syncd retry``, issue 14).

Revision ID: 0004_failure_fingerprint
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_failure_fingerprint"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # batch mode: SQLite cannot ALTER a table's columns in place (it adds this one either way).
    with op.batch_alter_table("failures") as batch:
        batch.add_column(sa.Column("fingerprint", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("failures") as batch:
        batch.drop_column("fingerprint")

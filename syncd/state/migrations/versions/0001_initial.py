"""Initial state store: links, cursors, credential jobs, failures, cache, cycles, leases,
number allocations. Kept explicit (not ``metadata.create_all``) so that later schema changes
are visible as migrations; ``tests/test_state_db.py`` checks it equals ``schema.metadata``.

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op

from syncd.state.schema import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def TS():  # noqa: N802 - reads like the type it stands for
    return UTCDateTime()


def upgrade() -> None:
    op.create_table(
        "links",
        sa.Column("platform", sa.String(64), nullable=False),
        sa.Column("shop_id", sa.String(64), nullable=False),
        sa.Column("erp_number", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("email", sa.String(320)),
        sa.Column("erp_blocked", sa.Boolean(), nullable=False, server_default=sa.text("false")),
        sa.Column("shop_active", sa.Boolean(), nullable=False, server_default=sa.text("true")),
        sa.Column("fingerprint", sa.String(64)),
        sa.Column("created_at", TS(), nullable=False),
        sa.Column("updated_at", TS(), nullable=False),
        sa.PrimaryKeyConstraint("platform", "shop_id", name="pk_links"),
    )
    op.create_index("ix_links_platform_erp_number", "links", ["platform", "erp_number"])
    op.create_index(
        "uq_links_platform_erp_number",
        "links",
        ["platform", "erp_number"],
        unique=True,
        sqlite_where=sa.text("kind != 'collective'"),
        postgresql_where=sa.text("kind != 'collective'"),
    )

    op.create_table(
        "cursors",
        sa.Column("platform", sa.String(64), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("updated_at", TS(), nullable=False),
        sa.PrimaryKeyConstraint("platform", "name", name="pk_cursors"),
    )

    op.create_table(
        "credential_jobs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("platform", sa.String(64), nullable=False),
        sa.Column("erp_number", sa.BigInteger(), nullable=False),
        sa.Column("shop_id", sa.String(64)),
        sa.Column("email", sa.String(320)),
        sa.Column("mode", sa.String(16), nullable=False, server_default=sa.text("'password'")),
        sa.Column("reason", sa.String(32), nullable=False, server_default=sa.text("'created'")),
        sa.Column("step", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("send_attempts", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("last_error", sa.Text()),
        sa.Column("next_attempt_at", TS()),
        sa.Column("created_at", TS(), nullable=False),
        sa.Column("updated_at", TS(), nullable=False),
        sa.Column("finished_at", TS()),
        sa.PrimaryKeyConstraint("id", name="pk_credential_jobs"),
    )
    op.create_index("ix_credential_jobs_platform_step", "credential_jobs", ["platform", "step"])
    op.create_index(
        "uq_credential_jobs_active",
        "credential_jobs",
        ["platform", "erp_number"],
        unique=True,
        sqlite_where=sa.text("step NOT IN ('done', 'failed')"),
        postgresql_where=sa.text("step NOT IN ('done', 'failed')"),
    )

    op.create_table(
        "failures",
        sa.Column("platform", sa.String(64), nullable=False),
        sa.Column("direction", sa.String(16), nullable=False),
        sa.Column("record", sa.String(64), nullable=False),
        sa.Column("step", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("code", sa.String(64)),
        sa.Column("count", sa.Integer(), nullable=False, server_default=sa.text("1")),
        sa.Column("first_seen", TS(), nullable=False),
        sa.Column("last_seen", TS(), nullable=False),
        sa.PrimaryKeyConstraint("platform", "direction", "record", name="pk_failures"),
    )

    op.create_table(
        "cache",
        sa.Column("scope", sa.String(64), nullable=False),
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("fetched_at", TS(), nullable=False),
        sa.PrimaryKeyConstraint("scope", "key", name="pk_cache"),
    )

    op.create_table(
        "cycles",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("platform", sa.String(64), nullable=False),
        sa.Column("direction", sa.String(16), nullable=False),
        sa.Column("started", TS(), nullable=False),
        sa.Column("finished", TS()),
        sa.Column("ok", sa.Boolean()),
        sa.Column("counts", sa.JSON()),
        sa.Column("error", sa.Text()),
        sa.Column("holder", sa.String(128)),
        sa.PrimaryKeyConstraint("id", name="pk_cycles"),
    )
    op.create_index(
        "ix_cycles_platform_direction_started", "cycles", ["platform", "direction", "started"]
    )

    op.create_table(
        "leases",
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("holder", sa.String(128), nullable=False),
        sa.Column("expires_at", TS(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_leases"),
    )

    op.create_table(
        "number_allocations",
        sa.Column("platform", sa.String(64), nullable=False),
        sa.Column("next_number", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", TS(), nullable=False),
        sa.PrimaryKeyConstraint("platform", name="pk_number_allocations"),
    )


def downgrade() -> None:
    for table in (
        "number_allocations",
        "leases",
        "cycles",
        "cache",
        "failures",
        "credential_jobs",
        "cursors",
        "links",
    ):
        op.drop_table(table)

"""Tables of the state store. One store, many small repositories over it (``syncd.state.*``).

Never stored here: a generated password, a secret, or any value registered with
``syncd.core.redaction``. The credential job table records *steps*, not passwords; the in-flight
password lives only in the ERP password field (spec I2/I3).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.types import TypeDecorator

from syncd.core.rules import LinkKind

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)



class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on the way in and out, on every backend.

    SQLite keeps no offset and PostgreSQL returns session-time-zone values; repositories and
    flows compare timestamps from both, so the column type normalises. Naive datetimes are
    refused on write: an unlabelled local time is a bug that would shift leases by hours.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given to the state store; use UTC-aware values")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


TS = UTCDateTime()

# Binding between an ERP address and a shop account, per platform (OCA/connector style).
# kind: a ``syncd.core.rules.LinkKind`` value (what each means is said there).
links = Table(
    "links",
    metadata,
    Column("platform", String(64), primary_key=True),
    Column("shop_id", String(64), primary_key=True),
    Column("erp_number", BigInteger, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("email", String(320)),
    Column("erp_blocked", Boolean, nullable=False, server_default=text("false")),
    Column("shop_active", Boolean, nullable=False, server_default=text("true")),
    Column("fingerprint", String(64)),  # hash of the last pushed payload: skip unchanged
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
)
# Lookups by ERP number include collective links, which the partial unique index below cannot
# serve (neither SQLite nor PostgreSQL uses a partial index for a query not implying its WHERE).
Index("ix_links_platform_erp_number", links.c.platform, links.c.erp_number)
# One personal link per ERP number. The same text as migration 0001 wrote (kept byte-identical).
_PERSONAL = f"kind != '{LinkKind.COLLECTIVE.value}'"
Index(
    "uq_links_platform_erp_number",
    links.c.platform,
    links.c.erp_number,
    unique=True,
    sqlite_where=text(_PERSONAL),
    postgresql_where=text(_PERSONAL),
)

# Bookmarks of incremental syncs: name is e.g. 'erp-to-shop' or 'shop-to-erp'.
cursors = Table(
    "cursors",
    metadata,
    Column("platform", String(64), primary_key=True),
    Column("name", String(64), primary_key=True),
    Column("value", JSON, nullable=False),
    Column("updated_at", TS, nullable=False),
)

# One row per credential job. step: pending -> field_written -> sending -> sent -> done | failed.
# send_attempts counts sends whose outcome is unknown (started, not confirmed refused): it bounds
# resends after crashes (I5).
credential_jobs = Table(
    "credential_jobs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("platform", String(64), nullable=False),
    Column("erp_number", BigInteger, nullable=False),
    Column("shop_id", String(64)),
    Column("email", String(320)),
    Column("mode", String(16), nullable=False, server_default=text("'password'")),
    Column("reason", String(32), nullable=False, server_default=text("'created'")),  # created|resend|reset
    Column("step", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("send_attempts", Integer, nullable=False, server_default=text("0")),
    Column("last_error", Text),
    Column("next_attempt_at", TS),
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
    Column("finished_at", TS),
    # Not due until released: "go-live" (ERP row older than send_credentials_since; released by
    # `syncd accounts send-credentials`). NULL: due as usual.
    Column("held", String(16)),
    # The SMS leg of a job whose customer is messaged by SMS (issue 16): NULL none yet,
    # sending (its request counted in sms_attempts before it left), sent, failed. Mail keeps
    # step/send_attempts; each channel has its own I5 bound.
    # What the job's message went by: email, sms, both, none (the customer's choice as applied).
    Column("channel", String(8)),
    Column("sms_step", String(16)),
    Column("sms_attempts", Integer, nullable=False, server_default=text("0")),
)
Index("ix_credential_jobs_platform_step", credential_jobs.c.platform, credential_jobs.c.step)
Index(
    "uq_credential_jobs_active",
    credential_jobs.c.platform,
    credential_jobs.c.erp_number,
    unique=True,
    sqlite_where=text("step NOT IN ('done', 'failed')"),
    postgresql_where=text("step NOT IN ('done', 'failed')"),
)

# Per-record permanent failures, visible in `syncd status`; removed when the record succeeds.
failures = Table(
    "failures",
    metadata,
    Column("platform", String(64), primary_key=True),
    Column("direction", String(16), primary_key=True),
    Column("record", String(64), primary_key=True),  # ERP number or shop id
    Column("step", String(32), nullable=False),
    Column("reason", Text, nullable=False),
    Column("code", String(64)),
    Column("count", Integer, nullable=False, server_default=text("1")),
    Column("first_seen", TS, nullable=False),
    Column("last_seen", TS, nullable=False),
    # ERP -> shop: sha256 of the ERP row as it failed (``syncd.flows.fingerprints.row_fingerprint``); a
    # row that differs is evaluated again even when its change stamp did not move. NULL: unknown.
    Column("fingerprint", String(64)),
)

# Tenant cache: ERP and shop metadata (columns, sales channels, groups, countries ...).
cache = Table(
    "cache",
    metadata,
    Column("scope", String(64), primary_key=True),  # 'erp' or a platform name
    Column("key", String(128), primary_key=True),
    Column("value", JSON, nullable=False),
    Column("fetched_at", TS, nullable=False),
)

cycles = Table(
    "cycles",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("platform", String(64), nullable=False),
    Column("direction", String(16), nullable=False),
    Column("started", TS, nullable=False),
    Column("finished", TS),
    Column("ok", Boolean),
    Column("counts", JSON),
    Column("error", Text),
    Column("holder", String(128)),
)
Index("ix_cycles_platform_direction_started", cycles.c.platform, cycles.c.direction, cycles.c.started)

# Work leases between instances sharing one state store (spec §3).
leases = Table(
    "leases",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("holder", String(128), nullable=False),
    Column("expires_at", TS, nullable=False),
)

# Shop -> ERP number allocation, per platform: advanced, never reused.
number_allocations = Table(
    "number_allocations",
    metadata,
    Column("platform", String(64), primary_key=True),
    Column("next_number", BigInteger, nullable=False),
    Column("updated_at", TS, nullable=False),
)

# Write-ahead intent of a shop create (I1 with I4): recorded and committed before the request
# that creates the account under syncd's deterministic id, removed in the transaction that
# records its link and credential job. After a crash in between, the row tells a later push
# that the unlinked account it finds is ours and unmailed - however often it was written
# meanwhile - while a lost or replaced store has no such row, so its accounts are adopted.
create_intents = Table(
    "create_intents",
    metadata,
    Column("platform", String(64), primary_key=True),
    Column("erp_number", BigInteger, primary_key=True),
    Column("shop_id", String(64), nullable=False),
    Column("created_at", TS, nullable=False),
)

# What happened to each ERP address, for `syncd history` (syncd.state.history): never a
# password, link or mail body. Pruned by the daemon after [daemon] history_days.
history = Table(
    "history",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("platform", String(64), nullable=False),
    Column("erp_number", BigInteger, nullable=False),
    Column("event", String(32), nullable=False),
    Column("at", TS, nullable=False),
    Column("reason", Text),
    Column("shop_id", String(64)),
    Index("ix_history_address", "erp_number", "at"),
    Index("ix_history_at", "at"),
)

# Message jobs (syncd.state.messages): one durable row per notification to one recipient, for
# every event mail (approved, blocked, ...) and later channels (SMS). Never the body: it is
# rendered at send time from the ERP row and ``context`` (plain event values, never a secret).
# The dedup key (platform, kind, occurrence, recipient) makes an event mail once per occurrence.
messages = Table(
    "messages",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("platform", String(64), nullable=False),
    Column("kind", String(32), nullable=False),  # the event (approved, blocked, ...)
    Column("occurrence", String(128), nullable=False),  # which occurrence of the event
    Column("recipient", String(320), nullable=False),  # e-mail address (or phone for SMS)
    Column("erp_number", BigInteger),  # the address the event is about
    Column("channel", String(16), nullable=False, server_default=text("'email'")),
    Column("layout", String(128), nullable=False),
    Column("sender", String(320)),  # None: the platform's / [mail] sender
    Column("context", JSON),
    Column("step", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("send_attempts", Integer, nullable=False, server_default=text("0")),
    Column("last_error", Text),
    Column("next_attempt_at", TS),
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
    Column("finished_at", TS),
    Index("uq_messages_occurrence", "platform", "kind", "occurrence", "recipient", unique=True),
    Index("ix_messages_platform_step", "platform", "step"),
)

# Order-driven reminders (syncd.state.reminders): one row per (platform, reminder, order) that
# is or was scheduled. ``next_due`` is the due time of occurrence ``sent`` (None: nothing more to
# send); the message of each occurrence is queued in ``messages`` in the same transaction that
# advances ``sent``, under the dedup key "<order id>:<reminder>:<occurrence>". ``context`` holds the
# order's plain values a layout reads (number, amount, customer name, e-mail): never a secret.
reminder_orders = Table(
    "reminder_orders",
    metadata,
    Column("platform", String(64), primary_key=True),
    Column("reminder", String(64), primary_key=True),
    Column("order_id", String(64), primary_key=True),
    Column("order_number", String(64)),
    Column("state", String(16), nullable=False),  # scheduled | done | stopped | cancelled
    Column("anchor_at", TS, nullable=False),  # the trigger: order placed / delivery shipped
    Column("next_due", TS),
    Column("sent", Integer, nullable=False, server_default=text("0")),
    Column("reason", Text),
    Column("context", JSON),
    Column("updated_at", TS, nullable=False),
    Index("ix_reminder_orders_due", "platform", "next_due"),
    Index("ix_reminder_orders_number", "platform", "order_number"),
)

# Approval state of shop accounts (syncd.state.approvals): in-progress until an operator (or
# approval = "auto") decides; one row per (platform, shop account).
approvals = Table(
    "approvals",
    metadata,
    Column("platform", String(64), primary_key=True),
    Column("shop_id", String(64), primary_key=True),
    Column("erp_number", BigInteger),
    Column("email", String(320)),
    Column("state", String(16), nullable=False),  # in-progress | approved | rejected
    Column("requested_group", String(64)),  # the shop group the customer asked for
    Column("reason", Text),
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
)

# One row per mail handed to the mail server (any kind): the window behind [mail] max_per_minute /
# max_per_hour and the canary's count. Pruned after a day.
mail_sends = Table(
    "mail_sends",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("platform", String(64), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("at", TS, nullable=False),
    Index("ix_mail_sends_at", "at"),
)

# An address erased on request (`syncd accounts erase`): nothing but its number and when, so that
# the next cycle does not create its shop account again.
tombstones = Table(
    "tombstones",
    metadata,
    Column("platform", String(64), primary_key=True),
    Column("erp_number", BigInteger, primary_key=True),
    Column("erased_at", TS, nullable=False),
)

# Activation tracking: the shop's last-login time of each linked account, read incrementally
# (syncd.flows.activation). first_login_at: the first login syncd saw after linking.
account_activity = Table(
    "account_activity",
    metadata,
    Column("platform", String(64), primary_key=True),
    Column("shop_id", String(64), primary_key=True),
    Column("erp_number", BigInteger, nullable=False),
    Column("first_login_at", TS, nullable=False),
    Column("last_login_at", TS, nullable=False),
)

# [mail.bounces] (syncd.state.bounces): one row per bounce read for a mail of syncd. ``severity``
# "hard" (5.x.x) blocks the address until the ERP e-mail changes (``cleared_at``), "soft" (4.x.x)
# is recorded only. ``email`` is the bounced address as it was mailed; ``diagnostic`` the server's
# text, redacted and clipped. ``source_id`` (the bounce's Message-ID) keeps a re-read bounce single.
mail_bounces = Table(
    "mail_bounces",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("platform", String(64), nullable=False),
    Column("erp_number", BigInteger),
    Column("kind", String(16), nullable=False),  # credentials | message
    Column("job_id", Integer, nullable=False),
    Column("email", String(320), nullable=False),
    Column("severity", String(8), nullable=False),  # hard | soft
    Column("status", String(16)),  # the DSN status, e.g. 5.1.1
    Column("diagnostic", Text),
    Column("source_id", String(255), nullable=False),
    Column("bounced_at", TS, nullable=False),
    Column("cleared_at", TS),  # the ERP e-mail changed: no longer blocking
    Column("retried_job", Integer),  # the one retry queued when cleared (credential or message job id)
    Index("uq_mail_bounces_source", "source_id", "kind", "job_id", unique=True),
    Index("ix_mail_bounces_open", "platform", "cleared_at"),
)

# The key of the return-path tags' HMAC (syncd.core.returnpath): made once per state store, so a
# bounce of another store's mail cannot mark an address here. It authenticates bounces only.
bounce_keys = Table(
    "bounce_keys",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("key", String(64), nullable=False),
    Column("created_at", TS, nullable=False),
)

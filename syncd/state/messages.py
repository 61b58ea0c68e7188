"""Message jobs: one durable row per notification to one recipient (event mails now, SMS later).

Steps::

    pending -> sending -> sent
        \\-> deferred (transient fault, due again at next_attempt_at) -> sending ...
        \\-> failed (permanent fault, or delivery unknown twice)

The dedup key is (platform, kind, occurrence, recipient), a unique index: ``enqueue`` of an
occurrence already on record is a no-op, so an event detected twice (a replayed cycle, a
crash before its cursor moved) mails once. ``send_attempts`` works as for credential jobs
(``syncd.state.ledger``): raised at the mail's commit point, so a crash can resend at most the one
mail per open SMTP session whose outcome is unknown (I5), and ``MAX_SENDS`` ends it.

A row never holds a mail body or a secret: ``context`` carries the event's plain values (a
reason, a login name) for the layout, rendered at send time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, and_, delete, func, insert, or_, select, update

from syncd.core.redaction import redact
from syncd.state.bounces import not_bounced_recipient
from syncd.state.jobs import _aware
from syncd.state.ledger import SendLedger
from syncd.state.schema import messages as t

if TYPE_CHECKING:
    from syncd.state.db import StateStore

PENDING = "pending"
SENDING = "sending"
SENT = "sent"
DEFERRED = "deferred"
FAILED = "failed"

LIVE_STEPS = (PENDING, SENDING, DEFERRED)
STEPS = (PENDING, SENDING, SENT, DEFERRED, FAILED)
EMAIL = "email"
SMS = "sms"  # recipient: an E.164 number; sent by syncd.flows.messages.sms
CHANNELS = (EMAIL, SMS)


@dataclass(frozen=True)
class Message:
    id: int
    platform: str
    kind: str
    occurrence: str
    recipient: str
    erp_number: int | None
    channel: str
    layout: str
    sender: str | None
    context: Mapping[str, Any]
    step: str
    attempts: int
    send_attempts: int
    last_error: str | None
    next_attempt_at: datetime | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None


def _message(row: Any) -> Message:
    m = row._mapping
    return Message(
        id=m["id"], platform=m["platform"], kind=row.kind, occurrence=m["occurrence"],
        recipient=m["recipient"], erp_number=None if m["erp_number"] is None else int(m["erp_number"]),
        channel=m["channel"], layout=m["layout"], sender=m["sender"], context=m["context"] or {},
        step=m["step"], attempts=m["attempts"], send_attempts=m["send_attempts"], last_error=m["last_error"],
        next_attempt_at=_aware(m["next_attempt_at"]), created_at=_aware(m["created_at"]),
        updated_at=_aware(m["updated_at"]), finished_at=_aware(m["finished_at"]),
    )


def _error_text(error: object) -> str:
    return redact(str(error))[:2000]


class Messages:
    def __init__(self, store: StateStore) -> None:
        self.store = store

    @contextmanager
    def _conn(self, conn: Connection | None) -> Iterator[Connection]:
        if conn is not None:
            yield conn
        else:
            with self.store.begin() as c:
                yield c

    # --- creating -------------------------------------------------------------------------
    def enqueue(self, *, platform: str, kind: str, occurrence: str, recipient: str, layout: str,
                now: datetime, erp_number: int | None = None, channel: str = EMAIL,
                sender: str | None = None, context: Mapping[str, Any] | None = None,
                conn: Connection | None = None) -> int | None:
        """A pending message; None when this (platform, kind, occurrence, recipient) is already on
        record, whatever its step (the dedup key: one mail per event occurrence)."""
        if channel not in CHANNELS:
            raise ValueError(f"unknown message channel {channel!r} (known: {', '.join(CHANNELS)})")
        recipient = recipient.strip()
        key = (t.c.platform == platform, t.c.kind == kind, t.c.occurrence == occurrence,
               t.c.recipient == recipient)
        with self._conn(conn) as c:
            if c.execute(select(t.c.id).where(*key)).first() is not None:
                return None
            # The unique index backs the select: a racing writer's insert fails and rolls back
            # its caller's transaction instead of queueing a second mail.
            return int(c.execute(insert(t).values(
                platform=platform, kind=kind, occurrence=occurrence[:128], recipient=recipient,
                erp_number=erp_number, channel=channel, layout=layout, sender=sender,
                context=dict(context or {}), step=PENDING, attempts=0, send_attempts=0,
                created_at=now, updated_at=now,
            )).inserted_primary_key[0])

    # --- reading --------------------------------------------------------------------------
    def get(self, message_id: int) -> Message | None:
        with self._conn(None) as c:
            row = c.execute(select(t).where(t.c.id == message_id)).first()
        return _message(row) if row is not None else None

    def of(self, platform: str, *, kind: str | None = None, erp_number: int | None = None) -> list[Message]:
        q = select(t).where(t.c.platform == platform)
        if kind is not None:
            q = q.where(t.c.kind == kind)
        if erp_number is not None:
            q = q.where(t.c.erp_number == erp_number)
        with self._conn(None) as c:
            return [_message(r) for r in c.execute(q.order_by(t.c.id))]

    def due(self, platform: str, now: datetime, *, limit: int, after_id: int = 0,
            channel: str = EMAIL) -> list[Message]:
        """Live messages whose backoff has passed, oldest first. A ``sending`` one is a send
        whose outcome a dead run left unknown (a live run holds the platform's lease and marks
        each acceptance before taking the next batch): the caller resends it once or fails it.
        ``after_id``: walk the queue once per run."""
        q = select(t).where(
            t.c.platform == platform, t.c.channel == channel, t.c.step.in_(LIVE_STEPS),
            or_(t.c.next_attempt_at.is_(None), t.c.next_attempt_at <= now), t.c.id > after_id,
            not_bounced_recipient(t.c.platform, t.c.recipient),
        )
        with self._conn(None) as c:
            return [_message(r) for r in c.execute(q.order_by(t.c.id).limit(limit))]

    def counts(self, platform: str) -> Counter[str]:
        with self._conn(None) as c:
            q = select(t.c.step, func.count()).where(t.c.platform == platform).group_by(t.c.step)
            rows = c.execute(q)
            return Counter({step: n for step, n in rows})

    def failed(self, platform: str) -> list[Message]:
        with self._conn(None) as c:
            q = select(t).where(t.c.platform == platform, t.c.step == FAILED).order_by(t.c.id)
            return [_message(r) for r in c.execute(q)]

    # --- moving steps ---------------------------------------------------------------------
    @contextmanager
    def ledger(self) -> Iterator[SendLedger]:
        """The writes of one mail session, on a connection held for it (``syncd.state.ledger``)."""
        with self.store.engine.connect() as c:
            yield SendLedger(c, t, sending_step=SENDING, sent_step=SENT, live=LIVE_STEPS)

    def mark_sent(self, ids: Iterable[int], now: datetime) -> None:
        ids = list(ids)
        if ids:
            with self._conn(None) as c:
                c.execute(update(t).where(t.c.id.in_(ids), t.c.step.in_(LIVE_STEPS))
                          .values(step=SENT, updated_at=now, finished_at=now))

    def refused(self, message_id: int, now: datetime) -> None:
        """The server refused the send: its outcome is known, so it no longer counts."""
        with self._conn(None) as c:
            c.execute(update(t).where(and_(t.c.id == message_id, t.c.send_attempts > 0))
                      .values(send_attempts=t.c.send_attempts - 1, updated_at=now))

    def defer(self, message_id: int, *, error: object, next_attempt_at: datetime, now: datetime) -> None:
        with self._conn(None) as c:
            c.execute(update(t).where(t.c.id == message_id, t.c.step.in_(LIVE_STEPS)).values(
                step=DEFERRED, attempts=t.c.attempts + 1, last_error=_error_text(error),
                next_attempt_at=next_attempt_at, updated_at=now))

    def fail(self, message_id: int, error: object, now: datetime) -> None:
        with self._conn(None) as c:
            c.execute(update(t).where(t.c.id == message_id, t.c.step.in_(LIVE_STEPS)).values(
                step=FAILED, last_error=_error_text(error), updated_at=now, finished_at=now))

    def forget(self, platform: str, erp_number: int, *, conn: Connection | None = None) -> int:
        """Erasure on request: the messages of one address (recipient, names in ``context``),
        sent or waiting. One in ``sending`` stays: its send loop holds it at the commit point."""
        with self._conn(conn) as c:
            return c.execute(delete(t).where(t.c.platform == platform, t.c.erp_number == int(erp_number),
                                             t.c.step != SENDING)).rowcount or 0

"""Credential jobs: one durable record per (platform, ERP address) credential mail.

A job records *steps*, never the password (I3): the in-flight password lives only in the ERP
password field. Steps::

    pending -> field_written -> sending -> sent -> done
                     \\-----------\\---------------> failed

``send_attempts`` counts sends whose outcome is unknown (reached the mail's commit point, not
confirmed refused); it is raised durably right before the server can accept the mail (the SMTP
end-of-data terminator), so a crash can cause at most one extra mail (I5), and a crash before
that point costs none. A mail session writes through a ``SendLedger``: one transaction at each
mail's commit point records the mail before it as sent and counts this one, so one session
never has two unrecorded acceptances.
At most one job per (platform, address) is active (not done/failed): a partial unique index.

Every method takes an optional ``conn`` so a caller can make a job part of a larger state
transaction (the link and its job are recorded together).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, and_, func, insert, or_, select, update

from syncd.core.redaction import redact
from syncd.core.text import clip
from syncd.state.bounces import not_bounced
from syncd.state.ledger import SendLedger
from syncd.state.schema import credential_jobs as t

if TYPE_CHECKING:
    from syncd.state.db import StateStore

PENDING = "pending"
FIELD_WRITTEN = "field_written"
SENDING = "sending"
SENT = "sent"
DONE = "done"
FAILED = "failed"

# Why a pending job is not due (``credential_jobs.held``).
GO_LIVE = "go-live"  # its ERP row predates send_credentials_since: mailed only when asked

ACTIVE_STEPS = (PENDING, FIELD_WRITTEN, SENDING, SENT)
FINAL_STEPS = (DONE, FAILED)
# A job whose message reached the customer: done, and not one whose customer chose no messages
# (channel "none", issue 16): what "credentials sent" means to exports and activation reminders.
DELIVERED = and_(t.c.step == DONE, or_(t.c.channel.is_(None), t.c.channel != "none"))
# Steps reached before SMTP may have accepted the mail: restarting these with a fresh password
# cannot contradict a mail already sent.
BEFORE_SEND = (PENDING, FIELD_WRITTEN)


@dataclass(frozen=True)
class CredentialJob:
    id: int
    platform: str
    erp_number: int
    shop_id: str | None
    email: str | None
    mode: str
    reason: str
    step: str
    attempts: int
    send_attempts: int
    last_error: str | None
    next_attempt_at: datetime | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    held: str | None = None  # GO_LIVE: not due until released (``release``)
    channel: str | None = None  # what the message went by: email, sms, both, none (None: e-mail, older)
    sms_step: str | None = None  # the SMS leg: None (none yet), SENDING, SENT, FAILED
    sms_attempts: int = 0  # SMS requests counted at their commit point, outcome not known refused

    @property
    def active(self) -> bool:
        return self.step in ACTIVE_STEPS


def _aware(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; every timestamp syncd stores is UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _job(row: Any) -> CredentialJob:
    m = row._mapping
    return CredentialJob(
        id=m["id"],
        platform=m["platform"],
        erp_number=int(m["erp_number"]),
        shop_id=m["shop_id"],
        email=m["email"],
        mode=m["mode"],
        reason=m["reason"],
        step=m["step"],
        attempts=m["attempts"],
        send_attempts=m["send_attempts"],
        last_error=m["last_error"],
        next_attempt_at=_aware(m["next_attempt_at"]),
        created_at=_aware(m["created_at"]),
        updated_at=_aware(m["updated_at"]),
        finished_at=_aware(m["finished_at"]),
        held=m.get("held"),
        channel=m.get("channel"),
        sms_step=m.get("sms_step"),
        sms_attempts=m.get("sms_attempts") or 0,
    )


def _error_text(error: object) -> str:
    # The last line of defence for I3: whatever the caller passes is redacted and bounded.
    return clip(redact(str(error)), 2000)


class CredentialJobs:
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
    def create(
        self,
        *,
        platform: str,
        erp_number: int,
        shop_id: str | None,
        email: str | None,
        now: datetime,
        reason: str = "created",
        mode: str = "password",
        held: str | None = None,
        conn: Connection | None = None,
    ) -> int | None:
        """Record a pending job; None when the address already has an active one (idempotent:
        a replayed push must not queue a second mail). ``held``: not due until ``release``."""
        with self._conn(conn) as c:
            existing = c.execute(
                select(t.c.id).where(
                    t.c.platform == platform, t.c.erp_number == erp_number, t.c.step.in_(ACTIVE_STEPS)
                )
            ).first()
            if existing is not None:
                return None
            values = dict(
                platform=platform,
                erp_number=erp_number,
                shop_id=shop_id,
                email=email,
                mode=mode,
                reason=reason,
                step=PENDING,
                attempts=0,
                send_attempts=0,
                created_at=now,
                updated_at=now,
                held=held,
            )
            # The unique index backs the select: a racing instance makes this insert fail, which
            # rolls back the caller's transaction (link and job together) rather than queueing
            # a second mail.
            return int(c.execute(insert(t).values(**values)).inserted_primary_key[0])

    # --- reading --------------------------------------------------------------------------
    def get(self, job_id: int, *, conn: Connection | None = None) -> CredentialJob | None:
        with self._conn(conn) as c:
            row = c.execute(select(t).where(t.c.id == job_id)).first()
        return _job(row) if row is not None else None

    def active(
        self, platforms: str | Iterable[str], numbers: Iterable[int] | None = None, *,
        conn: Connection | None = None,
    ) -> list[CredentialJob]:
        names = [platforms] if isinstance(platforms, str) else list(platforms)
        q = select(t).where(t.c.platform.in_(names), t.c.step.in_(ACTIVE_STEPS))
        if numbers is not None:
            wanted = sorted({int(n) for n in numbers})
            if not wanted:
                return []
            q = q.where(t.c.erp_number.in_(wanted))
        with self._conn(conn) as c:
            return [_job(r) for r in c.execute(q.order_by(t.c.id))]

    def due(self, platform: str, now: datetime, *, limit: int, after_id: int = 0) -> list[CredentialJob]:
        """Pending jobs whose backoff has passed, oldest first. ``after_id``: only jobs with a
        higher id, so a cycle walks the queue once (a job deferred with no backoff must not
        loop) with one cheap index range instead of an ever longer NOT IN list."""
        q = select(t).where(
            t.c.platform == platform,
            t.c.step == PENDING,
            t.c.held.is_(None),
            or_(t.c.next_attempt_at.is_(None), t.c.next_attempt_at <= now),
            t.c.id > after_id,
            not_bounced(t.c.platform, t.c.erp_number),
        )
        with self._conn(None) as c:
            return [_job(r) for r in c.execute(q.order_by(t.c.id).limit(limit))]

    def count_due(self, platform: str, now: datetime) -> int:
        """How many jobs ``due`` would hand out now (not held, backoff passed)."""
        q = select(func.count()).select_from(t).where(
            t.c.platform == platform, t.c.step == PENDING, t.c.held.is_(None),
            or_(t.c.next_attempt_at.is_(None), t.c.next_attempt_at <= now),
            not_bounced(t.c.platform, t.c.erp_number))
        with self._conn(None) as c:
            return int(c.execute(q).scalar_one())

    def held(self, platform: str, *, conn: Connection | None = None) -> list[CredentialJob]:
        """Jobs held back (``held`` set), oldest first."""
        q = select(t).where(t.c.platform == platform, t.c.step == PENDING, t.c.held.is_not(None))
        with self._conn(conn) as c:
            return [_job(r) for r in c.execute(q.order_by(t.c.id))]

    def release(self, platform: str, numbers: Iterable[int], now: datetime, *,
                conn: Connection | None = None) -> set[int]:
        """Make the held jobs of these addresses due; returns the numbers released."""
        wanted = sorted({int(n) for n in numbers})
        if not wanted:
            return set()
        where = (t.c.platform == platform, t.c.step == PENDING, t.c.held.is_not(None),
                 t.c.erp_number.in_(wanted))
        with self._conn(conn) as c:
            found = {int(n) for (n,) in c.execute(select(t.c.erp_number).where(*where))}
            if found:
                c.execute(update(t).where(*where).values(held=None, next_attempt_at=None, updated_at=now))
        return found

    def forget(self, platform: str, erp_number: int, *, conn: Connection | None = None) -> int:
        """Delete every job of one address (erasure on request); returns how many."""
        with self._conn(conn) as c:
            return c.execute(t.delete().where(t.c.platform == platform,
                                              t.c.erp_number == int(erp_number))).rowcount or 0

    def ever_had(self, platform: str, erp_number: int, *, conn: Connection | None = None) -> bool:
        with self._conn(conn) as c:
            return c.execute(
                select(t.c.id).where(t.c.platform == platform, t.c.erp_number == erp_number).limit(1)
            ).first() is not None

    def counts(self, platform: str) -> Counter[str]:
        with self._conn(None) as c:
            rows = c.execute(
                select(t.c.step, func.count()).where(t.c.platform == platform).group_by(t.c.step)
            )
            return Counter({step: n for step, n in rows})

    def failed(self, platform: str) -> list[CredentialJob]:
        with self._conn(None) as c:
            q = select(t).where(t.c.platform == platform, t.c.step == FAILED).order_by(t.c.id)
            return [_job(r) for r in c.execute(q)]

    # --- moving steps ---------------------------------------------------------------------
    def set_step(self, ids: Iterable[int], step: str, now: datetime, *, conn: Connection | None = None
                 ) -> None:
        ids = list(ids)
        if not ids:
            return
        values: dict[str, Any] = {"step": step, "updated_at": now}
        if step in FINAL_STEPS:
            values["finished_at"] = now
        with self._conn(conn) as c:
            c.execute(update(t).where(t.c.id.in_(ids), t.c.step.in_(ACTIVE_STEPS)).values(**values))

    def start_sending(
        self, ids: int | Iterable[int], now: datetime, *, conn: Connection | None = None
    ) -> None:
        """Durably count sends whose outcome will be unknown until the server answers (I5)."""
        ids = [ids] if isinstance(ids, int) else list(ids)
        if not ids:
            return
        with self._conn(conn) as c:
            c.execute(
                update(t)
                .where(t.c.id.in_(ids), t.c.step.in_(ACTIVE_STEPS))
                .values(step=SENDING, send_attempts=t.c.send_attempts + 1, updated_at=now)
            )

    @contextmanager
    def ledger(self) -> Iterator[SendLedger]:
        """The writes of one mail session, on a connection held for it."""
        with self.store.engine.connect() as c:
            yield SendLedger(c, t, sending_step=SENDING, sent_step=SENT, live=ACTIVE_STEPS)

    def refused(self, job_id: int, now: datetime) -> None:
        """The server refused the send: its outcome is known, so it no longer counts."""
        with self._conn(None) as c:
            c.execute(
                update(t)
                .where(and_(t.c.id == job_id, t.c.send_attempts > 0))
                .values(send_attempts=t.c.send_attempts - 1, updated_at=now)
            )

    def retry_later(self, ids: Iterable[int], *, error: object, next_attempt_at: datetime, now: datetime,
                    conn: Connection | None = None) -> None:
        """Back to pending with a backoff; the next attempt starts with a fresh password."""
        ids = list(ids)
        if not ids:
            return
        with self._conn(conn) as c:
            c.execute(
                update(t)
                .where(t.c.id.in_(ids), t.c.step.in_(ACTIVE_STEPS))
                .values(
                    step=PENDING,
                    send_attempts=0,  # the next attempt has a fresh password: a new I5 budget
                    sms_step=None,
                    sms_attempts=0,
                    attempts=t.c.attempts + 1,
                    last_error=_error_text(error),
                    next_attempt_at=next_attempt_at,
                    updated_at=now,
                )
            )

    def restart(self, ids: Iterable[int], now: datetime, *, conn: Connection | None = None) -> None:
        """Start over (crash before the field was written): pending, due now."""
        ids = list(ids)
        if not ids:
            return
        with self._conn(conn) as c:
            c.execute(
                update(t)
                .where(t.c.id.in_(ids), t.c.step.in_(ACTIVE_STEPS))
                .values(step=PENDING, send_attempts=0, sms_step=None, sms_attempts=0, next_attempt_at=None,
                        updated_at=now)
            )

    # --- the SMS leg (``syncd.flows.credentials.smsleg``) ------------------------------------
    def set_channel(self, ids: Iterable[int], channel: str, now: datetime) -> None:
        ids = list(ids)
        if ids:
            with self._conn(None) as c:
                c.execute(update(t).where(t.c.id.in_(ids)).values(channel=channel, updated_at=now))

    def sms_sending(self, job_id: int, now: datetime) -> None:
        """The SMS's commit point, right before its request leaves: counted, so a crash resends it
        at most once (I5 per channel)."""
        with self._conn(None) as c:
            c.execute(update(t).where(t.c.id == job_id, t.c.step.in_(ACTIVE_STEPS)).values(
                sms_step=SENDING, sms_attempts=t.c.sms_attempts + 1, updated_at=now))

    def sms_done(self, job_id: int, step: str, now: datetime, *, job_sent: bool = False) -> None:
        """The SMS leg ended (``SENT`` or ``FAILED``); ``job_sent``: it was the job's last message,
        so the job is ``sent`` in the same write."""
        values: dict[str, Any] = {"sms_step": step, "updated_at": now}
        if job_sent:
            values["step"] = SENT
        with self._conn(None) as c:
            c.execute(update(t).where(t.c.id == job_id, t.c.step.in_(ACTIVE_STEPS)).values(**values))

    def sms_refused(self, job_id: int, now: datetime) -> None:
        """The provider refused the request: its outcome is known, so it no longer counts."""
        with self._conn(None) as c:
            c.execute(update(t).where(t.c.id == job_id, t.c.sms_attempts > 0).values(
                sms_attempts=t.c.sms_attempts - 1, updated_at=now))

    def fail(self, job_id: int, error: object, now: datetime, *, conn: Connection | None = None) -> None:
        with self._conn(conn) as c:
            c.execute(
                update(t)
                .where(t.c.id == job_id, t.c.step.in_(ACTIVE_STEPS))
                .values(step=FAILED, last_error=_error_text(error), updated_at=now, finished_at=now)
            )

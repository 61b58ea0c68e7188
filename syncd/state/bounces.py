"""Bounces of syncd's mails (``schema.mail_bounces``) and the key of the return-path tags
(``schema.bounce_keys``), for ``[mail.bounces]``.

A hard bounce stays *open* until the address's ERP e-mail differs from ``email`` (``clear``):
while open, the address is not mailed (``blocked_numbers``, ``blocked_emails`` feed the credential
and message runs). ``diagnostic`` goes through the one redaction point like every stored text.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Connection, exists, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from syncd.core import redaction
from syncd.core.text import clip
from syncd.state.db import StateStore
from syncd.state.schema import bounce_keys
from syncd.state.schema import mail_bounces as t

HARD = "hard"
SOFT = "soft"
DIAGNOSTIC_LIMIT = 300


def not_bounced(platform: ColumnElement[str], erp_number: ColumnElement[int]) -> ColumnElement[bool]:
    """A job query's condition: the address has no open hard bounce (the credential run's gate)."""
    return ~exists().where(t.c.platform == platform, t.c.erp_number == erp_number,
                           t.c.severity == HARD, t.c.cleared_at.is_(None))


def not_bounced_recipient(platform: ColumnElement[str], recipient: ColumnElement[str]) -> ColumnElement[bool]:
    """A message query's condition: its recipient has no open hard bounce (stored lower case)."""
    return ~exists().where(t.c.platform == platform, t.c.email == func.lower(recipient),
                           t.c.severity == HARD, t.c.cleared_at.is_(None))


@dataclass(frozen=True)
class Bounce:
    id: int
    platform: str
    erp_number: int | None
    kind: str
    job_id: int
    email: str
    severity: str
    status: str | None
    diagnostic: str | None
    bounced_at: datetime
    cleared_at: datetime | None
    retried_job: int | None


def _bounce(row: object) -> Bounce:
    m = row._mapping  # type: ignore[attr-defined]
    return Bounce(m["id"], m["platform"], None if m["erp_number"] is None else int(m["erp_number"]),
                  m["kind"], m["job_id"], m["email"], m["severity"], m["status"], m["diagnostic"],
                  m["bounced_at"], m["cleared_at"], m["retried_job"])


class Bounces:
    def __init__(self, store: StateStore) -> None:
        self.store = store

    # --- the tag key ----------------------------------------------------------------------
    def tag_key(self, now: datetime, *, create: bool = True) -> bytes | None:
        """The HMAC key of the return-path tags, made on first use (None: none yet, not made)."""
        with self.store.connect() as c:
            found = c.execute(select(bounce_keys.c.key).where(bounce_keys.c.id == 1)).scalar()
        if found is None and create:
            try:
                with self.store.begin() as c:
                    c.execute(insert(bounce_keys).values(id=1, key=secrets.token_hex(32), created_at=now))
            except IntegrityError:
                pass  # another instance made it first: use theirs
            with self.store.connect() as c:
                found = c.execute(select(bounce_keys.c.key).where(bounce_keys.c.id == 1)).scalar()
        return bytes.fromhex(found) if found else None

    # --- recording ------------------------------------------------------------------------
    def record(self, *, platform: str, erp_number: int | None, kind: str, job_id: int, email: str,
               severity: str, status: str | None, diagnostic: str | None, source_id: str,
               now: datetime, also: Callable[[Connection], None] | None = None) -> int | None:
        """The bounce's row id; None when this bounce (source, job) was recorded before.
        ``also(conn)`` writes in the same transaction (the history event: a kill -9 between the
        two would leave the bounce recorded and, read again as a duplicate, its event never written)."""
        text = clip(redaction.redact(diagnostic), DIAGNOSTIC_LIMIT) if diagnostic else None
        values = dict(platform=platform, erp_number=erp_number, kind=kind, job_id=job_id,
                      email=email.strip().lower(), severity=severity, status=status, diagnostic=text,
                      source_id=source_id[:255], bounced_at=now)
        with self.store.begin() as c:
            exists = c.execute(select(t.c.id).where(t.c.source_id == values["source_id"], t.c.kind == kind,
                                                    t.c.job_id == job_id)).first()
            if exists is not None:
                return None
            row_id = int(c.execute(insert(t).values(**values)).inserted_primary_key[0])
            if also is not None:
                also(c)
            return row_id

    def clear(self, bounce_id: int, now: datetime, *, retried_job: int | None) -> None:
        with self.store.begin() as c:
            c.execute(update(t).where(t.c.id == bounce_id, t.c.cleared_at.is_(None))
                      .values(cleared_at=now, retried_job=retried_job))

    # --- reading --------------------------------------------------------------------------
    def open(self, platform: str | None = None) -> list[Bounce]:
        """Hard bounces not cleared yet, oldest first."""
        q = select(t).where(t.c.severity == HARD, t.c.cleared_at.is_(None))
        if platform is not None:
            q = q.where(t.c.platform == platform)
        with self.store.connect() as c:
            return [_bounce(r) for r in c.execute(q.order_by(t.c.id))]

    def open_since(self, platform: str) -> dict[int, datetime]:
        """ERP number -> when its open hard bounce came in (a store not migrated yet: none)."""
        from sqlalchemy.exc import DBAPIError

        try:
            return {b.erp_number: b.bounced_at for b in self.open(platform) if b.erp_number is not None}
        except DBAPIError:
            return {}

    def blocked_numbers(self, platform: str, numbers: Iterable[int] | None = None) -> set[int]:
        """ERP numbers with an open hard bounce."""
        q = select(t.c.erp_number).where(t.c.platform == platform, t.c.severity == HARD,
                                         t.c.cleared_at.is_(None), t.c.erp_number.is_not(None))
        if numbers is not None:
            wanted = [int(n) for n in numbers]
            if not wanted:
                return set()
            q = q.where(t.c.erp_number.in_(wanted))
        with self.store.connect() as c:
            return {int(n) for n in c.execute(q).scalars()}

    def blocked_emails(self, platform: str) -> set[str]:
        """Addresses (lower case) with an open hard bounce on the platform."""
        q = select(t.c.email).where(t.c.platform == platform, t.c.severity == HARD, t.c.cleared_at.is_(None))
        with self.store.connect() as c:
            return set(c.execute(q).scalars())

    def all(self, platform: str | None = None) -> list[Bounce]:
        q = select(t) if platform is None else select(t).where(t.c.platform == platform)
        with self.store.connect() as c:
            return [_bounce(r) for r in c.execute(q.order_by(t.c.id))]

    def of_address(self, platform: str, erp_number: int) -> list[Bounce]:
        q = select(t).where(t.c.platform == platform, t.c.erp_number == int(erp_number)).order_by(t.c.id)
        with self.store.connect() as c:
            return [_bounce(r) for r in c.execute(q)]

    def summary(self, platform: str | None = None) -> tuple[int, int, Bounce | None]:
        """(open hard bounces, soft bounces, the latest open hard bounce) for ``status``."""
        where = [] if platform is None else [t.c.platform == platform]
        with self.store.connect() as c:
            hard = c.execute(select(func.count()).select_from(t).where(
                *where, t.c.severity == HARD, t.c.cleared_at.is_(None))).scalar_one()
            soft = c.execute(select(func.count()).select_from(t).where(
                *where, t.c.severity == SOFT)).scalar_one()
            latest = c.execute(select(t).where(*where, t.c.severity == HARD, t.c.cleared_at.is_(None))
                               .order_by(t.c.id.desc()).limit(1)).first()
        return int(hard), int(soft), (_bounce(latest) if latest is not None else None)

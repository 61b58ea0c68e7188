"""Work leases between syncd instances sharing one state store (spec §3: several instances,
no double work).

A lease is one row ``(name, holder, expires_at)``. Taking it is a single conditional
statement, so the database decides the race, not the instances:

* an UPDATE that succeeds only when the row is expired or already ours
  (PostgreSQL re-checks the WHERE clause on the row it waited for, SQLite runs one writer at
  a time), and
* when there is no row yet, an INSERT whose primary key lets exactly one contender win.

A holder that dies stops renewing; its lease expires after ``ttl`` and the next contender
takes it. Times come from the instance's clock (UTC); leases last minutes, so the seconds of
skew NTP leaves between hosts do not matter.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import structlog
from sqlalchemy import and_, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from syncd.state.schema import leases as leases_table

if TYPE_CHECKING:
    from syncd.state.db import StateStore

log = structlog.get_logger("syncd.leases")


def utcnow() -> datetime:
    return datetime.now(UTC)


def make_holder() -> str:
    """A holder id unique to this process run: host, pid and a random part (a restarted
    process may get the same pid, and must not inherit its predecessor's leases)."""
    return f"{socket.gethostname()[:64]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


@dataclass(frozen=True)
class LeaseInfo:
    name: str
    holder: str
    expires_at: datetime


def _aware(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything this module writes is UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class Leases:
    def __init__(self, store: StateStore, *, clock: Callable[[], datetime] = utcnow) -> None:
        self._store = store
        self._clock = clock

    def acquire(self, name: str, holder: str, ttl: float) -> bool:
        """Take (or extend) lease ``name`` for ``ttl`` seconds; False when another live
        holder has it."""
        if ttl <= 0:
            raise ValueError(f"lease ttl must be positive, got {ttl!r}")
        now = self._clock()
        expires = now + timedelta(seconds=ttl)
        t = leases_table
        with self._store.begin() as conn:
            taken = conn.execute(
                update(t)
                .where(and_(t.c.name == name, or_(t.c.expires_at < now, t.c.holder == holder)))
                .values(holder=holder, expires_at=expires)
            ).rowcount
        if taken:
            return True
        try:
            with self._store.begin() as conn:
                conn.execute(insert(t).values(name=name, holder=holder, expires_at=expires))
        except IntegrityError:
            # The row exists and is live, or a contender inserted it a moment before us.
            return False
        return True

    def renew(self, name: str, holder: str, ttl: float) -> bool:
        """Extend a lease we hold; False when it is no longer ours (it expired and someone
        else took it): the caller must stop working under it."""
        expires = self._clock() + timedelta(seconds=ttl)
        t = leases_table
        with self._store.begin() as conn:
            rows = conn.execute(
                update(t).where(and_(t.c.name == name, t.c.holder == holder)).values(expires_at=expires)
            ).rowcount
        return bool(rows)

    def release(self, name: str, holder: str) -> bool:
        """Give the lease up at once (clean stop, cycle end); only the holder can."""
        t = leases_table
        with self._store.begin() as conn:
            rows = conn.execute(delete(t).where(and_(t.c.name == name, t.c.holder == holder))).rowcount
        return bool(rows)

    def get(self, name: str) -> LeaseInfo | None:
        t = leases_table
        with self._store.begin() as conn:
            row = conn.execute(select(t.c.name, t.c.holder, t.c.expires_at).where(t.c.name == name)).first()
        if row is None:
            return None
        return LeaseInfo(row.name, row.holder, _aware(row.expires_at))

    def holder_of(self, name: str) -> str | None:
        """The live holder of ``name``, or None when free or expired."""
        info = self.get(name)
        if info is None or info.expires_at < self._clock():
            return None
        return info.holder

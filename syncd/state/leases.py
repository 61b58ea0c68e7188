"""Work leases between syncd instances sharing one state store (spec §3: several instances,
no double work), taken over at once from a holder that is provably dead (spec I2).

A lease is two things:

* a **lock that dies with its holder** (``syncd.state.locks``): an OS file lock beside a SQLite
  store, a session-level advisory lock on PostgreSQL. It decides who may work: whoever holds
  it, and nobody else, however long a cycle stalls.
* a **row** ``(name, holder, expires_at)``, renewed while working and deleted on a clean
  release. It says who holds the lease (``syncd status``, logs, metrics), and a row left behind
  tells the next holder that its predecessor died mid-work (sweep first, mark its cycle
  interrupted).

Taking a lease: get the lock (refused: a live holder has it), then look at the row. On SQLite
the free file lock proves the row's holder gone (the kernel released it), so the row is taken
over at once. On PostgreSQL a free advisory lock proves only that the holder's session ended:
it died, or it is alive but was cut off from the server (a partition, a server restart).
The row's holder is taken over at once when it is provably dead (same host, its process gone);
otherwise the row's expiry is the fallback, as before: it is taken once expired.

Within one process a registry excludes holders from each other (a PostgreSQL session lock is
re-entrant, and one process runs several holders: per direction, the sweep, `accounts`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import and_, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from syncd.core.redaction import error_text
from syncd.state.locks import Handle, Process, holder_process, lock_backend, make_holder
from syncd.state.schema import leases as leases_table

if TYPE_CHECKING:
    from syncd.state.db import StateStore

__all__ = ["Grant", "LeaseInfo", "Leases", "make_holder", "utcnow"]

log = structlog.get_logger("syncd.leases")


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class LeaseInfo:
    name: str
    holder: str
    expires_at: datetime


@dataclass(frozen=True)
class Grant:
    """A lease taken. ``previous``: the holder whose row it replaced — one that died (or was
    cut off) without releasing, maybe mid-cycle; None when the lease was free or already ours."""

    previous: str | None = None


@dataclass
class _Held:
    holder: str
    handle: Handle | None  # None while the lock is being taken


# Lock key -> who in this process holds it. Process-wide, like the locks themselves.
_HELD: dict[tuple[Any, ...], _Held] = {}
_HELD_GUARD = threading.Lock()


def _aware(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything this module writes is UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class Leases:
    def __init__(self, store: StateStore, *, clock: Callable[[], datetime] = utcnow) -> None:
        self._store = store
        self._clock = clock
        self._locks = lock_backend(store.engine)

    # --- taking and giving back -------------------------------------------------------------
    def acquire(self, name: str, holder: str, ttl: float) -> bool:
        """Take (or extend) lease ``name`` for ``ttl`` seconds; False when another live
        holder has it."""
        return self.take(name, holder, ttl) is not None

    def take(self, name: str, holder: str, ttl: float) -> Grant | None:
        """``acquire``, telling whom the lease was taken over from (see ``Grant``)."""
        if ttl <= 0:
            raise ValueError(f"lease ttl must be positive, got {ttl!r}")
        key = self._locks.key(name)
        with _HELD_GUARD:
            held = _HELD.get(key)
            if held is not None:
                if held.holder != holder or held.handle is None:
                    return None
                extend = True
            else:
                _HELD[key] = _Held(holder, None)  # reserved: in-process contenders are refused
                extend = False
        if extend:
            self._write_row(name, holder, ttl, insert_if_missing=True)  # we hold the lock: the row is ours
            return Grant()
        handle: Handle | None = None
        try:
            handle = self._locks.try_lock(name)
            if handle is None:
                return None
            grant = self._claim_row(name, holder, ttl)
            if grant is None:
                return None
            with _HELD_GUARD:
                _HELD[key].handle = handle
            handle = None  # kept
            return grant
        finally:
            if handle is not None:
                handle.close()
            with _HELD_GUARD:
                if _HELD.get(key) is not None and _HELD[key].handle is None:
                    del _HELD[key]

    def _claim_row(self, name: str, holder: str, ttl: float) -> Grant | None:
        """Under the lock: make the row ours. None when the row's holder may still be alive
        and only its expiry can settle it (PostgreSQL, see the module text)."""
        row = self.get(name)
        previous = None
        if row is not None and row.holder != holder:
            if (not self._locks.authoritative and row.expires_at >= self._clock()
                    and holder_process(row.holder) is not Process.DEAD):
                log.info("lease free but its holder may be alive elsewhere; waiting for its expiry",
                         lease=name, holder=row.holder, expires_at=row.expires_at.isoformat())
                return None
            previous = row.holder
        if not self._write_row(name, holder, ttl, insert_if_missing=True):
            return None
        return Grant(previous)

    def _write_row(self, name: str, holder: str, ttl: float, *, insert_if_missing: bool = False) -> bool:
        expires = self._clock() + timedelta(seconds=ttl)
        t = leases_table
        with self._store.begin() as conn:
            stmt = update(t).where(t.c.name == name)
            if not insert_if_missing:
                stmt = stmt.where(t.c.holder == holder)
            if conn.execute(stmt.values(holder=holder, expires_at=expires)).rowcount:
                return True
        try:
            with self._store.begin() as conn:
                conn.execute(insert(t).values(name=name, holder=holder, expires_at=expires))
        except IntegrityError:
            return False  # written meanwhile by something that does not take the lock
        return True

    def renew(self, name: str, holder: str, ttl: float) -> bool:
        """Extend a lease we hold; False when it is no longer ours: the caller must stop
        working under it. A PostgreSQL lock whose session was lost (server restart) is taken
        again when still free."""
        key = self._locks.key(name)
        with _HELD_GUARD:
            held = _HELD.get(key)
        if held is None or held.holder != holder or held.handle is None:
            return False
        if not held.handle.check():
            again = self._locks.try_lock(name)
            if again is None:
                log.error("lease lock lost with its database session; another holder has it", lease=name)
                return False
            with _HELD_GUARD:
                stale, held.handle = held.handle, again
            stale.close()
            log.warning("lease lock re-taken after its database session was lost", lease=name)
        expires = self._clock() + timedelta(seconds=ttl)
        t = leases_table
        with self._store.begin() as conn:
            rows = conn.execute(
                update(t).where(and_(t.c.name == name, t.c.holder == holder)).values(expires_at=expires)
            ).rowcount
        return bool(rows)

    def release(self, name: str, holder: str) -> bool:
        """Give the lease up at once (clean stop, cycle end); only the holder can."""
        key = self._locks.key(name)
        with _HELD_GUARD:
            held = _HELD.get(key)
            if held is not None and (held.holder != holder or held.handle is None):
                held = None
            if held is not None:
                del _HELD[key]
        t = leases_table
        try:
            # The row goes first, while the lock is still held: the next holder must not find it
            # and take us for dead.
            with self._store.begin() as conn:
                rows = conn.execute(delete(t).where(and_(t.c.name == name, t.c.holder == holder))).rowcount
        finally:
            if held is not None and held.handle is not None:
                held.handle.close()
        return bool(rows) or held is not None

    # --- reading --------------------------------------------------------------------------
    def get(self, name: str) -> LeaseInfo | None:
        t = leases_table
        with self._store.connect() as conn:  # a read: on SQLite no write lock
            row = conn.execute(select(t.c.name, t.c.holder, t.c.expires_at).where(t.c.name == name)).first()
        if row is None:
            return None
        return LeaseInfo(row.name, row.holder, _aware(row.expires_at))

    def holder_of(self, name: str) -> str | None:
        """The live holder of ``name``, or None when free, expired or its holder is dead."""
        info = self.get(name)
        if info is None or not self.is_alive(name, info.holder):
            return None
        return info.holder

    def is_alive(self, name: str, holder: str) -> bool:
        """Does ``holder`` still hold lease ``name``, judged as ``take`` would? Read-only: never
        touches the lock (a probe could make a daemon's cycle miss it)."""
        key = self._locks.key(name)
        with _HELD_GUARD:
            held = _HELD.get(key)
        if held is not None:
            return held.holder == holder
        process = holder_process(holder)
        if process is Process.DEAD:
            return False
        locked = self._locks.is_locked(name)
        if locked is False and self._locks.authoritative:
            return False
        info = self.get(name)
        if info is None or info.holder != holder:
            return False
        if locked is True or (process is Process.ALIVE and self._locks.authoritative):
            return True
        # A free PostgreSQL lock whose holder may live elsewhere, or a lock that cannot be
        # queried: the row's expiry, as for ``take``.
        return info.expires_at >= self._clock()


def lease_name(platform: str, direction: str) -> str:
    return f"{platform}/{direction}"


class LeaseKeeper:
    """Renews a lease in the background while a cycle runs (every third of its ttl): the row's
    expiry is what another host waits for when it cannot prove us dead. A lost lease (the
    PostgreSQL session holding its lock ended and another instance took it) is logged as an
    error: the cycle cannot be stopped half-way safely, but the operator must know."""

    def __init__(self, leases: Leases, name: str, holder: str, ttl: float) -> None:
        self._leases, self._name, self._holder, self._ttl = leases, name, holder, ttl
        self._stop = threading.Event()
        self.lost = False
        self._thread = threading.Thread(target=self._loop, name=f"lease:{name}", daemon=True)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(self._ttl / 3):
            try:
                if not self._leases.renew(self._name, self._holder, self._ttl):
                    self.lost = True
                    log.error("lease lost while working", lease=self._name, holder=self._holder)
                    return
            except Exception as exc:  # the store may be briefly unreachable; try again next tick
                log.warning("lease renewal failed", lease=self._name, error=error_text(exc))

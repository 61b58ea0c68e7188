"""Locks that die with their holder, under the work leases (``syncd.state.leases``).

A lease row alone cannot tell a dead holder from a live one until it expires: a SIGKILLed
daemon restarted at once would idle for ``lease_ttl``. These locks can, because something
outside the holder releases them the moment it dies:

* SQLite (one host): an OS file lock (``flock`` through the ``filelock`` library) on a file
  beside the state database; the kernel releases it when the process ends, however it ends.
* PostgreSQL: a session-level advisory lock held on a connection of its own, kept open while
  holding; the server releases it when that connection closes (the holder's kernel closes the
  socket of a killed process). Keys are derived from database, schema and lease name, so
  state stores sharing one server never collide.
* An in-memory SQLite store lives in one process: the lease registry alone excludes.

``holder_process`` answers the other question a takeover asks: is the process named by a
holder id (``host:pid:start:random``) provably gone? Only on this host, through ``psutil``
(pid gone, or reused by a process started later).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import socket
import threading
import uuid
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import psutil
import structlog
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.pool import NullPool

log = structlog.get_logger("syncd.locks")


# --- holder ids and their processes -----------------------------------------------------------

def _host() -> str:
    return socket.gethostname()[:64].replace(":", "_")


def _started(pid: int) -> int:
    return int(psutil.Process(pid).create_time())


def make_holder() -> str:
    """A holder id unique to this process run: host, pid, the process's start time (so a
    reused pid is not mistaken for the holder) and a random part."""
    return f"{_host()}:{os.getpid()}:{_started(os.getpid())}:{uuid.uuid4().hex[:12]}"


_HOLDER = re.compile(r"^(?P<host>[^:]+):(?P<pid>\d+):(?P<start>\d+):[0-9a-f]{12}(?::|$)")


class Process(StrEnum):
    ALIVE = "alive"
    DEAD = "dead"
    UNKNOWN = "unknown"  # another host, or a holder id without pid and start time


def holder_process(holder: str) -> Process:
    """Whether the process behind ``holder`` still runs, as far as this host can prove."""
    m = _HOLDER.match(holder or "")
    if m is None or m["host"] != _host():
        return Process.UNKNOWN
    try:
        started = _started(int(m["pid"]))
    except psutil.NoSuchProcess:
        return Process.DEAD
    except psutil.Error:  # e.g. access denied: it exists
        return Process.ALIVE
    # create_time is a float rounded differently on some platforms: allow a second.
    return Process.ALIVE if abs(started - int(m["start"])) <= 1 else Process.DEAD


# --- the lock backends ------------------------------------------------------------------------

class Handle(Protocol):
    def check(self) -> bool:
        """Still held (PostgreSQL: the session is alive)."""

    def close(self) -> None:
        """Give the lock up."""


class LockBackend(Protocol):
    authoritative: bool  # a free lock proves the last holder gone (no row-expiry fallback)

    def key(self, name: str) -> tuple[Any, ...]: ...

    def try_lock(self, name: str) -> Handle | None: ...

    def is_locked(self, name: str) -> bool | None:
        """Held by anyone, found without touching it; None when that cannot be told."""


class _Nothing:
    def check(self) -> bool:
        return True

    def close(self) -> None:
        pass


class MemoryLocks:
    """In-memory SQLite: one process, the lease registry is the lock."""

    authoritative = True

    def __init__(self, engine: Engine) -> None:
        self._id = id(engine)

    def key(self, name: str) -> tuple[Any, ...]:
        return ("memory", self._id, name)

    def try_lock(self, name: str) -> Handle | None:
        return _Nothing()

    def is_locked(self, name: str) -> bool | None:
        return False  # the registry (checked first) knows every holder


class _FileHandle:
    def __init__(self, lock: Any) -> None:
        self._lock = lock

    def check(self) -> bool:
        return True  # a kernel lock is not lost while the process lives

    def close(self) -> None:
        self._lock.release(force=True)


class FileLocks:
    """``flock`` on ``<state db>.lease-<name>.lock`` beside the state database."""

    authoritative = True

    def __init__(self, database: Path) -> None:
        # filelock logs every acquire and release at DEBUG: noise at each cycle of a debug log.
        if logging.getLogger("filelock").level == logging.NOTSET:
            logging.getLogger("filelock").setLevel(logging.WARNING)
        self._folder = database.resolve().parent
        self._stem = database.name

    def path(self, name: str) -> Path:
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:48]
        digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:8]
        return self._folder / f"{self._stem}.lease-{slug}-{digest}.lock"

    def key(self, name: str) -> tuple[Any, ...]:
        return ("file", str(self.path(name)))

    def try_lock(self, name: str) -> Handle | None:
        from filelock import FileLock, Timeout

        # No soft fallback: a marker file is not released by a dying process, which is the
        # whole point. The file stays on release so every contender locks the same inode.
        lock = FileLock(self.path(name), timeout=0, mode=0o600, thread_local=False,
                        fallback_to_soft=False, preserve_lock_file=True)
        try:
            lock.acquire()
        except Timeout:
            return None
        return _FileHandle(lock)

    def is_locked(self, name: str) -> bool | None:
        return None  # flock cannot be queried without taking it; holder_process decides


class _PgHandle:
    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self._mutex = threading.Lock()  # the keeper thread checks while another thread may close

    def check(self) -> bool:
        with self._mutex:
            if self._conn is None:
                return False
            try:
                self._conn.execute(text("SELECT 1"))
            except DBAPIError:
                return False
            return True

    def close(self) -> None:
        with self._mutex:
            conn, self._conn = self._conn, None
        if conn is not None:
            try:
                # Released now: the server ends a closed session's backend (and its locks) only
                # a moment after the socket closes, so this process's next try_lock of the same
                # lease (the cycle right after the start-up sweep) could find it still taken.
                conn.execute(text("SELECT pg_advisory_unlock_all()"))
            except SQLAlchemyError:  # the session is gone already (and its locks with it)
                pass
            try:
                conn.close()  # NullPool: the session ends
            except DBAPIError:
                pass


# The server drops a vanished peer's session (and its locks) after about idle + interval*count.
_KEEPALIVES = {"tcp_keepalives_idle": "30", "tcp_keepalives_interval": "10", "tcp_keepalives_count": "3"}


class PgAdvisoryLocks:
    """``pg_try_advisory_lock`` on a dedicated connection per held lease."""

    authoritative = False  # a free lock may also mean the holder's session was cut (partition)

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._lock_engine: Engine | None = None
        self._ident: tuple[str, str] | None = None
        self._server = f"{engine.url.host}:{engine.url.port}"

    def _identity(self) -> tuple[str, str]:
        if self._ident is None:
            with self._engine.connect() as conn:
                db, schema = conn.execute(text("SELECT current_database(), current_schema()")).one()
            self._ident = (str(db), str(schema))
        return self._ident

    def lock_id(self, name: str) -> int:
        db, schema = self._identity()
        digest = hashlib.blake2b(f"syncd-lease\0{db}\0{schema}\0{name}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big", signed=True)

    def key(self, name: str) -> tuple[Any, ...]:
        return ("pg", self._server, *self._identity(), name)

    def _locker(self) -> Engine:
        if self._lock_engine is None:
            self._lock_engine = create_engine(self._engine.url, poolclass=NullPool,
                                              isolation_level="AUTOCOMMIT")
        return self._lock_engine

    def try_lock(self, name: str) -> Handle | None:
        lock_id = self.lock_id(name)
        conn = self._locker().connect()
        try:
            conn.execute(text("SELECT set_config('application_name', :v, false)"),
                         {"v": f"syncd lease {name}"[:63]})
            for key, value in _KEEPALIVES.items():
                conn.execute(text("SELECT set_config(:k, :v, false)"), {"k": key, "v": value})
            got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": lock_id}).scalar_one()
        except BaseException:
            conn.close()
            raise
        if not got:
            conn.close()
            return None
        return _PgHandle(conn)

    def is_locked(self, name: str) -> bool | None:
        unsigned = self.lock_id(name) & 0xFFFF_FFFF_FFFF_FFFF
        with self._engine.connect() as conn:
            return bool(conn.execute(
                text("SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted "
                     "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                     "AND classid::bigint = :hi AND objid::bigint = :lo AND objsubid = 1)"),
                {"hi": unsigned >> 32, "lo": unsigned & 0xFFFF_FFFF},
            ).scalar_one())


def lock_backend(engine: Engine) -> LockBackend:
    url = engine.url
    backend = url.get_backend_name()
    if backend == "postgresql":
        return PgAdvisoryLocks(engine)
    if backend == "sqlite":
        database = url.database
        if not database or database == ":memory:" or url.query.get("mode") == "memory":
            return MemoryLocks(engine)
        return FileLocks(Path(database))
    raise ValueError(f"no lock backend for state stores of type {backend!r}")

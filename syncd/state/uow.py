"""The unit of work: one state transaction that a flow's batch writes through.

    with SqlUnitOfWork(store, clock) as uow:
        uow.links.upsert_many(new_links)
        uow.jobs.create(..., now=uow.clock())
        uow.commit()              # both, or (exception, no commit) neither

The repositories of a unit (``links``, ``jobs``, ``failures``, ``cursors``, ``allocations``,
``intents``, ``history``, ``messages``, ``approvals``, and ``drift``, which lives in ``cursors``)
are the ordinary ones, built over a
``BoundStore``: the state store seen from inside the unit, so every read sees the unit's own
writes and every write joins its transaction. Leaving the ``with``
block without ``commit()`` rolls back. After ``commit()`` the unit may go on; the next statement
starts a new transaction.

After a repository call raised, leave the unit (it rolls back): on PostgreSQL a failed
statement aborts the whole transaction. To catch a failure and go on (a unique index refusing
a link), run the call in ``with uow.savepoint():``, which undoes just that call. Savepoints
cost a round trip each, so they are opt-in; only ``allocations`` uses one per call, because its
compare-and-set loop retries after losing a race. A number reserved in a unit is reserved when
the unit commits: should the unit roll back after the ERP took the number, the ERP reports it
as taken next time and ``syncd.flows.numbers`` moves on to the next one.

A unit holds the SQLite write lock from ``__enter__`` to its commit or exit: open it around
state work, not around a shop or ERP call, or the other direction's cycle waits on the lock;
and inside it write only through the unit's repositories: a write (or any ``CredentialJobs``
call, whose reads also take the lock) through one built over the store itself waits for the
unit until the busy timeout.
``tests/support/fakes/state.py`` has the in-memory ``FakeUnitOfWork``; ``tests/unit/test_state_contract.py``
runs the same tests on both.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Protocol, Self

from sqlalchemy import Connection

from syncd.core.clock import Clock, utcnow
from syncd.state.allocations import Allocations
from syncd.state.approvals import Approvals
from syncd.state.cursors import Cursors
from syncd.state.db import StateStore
from syncd.state.drift import DriftReports
from syncd.state.failures import Failures
from syncd.state.history import History
from syncd.state.intents import CreateIntents
from syncd.state.jobs import CredentialJobs
from syncd.state.links import Links
from syncd.state.messages import Messages
from syncd.state.reminders import Reminders
from syncd.state.tombstones import Tombstones


class UnitOfWork(Protocol):
    """What a flow needs of its state: the repositories and one transaction around them."""

    links: Links
    jobs: CredentialJobs
    failures: Failures
    cursors: Cursors
    allocations: Allocations
    intents: CreateIntents
    drift: DriftReports
    history: History
    messages: Messages
    approvals: Approvals
    clock: Clock

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None:
        """Roll back what was not committed."""

    def commit(self) -> None: ...

    def rollback(self) -> None: ...

    def savepoint(self) -> AbstractContextManager[None]:
        """Undo only the block's writes when it raises (the exception still propagates)."""
        ...


class BoundStore(StateStore):
    """A state store whose every connection is the unit's: ``connect()`` (reads) and ``begin()``/
    ``write()`` (writes) yield it, writes in a savepoint of their own with ``savepoints=True``.
    Repositories take it in place of the store and need no change."""

    def __init__(self, store: StateStore, conn: Connection, *, savepoints: bool = False) -> None:
        super().__init__(store.engine, store.url)
        self.conn = conn
        self.savepoints = savepoints

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        if self.savepoints:
            with self.conn.begin_nested():
                yield self.conn
        else:
            yield self.conn

    def write(self, conn: Connection | None = None) -> AbstractContextManager[Connection]:
        return nullcontext(conn) if conn is not None else self.begin()

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        yield self.conn

    def close(self) -> None:
        """Nothing to close: the engine belongs to the store, the connection to the unit."""


class SqlUnitOfWork:
    """A ``UnitOfWork`` on the state store. Not thread-safe: one unit per thread."""

    links: Links
    jobs: CredentialJobs
    failures: Failures
    cursors: Cursors
    allocations: Allocations
    intents: CreateIntents
    drift: DriftReports
    history: History
    messages: Messages
    approvals: Approvals
    reminders: Reminders

    def __init__(self, store: StateStore, clock: Clock = utcnow) -> None:
        self.store = store
        self.clock = clock
        self._conn: Connection | None = None

    def __enter__(self) -> Self:
        if self._conn is not None:
            raise RuntimeError("this unit of work is already open")
        conn = self.store.engine.connect()
        try:
            conn.begin()  # on SQLite: BEGIN IMMEDIATE, the write lock up front like store.begin()
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        bound = BoundStore(self.store, conn)
        self.links = Links(bound, clock=self.clock)
        self.jobs = CredentialJobs(bound)
        self.failures = Failures(bound, clock=self.clock)
        self.cursors = Cursors(bound, clock=self.clock)
        self.allocations = Allocations(BoundStore(self.store, conn, savepoints=True))
        self.intents = CreateIntents(bound, self.clock)
        self.drift = DriftReports.over(self.cursors)
        self.history = History(bound, self.clock)
        self.messages = Messages(bound)
        self.approvals = Approvals(bound)
        self.reminders = Reminders(bound)
        self.tombstones = Tombstones(bound)
        return self

    def __exit__(self, *exc: object) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.rollback()  # nothing to undo after commit()
        finally:
            conn.close()

    def commit(self) -> None:
        self._open().commit()

    def rollback(self) -> None:
        self._open().rollback()

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        with self._open().begin_nested():
            yield

    def _open(self) -> Connection:
        if self._conn is None:
            raise RuntimeError("the unit of work is not open (use it in a with block)")
        return self._conn

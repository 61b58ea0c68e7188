"""Opening the state store: engine, SQLite hardening, migrations.

SQLite (the default) gets its file created with mode 0600 before SQLAlchemy opens it, WAL,
``synchronous=NORMAL``, foreign keys and a busy timeout on every connection, and real
transactions: ``begin()`` takes the write lock up front (``BEGIN IMMEDIATE``) so two writers
queue on the busy timeout instead of failing half-way.

PostgreSQL: any ``postgresql+psycopg://`` URL. To keep the state in its own schema, put it
first on the search path in the URL: ``...?options=-csearch_path%3Dsyncd`` (the schema must
exist). Migrations of several instances starting at once are serialised by an advisory lock.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any, TypeVar

import structlog
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, Table, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from syncd.core.errors import AccessError, ConfigError, SyncdError, whoami

T = TypeVar("T")
log = structlog.get_logger("syncd.state")

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# Arbitrary but fixed: every syncd instance on one PostgreSQL agrees on it.
_PG_MIGRATION_LOCK = 0x5D_0C_57_A7E
_SQLITE_BUSY_MS = 5000


class StateStoreError(SyncdError):
    """The state store cannot be opened or migrated (exit 1: a runtime problem, not config)."""


class StateStore:
    """One engine over the state database. Repositories (``syncd.state.links`` ...) take it."""

    def __init__(self, engine: Engine, url: str) -> None:
        self.engine = engine
        self.url = url

    @property
    def dialect_name(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A connection in a write transaction: committed on success, rolled back on error.

        Do not open a second ``begin()`` while holding one in the same thread: on SQLite the
        inner one waits for the outer one's write lock until the busy timeout. Pass ``conn``
        to the repository call instead where it accepts one."""
        with self.engine.begin() as conn:
            yield conn

    def write(self, conn: Connection | None = None) -> AbstractContextManager[Connection]:
        """``conn`` when the caller already holds a transaction (so several repository calls
        commit together), else a new ``begin()``."""
        return nullcontext(conn) if conn is not None else self.begin()

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """A connection for reads (on SQLite its transactions do not take the write lock)."""
        with self.engine.connect() as conn:
            yield conn.execution_options(syncd_read_only=True)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"StateStore({make_url(self.url).render_as_string(hide_password=True)!r})"


def open_state(url: str, *, migrate: bool = True, echo: bool = False) -> StateStore:
    """Open (and by default migrate to the newest schema) the state store at ``url``."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(
            "not a database URL", key="daemon.state_url", value=url,
            allowed="an SQLAlchemy URL such as sqlite:////var/lib/syncd/state.db",
        ) from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        engine = _sqlite_engine(parsed, echo=echo, writing=migrate)
    elif backend == "postgresql":
        engine = create_engine(parsed, echo=echo, pool_pre_ping=True, future=True)
    else:
        raise ConfigError(
            f"unsupported state store backend {backend!r}", key="daemon.state_url",
            value=parsed.render_as_string(hide_password=True), allowed="sqlite or postgresql URLs",
        )
    store = StateStore(engine, url)
    if migrate:
        try:
            migrate_store(store)
        except Exception:
            store.close()
            raise
    return store


def _sqlite_engine(parsed: Any, *, echo: bool, writing: bool = True) -> Engine:
    database = parsed.database
    in_memory = not database or database == ":memory:" or parsed.query.get("mode") == "memory"
    kwargs: dict[str, Any] = {"echo": echo}
    if in_memory:
        # One shared connection, or every checkout would see its own empty database.
        kwargs.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
    else:
        _create_private_file(Path(database), writing=writing)
        kwargs.update(connect_args={"timeout": _SQLITE_BUSY_MS / 1000})
    engine = create_engine(parsed, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Driver-level autocommit: SQLAlchemy's "begin" hook below issues BEGIN itself, so
        # DDL and reads are inside real transactions too (pysqlite would otherwise skip them).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        try:
            if not in_memory:
                cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_MS}")
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        read_only = conn.get_execution_options().get("syncd_read_only", False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


def _state_hint(path: Path) -> str:
    return (f"syncd runs as {whoami()}: make {path.parent} writable for that user (e.g. chown syncd "
            f"{path.parent}; the systemd unit's StateDirectory= does this), or point [daemon] state_url "
            "at a folder it may write")


def _create_private_file(path: Path, *, writing: bool = True) -> None:
    """Create the database file 0600 (and its folder 0700) before SQLite does it with the
    process umask: the store holds customer e-mail addresses.

    ``writing``: the store is opened to be written (and migrated): its folder must be writable
    too, for SQLite's journal files and the lease lock files beside it; checked here, so an
    unwritable folder is one clear error (exit 2), not an "unable to open database file" from
    somewhere inside a cycle."""
    path = path.expanduser()
    try:
        if not path.parent.exists():
            path.parent.mkdir(parents=True, mode=0o700, exist_ok=True)
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
        os.close(fd)
    except OSError as exc:
        raise AccessError.from_os(path, "open the state database", exc, _state_hint(path)) from None
    if writing and not os.access(path.parent, os.W_OK | os.X_OK):
        raise AccessError(path.parent, "write the state folder", "permission denied", _state_hint(path))


_migrate_lock = threading.Lock()


def alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revisions() -> set[str]:
    return set(ScriptDirectory.from_config(alembic_config()).get_heads())


def current_revisions(store: StateStore) -> set[str]:
    with store.connect() as conn:
        return set(MigrationContext.configure(conn).get_current_heads())


def migrate_store(store: StateStore) -> None:
    """Bring the schema to the newest revision. Safe when several processes start at once:
    PostgreSQL holds an advisory lock for the transaction, SQLite's BEGIN IMMEDIATE makes the
    second process wait; either then finds the schema current and does nothing."""
    heads = head_revisions()
    try:
        with _migrate_lock, store.begin() as conn:
            if store.dialect_name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
            current = set(MigrationContext.configure(conn).get_current_heads())
            if current == heads:
                return
            unknown = current - _all_revisions()
            if unknown:
                raise StateStoreError(
                    f"the state store was migrated by a newer syncd (revision {', '.join(sorted(unknown))}); "
                    "upgrade syncd or point [daemon] state_url elsewhere"
                )
            log.info("state store migrating", current=sorted(current), target=sorted(heads))
            command.upgrade(alembic_config(conn), "heads")
    except SQLAlchemyError as exc:
        raise StateStoreError(f"cannot migrate the state store: {exc}") from exc


def _all_revisions() -> set[str]:
    script = ScriptDirectory.from_config(alembic_config())
    return {rev.revision for rev in script.walk_revisions()}


# --- helpers shared by the repositories --------------------------------------------------

def upsert(
    conn: Connection,
    table: Table,
    rows: Sequence[Mapping[str, Any]] | Mapping[str, Any],
    *,
    keys: Sequence[str],
    update: Mapping[str, Any] | Sequence[str],
) -> None:
    """INSERT ... ON CONFLICT (keys) DO UPDATE on SQLite and PostgreSQL.

    ``update`` lists the columns to take from the new row, or maps a column to a value or to a
    callable that receives ``excluded`` (the new row) and returns an SQL expression."""
    dialect = conn.dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - open_state refuses other backends
        raise StateStoreError(f"upsert not supported on {dialect}")
    stmt = insert(table)
    if isinstance(update, Mapping):
        values = {col: (expr(stmt.excluded) if callable(expr) else expr) for col, expr in update.items()}
    else:
        values = {col: stmt.excluded[col] for col in update}
    stmt = stmt.on_conflict_do_update(index_elements=list(keys), set_=values)
    conn.execute(stmt, rows if isinstance(rows, Sequence) else [rows])


def chunked(items: Iterable[T], size: int = 500) -> Iterator[list[T]]:
    """Bounded IN-lists: SQLite limits bound parameters, PostgreSQL plans big lists badly."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def probe_state(url: str) -> tuple[bool, str]:
    """For `syncd check`: can the store be opened and migrated? Changes nothing: a SQLite file
    that does not exist yet is not created, a schema that is behind is not migrated."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return False, f"not a database URL: {url!r}"
    safe = parsed.render_as_string(hide_password=True)
    backend = parsed.get_backend_name()
    note = ""
    if backend not in ("sqlite", "postgresql"):
        return False, f"unsupported backend {backend!r} in {safe}; use sqlite or postgresql"
    if backend == "sqlite":
        database = parsed.database
        if not database or database == ":memory:":
            return True, "in-memory SQLite (state is lost at exit)"
        path = Path(database).expanduser()
        if not path.exists():
            ancestor = path.parent
            while not ancestor.exists() and ancestor != ancestor.parent:
                ancestor = ancestor.parent
            if not os.access(ancestor, os.W_OK | os.X_OK):
                return False, f"{path} does not exist and {ancestor} is not writable for this user"
            return True, f"{path} will be created (mode 0600) on first start"
        if not os.access(path, os.R_OK | os.W_OK):
            return False, f"{path} is not readable and writable for this user"
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            note = f"; note: readable by other users (mode {oct(mode)}), consider chmod 600"
    try:
        engine = create_engine(parsed, poolclass=StaticPool) if backend == "sqlite" else create_engine(parsed)
        try:
            with engine.connect() as conn:
                current = set(MigrationContext.configure(conn).get_current_heads())
        finally:
            engine.dispose()
    except SQLAlchemyError as exc:
        return False, f"cannot open {safe}: {str(exc).splitlines()[0]}"
    heads = head_revisions()
    if current == heads:
        return True, f"{safe}: schema current ({', '.join(sorted(heads))}){note}"
    unknown = current - _all_revisions()
    if unknown:
        return False, f"{safe} was migrated by a newer syncd (revision {', '.join(sorted(unknown))})"
    before = ", ".join(sorted(current)) or "empty"
    return True, f"{safe}: schema {before}, migrated to {', '.join(sorted(heads))} on start{note}"

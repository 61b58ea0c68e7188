"""Real-database test helpers.

``pg_url()`` / ``mariadb_url()`` return the server URL from the environment. Unset: the test is
skipped and says which variable to set. Set but unreachable: the test fails when
``SYNCD_REQUIRE_REALDB=1`` (CI), otherwise it is skipped with the connection error.

Several engineers and CI jobs share these databases: name every table/schema with
``unique_name()`` and drop it afterwards; never drop the database.
"""

from __future__ import annotations

import contextlib
import functools
import os
import uuid
from collections.abc import Iterator

import pytest

PG_ENV = "SYNCD_TEST_PG_URL"
MARIADB_ENV = "SYNCD_TEST_MARIADB_URL"
REQUIRE_ENV = "SYNCD_REQUIRE_REALDB"


def unique_name(prefix: str = "t") -> str:
    """A lower-case identifier safe for tables and schemas on every backend (<= 63 chars)."""
    clean = "".join(c if c.isalnum() else "_" for c in prefix.lower())[:40]
    return f"{clean}_{uuid.uuid4().hex[:12]}"


def _required() -> bool:
    return os.environ.get(REQUIRE_ENV, "").strip() not in ("", "0", "false", "no")


@functools.cache
def _probe(url: str) -> str | None:
    """None when the server answers, else the error text. Cached: one probe per run."""
    from sqlalchemy import create_engine, text

    try:
        engine = create_engine(url, pool_pre_ping=False)
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        finally:
            engine.dispose()
    except Exception as exc:  # any driver error means "not reachable" here
        return f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
    return None


def _url(env: str, what: str) -> str:
    url = os.environ.get(env, "").strip()
    if not url:
        pytest.skip(f"{env} unset: no {what} server configured for real-database tests")
    error = _probe(url)
    if error is not None:
        message = f"{what} at ${env} unreachable: {error}"
        if _required():
            pytest.fail(f"{message} ({REQUIRE_ENV}=1 makes real-database tests mandatory)")
        pytest.skip(message)
    return url


def pg_url() -> str:
    return _url(PG_ENV, "PostgreSQL")


def mariadb_url() -> str:
    return _url(MARIADB_ENV, "MariaDB")


@contextlib.contextmanager
def pg_schema_url(prefix: str = "syncd_state") -> Iterator[str]:
    """A PostgreSQL URL whose search path is a fresh schema, dropped (CASCADE) afterwards:
    what a test needs to put a whole state store on the shared server."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    base = pg_url()
    schema = unique_name(prefix)
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@contextlib.contextmanager
def state_store(kind: str, folder) -> Iterator:
    """A migrated state store of ``kind`` ("sqlite": a file in ``folder``; "postgresql": a fresh
    schema on the shared server, as several instances would share it), closed afterwards."""
    from syncd.state.db import open_state

    with contextlib.ExitStack() as stack:
        url = (f"sqlite:///{folder / 'state.db'}" if kind == "sqlite"
               else stack.enter_context(pg_schema_url()))
        store = open_state(url)
        stack.callback(store.close)
        yield store

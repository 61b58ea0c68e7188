"""The one URL-driven engine factory of the ERP connector, and the mapping of driver errors to
the project's error types.

Any SQLAlchemy URL works; ODBC through pyodbc is the reference path (``mssql+pyodbc``,
``mysql+pyodbc``, also with ``?odbc_connect=<ODBC connection string>``). The password comes
resolved from the caller and is put into the URL or the ODBC string here, never logged:
``hide_parameters`` keeps bound values (a generated password!) out of every exception text.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

import structlog
from sqlalchemy import create_engine, event, exc
from sqlalchemy.engine import URL, Engine, make_url

from syncd.connectors.erp import odbc
from syncd.core import redaction
from syncd.core.errors import ConfigError, PermanentError, TransientError
from syncd.core.retry import call_with_retry
from syncd.core.text import clip

T = TypeVar("T")
log = structlog.get_logger("syncd.erp")

# SQLSTATE classes that are about the connection or the server being busy, not the statement.
_TRANSIENT_SQLSTATE = re.compile(r"^(08|40|53|57P|HYT)")
_TRANSIENT_TEXT = re.compile(
    r"(server has gone away|lost connection|connection (was )?(closed|reset|refused|terminated)|"
    r"terminating connection|could not connect|timeout expired|timed out|database is locked|"
    r"deadlock|communication link failure|server closed the connection|broken pipe|"
    r"can't connect|connection not open|too many connections)",
    re.IGNORECASE,
)


def _odbc_quote(value: str) -> str:
    return "{" + value.replace("}", "}}") + "}"


def url_with_password(url: str, password: str | None) -> URL:
    """Parse ``url`` and put ``password`` where its driver expects it."""
    try:
        parsed = make_url(url)
    except Exception as e:  # sqlalchemy raises ArgumentError with the text it could not parse
        raise ConfigError(f"not a SQLAlchemy URL: {e}", key="erp.url") from None
    if not password:
        return parsed
    odbc = parsed.query.get("odbc_connect")
    if odbc is not None:
        if isinstance(odbc, tuple):
            odbc = odbc[-1]
        parts = [p for p in odbc.split(";") if p.strip() and p.split("=", 1)[0].strip().upper() != "PWD"]
        parts.append("PWD=" + _odbc_quote(password))
        return parsed.update_query_dict({"odbc_connect": ";".join(parts)})
    return parsed.set(password=password)


def display_url(url: URL) -> str:
    """The URL for messages: password hidden, also inside an ``odbc_connect`` string."""
    odbc = url.query.get("odbc_connect")
    if odbc is not None:
        if isinstance(odbc, tuple):
            odbc = odbc[-1]
        masked = re.sub(r"(?i)(PWD|PASSWORD)=(\{(?:[^}]|\}\})*\}|[^;]*)", r"\1=***", odbc)
        url = url.update_query_dict({"odbc_connect": masked})
    return redaction.redact(url.render_as_string(hide_password=True))


def _connect_args(url: URL, timeout: float) -> dict[str, Any]:
    """Connect timeout in the form each driver wants; unknown drivers get none."""
    seconds = max(1, int(round(timeout)))
    driver = url.get_driver_name()
    backend = url.get_backend_name()
    if driver == "pyodbc":
        return {"timeout": seconds}
    if driver in ("psycopg", "psycopg2", "pg8000") or backend == "postgresql":
        return {"connect_timeout": seconds}
    if driver in ("pymysql", "mysqldb", "mariadbconnector"):
        return {"connect_timeout": seconds}
    if backend == "sqlite":
        return {"timeout": seconds}  # busy timeout: how long to wait for another writer
    return {}


def build_engine(
    url: str, *, password: str | None = None, pool_size: int = 5, connect_timeout: float = 15.0
) -> Engine:
    redaction.register(password)
    parsed = url_with_password(url, password)
    kwargs: dict[str, Any] = {
        "pool_pre_ping": True,
        "hide_parameters": True,
        "connect_args": _connect_args(parsed, connect_timeout),
    }
    if parsed.get_backend_name() != "sqlite":
        kwargs.update(pool_size=pool_size, max_overflow=pool_size, pool_recycle=1800, pool_timeout=30)
    try:
        engine = create_engine(parsed, **kwargs)
    except exc.NoSuchModuleError as e:
        raise ConfigError(f"no SQLAlchemy dialect for this URL: {e}", key="erp.url") from None
    except ImportError as e:
        raise ConfigError(f"the driver for this URL is not installed: {e}", key="erp.url") from None
    except (exc.ArgumentError, TypeError) as e:
        raise ConfigError(f"cannot build a database engine: {e}", key="erp.url") from None
    if parsed.get_driver_name() == "pyodbc":
        _route_odbc_port(engine)
    return engine


def _odbc_string(engine: Engine) -> str:
    """The ODBC connection string the engine connects with (holds the password: never log it)."""
    cargs, _cparams = engine.dialect.create_connect_args(engine.url)
    original = str(cargs[0]) if cargs else ""
    return odbc.place_port(
        original, engine.url.get_backend_name(), explicit="odbc_connect" in engine.url.query
    )


def _route_odbc_port(engine: Engine) -> None:
    """Make the URL's port reach a driver that ignores ``Server=host,port`` (see odbc.py)."""
    cargs, _cparams = engine.dialect.create_connect_args(engine.url)
    fixed = _odbc_string(engine)
    if cargs and fixed != cargs[0]:

        @event.listens_for(engine, "do_connect")
        def _with_port(dialect: Any, conn_rec: Any, cargs: list[Any], cparams: dict[str, Any]) -> None:
            cargs[0] = fixed


def connect_target(engine: Engine) -> str:
    """Where the engine connects, as the client sees it: ``host:port``, an ODBC DSN, or a
    SQLite file. Names no password."""
    url = engine.url
    if url.get_backend_name() == "sqlite":
        return f"file {url.database}" if url.database else "in-memory database"
    if url.get_driver_name() == "pyodbc":
        try:
            return odbc.target(_odbc_string(engine))
        except ConfigError:
            return "?"
    port = url.port if url.port is not None else "default port"
    return f"{url.host or 'local socket'}:{port}"


def sqlstate(error: BaseException) -> str:
    """The SQLSTATE (or driver code) of a DBAPI error, as text; '' when it has none."""
    orig = getattr(error, "orig", error)
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if state:
        return str(state)
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], str) and re.fullmatch(r"[0-9A-Z]{5}", args[0]):
        return args[0]  # pyodbc: args = (sqlstate, message)
    if args and isinstance(args[0], int):
        return str(args[0])  # MySQL drivers: args = (errno, message)
    return ""


def _short(error: BaseException) -> str:
    orig = getattr(error, "orig", None) or error
    return clip(redaction.redact(str(orig)), 500)


# A refused login does not heal by waiting: the operator has to fix the password or the grant.
_REFUSED_LOGIN = re.compile(
    r"(access denied|authentication failed|login failed|invalid password)", re.IGNORECASE
)


def is_transient(error: BaseException) -> bool:
    if isinstance(error, exc.DBAPIError) and (
        sqlstate(error).startswith("28") or _REFUSED_LOGIN.search(_short(error))
    ):
        return False
    if isinstance(error, exc.DBAPIError) and error.connection_invalidated:
        return True
    if isinstance(error, exc.DisconnectionError | exc.TimeoutError):  # pool timeout included
        return True
    if not isinstance(error, exc.DBAPIError):
        return False
    text = _short(error)
    if _TRANSIENT_SQLSTATE.match(sqlstate(error)) or _TRANSIENT_TEXT.search(text):
        return True
    # SQLite reports "no such table" as OperationalError too, so the class alone is no proof;
    # everything else an OperationalError says is about the server, not the statement.
    return isinstance(error, exc.OperationalError | exc.InterfaceError) and not re.search(
        r"no such|syntax error|doesn't exist|does not exist|unknown column|invalid", text, re.IGNORECASE
    )


def translate(error: BaseException, what: str) -> BaseException:
    """Map a driver error to TransientError (retried) or PermanentError (record fails)."""
    if is_transient(error):
        return TransientError(f"ERP {what}: connection problem: {_short(error)}")
    return PermanentError(f"ERP {what}: {_short(error)}", code=sqlstate(error) or None)


def run_db(what: str, fn: Callable[[], T]) -> T:
    """Run one database operation under the project's retry policy; driver errors come out as
    TransientError / PermanentError, never as driver classes."""

    def attempt() -> T:
        try:
            return fn()
        except (exc.DBAPIError, exc.DisconnectionError, exc.TimeoutError) as e:
            raise translate(e, what) from None

    return call_with_retry(attempt, what=f"erp {what}")

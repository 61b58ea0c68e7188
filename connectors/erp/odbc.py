"""Where each ODBC driver takes the server's port.

SQLAlchemy's pyodbc dialects put a URL's port into ``Server=host,port``. That is the form of
Microsoft's SQL Server drivers; the MariaDB/MySQL, PostgreSQL (psqlODBC) and FreeTDS drivers
ignore the ``,port`` tail (MariaDB then silently connects to 3306) and want ``Port=`` instead.
``place_port`` rewrites the connection string for those drivers and refuses a port it cannot
place, so a connection goes where the URL says or not at all.

The connection string carries the password: nothing here puts it into a message.
"""

from __future__ import annotations

import re

from syncd.core.errors import ConfigError

# Driver name (as registered in odbcinst.ini) -> the keyword that carries the port; None: the
# port belongs after a comma in Server=.
_DRIVERS: tuple[tuple[re.Pattern[str], str | None], ...] = (
    (re.compile(r"mariadb|mysql", re.IGNORECASE), "PORT"),
    (re.compile(r"postgres|psqlodbc", re.IGNORECASE), "Port"),
    (re.compile(r"freetds|tdsodbc", re.IGNORECASE), "Port"),
    (re.compile(r"sql server|sqlncli|msodbcsql", re.IGNORECASE), None),
)
# A driver name syncd does not know: what the dialect's own backend implies, if anything.
_BACKENDS: dict[str, str | None] = {"mssql": None, "mysql": "PORT", "mariadb": "PORT"}

_SERVER_KEYS = ("SERVER", "SERVERNAME", "HOST")
_PORT_KEYS = ("PORT",)


def parse(text: str) -> list[tuple[str, str]]:
    """``KEY=value;KEY={va;lue}`` -> [(key, value)], braces removed and ``}}`` unescaped."""
    pairs: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while i < n:
        eq = text.find("=", i)
        if eq < 0:
            break
        key = text[i:eq].strip().lstrip(";").strip()
        j = eq + 1
        if j < n and text[j] == "{":
            value, j = [], j + 1
            while j < n:
                if text[j] == "}":
                    if j + 1 < n and text[j + 1] == "}":
                        value.append("}")
                        j += 2
                        continue
                    j += 1
                    break
                value.append(text[j])
                j += 1
            end = text.find(";", j)
            i = n if end < 0 else end + 1
            pairs.append((key, "".join(value)))
        else:
            end = text.find(";", j)
            i = n if end < 0 else end + 1
            pairs.append((key, text[j : n if end < 0 else end]))
    return [(k, v) for k, v in pairs if k]


def render(pairs: list[tuple[str, str]]) -> str:
    def quote(value: str) -> str:
        if ";" in value or "}" in value or value.startswith("{") or value != value.strip():
            return "{" + value.replace("}", "}}") + "}"
        return value

    return ";".join(f"{k}={quote(v)}" for k, v in pairs)


def _get(pairs: list[tuple[str, str]], names: tuple[str, ...]) -> tuple[int, str] | None:
    for index, (key, value) in enumerate(pairs):
        if key.upper() in names:
            return index, value
    return None


def port_keyword(driver: str | None, backend: str) -> str | None:
    """The keyword ``driver`` reads the port from; None for ``Server=host,port``. Raises
    ConfigError when neither the driver name nor the backend says."""
    if driver:
        for pattern, keyword in _DRIVERS:
            if pattern.search(driver):
                return keyword
    if backend in _BACKENDS:
        return _BACKENDS[backend]
    raise ConfigError(
        f"syncd does not know how the ODBC driver {driver or '(none named)'!r} takes a port, so the "
        "URL's port could not be honoured; name the server and port in ?odbc_connect= in the "
        "driver's own form",
        key="erp.url",
        value=driver or "",
    )


def place_port(conn_str: str, backend: str, *, explicit: bool) -> str:
    """``conn_str`` with a ``Server=host,port`` moved to where the driver reads the port.

    ``explicit``: the operator wrote the string (``?odbc_connect=``); an unknown driver then
    keeps it as written. Otherwise SQLAlchemy built it from the URL and an unknown driver with
    a port is refused. Raises ConfigError for a port given twice with different values."""
    pairs = parse(conn_str)
    found = _get(pairs, _SERVER_KEYS)
    if found is None:
        return conn_str
    index, server = found
    host, comma, port = server.rpartition(",")
    if not comma or not port.strip().isdigit():
        return conn_str
    driver = (_get(pairs, ("DRIVER",)) or (0, None))[1]
    try:
        keyword = port_keyword(driver, backend)
    except ConfigError:
        if explicit:
            return conn_str
        raise
    if keyword is None:
        return conn_str
    port = port.strip()
    already = _get(pairs, _PORT_KEYS)
    if already is not None and already[1].strip() != port:
        raise ConfigError(
            f"erp.url names port {port} in the server and port {already[1].strip()} as Port=; "
            "give it once",
            key="erp.url",
            value=f"{host.strip()},{port}",
        )
    pairs[index] = (pairs[index][0], host.strip())
    if already is None:
        pairs.insert(index + 1, (keyword, port))
    return render(pairs)


def target(conn_str: str) -> str:
    """``host:port`` (or the DSN) a connection string points at, for messages; no password."""
    pairs = parse(conn_str)
    dsn = _get(pairs, ("DSN",))
    if dsn is not None:
        return f"DSN {dsn[1]}"
    server = (_get(pairs, _SERVER_KEYS) or (0, ""))[1]
    port = _get(pairs, _PORT_KEYS)
    if port is not None:
        return f"{server}:{port[1].strip()}"
    host, comma, tail = server.rpartition(",")
    return f"{host}:{tail.strip()}" if comma else f"{server} (driver's default port)"

"""Issue 11, defect 3: an ODBC URL's port is honoured or refused, never silently dropped.

The MariaDB ODBC driver ignores ``Server=host,port`` (SQLAlchemy's form) and connects to 3306.
The real-server tests point the URL at an unused loopback port (must fail, not reach 3306) and
at a TCP forwarder in front of the server (the forwarder must see the connection)."""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from syncd.connectors.erp import odbc, open_erp
from syncd.connectors.erp.engine import _odbc_string, build_engine
from syncd.core.errors import ConfigError, TransientError
from tests.support import wired_env as wired
from tests.support.dbs import mariadb_url, pg_url, unique_name
from tests.support.erp_fixtures import create_address_table, drop_table, insert_addresses
from tests.support.mailserver import free_port

shop = wired.shop  # fixture: a sandbox of each platform kind


class Forwarder:
    """127.0.0.1:<port> -> target, one thread; counts the connections it accepted."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        sel = selectors.DefaultSelector()
        self.listener.setblocking(False)
        sel.register(self.listener, selectors.EVENT_READ, None)
        while not self._stop.is_set():
            for key, _ in sel.select(timeout=0.1):
                if key.data is None:
                    client, _addr = self.listener.accept()
                    self.accepted += 1
                    upstream = socket.create_connection(self.target)
                    sel.register(client, selectors.EVENT_READ, upstream)
                    sel.register(upstream, selectors.EVENT_READ, client)
                    continue
                src, dst = key.fileobj, key.data
                try:
                    chunk = src.recv(65536)
                except OSError:
                    chunk = b""
                if chunk:
                    dst.sendall(chunk)
                else:
                    for s in (src, dst):
                        with contextlib.suppress(Exception):
                            sel.unregister(s)
                        s.close()
        sel.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.listener.close()


@pytest.fixture
def forwarder() -> Iterator[Forwarder]:
    u = make_url(mariadb_url())
    f = Forwarder((u.host or "127.0.0.1", u.port or 3306))
    yield f
    f.close()


@pytest.fixture
def maria_table() -> Iterator[tuple[str, str]]:
    url = mariadb_url()
    name = unique_name("port")
    yield url, name
    drop_table(url, name)


def _with_port(url: str, port: int) -> str:
    return make_url(url).set(port=port).render_as_string(hide_password=False)


def _connection_line(items) -> object:
    return next(i for i in items if i.name == "connection")


@pytest.mark.realdb
def test_a_mariadb_url_naming_an_unused_port_fails_instead_of_reaching_3306(maria_table):
    url, table = maria_table
    settings = create_address_table(url, table)
    insert_addresses(url, table, [{"number": 4711, "last_name": "Nur auf 3306"}])
    port = free_port()
    erp = open_erp(settings.model_copy(update={"url": _with_port(url, port)}), password_field="Sel5")
    try:
        line = _connection_line(erp.check())
        assert not line.ok, line.detail
        assert f"127.0.0.1:{port}" in line.detail
        with pytest.raises(TransientError):
            erp.get_address(4711)  # the server on 3306 must not answer for this URL
    finally:
        erp.close()


@pytest.mark.realdb
def test_a_mariadb_connection_goes_through_the_urls_port(maria_table, forwarder):
    url, table = maria_table
    settings = create_address_table(url, table)
    insert_addresses(url, table, [{"number": 90210, "last_name": "Über den Umweg"}])
    via = settings.model_copy(update={"url": _with_port(url, forwarder.port)})
    erp = open_erp(via, password_field="Sel5")
    try:
        assert erp.get_address(90210).last_name == "Über den Umweg"
        assert forwarder.accepted >= 1
        items = erp.check()
        assert [i for i in items if not i.ok] == []
        line = _connection_line(items)
        database = make_url(url).database
        # the port the client dialled (the forwarder's) and what the server says of itself
        assert f"connected to 127.0.0.1:{forwarder.port}" in line.detail
        assert f"port {make_url(url).port or 3306}, database {database}" in line.detail
    finally:
        erp.close()


@pytest.mark.realdb
def test_syncd_check_prints_where_it_connected(tmp_path: Path, shop, monkeypatch, capsys, maria_table,
                                              forwarder):
    url, table = maria_table
    create_address_table(url, table, password_field=wired.FIELD)
    e = wired.make_env(tmp_path, shop.sandbox, monkeypatch)

    def configure(erp_url: str) -> None:
        text = wired.config_text(e).replace(f'url = "{e.erp_url}"', f'url = "{erp_url}"')
        e.config.write_text(text.replace(f'address_table = "{wired.TABLE}"', f'address_table = "{table}"'))

    unused = free_port()
    configure(_with_port(url, unused))
    code, out, _err = e.cli(capsys, "check")
    assert code == 2
    line = " ".join(x for x in out.splitlines() if "connection" in x and "erp" in x)
    assert "FAILED" in line and f"{unused}" in out

    configure(_with_port(url, forwarder.port))
    code, out, err = e.cli(capsys, "check")
    assert code == 0, out + err
    flat = " ".join(out.split())
    assert f"connected to 127.0.0.1:{forwarder.port}" in flat
    assert f"database {make_url(url).database}" in flat
    assert forwarder.accepted >= 1


@pytest.mark.realdb
def test_the_postgresql_odbc_driver_gets_its_port_as_port_too():
    """psqlODBC also ignores ``Server=host,port`` (it reached 5432 whatever the tail said); no
    SQLAlchemy dialect drives it, so the rewrite is checked on the driver itself."""
    import pyodbc

    u = make_url(pg_url())
    f = Forwarder((u.host or "127.0.0.1", u.port or 5432))
    try:
        def conn_str(port: int) -> str:
            return odbc.place_port(f"DRIVER={{PostgreSQL Unicode}};Server={u.host},{port};"
                                   f"Database={u.database};UID={u.username}", "postgresql", explicit=True)

        with pytest.raises(pyodbc.Error):
            pyodbc.connect(conn_str(free_port()), timeout=5)
        conn = pyodbc.connect(conn_str(f.port), timeout=5)
        try:
            assert conn.execute("SELECT current_database()").fetchone()[0] == u.database
        finally:
            conn.close()
        assert f.accepted == 1
    finally:
        f.close()


# --- the connection string each driver gets --------------------------------------------------------

@pytest.mark.parametrize(
    ("url", "wanted", "unwanted"),
    [
        ("mysql+pyodbc://u@db.example:3399/erp?driver=MariaDB+Unicode", ";PORT=3399", "db.example,3399"),
        ("mysql+pyodbc://u@db.example:3399/erp?driver=MySQL+ODBC+8.0+Unicode+Driver", ";PORT=3399", ",3399"),
        ("mysql+pyodbc://u@db.example:3399/erp", ";PORT=3399", ",3399"),  # dialect default: "MySQL"
        ("mssql+pyodbc://u@db.example:1533/erp?driver=FreeTDS", ";Port=1533", ",1533"),
        ("mssql+pyodbc://u@db.example:1533/erp?driver=ODBC+Driver+18+for+SQL+Server",
         "db.example,1533", "Port="),
        ("mssql+pyodbc://u@db.example:1533/erp?driver=PostgreSQL+Unicode", ";Port=1533", ",1533"),
    ],
)
def test_each_known_driver_gets_the_port_where_it_reads_it(url, wanted, unwanted):
    engine = build_engine(url, password="Pa;ss}word")
    try:
        conn_str = _odbc_string(engine)
    finally:
        engine.dispose()
    assert wanted in conn_str and unwanted not in conn_str
    assert dict((k.upper(), v) for k, v in odbc.parse(conn_str))["PWD"] == "Pa;ss}word"


def test_an_operator_written_odbc_string_with_a_comma_port_is_moved_for_mariadb():
    fixed = odbc.place_port("DRIVER={MariaDB Unicode};SERVER=10.0.0.5,3400;DATABASE=erp;UID=x;PWD={a;b}",
                            "mysql", explicit=True)
    assert odbc.parse(fixed) == [("DRIVER", "MariaDB Unicode"), ("SERVER", "10.0.0.5"), ("PORT", "3400"),
                                 ("DATABASE", "erp"), ("UID", "x"), ("PWD", "a;b")]
    assert odbc.target(fixed) == "10.0.0.5:3400"


def test_a_port_given_twice_differently_or_for_an_unknown_driver_is_refused():
    with pytest.raises(ConfigError) as twice:
        odbc.place_port("DRIVER={MariaDB Unicode};SERVER=h,3400;PORT=3306;PWD=geheim", "mysql", explicit=True)
    assert "3400" in str(twice.value) and "3306" in str(twice.value) and "geheim" not in str(twice.value)
    with pytest.raises(ConfigError) as unknown:
        odbc.place_port("DRIVER={Acme ODBC};Server=h,5000;Database=d;PWD=geheim", "sybase", explicit=False)
    assert "Acme ODBC" in str(unknown.value) and "odbc_connect" in str(unknown.value)
    assert "geheim" not in str(unknown.value)
    # written by the operator: kept as written
    kept = "DRIVER={Acme ODBC};Server=h,5000;Database=d"
    assert odbc.place_port(kept, "sybase", explicit=True) == kept

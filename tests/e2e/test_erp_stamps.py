"""Change detection across the ways ERPs store a change stamp and an address number.

Every case builds its table with raw DDL (not SQLAlchemy's types, whose storage formats the code
under test shares), puts more rows than three pages on ONE stamp, and asserts that every row is
delivered exactly once across pages, across a cursor that went through JSON, and across later
polls: an idle poll delivers nothing, a later change is delivered once.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from syncd.config.model import ErpColumns, ErpSettings
from syncd.connectors.erp import open_erp, stamps
from syncd.state.cursors import Cursors
from tests.support.dbs import mariadb_url, pg_url, state_store, unique_name
from tests.support.erp_fixtures import drop_table

BASE = datetime(2026, 11, 1, 10, 0, 0)

# stamp kind -> (DDL type per backend, value of a datetime as stored, step between two changes)
STAMPS = {
    # native timestamps; on SQLite the same declared types hold text, as other programs write it
    "datetime-fraction": (
        {"sqlite": "TIMESTAMP", "postgresql": "TIMESTAMP(6)", "mariadb": "DATETIME(6)"},
        lambda d, db: (d + timedelta(microseconds=250_000)).isoformat(" ") if db == "sqlite"
        else d + timedelta(microseconds=250_000),
        timedelta(minutes=1),
    ),
    "datetime-seconds": (
        {"sqlite": "TIMESTAMP", "postgresql": "TIMESTAMP(0)", "mariadb": "DATETIME"},
        lambda d, db: d.isoformat(" ") if db == "sqlite" else d,
        timedelta(seconds=1),
    ),
    "text-iso-t": (
        {"sqlite": "DATETIME"},
        lambda d, db: d.isoformat("T"),
        timedelta(minutes=1),
    ),
    "text-millis": (
        {"sqlite": "TIMESTAMP"},
        lambda d, db: d.isoformat(" ", timespec="milliseconds"),
        timedelta(milliseconds=5),
    ),
    "date": (
        {"sqlite": "DATE", "postgresql": "DATE", "mariadb": "DATE"},
        lambda d, db: d.date().isoformat() if db == "sqlite" else d.date(),
        timedelta(days=1),
    ),
    "epoch": (
        {"sqlite": "INTEGER", "postgresql": "BIGINT", "mariadb": "BIGINT"},
        lambda d, db: int((d - datetime(1970, 1, 1)).total_seconds()),
        timedelta(seconds=1),
    ),
    "yyyymmddhhmmss": (
        {"sqlite": "INTEGER", "postgresql": "NUMERIC(14,0)", "mariadb": "BIGINT"},
        lambda d, db: int(d.strftime("%Y%m%d%H%M%S")),
        timedelta(seconds=1),
    ),
}

# number kind -> (DDL type, stored value of address number n)
NUMBERS = {
    "integer": ("INTEGER", lambda n: n),
    "numeric-text": ("VARCHAR(20)", lambda n: str(n)),
    "padded-text": ("CHAR(10)", lambda n: f"{n:05d}".ljust(10)),
}

PAGE = 4
ROWS = 3 * PAGE + 2  # > 3 pages on one stamp


def _cases():
    for db in ("sqlite", "postgresql", "mariadb"):
        marks = [pytest.mark.realdb] if db != "sqlite" else []
        for stamp, (types, _v, _s) in STAMPS.items():
            if db not in types:
                continue
            for number in NUMBERS:
                yield pytest.param(db, stamp, number, marks=marks, id=f"{db}-{stamp}-{number}")


def _url(db: str, tmp_path) -> str:
    if db == "sqlite":
        return f"sqlite:///{tmp_path}/erp.sqlite"
    return pg_url() if db == "postgresql" else mariadb_url()


class Erp:
    """A raw address table: ``Nr`` (number), ``Name``, ``Mail``, ``Stamp`` (indexed)."""

    def __init__(self, url: str, db: str, stamp: str, number: str) -> None:
        self.url, self.db, self.table = url, db, unique_name("stamps")
        self.stamp_type, self.value, self.step = STAMPS[stamp]
        self.number_type, self.number = NUMBERS[number]
        self.engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        q = self.engine.dialect.identifier_preparer.quote
        self.q = q(self.table)
        with self.engine.begin() as conn:
            conn.execute(sa.text(
                f"CREATE TABLE {self.q} (Nr {self.number_type} NOT NULL PRIMARY KEY, "
                f"Name VARCHAR(60), Mail VARCHAR(100), Stamp {self.stamp_type[db]})"
            ))
            conn.execute(sa.text(f"CREATE INDEX {q('ix_' + self.table)} ON {self.q} (Stamp)"))

    def stamped(self, when: datetime):
        return self.value(when, self.db)

    def insert(self, numbers, when: datetime) -> None:
        rows = [
            {"n": self.number(n), "name": f"Name {n}", "mail": f"k{n}@example.com", "s": self.stamped(when)}
            for n in numbers
        ]
        with self.engine.begin() as conn:
            insert = f"INSERT INTO {self.q} (Nr, Name, Mail, Stamp) VALUES (:n, :name, :mail, :s)"
            conn.execute(sa.text(insert), rows)

    def update(self, n: int, name: str, when: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.text(f"UPDATE {self.q} SET Name = :name, Stamp = :s WHERE Nr = :n"),
                         {"n": self.number(n), "name": name, "s": self.stamped(when)})

    def settings(self) -> ErpSettings:
        columns = ErpColumns(number="Nr", last_name="Name", email="Mail", modified_at="Stamp")
        return ErpSettings(url=self.url, address_table=self.table, columns=columns)

    def drop(self) -> None:
        self.engine.dispose()
        drop_table(self.url, self.table)


def poll(erp, cursor, pages: list[int] | None = None):
    scan = erp.scan_changes(cursor, batch_size=PAGE)
    found = []
    for batch in scan.batches():
        assert len(batch) <= PAGE
        found += batch
        if pages is not None:
            pages.append(len(batch))
    return found, json.loads(json.dumps(scan.cursor()))  # as the state store keeps it


@pytest.mark.parametrize(("db", "stamp", "number"), list(_cases()))
def test_every_row_once_whatever_the_stamp_and_number_representation(db, stamp, number, tmp_path):
    table = Erp(_url(db, tmp_path), db, stamp, number)
    erp = open_erp(table.settings())
    try:
        first = list(range(1, ROWS + 1))
        table.insert(first, BASE)
        pages: list[int] = []
        delivered, cursor = poll(erp, None, pages)
        assert Counter(a.number for a in delivered) == Counter(first)
        assert len(pages) >= 3

        assert poll(erp, cursor)[0] == []  # idle

        later = BASE + table.step
        more = list(range(ROWS + 1, 2 * ROWS + 1))
        table.insert(more, later)  # a second bulk on one newer stamp
        table.update(3, "Renamed", later)
        delivered, cursor = poll(erp, cursor)
        assert Counter(a.number for a in delivered) == Counter([3, *more])
        assert next(a for a in delivered if a.number == 3).last_name == "Renamed"

        assert poll(erp, cursor)[0] == []  # idle again
        assert poll(erp, cursor)[0] == []
    finally:
        erp.close()
        table.drop()


@pytest.mark.parametrize("store", ["sqlite", pytest.param("postgresql", marks=pytest.mark.realdb)])
def test_bulk_of_one_stamp_survives_a_restart_between_pages(store, tmp_path):
    """The reported case: 2,000 rows of one second-precision text stamp, batch_size 500. A
    daemon stores the cursor after the first page and is restarted: the next process reads the
    cursor from the state store and delivers the other 1,500, each once."""
    table = Erp(f"sqlite:///{tmp_path}/erp.sqlite", "sqlite", "datetime-seconds", "integer")
    numbers = list(range(10_000, 12_000))
    table.insert(numbers, BASE)
    delivered: Counter[int] = Counter()
    try:
        with state_store(store, tmp_path) as state:
            erp = open_erp(table.settings())
            scan = erp.scan_changes(None, batch_size=500)
            delivered.update(a.number for a in next(scan.batches()))
            Cursors(state).set("shop", "erp", scan.cursor())
            erp.close()  # the daemon dies here

            for _ in range(3):  # restarts: each one a fresh connector and the stored cursor
                erp = open_erp(table.settings())
                scan = erp.scan_changes(Cursors(state).get("shop", "erp"), batch_size=500)
                delivered.update(a.number for batch in scan.batches() for a in batch)
                Cursors(state).set("shop", "erp", scan.cursor())
                erp.close()
            assert delivered == Counter(numbers)

            table.update(10_001, "Later", BASE + timedelta(seconds=1))
            erp = open_erp(table.settings())
            scan = erp.scan_changes(Cursors(state).get("shop", "erp"), batch_size=500)
            assert [a.number for batch in scan.batches() for a in batch] == [10_001]
            erp.close()
    finally:
        table.drop()


def test_a_version_2_cursor_is_read_and_its_window_not_lost(tmp_path):
    """Cursors written before raw stamps (watermark re-typed as ISO datetime) still work: no
    full re-scan, nothing missed; the overlap window may be delivered once more."""
    table = Erp(f"sqlite:///{tmp_path}/erp.sqlite", "sqlite", "datetime-seconds", "integer")
    erp = open_erp(table.settings())
    try:
        table.insert(range(1, 6), BASE - timedelta(hours=2))
        table.insert(range(6, 11), BASE)
        old = {"mode": "watermark", "v": 2, "watermark": BASE.isoformat(), "seen": {}, "nulls_read": True}
        delivered, cursor = poll(erp, old)
        assert sorted(a.number for a in delivered) == list(range(6, 11))  # the window, not the table
        assert cursor["v"] == 3
        assert poll(erp, cursor)[0] == []
    finally:
        erp.close()
        table.drop()


# --- the representation helpers -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "shifted"),
    [
        ("2026-11-01 10:00:00", "2026-11-01 09:55:00"),
        ("2026-11-01T10:00:00", "2026-11-01T09:55:00"),
        ("2026-11-01 10:00:00.250000", "2026-11-01 09:55:00.250000"),
        ("2026-11-01 10:00:00.250", "2026-11-01 09:55:00.250"),
        ("2026-11-01 00:02:00+01:00", "2026-10-31 23:57:00+01:00"),
        ("2026-11-01", "2026-10-31"),
        ("not a time", "not a time"),
        (20261101000200, 20261031235700),
        (1_793_440_800, 1_793_440_500),
        (1_793_440_800_000, 1_793_440_500_000),
        (42, 42),  # a row version counter: the watermark row itself is the overlap
        (datetime(2026, 11, 1, 10, 0), datetime(2026, 11, 1, 9, 55)),
        (date(2026, 11, 1), date(2026, 10, 31)),
    ],
)
def test_overlap_is_subtracted_in_the_stamps_own_representation(value, shifted):
    assert stamps.shift(value, 300) == shifted
    assert type(stamps.shift(value, 300)) is type(value)


@pytest.mark.parametrize(
    "value",
    [
        "2026-11-01 10:00:00",
        datetime(2026, 11, 1, 10, 0, 0, 5),
        date(2026, 11, 1),
        7,
        2**40,
        Decimal("20261101100000"),
    ],
)
def test_a_stamp_survives_the_json_cursor_with_its_type(value):
    back = stamps.decode(json.loads(json.dumps(stamps.encode(value))))
    assert back == value and type(back) is type(value)

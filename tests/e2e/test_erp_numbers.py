"""Lookups by address number across the ways ERPs store it.

The scan reads a text number column as the ERP stores it (``'00012'``, a CHAR padded with
spaces, ``'   12'``) and delivers the integer. Every later step of a cycle looks the address
up by that integer again: the push re-reads addresses, the credential flow writes, re-reads
and clears the password field, the reconciliation asks which numbers still exist, the import
checks whether a number is taken. Each case builds its table with raw DDL and stores the
numbers in one representation, then runs scan → lookup → password write/read/clear → insert.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from syncd.config.model import ErpColumns, ErpSettings
from syncd.connectors.erp import open_erp
from syncd.core.errors import PermanentError
from tests.support.dbs import mariadb_url, pg_url, unique_name
from tests.support.erp_fixtures import drop_table

# number kind -> (DDL type, stored value of address number n)
NUMBERS = {
    "integer": ("INTEGER", lambda n: n),
    "numeric-text": ("VARCHAR(20)", lambda n: str(n)),
    "zero-padded-text": ("VARCHAR(20)", lambda n: f"{n:06d}"),
    "space-padded-text": ("VARCHAR(20)", lambda n: f"{n:>8}"),
    "right-padded-char": ("CHAR(10)", lambda n: str(n).ljust(10)),
    "zero-padded-char": ("CHAR(12)", lambda n: f"{n:05d}".ljust(12)),
}
NUMBERS_IN_ERP = (7, 12, 480, 10001)  # different widths: a padding shows in most of them


def _cases():
    for db in ("sqlite", "postgresql", "mariadb"):
        marks = [pytest.mark.realdb] if db != "sqlite" else []
        for number in NUMBERS:
            yield pytest.param(db, number, marks=marks, id=f"{db}-{number}")


def _url(db: str, tmp_path) -> str:
    if db == "sqlite":
        return f"sqlite:///{tmp_path}/erp.sqlite"
    return pg_url() if db == "postgresql" else mariadb_url()


class Erp:
    """A raw address table: ``Kdnr`` (number), ``Name``, ``Mail``, ``Kennwort`` (password)."""

    def __init__(self, url: str, kind: str) -> None:
        self.url, self.table = url, unique_name("numbers")
        self.ddl, self.stored = NUMBERS[kind]
        self.engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        self.q = self.engine.dialect.identifier_preparer.quote(self.table)
        with self.engine.begin() as conn:
            conn.execute(
                sa.text(
                    f"CREATE TABLE {self.q} (Kdnr {self.ddl} NOT NULL PRIMARY KEY, "
                    "Name VARCHAR(60), Mail VARCHAR(100), Kennwort VARCHAR(40))"
                )
            )
            conn.execute(
                sa.text(f"INSERT INTO {self.q} (Kdnr, Name, Mail) VALUES (:n, :name, :mail)"),
                [
                    {"n": self.stored(n), "name": f"Name {n}", "mail": f"k{n}@example.com"}
                    for n in NUMBERS_IN_ERP
                ],
            )

    def passwords(self) -> dict[str, str | None]:
        """Stored number (stripped) -> password field, read with plain SQL."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.text(f"SELECT Kdnr, Kennwort FROM {self.q}")).all()
        return {str(n).strip(): pw for n, pw in rows}

    def settings(self) -> ErpSettings:
        columns = ErpColumns(number="Kdnr", last_name="Name", email="Mail")
        return ErpSettings(url=self.url, address_table=self.table, columns=columns)

    def drop(self) -> None:
        self.engine.dispose()
        drop_table(self.url, self.table)


@pytest.mark.parametrize(("db", "kind"), list(_cases()))
def test_scan_lookup_and_password_round_trip_whatever_the_number_representation(db, kind, tmp_path):
    table = Erp(_url(db, tmp_path), kind)
    erp = open_erp(table.settings(), password_field="Kennwort")
    key = lambda n: str(table.stored(n)).strip()  # noqa: E731 - the stored form, as SQL shows it
    try:
        scanned = [a.number for batch in erp.scan_changes(None, batch_size=3).batches() for a in batch]
        assert sorted(scanned) == sorted(NUMBERS_IN_ERP)

        found = erp.get_addresses([*scanned, 13])
        assert {n: a.last_name for n, a in found.items()} == {n: f"Name {n}" for n in NUMBERS_IN_ERP}
        assert erp.get_address(12).email == "k12@example.com"
        assert erp.numbers_present([7, 12, 13, 10001]) == {7, 12, 10001}
        assert erp.number_exists(480) and not erp.number_exists(48)
        assert erp.read_columns(10001, ["Name"]) == {"Name": "Name 10001"}
        assert erp.find_numbers("Mail", "k480@example.com") == [480]

        erp.write_password_fields({7: "pw-seven-123", 12: "pw-twelve-12"})
        assert table.passwords()[key(7)] == "pw-seven-123" and table.passwords()[key(12)] == "pw-twelve-12"
        assert erp.read_password_fields([7, 12, 480]) == {7: "pw-seven-123", 12: "pw-twelve-12", 480: None}
        assert erp.numbers_with_password() == [7, 12]
        assert erp.get_address(12).row["Kennwort"] == "pw-twelve-12"
        with pytest.raises(PermanentError, match="not found: 13"):
            erp.write_password_fields({480: "pw-480-12345", 13: "pw-thirteen1"})
        assert erp.read_password_fields([480]) == {480: None}  # the batch rolled back

        erp.clear_password_fields(erp.numbers_with_password())  # the start-up sweep's way
        assert erp.numbers_with_password() == []
        assert set(table.passwords().values()) == {None}

        assert erp.create_address(13, {"last_name": "Neu", "email": "k13@example.com"})
        assert not erp.create_address(12, {"last_name": "Doppelt"})  # taken, in its stored form
        assert erp.get_address(13).last_name == "Neu" and erp.number_exists(13)
        assert key(13) in table.passwords()  # written in the column's own form
    finally:
        erp.close()
        table.drop()


def test_a_column_mixing_forms_finds_what_the_sweep_and_the_scan_read(tmp_path):
    """Forms not at the column's ends (``'00011'`` between ``'   3'`` and ``'9'``) are learned
    from the rows a read returned, before any lookup binds them."""
    url = f"sqlite:///{tmp_path}/erp.sqlite"
    table = Erp(url, "numeric-text")
    with table.engine.begin() as conn:
        conn.execute(
            sa.text(
                f"INSERT INTO {table.q} (Kdnr, Name, Kennwort) VALUES "
                "('00011', 'Elf', 'left-over-pw'), ('   3', 'Drei', NULL), ('9', 'Neun', NULL)"
            )
        )
    erp = open_erp(table.settings(), password_field="Kennwort")
    try:
        assert erp.numbers_with_password() == [11]
        erp.clear_password_fields([11])
        assert table.passwords()["00011"] is None
        assert erp.get_address(3).last_name == "Drei"
        scanned = {a.number for batch in erp.scan_changes(None).batches() for a in batch}
        assert {3, 9, 11} <= scanned
        erp.write_password_fields({11: "pw-eleven-12", 3: "pw-three-123"})
        assert erp.read_password_fields([3, 11]) == {3: "pw-three-123", 11: "pw-eleven-12"}
    finally:
        erp.close()
        table.drop()

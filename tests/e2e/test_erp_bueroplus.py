"""The ``bueroplus`` profile: Adressen + default Anschrift + its contact person, read as one
address; new addresses written across the three tables. SQLite file, PostgreSQL and MariaDB over
ODBC (each in a schema of its own, since the table names are the ERP's fixed ones)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from syncd.connectors.erp import open_erp
from tests.support.dbs import mariadb_url, pg_url, unique_name
from tests.support.erp_fixtures import create_bueroplus_tables, drop_schema, utcnow


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.realdb),
        pytest.param("mariadb", marks=pytest.mark.realdb),
    ]
)
def bueroplus(request, tmp_path):
    if request.param == "sqlite":
        url, schema = f"sqlite:///{tmp_path}/bp.sqlite", None
    else:  # the table names are fixed: a schema (MariaDB: a database) of their own
        url, schema = pg_url() if request.param == "postgresql" else mariadb_url(), unique_name("bp")
    settings = create_bueroplus_tables(url, schema=schema)
    try:
        yield from _seeded(settings, url, schema)
    finally:
        if schema:
            drop_schema(url, schema)


def _seeded(settings, url, schema):
    engine = sa.create_engine(url)
    md = sa.MetaData(schema=schema)
    tables = {
        n: sa.Table(n, md, autoload_with=engine) for n in ("Adressen", "Anschriften", "Ansprechpartner")
    }
    now = utcnow().replace(microsecond=0)
    with engine.begin() as conn:
        conn.execute(
            sa.insert(tables["Adressen"]),
            [
                {"AdrNr": "10001", "ReAnsNr": 1, "Status": "Kunde", "GspKz": False, "LtzAend": now},
                {"AdrNr": "10002", "ReAnsNr": 2, "Status": "Kunde", "GspKz": True, "LtzAend": now},
                {"AdrNr": "10003", "ReAnsNr": None, "Status": "Interessent", "GspKz": False, "LtzAend": now},
            ],
        )
        for row in [
            {
                "AdrNr": "10001",
                "AnsNr": 1,
                "Na1": "Firma",
                "Na2": "Bäckerei Süß",
                "Str": "Hauptstr. 1",
                "PLZ": "50667",
                "Ort": "Köln",
                "Land": 276,
                "EMail1": "suess@example.com",
                "AspNr": 1,
            },
            {"AdrNr": "10002", "AnsNr": 1, "Ort": "Lieferadresse", "EMail1": "wrong@example.com"},
            {"AdrNr": "10002", "AnsNr": 2, "Ort": "Wien", "Land": 40, "EMail1": "wien@example.com"},
        ]:  # one by one: the rows have different key sets
            conn.execute(sa.insert(tables["Anschriften"]).values(row))
        conn.execute(
            sa.insert(tables["Ansprechpartner"]),
            [
                {
                    "AdrNr": "10001",
                    "AnsNr": 1,
                    "AspNr": 1,
                    "VNa": "Jürgen",
                    "NNa": "Süß",
                    "EMail1": "j@example.com",
                }
            ],
        )
    engine.dispose()
    erp = open_erp(settings, password_field="Sel10")
    try:
        yield erp, url, tables, now
    finally:
        erp.close()


def test_reads_the_joined_address(bueroplus):
    erp, _url, _tables, _now = bueroplus
    first = erp.scan_changes(None)
    found = {a.number: a for batch in first.batches() for a in batch}
    assert sorted(found) == [10001, 10002, 10003]
    a = found[10001]
    assert (a.email, a.first_name, a.last_name, a.company, a.salutation, a.city, a.country) == (
        "suess@example.com",
        "Jürgen",
        "Süß",
        "Bäckerei Süß",
        "Firma",
        "Köln",
        "DE",
    )
    assert a.business is True  # Na1 "Firma": Na2 is the company's name
    assert a.row["Ansprechpartner.EMail1"] == "j@example.com"  # same column name, later table
    b = found[10002]
    assert (b.email, b.city, b.country, b.blocked) == (
        "wien@example.com",
        "Wien",
        "AT",
        True,
    )  # default Anschrift
    c = found[10003]
    assert c.email is None and c.customer_group == "Interessent"  # no Anschrift: still an address
    assert list(erp.scan_changes(first.cursor()).batches()) == []


def test_password_field_and_check(bueroplus):
    erp, *_ = bueroplus
    assert [i for i in erp.check() if not i.ok] == []
    erp.write_password_fields({10001: "Start-Passwort-1"})
    assert erp.get_address(10001).row["Sel10"] == "Start-Passwort-1"
    assert erp.numbers_with_password() == [10001]
    erp.clear_password_fields([10001])
    assert erp.numbers_with_password() == []
    assert erp.read_password_fields([10001]) == {10001: None}


def test_create_address_writes_all_three_tables(bueroplus):
    erp, url, tables, now = bueroplus
    cursor = None
    scan = erp.scan_changes(cursor)
    list(scan.batches())
    cursor = scan.cursor()
    template = erp.read_columns(10001, ["Status"])
    assert erp.create_address(
        10004,
        {
            **template,
            "email": "neu@example.com",
            "first_name": "Ada",
            "last_name": "Łukasiewicz",
            "country": "DE",
            "city": "Bonn",
            "WShopID": "shop-1",
        },
    )
    assert erp.create_address(10004, {"email": "other@example.com"}) is False
    assert erp.find_numbers("shop_id", "shop-1") == [10004]
    a = erp.get_address(10004)
    assert (a.email, a.first_name, a.last_name, a.country, a.customer_group, a.city) == (
        "neu@example.com",
        "Ada",
        "Łukasiewicz",
        "DE",
        "Kunde",
        "Bonn",
    )
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        land = conn.execute(
            sa.select(tables["Anschriften"].c.Land).where(tables["Anschriften"].c.AdrNr == "10004")
        )
        assert land.scalar() == 276
    engine.dispose()
    new = [x.number for batch in erp.scan_changes(cursor).batches() for x in batch]
    assert new == [10004]
    assert a.modified_at is not None and a.modified_at >= now - timedelta(seconds=5)

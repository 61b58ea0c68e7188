"""Change detection over the ``bueroplus`` join: a change made only in ``Anschriften`` or
``Ansprechpartner`` re-delivers the address, once, at a cost of the changed rows; a joined table
without a stamp is a warning in ``syncd check``. SQLite, PostgreSQL and MariaDB over ODBC."""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta

import pytest
import sqlalchemy as sa

from syncd.connectors.erp import open_erp
from tests.support.dbs import mariadb_url, pg_url, unique_name
from tests.support.erp_fixtures import create_bueroplus_tables, drop_schema, utcnow

BACKENDS = [
    "sqlite",
    pytest.param("postgresql", marks=pytest.mark.realdb),
    pytest.param("mariadb", marks=pytest.mark.realdb),
]
T0 = utcnow().replace(microsecond=0) - timedelta(days=2)


class Bp:
    """The three büro+ tables; address n has Anschrift 1 (the default) and 2, and contact 1."""

    def __init__(self, kind: str, tmp_path, **options) -> None:
        if kind == "sqlite":
            self.url, self.schema = f"sqlite:///{tmp_path}/bp.sqlite", None
        else:
            self.url = pg_url() if kind == "postgresql" else mariadb_url()
            self.schema = unique_name("bpc")
        self.settings = create_bueroplus_tables(self.url, schema=self.schema, **options)
        self.engine = sa.create_engine(self.url, poolclass=sa.pool.NullPool)
        md = sa.MetaData(schema=self.schema)
        self.t = {n: sa.Table(n, md, autoload_with=self.engine)
                  for n in ("Adressen", "Anschriften", "Ansprechpartner")}
        self.stamped = "LtzAend" in self.t["Ansprechpartner"].c

    def seed(self, numbers, *, step: timedelta = timedelta(0)) -> None:
        adr, ans, asp = [], [], []
        for i, n in enumerate(numbers):
            when = T0 + i * step
            adr.append({"AdrNr": str(n), "ReAnsNr": 1, "Status": "Kunde", "GspKz": False, "LtzAend": when})
            for ans_nr in (1, 2):
                ans.append({"AdrNr": str(n), "AnsNr": ans_nr, "Ort": f"Ort {n}/{ans_nr}",
                            "EMail1": f"k{n}-{ans_nr}@example.com", "AspNr": 1, "LtzAend": when})
            contact = {"AdrNr": str(n), "AnsNr": 1, "AspNr": 1, "VNa": f"V{n}", "NNa": f"N{n}"}
            asp.append({**contact, "LtzAend": when} if self.stamped else contact)
        with self.engine.begin() as conn:
            conn.execute(sa.insert(self.t["Adressen"]), adr)
            conn.execute(sa.insert(self.t["Anschriften"]), ans)
            conn.execute(sa.insert(self.t["Ansprechpartner"]), asp)

    def update(self, table: str, number: int, values: dict, ans_nr: int | None = 1) -> None:
        t = self.t[table]
        where = [t.c.AdrNr == str(number)]
        if ans_nr is not None and "AnsNr" in t.c:
            where.append(t.c.AnsNr == ans_nr)
        with self.engine.begin() as conn:
            assert conn.execute(sa.update(t).where(*where).values(values)).rowcount == 1

    def close(self) -> None:
        self.engine.dispose()
        if self.schema:
            drop_schema(self.url, self.schema)


@pytest.fixture(params=BACKENDS)
def kind(request):
    return request.param


def poll(erp, cursor, batch_size: int = 500):
    scan = erp.scan_changes(cursor, batch_size=batch_size)
    found = [a for batch in scan.batches() for a in batch]
    return found, json.loads(json.dumps(scan.cursor()))


def test_a_change_only_in_a_joined_table_redelivers_the_address_once(kind, tmp_path):
    bp = Bp(kind, tmp_path)
    erp = open_erp(bp.settings, password_field="Sel10")
    try:
        # An hour apart: the changed addresses lie outside Adressen's overlap window, whose
        # row hashes would otherwise notice any change.
        bp.seed(range(10001, 10011), step=timedelta(hours=1))
        first, cursor = poll(erp, None, batch_size=3)
        assert Counter(a.number for a in first) == Counter(range(10001, 10011))  # once, not per table
        assert poll(erp, cursor)[0] == []

        bp.update("Anschriften", 10002, {"Ort": "Graz", "LtzAend": T0 + timedelta(hours=10)})
        changed, cursor = poll(erp, cursor)
        assert [(a.number, a.city) for a in changed] == [(10002, "Graz")]
        assert poll(erp, cursor)[0] == []

        bp.update("Ansprechpartner", 10003, {"VNa": "Zoë", "LtzAend": T0 + timedelta(hours=11)})
        changed, cursor = poll(erp, cursor)
        assert [(a.number, a.first_name) for a in changed] == [(10003, "Zoë")]
        assert poll(erp, cursor)[0] == []

        # Anschrift 2 is no part of the address read: its change is none of the shop's business.
        bp.update("Anschriften", 10004, {"Ort": "Lager", "LtzAend": T0 + timedelta(hours=12)}, ans_nr=2)
        assert poll(erp, cursor)[0] == []

        # One address changed in all three tables within one poll goes out once.
        later = T0 + timedelta(hours=13)
        bp.update("Adressen", 10005, {"Status": "VIP", "LtzAend": later}, ans_nr=None)
        bp.update("Anschriften", 10005, {"Ort": "Linz", "LtzAend": later + timedelta(seconds=1)})
        bp.update("Ansprechpartner", 10005, {"NNa": "Neu", "LtzAend": later + timedelta(seconds=2)})
        changed, cursor = poll(erp, cursor, batch_size=1)
        assert [(a.number, a.customer_group, a.city, a.last_name) for a in changed] == [
            (10005, "VIP", "Linz", "Neu")
        ]
        assert poll(erp, cursor)[0] == []
    finally:
        erp.close()
        bp.close()


def test_an_incremental_poll_reads_the_changed_rows_not_the_tables(kind, tmp_path):
    bp = Bp(kind, tmp_path)
    erp = open_erp(bp.settings, password_field="Sel10")
    try:
        numbers = list(range(20001, 20601))
        bp.seed(numbers, step=timedelta(minutes=1))  # 5 rows per table inside the 300 s overlap
        newest = T0 + (len(numbers) - 1) * timedelta(minutes=1)
        first, cursor = poll(erp, None, batch_size=200)
        assert len(first) == 600

        before = erp.stats.rows_read
        assert poll(erp, cursor)[0] == []
        idle = erp.stats.rows_read - before
        assert idle <= 3 * 6, idle  # the three overlap windows

        bp.update("Ansprechpartner", 20100, {"VNa": "Änne", "LtzAend": newest + timedelta(minutes=1)})
        before = erp.stats.rows_read
        changed, cursor = poll(erp, cursor)
        assert [(a.number, a.first_name) for a in changed] == [(20100, "Änne")]
        assert erp.stats.rows_read - before <= 3 * 6 + 1
    finally:
        erp.close()
        bp.close()


def test_a_cursor_from_before_joined_stamps_starts_them_at_its_watermark(kind, tmp_path):
    bp = Bp(kind, tmp_path)
    erp = open_erp(bp.settings, password_field="Sel10")
    try:
        bp.seed(range(30001, 30021))
        written_before = {"mode": "watermark", "v": 2, "watermark": T0.isoformat(), "seen": {},
                          "nulls_read": True}
        again, cursor = poll(erp, written_before)
        assert len(again) <= 20  # the overlap window of Adressen once; no table re-read per join
        assert poll(erp, cursor)[0] == []
        bp.update("Anschriften", 30007, {"Ort": "Steyr", "LtzAend": T0 + timedelta(hours=1)})
        assert [(a.number, a.city) for a in poll(erp, cursor)[0]] == [(30007, "Steyr")]
    finally:
        erp.close()
        bp.close()


def test_check_warns_about_a_joined_table_nothing_watches(kind, tmp_path):
    bp = Bp(kind, tmp_path, contact_stamp=False, stamp_index=False)
    erp = open_erp(bp.settings, password_field="Sel10")
    try:
        items = erp.check()
        assert [i for i in items if not i.ok] == []
        detail = {i.name: i.detail for i in items}
        assert "LtzAend, Anschriften.LtzAend" in detail["change detection"]
        unwatched = detail["change detection: Ansprechpartner"]
        assert "no column LtzAend" in unwatched and "(warning)" in unwatched
        assert "reaches the shop when the address's Adressen.LtzAend changes" in unwatched
        assert "every poll reads the whole table" in detail["change detection: Anschriften.LtzAend"]

        # What the warning means: the Anschrift is seen, the contact person alone is not (once
        # the address is older than the overlap window, whose row hashes would notice it).
        bp.seed([40001, 40002], step=timedelta(hours=1))
        _, cursor = poll(erp, None)
        bp.update("Ansprechpartner", 40001, {"VNa": "Unsichtbar"})
        assert poll(erp, cursor)[0] == []
        bp.update("Anschriften", 40001, {"Ort": "Wels", "LtzAend": T0 + timedelta(hours=2)})
        assert [(a.number, a.city, a.first_name) for a in poll(erp, cursor)[0]] == [
            (40001, "Wels", "Unsichtbar")
        ]
    finally:
        erp.close()
        bp.close()


def test_check_lists_every_watched_stamp_without_warnings(kind, tmp_path):
    bp = Bp(kind, tmp_path)
    erp = open_erp(bp.settings, password_field="Sel10")
    try:
        items = erp.check()
        assert [i for i in items if not i.ok] == []
        assert [i.name for i in items if "(warning)" in i.detail] == []
        detail = {i.name: i.detail for i in items}
        assert "LtzAend, Anschriften.LtzAend, Ansprechpartner.LtzAend" in detail["change detection"]
    finally:
        erp.close()
        bp.close()

"""Shop -> ERP import end to end for each platform kind (``shop`` fixture: Shopware 6,
WooCommerce): customers who registered themselves and ordered get an ERP address from the next
number, the number is written back to the shop account, and nothing is imported twice (I4).
The full import matrix (templates, ranges, collective address, kills) is in test_flow_import.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from syncd.flows.import_customers import run_shop_to_erp
from tests.support.dbs import unique_name
from tests.support.flow_harness import Harness
from tests.support.mailserver import smtp_server, smtp_server_factory, smtp_tls_files  # noqa: F401
from tests.support.shops import shop  # noqa: F401

PERSON = {"street": "Seestraße 4", "zip": "78462", "city": "Konstanz", "country": "DE"}


@pytest.fixture
def harness(tmp_path: Path, shop, smtp_server) -> Iterator[Harness]:  # noqa: F811
    h = Harness(tmp_path, f"sqlite:///{tmp_path / 'erp.db'}", unique_name("erp_imp"), shop, smtp_server)
    h.addresses = {"shop_to_erp": True, "next_address_number": 10100, "only_with_orders": True}
    try:
        yield h
    finally:
        h.close()


def erp_numbers(h: Harness) -> dict[int, str]:
    engine = sa.create_engine(h.erp_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text(f'SELECT "AdrNr", "EMail" FROM "{h.table}" ORDER BY "AdrNr"'))
            return {int(n): e for n, e in rows}
    finally:
        engine.dispose()


def test_ordering_customers_are_imported_once_and_get_their_number_written_back(harness: Harness) -> None:
    h, kit = harness, harness.kit
    h.insert([{"number": 10001, "email": "erp@example.com", "first_name": "Erika", "last_name": "Erp",
               **PERSON}])
    greta = kit.register("greta.sommer@example.com", "Sommer2026!", first_name="Greta", last_name="Sommer",
                         **PERSON)
    paul = kit.register("paul.winter@example.com", "Winter2026!", first_name="Paul", last_name="Winter",
                        **PERSON)
    kit.add_order(greta)
    assert h.run().counts["created"] == 1  # 10001 pushed first: its account is ours, never imported

    report = run_shop_to_erp(h.context())
    assert report.counts["imported"] == 1, report.counts
    assert erp_numbers(h) == {10001: "erp@example.com", 10100: "greta.sommer@example.com"}
    accounts = {a.id: a for a in kit.accounts()}
    assert accounts[greta].number == "10100"  # written back: the pair stays linked
    if kit.kind == "woocommerce":  # (Shopware numbers self-registered customers from its own range)
        assert accounts[paul].number is None  # no order: not imported, nothing written

    again = run_shop_to_erp(h.context())
    assert not again.counts["imported"], again.counts
    assert len(erp_numbers(h)) == 2

    kit.add_order(paul)  # a first order later: imported by the next run with the next number
    later = run_shop_to_erp(h.context())
    assert later.counts["imported"] == 1, later.counts
    assert erp_numbers(h)[10101] == "paul.winter@example.com"
    assert {a.id: a.number for a in kit.accounts()}[paul] == "10101"

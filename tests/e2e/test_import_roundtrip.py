"""Issue 18: an address imported from the shop is not pushed back to the shop as an "update" on
the next ERP -> shop cycle (the sandbox of each platform kind over HTTP, a SQLite ERP table,
SQLite state)."""

from __future__ import annotations

import copy

import pytest

from syncd.flows.erp_to_shop import run_erp_to_shop
from syncd.flows.import_customers import run_shop_to_erp
from tests.e2e.test_flow_import import World, erp_settings  # noqa: F401 - the fixture
from tests.support.shops import shop  # noqa: F401 - the fixture


@pytest.fixture
def world(shop, erp_settings, tmp_path):  # noqa: F811
    w = World(shop, erp_settings, tmp_path)
    yield w
    w.close()


def test_imported_address_is_not_written_back_to_the_shop(world) -> None:
    a = world.shop_user("juergen@example.com", first_name="Jürgen", last_name="Größ", street="Straße 1",
                        zipcode="01067", city="Dresden", company="Müller & Söhne GmbH")
    b = world.shop_user("erika@example.com", salutation="mrs", country="AT", city="Wien")
    both = dict(erp_to_shop=True, shop_to_erp=True)
    imported = run_shop_to_erp(world.ctx(**both))
    assert imported.counts["imported"] == 2
    before = {cid: copy.deepcopy(world.customer(cid)) for cid in (a, b)}

    report = run_erp_to_shop(world.ctx(**both))
    numbers = {str(n) for n in world.erp_rows()}
    assert {i.record for i in report.items if i.action == "unchanged"} == numbers
    assert not [i for i in report.items if i.action not in ("unchanged",)], report.items
    assert {cid: world.customer(cid) for cid in (a, b)} == before  # no write reached the shop

    # A real ERP change afterwards is pushed as usual.
    row = next(r for r in world.erp_rows().values() if r["EMail"] == "erika@example.com")
    from tests.support.erp_fixtures import update_address
    update_address(world.erp_settings.url, world.table, row["AdrNr"], {"city": "Graz"})
    report = run_erp_to_shop(world.ctx(**both))
    assert [(i.record, i.action) for i in report.items] == [(str(row["AdrNr"]), "updated")]

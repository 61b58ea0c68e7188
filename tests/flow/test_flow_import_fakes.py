"""The shop -> ERP import on in-memory fakes (state, shop, ERP): the flow's decisions and its
crash safety in milliseconds. ``test_flow_import.py`` runs the same flow end to end against the
Shopware sandbox, SQLite and MariaDB.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from syncd.config.model import (
    AddressSettings,
    DaemonSettings,
    ErpColumns,
    ErpSettings,
    PlatformSettings,
    Settings,
)
from syncd.core.domain import ShopCustomer
from syncd.core.rules import SHOP_CHANGE_OVERLAP, SHOP_IMPORT_FIELDS, LinkKind
from syncd.flows.context import PlatformContext
from syncd.flows.failures import clear_failures, record_failure
from syncd.flows.import_customers import CURSOR, DIRECTION, run_shop_to_erp
from syncd.flows.import_plan import InvalidAddress, copy_columns, link_done, new_address_values, shop_values
from syncd.state.links import Link
from tests.support.erp_fixtures import COLUMNS
from tests.support.fakes.erp import FakeErp
from tests.support.fakes.shop import FakeShop
from tests.support.fakes.state import FakeState, FakeUnitOfWork

PLATFORM = "moebel"
NOW = datetime(2031, 2, 14, 9, 30, tzinfo=UTC)


class Crash(BaseException):
    """A process death at a chosen point: no ``except Exception`` handler runs."""


def customer(shop_id: str, email: str, **kw: Any) -> ShopCustomer:
    values: dict[str, Any] = dict(last_name="Østergaard", street="Fjordvej 3", zip="8000", city="Aarhus",
                                  country="dk", first_name="Ida", updated_at=NOW - timedelta(days=1))
    values.update(kw)
    return ShopCustomer(id=shop_id, email=email, **values)


class World:
    def __init__(self, *, columns: dict[str, str] | None = None, erp_rows: dict[int, dict] | None = None,
                 **addresses: Any) -> None:
        self.columns = dict(COLUMNS if columns is None else columns)
        values: dict[str, Any] = {"erp_to_shop": False, "only_with_orders": False,
                                  "next_address_number": 30500}
        values.update(addresses)
        platform = PlatformSettings(name=PLATFORM, url="https://shop.invalid", client_id="id",
                                    client_secret="env:SYNCD_TEST_SHOP_SECRET",
                                    addresses=AddressSettings(**values))
        erp = ErpSettings(url="sqlite://", address_table="adressen", debtor_range=(30000, 39999),
                          columns=ErpColumns(**self.columns))
        self.settings = Settings(daemon=DaemonSettings(state_url="sqlite://"), erp=erp, platforms=(platform,))
        self.state = FakeState(lambda: NOW)
        self.units: list[FakeUnitOfWork] = []
        self.shop = FakeShop()
        self.erp = FakeErp(self.columns, erp_rows)

    def unit(self) -> FakeUnitOfWork:
        self.units.append(FakeUnitOfWork(self.state))
        return self.units[-1]

    def ctx(self) -> PlatformContext:
        platform = self.settings.platforms[0]
        return PlatformContext(self.settings, platform, self.erp, self.shop, state=None,  # type: ignore[arg-type]
                               clock=lambda: NOW, uow=self.unit)

    def run(self, **kw: Any):
        return run_shop_to_erp(self.ctx(), **kw)

    def link(self, shop_id: str):
        return self.state.links.get_by_shop(PLATFORM, shop_id)


def test_since_is_the_cursor_minus_the_overlap_exactly_once():
    w = World()
    w.shop.add(customer("c1", "ida@fjord.dk"))
    w.run()
    assert w.shop.changed_since == [None]  # no cursor yet: everything
    assert w.state.cursors.get(PLATFORM, CURSOR) == {"since": NOW.isoformat()}

    w.run()
    assert w.shop.changed_since[-1] == NOW - SHOP_CHANGE_OVERLAP == NOW - timedelta(minutes=5)


def test_new_numbers_skip_the_ones_the_erp_uses_and_one_taken_at_insert():
    w = World(erp_rows={30500: {"number": 30500}, 30501: {"number": 30501}})
    w.erp.taken_at_insert = {30503}  # another ERP user takes it between the check and our insert
    for i in range(3):
        w.shop.add(customer(f"c{i}", f"kunde{i}@fjord.dk"))
    report = w.run()
    assert report.counts["imported"] == 3
    assert [w.link(f"c{i}").erp_number for i in range(3)] == [30502, 30504, 30505]
    assert w.erp.inserts == [30502, 30504, 30505]
    assert [w.shop.customers[f"c{i}"].customer_number for i in range(3)] == ["30502", "30504", "30505"]
    assert w.erp.rows[30504]["EMail"] == "kunde1@fjord.dk" and w.erp.rows[30504]["Land"] == "DK"
    assert w.state.allocations.peek(PLATFORM) == 30506
    assert all(w.link(f"c{i}").kind == LinkKind.IMPORT for i in range(3))


def test_only_with_orders_imports_customers_with_an_order_only():
    w = World(only_with_orders=True)
    w.shop.add(customer("browser", "nur-schauen@fjord.dk"))
    w.shop.add(customer("buyer", "kauft@fjord.dk", order_count=1, updated_at=NOW - timedelta(days=90)))
    w.run()  # first cycle: no cursor, every customer is read anyway
    assert w.link("browser") is None and w.link("buyer") is not None
    assert w.shop.with_orders_since == []  # no bound yet, nothing extra to ask
    w.shop.add(customer("late", "erste-bestellung@fjord.dk", order_count=1,
                        updated_at=NOW - timedelta(days=9)))
    report = w.run()
    # A first order does not touch updatedAt: found only through the orders query.
    assert w.shop.with_orders_since == [NOW - SHOP_CHANGE_OVERLAP]
    assert report.counts["imported"] == 1 and w.link("late").erp_number == 30501


def test_template_values_are_copied_and_the_shop_values_win():
    w = World(erp_rows={30010: {"number": 30010, "customer_group": "Händler", "Status": "geprüft",
                                "EMail": "vorlage@erp.example", "Bemerkung": "nicht kopieren"}},
              template_address=30010, copy_fields=("customer_group", "Status", "email"))
    w.shop.add(customer("c1", "neu@fjord.dk", company="Fjord ApS", salutation=None))
    w.run()
    row = w.erp.rows[30500]
    assert row["Gruppe"] == "Händler" and row["Status"] == "geprüft"
    assert row["EMail"] == "neu@fjord.dk"  # the shop supplies the e-mail: never the template's
    assert "Bemerkung" not in row
    assert row["Anrede"] == "Firma" and row["ShopId"] == "c1"


def test_collective_address_links_without_creating_an_erp_address():
    w = World(shop_to_erp=False, collective_address=39999, erp_rows={39999: {"number": 39999}})
    w.shop.add(customer("c1", "a@fjord.dk"))
    w.shop.add(customer("c2", "b@fjord.dk"))
    report = w.run()
    assert report.counts["linked"] == 2 and w.erp.inserts == []
    assert {w.link(c).kind for c in ("c1", "c2")} == {LinkKind.COLLECTIVE}
    assert w.shop.numbers_written == [("c1", "39999"), ("c2", "39999")]


def test_a_bad_customer_fails_alone_and_is_retried_from_the_failures():
    w = World()
    w.shop.add(customer("bad", "x@fjord.dk", country="XX"))
    w.shop.add(customer("good", "y@fjord.dk"))
    report = w.run()
    assert report.counts == {"failed": 1, "imported": 1}
    assert w.state.failures.records_with_code(PLATFORM, DIRECTION, ["invalid-address"]) == ["bad"]
    w.shop.customers["bad"] = customer("bad", "x@fjord.dk", country="SE", updated_at=NOW - timedelta(days=2))
    w.run()  # not changed since the cursor: found through its failure record
    assert w.link("bad").erp_number == 30501 and w.state.failures.count(PLATFORM) == 0


@pytest.mark.parametrize("shop_id_column", [True, False], ids=["by-shop-id", "by-email"])
def test_crash_after_the_erp_insert_is_repaired_without_a_second_address(shop_id_column):
    """I4: the link is durable before the insert, so a crash right after the insert leaves the
    new row linked (the ERP -> shop scan never sees it unlinked), and the replay only writes the
    number back."""
    columns = dict(COLUMNS)
    if not shop_id_column:
        columns.pop("shop_id")
    w = World(columns=columns)
    w.shop.add(customer("c1", "Ida@Fjord.dk"))

    def crash(number: int) -> None:
        raise Crash(number)

    w.erp.after_insert = crash
    with pytest.raises(Crash):
        w.run()
    assert w.erp.inserts == [30500]
    link = w.link("c1")
    assert link is not None and (link.erp_number, link.kind) == (30500, LinkKind.IMPORT)
    assert w.shop.customers["c1"].customer_number is None
    assert w.state.cursors.get(PLATFORM, CURSOR) is None

    w.erp.after_insert = None
    report = w.run()
    assert w.erp.inserts == [30500]  # no second ERP address
    assert report.items[-1].detail == "ERP address 30500 (resumed)"
    assert w.shop.customers["c1"].customer_number == "30500"
    assert w.state.allocations.peek(PLATFORM) == 30501


def test_each_batch_commits_its_state_through_one_unit():
    w = World()
    for i in range(3):
        w.shop.add(customer(f"c{i}", f"k{i}@fjord.dk"))
    w.run()
    # cursor read, failures re-read, the batch's unit, the cursor write: no unit left with
    # uncommitted writes (a rollback would mean the flow lost a write).
    assert len(w.units) == 4 and sum(u.rolled_back for u in w.units) == 0
    batch = w.units[2]
    # durable before each ERP insert and after each customer, not once at the end of the batch
    assert batch.committed >= 2 * 3
    assert w.units[3].committed == 1 and w.state.cursors.get(PLATFORM, CURSOR) is not None


def test_dry_run_reports_and_writes_nothing():
    w = World(erp_rows={30500: {"number": 30500}})
    w.shop.add(customer("c1", "a@fjord.dk"))
    report = w.run(dry_run=True)
    assert [(i.record, i.action, i.detail) for i in report.items] == [
        ("c1", "would-create", "ERP address 30501 for a@fjord.dk")]
    assert w.erp.inserts == [] and w.link("c1") is None and w.state.cursors.get(PLATFORM, CURSOR) is None
    assert w.state.allocations.peek(PLATFORM) is None and w.shop.numbers_written == []


# ---------------------------------------------------------------------------------------- the plan
def test_shop_values_name_exactly_the_shop_import_fields():
    c = customer("c1", "a@fjord.dk", company="Fjord ApS", country="se", phone="+46 8 123")
    values = shop_values(c)
    assert tuple(values) == SHOP_IMPORT_FIELDS
    assert values["salutation"] == "Firma" and values["country"] == "SE" and values["phone"] == "+46 8 123"


def test_only_mapped_shop_fields_and_never_a_shop_column_from_the_template():
    columns = {"number": "Nr", "email": "Mail", "last_name": "Name1", "city": "Ort", "zip": "PLZ"}
    with pytest.raises(InvalidAddress, match="city is missing.*unknown country 'XY'"):
        new_address_values(customer("c1", "a@fjord.dk", city=" ", country="XY"), columns, {})
    # The template's columns are the copy columns: the shop's own columns are never among them.
    copy = copy_columns(columns, ("city", "Zahlungsziel", "Nr", "zip", "Zahlungsziel", "Gruppe"))
    assert copy == ["Zahlungsziel", "Gruppe"]
    values = new_address_values(customer("c1", "a@fjord.dk", zip=""), columns,
                                {"Zahlungsziel": 30, "Gruppe": "H"})
    # Unmapped fields (street, first name, ...) are left out; the shop's empty zip is kept.
    assert values == {"Zahlungsziel": 30, "Gruppe": "H", "email": "a@fjord.dk", "last_name": "Østergaard",
                      "city": "Aarhus", "zip": ""}


def test_a_link_is_done_when_the_shop_carries_its_number_or_it_is_the_other_flows():
    c = customer("c1", "a@fjord.dk", customer_number="30500")
    assert link_done(c, Link(PLATFORM, "c1", 30500, kind=LinkKind.IMPORT))
    assert not link_done(c, Link(PLATFORM, "c1", 30501, kind=LinkKind.IMPORT))
    assert not link_done(c, Link(PLATFORM, "c1", 30501, kind=LinkKind.COLLECTIVE))
    assert link_done(c, Link(PLATFORM, "c1", 30501, kind=LinkKind.EMAIL))


# ---------------------------------------------------------------------------------------- failures
def test_failures_of_the_credential_step_are_kept_apart_from_the_push():
    w = World()
    ctx = w.ctx()
    record_failure(ctx, 30500, step="credentials", reason="550 mailbox unknown", code="smtp")
    record_failure(ctx, 30500, step="push", reason="rejected")
    assert sorted(f.direction for f in w.state.failures.list(PLATFORM)) == ["credentials", "erp-to-shop"]
    clear_failures(ctx, [30500], step="push")
    assert [(f.direction, f.code) for f in w.state.failures.list(PLATFORM)] == [("credentials", "smtp")]
    assert all(u.committed == 1 for u in w.units)

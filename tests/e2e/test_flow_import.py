"""Shop -> ERP import against real components: the shop sandbox of each platform kind over HTTP
(``shop`` fixture: Shopware 6, WooCommerce), the ERP table in SQLite and in MariaDB through ODBC
(mysql+pyodbc, "MariaDB Unicode"), the state store in SQLite. A case that cannot apply to
WooCommerce is reported skipped with the reason (``shopware_only``).
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from syncd.config.model import AddressSettings, DaemonSettings, ErpSettings, PlatformSettings, Settings
from syncd.connectors import shopware6, woocommerce
from syncd.connectors.erp import open_erp
from syncd.core.errors import ConfigError
from syncd.flows.context import PlatformContext
from syncd.flows.import_checks import check_import_settings
from syncd.flows.import_customers import CURSOR, KILL_ENV, run_shop_to_erp
from syncd.flows.numbers import ImportBlocked, NumberRefused
from syncd.state.allocations import Allocations
from syncd.state.cursors import Cursors
from syncd.state.db import open_state
from syncd.state.failures import Failures
from syncd.state.links import Link, Links
from tests.support.dbs import mariadb_url, pg_schema_url, unique_name
from tests.support.erp_fixtures import create_address_table, insert_addresses
from tests.support.shop_fixtures import admin_session
from tests.support.shops import kit_for, shop  # noqa: F401 - the fixture
from tests.support.wired_env import shopware_only

PLATFORM = "shop"


@pytest.fixture(params=["sqlite", pytest.param("mariadb", marks=pytest.mark.realdb)])
def erp_settings(request, tmp_path):
    if request.param == "sqlite":
        url, table = f"sqlite:///{tmp_path / 'erp.db'}", "adressen"
    else:
        url, table = mariadb_url(), unique_name("imp")
    settings = create_address_table(url, table)
    yield settings
    if request.param != "sqlite":
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS `{table}`"))
        engine.dispose()


class World:
    """One ERP table, one sandbox shop, one state store; ``ctx(...)`` wires a platform with
    the given ``[platforms.addresses]`` values, as bootstrap would."""

    def __init__(self, sandbox, erp_settings: ErpSettings, tmp_path, state_url: str | None = None) -> None:
        self.kit = kit_for(sandbox)
        self.sb = self.kit.sandbox
        self.woo = self.kit.kind == "woocommerce"
        self.erp_settings = erp_settings
        self.tmp_path = tmp_path
        self.state_url = state_url or f"sqlite:///{tmp_path / 'state.db'}"
        self.state = open_state(self.state_url)
        self._open: list[Any] = []
        self.table = erp_settings.address_table

    def settings(self, erp: ErpSettings | None = None, **addresses: Any) -> Settings:
        values = {"next_address_number": 10019, "only_with_orders": False, "erp_to_shop": False}
        values.update(addresses)
        platform = PlatformSettings(
            name=PLATFORM, url=self.sb.url, **self.kit.platform_fields("env:SYNCD_TEST_SHOP_SECRET"),
            addresses=AddressSettings(**values),
        )
        return Settings(daemon=DaemonSettings(state_url=self.state_url),
                        erp=erp or self.erp_settings, platforms=(platform,))

    def ctx(self, erp_port: Any = None, clock=None, erp: ErpSettings | None = None, **addresses: Any):
        settings = self.settings(erp, **addresses)
        platform = settings.platforms[0]
        erp_port = erp_port or open_erp(settings.erp)
        connector = open_shop(platform, self.kit.secret)
        self._open += [erp_port, connector]
        ctx = PlatformContext(settings, platform, erp_port, connector, self.state)
        if clock is not None:
            ctx.clock = clock
        return ctx

    def close(self) -> None:
        for thing in self._open:
            close = getattr(thing, "close", None)
            if close:
                close()
        self.state.close()

    # --- looking at the three systems --------------------------------------------------------
    def erp_rows(self) -> dict[int, dict[str, Any]]:
        engine = sa.create_engine(self.erp_settings.url, poolclass=sa.pool.NullPool)
        try:
            table = sa.Table(self.table, sa.MetaData(), autoload_with=engine)
            with engine.connect() as conn:
                return {int(r.AdrNr): dict(r._mapping) for r in conn.execute(sa.select(table))}
        finally:
            engine.dispose()

    def customer(self, shop_id: str) -> dict[str, Any]:
        return self.sb.customer(shop_id)

    def number_of(self, shop_id: str) -> str | None:
        """The ERP number the shop account carries (customerNumber / meta syncd_erp_number)."""
        return next((a.number for a in self.kit.accounts() if a.id == str(shop_id)), None)

    def email_of(self, shop_id: str) -> str:
        return next(a.email for a in self.kit.accounts() if a.id == str(shop_id))

    def links(self) -> dict[str, Any]:
        return {lk.shop_id: lk for lk in Links(self.state).iter(PLATFORM)}

    def shop_user(self, email: str, *, orders: int = 0, **kw: Any) -> str:
        if self.woo:  # the same person in WooCommerce's shape (no salutation there)
            person = {"first_name": "Erika", "last_name": "Musterfrau", "street": "Hauptstr. 1",
                      "zipcode": "10115", "city": "Berlin", "country": "DE", "company": ""}
            person.update({k: v for k, v in kw.items() if k != "salutation"})
            billing = {"first_name": person["first_name"], "last_name": person["last_name"],
                       "company": person["company"] or "", "address_1": person["street"],
                       "postcode": person["zipcode"], "city": person["city"], "country": person["country"],
                       "email": email}
            cid = str(self.sb.create_customer_as_shop_user(
                email, "Geheim-123", first_name=person["first_name"], last_name=person["last_name"],
                billing=billing)["id"])
        else:
            cid = self.sb.create_customer_as_shop_user(email, "Geheim-123", **kw)["id"]
        for _ in range(orders):
            self.sb.add_order(cid)
        return cid

    def set_changed(self, shop_id: str, when: datetime) -> None:
        """The customer's created and changed time, as the shop stores them."""
        if self.woo:
            with self.sb.data.lock:
                user = self.sb.data.users[int(shop_id)]
                user["date_created_gmt"] = user["date_modified_gmt"] = when.strftime("%Y-%m-%dT%H:%M:%S")
            return
        stamp = when.strftime("%Y-%m-%dT%H:%M:%S.000+00:00")
        with self.sb._store.lock:
            record = dict(self.sb._store.get("customer", shop_id))
            record.update(createdAt=stamp, updatedAt=stamp)
            self.sb._store.put("customer", record)

    def set_number(self, shop_id: str, number: str) -> None:
        """An ERP number written into the account by someone else (the shop's admin)."""
        if self.woo:
            self.sb.data.update(shop_id, {"meta_data": [{"key": woocommerce.META_KEY, "value": number}]})
            return
        admin_session(self.sb).patch(f"{self.sb.url}/api/customer/{shop_id}",
                                     json={"customerNumber": number}).raise_for_status()

    def age(self, shop_id: str, days: int = 2) -> None:
        """Make a customer look old: created and last changed days ago."""
        if self.woo:
            self.set_changed(shop_id, datetime.now(UTC) - timedelta(days=days))
            return
        stamp = (datetime.now(UTC) - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%S.000+00:00")
        with self.sb._store.lock:
            record = dict(self.sb._store.get("customer", shop_id))
            record.update(createdAt=stamp, updatedAt=stamp)
            self.sb._store.put("customer", record)

    def break_address(self, shop_id: str, **fields: Any) -> None:
        """Give a customer's billing address values the admin API would not take."""
        if self.woo:
            with self.sb.data.lock:
                billing = self.sb.data.users[int(shop_id)]["billing"]
                billing.update({"address_1" if k == "street" else k: v for k, v in fields.items()})
            return
        with self.sb._store.lock:
            customer = self.sb._store.get("customer", shop_id)
            address = dict(self.sb._store.get("customer_address", customer["defaultBillingAddressId"]))
            address.update(fields)
            self.sb._store.put("customer_address", address)

    def add_country(self, iso: str, name: str) -> None:
        if self.woo:  # WooCommerce takes any two-letter code: no country list in the shop
            return
        cid = "%032x" % (abs(hash(iso)) % (1 << 127))
        with self.sb._store.lock:
            self.sb._store.put("country", {"id": cid, "iso": iso, "iso3": None, "active": True,
                                           "name": name, "translated": {"name": name}, "position": 99})
        self.sb.ids.countries[iso] = cid


def open_shop(platform: PlatformSettings, secret: str) -> Any:
    """The platform's connector, by kind, as bootstrap builds it."""
    if platform.kind == woocommerce.KIND:
        return woocommerce.open_shop(platform, consumer_secret=secret)
    return shopware6.open_shop(platform, client_secret=secret)


@pytest.fixture
def world(shop, erp_settings, tmp_path):  # noqa: F811
    w = World(shop, erp_settings, tmp_path)
    yield w
    w.close()


def imported(report) -> list[str]:
    return [i.record for i in report.items if i.action == "imported"]


# --- the basic import ----------------------------------------------------------------------------


def test_imports_registered_customers_with_billing_address_and_writes_the_number_back(world, captured_logs):
    a = world.shop_user("juergen@example.com", first_name="Jürgen", last_name="Größ", street="Straße 1 ä",
                        zipcode="01067", city="Dresden", company="Müller & Söhne GmbH")
    b = world.shop_user("erika@example.com", salutation="mrs", country="AT", city="Wien")
    report = run_shop_to_erp(world.ctx())
    assert sorted(imported(report)) == sorted([a, b])
    rows = world.erp_rows()
    assert sorted(rows) == [10019, 10020]
    by_email = {r["EMail"]: r for r in rows.values()}
    ra = by_email["juergen@example.com"]
    assert (ra["Vorname"], ra["Nachname"], ra["Strasse"], ra["PLZ"], ra["Ort"], ra["Firma"], ra["Land"]) == (
        "Jürgen", "Größ", "Straße 1 ä", "01067", "Dresden", "Müller & Söhne GmbH", "DE")
    assert ra["ShopId"] == a  # the stable key an interrupted import is found by
    rb = by_email["erika@example.com"]
    # (WooCommerce customers have no salutation)
    assert (rb["Anrede"], rb["Land"], rb["Ort"]) == (None if world.woo else "Frau", "AT", "Wien")
    # the pair is linked both ways: customer number in the shop, link (kind import) in the state store
    assert world.number_of(a) == str(ra["AdrNr"])
    assert world.number_of(b) == str(rb["AdrNr"])
    links = world.links()
    assert {(lk.erp_number, lk.kind) for lk in links.values()} == {
        (ra["AdrNr"], "import"), (rb["AdrNr"], "import")}
    assert Cursors(world.state).get(PLATFORM, CURSOR) is not None
    events = [e for e in captured_logs.events() if e.get("event") == "import imported"]
    assert {(e["platform"], e["shop_id"]) for e in events} == {(PLATFORM, a), (PLATFORM, b)}


def test_rerun_imports_nothing(world):
    world.shop_user("one@example.com")
    world.shop_user("two@example.com")
    run_shop_to_erp(world.ctx())
    before = world.erp_rows()
    again = run_shop_to_erp(world.ctx())
    assert imported(again) == [] and again.counts["failed"] == 0
    assert world.erp_rows() == before
    # a newcomer gets the next number; nobody else is touched
    c = world.shop_user("three@example.com")
    third = run_shop_to_erp(world.ctx())
    assert imported(third) == [c]
    assert sorted(world.erp_rows()) == [10019, 10020, 10021]


@shopware_only("WooCommerce has no guest accounts: a guest order carries customer_id 0 and no customer "
               "(the connector leaves such orders out: test_woocommerce_import_scan)")
def test_guests_are_never_imported(world):
    sandbox = world.sb
    cid = world.shop_user("guest@example.com", orders=1)
    with sandbox._store.lock:
        sandbox._store.put("customer", {**sandbox._store.get("customer", cid), "guest": True})
    report = run_shop_to_erp(world.ctx())
    assert imported(report) == [] and world.erp_rows() == {}


def test_the_overlap_before_the_cursor_is_applied_once(world):
    """The cursor is moved back by ``rules.SHOP_CHANGE_OVERLAP`` (5 minutes), once: a customer
    changed 7 minutes before the cursor is not read again, one changed 3 minutes before it is
    (the connector subtracted another 5 minutes and re-read both)."""
    early = world.shop_user("early@example.com")
    late = world.shop_user("late@example.com")
    now = datetime.now(UTC)
    world.set_changed(early, now - timedelta(minutes=4))
    Cursors(world.state).set(PLATFORM, CURSOR, {"since": (now + timedelta(minutes=3)).isoformat()})
    report = run_shop_to_erp(world.ctx())
    assert imported(report) == [late]
    assert early not in world.links()


# --- only with orders ----------------------------------------------------------------------------


def test_only_with_orders_off_imports_customers_without_orders(world):
    cid = world.shop_user("noorder@example.com")
    assert imported(run_shop_to_erp(world.ctx(only_with_orders=False))) == [cid]


def test_only_with_orders_on_skips_customers_without_orders(world):
    buyer = world.shop_user("buyer@example.com", orders=1)
    browser = world.shop_user("browser@example.com")
    report = run_shop_to_erp(world.ctx(only_with_orders=True))
    assert imported(report) == [buyer]
    assert report.counts["no-orders"] == 1
    assert browser not in world.links()
    assert world.number_of(browser) != "10020"


def test_first_order_brings_an_old_customer_in_on_the_next_cycle(world):
    old = world.shop_user("old@example.com")
    world.age(old)  # registered days ago: outside every change window from now on
    first = run_shop_to_erp(world.ctx(only_with_orders=True))
    assert imported(first) == [] and first.counts["no-orders"] == 1
    quiet = run_shop_to_erp(world.ctx(only_with_orders=True))
    assert imported(quiet) == []
    world.sb.add_order(old)  # does not touch the customer's updatedAt
    if not world.woo:
        assert world.customer(old)["updatedAt"] is None or world.customer(old)["updatedAt"] < (
            datetime.now(UTC) - timedelta(days=1)).isoformat()
    second = run_shop_to_erp(world.ctx(only_with_orders=True))
    assert imported(second) == [old]
    assert list(world.erp_rows()) == [10019]


# --- numbers -------------------------------------------------------------------------------------


def test_number_gaps_are_used_and_taken_numbers_skipped(world):
    insert_addresses(world.erp_settings.url, world.table, [
        {"number": n, "email": f"erp{n}@example.com", "last_name": "Vorhanden"} for n in (10019, 10020, 10022)
    ])
    ids = [world.shop_user(f"c{i}@example.com") for i in range(3)]
    report = run_shop_to_erp(world.ctx())
    assert sorted(imported(report)) == sorted(ids)
    assert sorted(world.erp_rows()) == [10019, 10020, 10021, 10022, 10023, 10024]
    assert sorted(lk.erp_number for lk in world.links().values()) == [10021, 10023, 10024]
    assert Allocations(world.state).peek(PLATFORM) == 10025
    # the pre-existing rows were not touched
    assert world.erp_rows()[10020]["EMail"] == "erp10020@example.com"


class RacingErp:
    """The real ERP connector, plus a second connection that inserts the very number we are
    about to insert, right before our insert: the ERP desk creating an address concurrently."""

    def __init__(self, erp, settings: ErpSettings) -> None:
        self._erp = erp
        self._settings = settings
        self.raced: list[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._erp, name)

    def create_address(self, number: int, values) -> bool:
        if not self.raced:
            self.raced.append(number)
            insert_addresses(self._settings.url, self._settings.address_table,
                             [{"number": number, "email": "desk@example.com", "last_name": "Schreibtisch"}])
        return self._erp.create_address(number, values)


def test_concurrent_writer_takes_the_number_between_check_and_insert(world):
    cid = world.shop_user("racer@example.com")
    racing = RacingErp(open_erp(world.erp_settings), world.erp_settings)
    report = run_shop_to_erp(world.ctx(erp_port=racing))
    assert racing.raced == [10019]
    assert imported(report) == [cid]
    rows = world.erp_rows()
    assert rows[10019]["EMail"] == "desk@example.com"  # the desk's address is untouched
    assert rows[10020]["EMail"] == "racer@example.com"
    assert world.links()[cid].erp_number == 10020
    assert world.number_of(cid) == "10020"


class LostReplyErp:
    """The real connector; the first insert commits but its reply is lost, so the same insert
    is sent again (what the retry policy does after a dropped connection)."""

    def __init__(self, erp) -> None:
        self._erp = erp
        self.sent = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._erp, name)

    def create_address(self, number: int, values) -> bool:
        if not self.sent:
            self.sent += 1
            assert self._erp.create_address(number, values)
        return self._erp.create_address(number, values)


def test_insert_repeated_after_a_lost_reply_is_recognised_as_ours(world):
    cid = world.shop_user("verloren@example.com")
    report = run_shop_to_erp(world.ctx(erp_port=LostReplyErp(open_erp(world.erp_settings))))
    assert imported(report) == [cid]
    assert sorted(world.erp_rows()) == [10019]  # not a second address under 10020
    assert world.links()[cid].erp_number == 10019


class LinkingErp:
    """The real connector; while our cycle allocates a number, the ERP -> shop flow (running at
    the same time) links the customer's account to an ERP address it found by e-mail."""

    def __init__(self, erp, state, shop_id: str) -> None:
        self._erp, self._state, self._shop_id, self.done = erp, state, shop_id, False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._erp, name)

    def number_exists(self, number: int) -> bool:
        if not self.done:
            self.done = True
            link = Link(PLATFORM, self._shop_id, 10050, kind="email", email="x@example.com")
            Links(self._state).upsert(link)
        return self._erp.number_exists(number)


def test_a_link_made_by_the_other_direction_meanwhile_is_never_overwritten(world):
    cid = world.shop_user("zugleich@example.com")
    racing = LinkingErp(open_erp(world.erp_settings), world.state, cid)
    report = run_shop_to_erp(world.ctx(erp_port=racing))
    assert racing.done
    assert [i.action for i in report.items] == ["skipped"] and "10050" in report.items[0].detail
    assert world.links()[cid].kind == "email" and world.links()[cid].erp_number == 10050
    assert world.erp_rows() == {}
    assert Allocations(world.state).peek(PLATFORM) == 10019  # the number went back
    assert Failures(world.state).list(PLATFORM) == []


def test_number_taken_while_we_were_down_is_replaced_by_a_new_one(world):
    """State after a crash between link and insert, and the ERP desk used the number since."""
    cid = world.shop_user("spaet@example.com")
    Allocations(world.state).reserve(PLATFORM, floor=10019)
    Links(world.state).upsert(Link(PLATFORM, cid, 10019, kind="import", email="spaet@example.com"))
    insert_addresses(world.erp_settings.url, world.table,
                     [{"number": 10019, "email": "desk@example.com", "last_name": "Schreibtisch"}])
    report = run_shop_to_erp(world.ctx())
    assert imported(report) == [cid]
    rows = world.erp_rows()
    assert rows[10019]["EMail"] == "desk@example.com" and rows[10020]["EMail"] == "spaet@example.com"
    assert world.links()[cid].erp_number == 10020
    assert world.number_of(cid) == "10020"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.realdb)])
def any_state_world(request, shop, tmp_path):  # noqa: F811
    """SQLite ERP; the state store on SQLite or on PostgreSQL (its own schema)."""
    erp = create_address_table(f"sqlite:///{tmp_path / 'erp.db'}", "adressen")
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(pg_schema_url("imp_state")) if request.param == "postgresql" else None
        w = World(shop, erp, tmp_path, url)
        stack.callback(w.close)
        yield w


def test_number_held_by_an_unfinished_import_of_another_customer_is_skipped(any_state_world):
    """A link without its ERP row (an import interrupted before the insert) keeps its number:
    the link table's unique number refuses it to anybody else."""
    world = any_state_world
    ghost = "0" * 32
    Links(world.state).upsert(Link(PLATFORM, ghost, 10019, kind="import", email="ghost@example.com"))
    cid = world.shop_user("lebendig@example.com")
    report = run_shop_to_erp(world.ctx())
    assert imported(report) == [cid]
    assert world.links()[cid].erp_number == 10020 and world.links()[ghost].erp_number == 10019
    assert sorted(world.erp_rows()) == [10020]


def test_number_outside_debtor_range_is_refused_and_stops_the_platform(world):
    insert_addresses(world.erp_settings.url, world.table, [{"number": 69999, "email": "x@example.com"}])
    a = world.shop_user("a@example.com")
    b = world.shop_user("b@example.com")
    with pytest.raises(NumberRefused) as info:  # the cycle fails visibly, with the reason
        run_shop_to_erp(world.ctx(next_address_number=69999))
    report = info.value.report
    assert imported(report) == []
    failed = [i for i in report.items if i.action == "failed"]
    assert len(failed) == 1  # the first refusal stops the run: the second is not even tried
    assert "70000" in failed[0].detail and "debtor_range" in failed[0].detail
    assert sorted(world.erp_rows()) == [69999]
    assert world.links() == {}
    assert Cursors(world.state).get(PLATFORM, CURSOR) is None  # everything is polled again
    (failure,) = Failures(world.state).list(PLATFORM)
    assert failure.record in (a, b) and "70000" in failure.reason

    allowed = run_shop_to_erp(world.ctx(next_address_number=69999, allow_numbers_outside_debtor_range=True))
    assert sorted(imported(allowed)) == sorted([a, b])
    assert sorted(world.erp_rows()) == [69999, 70000, 70001]
    assert Failures(world.state).list(PLATFORM) == []


# --- template, collective, adoption --------------------------------------------------------------


def test_template_fields_are_copied_and_shop_values_win(world):
    insert_addresses(world.erp_settings.url, world.table, [{
        "number": 10000, "email": "vorlage@example.com", "last_name": "Dummy", "company": "Dummy GmbH",
        "city": "Nirgendwo", "Status": "Shop-Kunde", "Bemerkung": "aus dem Shop", "customer_group": "WEB",
    }])
    cid = world.shop_user("neu@example.com", city="Köln")
    ctx = world.ctx(template_address=10000,
                    copy_fields=["Status", "Bemerkung", "customer_group", "company", "city"])
    assert all(i.ok for i in check_import_settings(ctx)), check_import_settings(ctx)
    assert imported(run_shop_to_erp(ctx)) == [cid]
    row = world.erp_rows()[10019]
    assert (row["Status"], row["Bemerkung"], row["Gruppe"]) == ("Shop-Kunde", "aus dem Shop", "WEB")
    assert row["Ort"] == "Köln" and row["Firma"] is None  # address fields come from the shop only
    assert row["EMail"] == "neu@example.com"


def test_missing_template_is_refused_by_check_and_at_run_time(world):
    cid = world.shop_user("neu@example.com")
    ctx = world.ctx(template_address=10000, copy_fields=["Status", "Nonsense"])
    bad = {i.name: i for i in check_import_settings(ctx) if not i.ok}
    assert any("template_address" in n for n in bad)
    with pytest.raises(ImportBlocked) as info:
        run_shop_to_erp(ctx)
    report = info.value.report
    assert imported(report) == [] and report.counts["failed"] == 1
    assert "template_address 10000 does not exist" in report.items[0].detail
    assert world.erp_rows() == {} and cid not in world.links()


def test_check_names_unknown_and_forbidden_copy_fields(world):
    insert_addresses(world.erp_settings.url, world.table, [{"number": 10000, "email": "t@example.com"}])
    # (the password field in copy_fields is refused by the config model already)
    ctx = world.ctx(template_address=10000, copy_fields=["Status", "Nonsense", "number", "AdrNr", "city"])
    items = {i.name.rsplit(": ", 1)[-1]: i for i in check_import_settings(ctx) if "copy_fields" in i.name}
    assert items["'Status'"].ok
    assert not items["'Nonsense'"].ok and "Nonsense" in items["'Nonsense'"].detail
    assert not items["'number'"].ok and "address number" in items["'number'"].detail
    assert not items["'AdrNr'"].ok
    assert items["'city'"].ok and "shop" in items["'city'"].detail


def test_check_reports_a_start_number_outside_the_debtor_range(world):
    def number_item(**addresses):
        items = check_import_settings(world.ctx(**addresses))
        (item,) = [i for i in items if "next_address_number" in i.name]
        return item

    assert number_item().ok and "10019" in number_item().detail
    bad = number_item(next_address_number=70000)
    assert not bad.ok and "70000" in bad.detail and "10000-69999" in bad.detail
    assert number_item(next_address_number=70000, allow_numbers_outside_debtor_range=True).ok
    # the persisted counter counts, not only the configured start
    Allocations(world.state).reserve(PLATFORM, floor=69999)
    assert not number_item(next_address_number=69999).ok


def test_collective_address_links_and_creates_nothing(world):
    insert_addresses(world.erp_settings.url, world.table, [{"number": 10000, "email": "sammel@example.com",
                                                            "last_name": "Sammelkunde"}])
    a = world.shop_user("a@example.com")
    b = world.shop_user("b@example.com")
    ctx = world.ctx(shop_to_erp=False, collective_address=10000)
    assert all(i.ok for i in check_import_settings(ctx))
    report = run_shop_to_erp(ctx)
    assert report.counts["linked"] == 2
    assert sorted(world.erp_rows()) == [10000]
    assert {(sid, lk.erp_number, lk.kind) for sid, lk in world.links().items()} == {
        (a, 10000, "collective"), (b, 10000, "collective")}
    assert world.number_of(a) == "10000"
    again = run_shop_to_erp(world.ctx(shop_to_erp=False, collective_address=10000))
    assert again.counts["linked"] == 0 and again.counts["unchanged"] == 2


def test_missing_collective_address_is_reported(world):
    world.shop_user("a@example.com")
    ctx = world.ctx(shop_to_erp=False, collective_address=10000)
    assert [i.ok for i in check_import_settings(ctx)] == [False]
    with pytest.raises(ImportBlocked) as info:
        run_shop_to_erp(ctx)
    report = info.value.report
    assert report.counts["failed"] == 1 and "collective_address 10000" in report.items[0].detail
    assert world.links() == {}


def test_customer_number_naming_their_erp_address_is_adopted_not_imported(world):
    insert_addresses(world.erp_settings.url, world.table, [
        {"number": 10050, "email": "Known@Example.com", "last_name": "Bekannt"},
        {"number": 10051, "email": "someone.else@example.com", "last_name": "Fremd"},
    ])
    known = world.shop_user("known@example.com")
    clash = world.shop_user("clash@example.com")
    for cid, number in ((known, "10050"), (clash, "10051")):
        world.set_number(cid, number)
    report = run_shop_to_erp(world.ctx())
    assert world.links()[known].erp_number == 10050
    assert [i.action for i in report.items if i.record == known] == ["linked"]
    # 10051 is somebody else's: the shop's own number range, not a link. Imported anew.
    assert imported(report) == [clash]
    assert world.links()[clash].erp_number == 10019
    assert world.number_of(clash) == "10019"
    assert sorted(world.erp_rows()) == [10019, 10050, 10051]


def test_the_one_erp_address_with_the_customers_email_is_adopted(world):
    insert_addresses(world.erp_settings.url, world.table, [
        {"number": 10060, "email": "stamm@example.com", "last_name": "Stammkunde"},
        {"number": 10061, "email": "familie@example.com", "last_name": "Vater"},
        {"number": 10062, "email": "familie@example.com", "last_name": "Mutter"},
    ])
    regular = world.shop_user("stamm@example.com")
    family = world.shop_user("familie@example.com")
    report = run_shop_to_erp(world.ctx())
    assert world.links()[regular].erp_number == 10060
    assert world.number_of(regular) == "10060"
    # two addresses share that e-mail: no guessing, a new address
    assert imported(report) == [family] and world.links()[family].erp_number == 10019
    assert sorted(world.erp_rows()) == [10019, 10060, 10061, 10062]


def test_import_into_the_bueroplus_layout(shop, tmp_path):  # noqa: F811
    """The reference ERP's shape: Adressen (text AdrNr, Status, WShopID) + Anschriften (postal
    data, Land as ISO numeric) + Ansprechpartner (names), written as one new address."""
    from tests.support.erp_fixtures import create_bueroplus_tables, fetch_row

    url = f"sqlite:///{tmp_path / 'bp.sqlite'}"
    erp = create_bueroplus_tables(url)
    erp = erp.model_copy(update={"columns": erp.columns.model_copy(update={"shop_id": "WShopID"})})
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO \"Adressen\" (\"AdrNr\", \"Status\", \"GspKz\") "
                             "VALUES ('10000', 'Shop-Kunde', 0)"))
    engine.dispose()
    w = World(shop, erp, tmp_path)
    try:
        cid = w.shop_user("bp@example.com", first_name="Jörg", last_name="Weiß", street="Königsallee 1",
                          zipcode="40212", city="Düsseldorf", country="AT", company="Weiß KG")
        ctx = w.ctx(erp=erp, template_address=10000, copy_fields=["Status"])
        assert all(i.ok for i in check_import_settings(ctx)), check_import_settings(ctx)
        assert imported(run_shop_to_erp(ctx)) == [cid]
        head = fetch_row(url, "Adressen", "10019")
        assert head is not None and head["Status"] == "Shop-Kunde" and head["WShopID"] == cid
        assert w.number_of(cid) == "10019"
        again = run_shop_to_erp(w.ctx(erp=erp, template_address=10000, copy_fields=["Status"]))
        assert imported(again) == []
        (address,) = open_erp(erp).get_addresses([10019]).values()
        assert (address.first_name, address.last_name, address.street, address.city, address.country,
                address.email, address.company) == ("Jörg", "Weiß", "Königsallee 1", "Düsseldorf", "AT",
                                                     "bp@example.com", "Weiß KG")
    finally:
        w.close()


# --- bad records ---------------------------------------------------------------------------------


def test_bad_records_fail_with_reason_and_the_others_continue(world):
    world.add_country("XK", "Kosovo")
    good = world.shop_user("gut@example.com", first_name="Zoë", last_name="Ünal", street="Grüner Weg 3")
    no_street = world.shop_user("ohnestrasse@example.com")
    world.break_address(no_street, street="")
    kosovo = world.shop_user("kosovo@example.com", country="XK")
    report = run_shop_to_erp(world.ctx())
    assert imported(report) == [good]
    reasons = {i.record: i.detail for i in report.items if i.action == "failed"}
    assert "street is missing" in reasons[no_street]
    assert "unknown country 'XK'" in reasons[kosovo]
    stored = {f.record: f for f in Failures(world.state).list(PLATFORM)}
    assert set(stored) == {no_street, kosovo} and stored[no_street].step == "validate"
    row = world.erp_rows()[10019]
    assert (row["Vorname"], row["Nachname"], row["Strasse"]) == ("Zoë", "Ünal", "Grüner Weg 3")
    assert Allocations(world.state).peek(PLATFORM) == 10020  # failures consumed no number

    # the customer fixes the street; the next cycle retries the failed record and clears it
    world.break_address(no_street, street="Neue Str. 5")
    world.age(no_street)  # even without a fresh change time: failed records are retried
    again = run_shop_to_erp(world.ctx())
    assert imported(again) == [no_street]
    assert {f.record for f in Failures(world.state).list(PLATFORM)} == {kosovo}


class FaultyShop:
    """The real shop connector; right before a customer-number write-back the sandbox is told
    to answer the next requests with ``status`` (the fault happens on the wire)."""

    def __init__(self, connector, sandbox, status: int, times: int) -> None:
        self._shop, self._sb, self.status, self.times = connector, sandbox, status, times

    def __getattr__(self, name: str) -> Any:
        return getattr(self._shop, name)

    def set_customer_number(self, shop_id: str, number: str) -> None:
        if self.times:
            self._sb.faults.fail_next(self.times, self.status)
            self.times = 0
        return self._shop.set_customer_number(shop_id, number)


def test_transient_write_back_fault_is_retried_and_the_import_completes(world):
    cid = world.shop_user("wackelig@example.com")
    ctx = world.ctx()
    ctx.shop = FaultyShop(ctx.shop, world.sb, 503, 2)
    report = run_shop_to_erp(ctx)
    assert imported(report) == [cid]
    assert world.number_of(cid) == "10019"


def test_refused_write_back_is_recorded_and_resumed_without_a_second_address(world):
    cid = world.shop_user("abgelehnt@example.com")
    ctx = world.ctx()
    ctx.shop = FaultyShop(ctx.shop, world.sb, 400, 1)
    report = run_shop_to_erp(ctx)
    assert report.counts["failed"] == 1 and imported(report) == []
    (failure,) = Failures(world.state).list(PLATFORM)
    assert failure.step == "write-back" and "10019" in failure.reason
    assert sorted(world.erp_rows()) == [10019] and world.links()[cid].erp_number == 10019

    again = run_shop_to_erp(world.ctx())
    assert [i.detail for i in again.items if i.action == "imported"] == ["ERP address 10019 (resumed)"]
    assert sorted(world.erp_rows()) == [10019]
    assert world.number_of(cid) == "10019"
    assert Failures(world.state).list(PLATFORM) == []


def test_unknown_erp_column_stops_the_platform_with_a_clear_error(world):
    world.shop_user("a@example.com")
    world.shop_user("b@example.com")
    erp = world.erp_settings
    erp = erp.model_copy(update={"columns": erp.columns.model_copy(update={"shop_id": "GibtEsNicht"})})
    with pytest.raises(ConfigError) as info:
        run_shop_to_erp(world.ctx(erp=erp))
    assert "GibtEsNicht" in str(info.value)
    assert info.value.report.counts["failed"] == 1  # not once per customer
    assert world.erp_rows() == {} and world.links() == {}


# --- dry run -------------------------------------------------------------------------------------


def test_dry_run_reports_the_numbers_and_writes_nothing(world):
    insert_addresses(world.erp_settings.url, world.table, [{"number": 10020, "email": "x@example.com"}])
    a = world.shop_user("a@example.com")
    b = world.shop_user("b@example.com")
    numbers_before = {cid: world.number_of(cid) for cid in (a, b)}
    report = run_shop_to_erp(world.ctx(), dry_run=True)
    assert report.dry_run
    would = sorted(i.detail for i in report.items if i.action == "would-create")
    assert would == ["ERP address 10019 for a@example.com", "ERP address 10021 for b@example.com"]
    assert sorted(world.erp_rows()) == [10020]
    assert world.links() == {}
    assert Cursors(world.state).get(PLATFORM, CURSOR) is None
    assert Allocations(world.state).peek(PLATFORM) is None
    assert {cid: world.number_of(cid) for cid in (a, b)} == numbers_before
    # the real run then allocates exactly what the dry run announced
    real = run_shop_to_erp(world.ctx())
    assert sorted(lk.erp_number for lk in world.links().values()) == [10019, 10021]
    assert len(imported(real)) == 2


# --- crashes -------------------------------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import json, pickle, sys
    from syncd.connectors.erp import open_erp
    from syncd.connectors import shopware6, woocommerce
    from syncd.flows.context import PlatformContext
    from syncd.flows.import_customers import run_shop_to_erp
    from syncd.state.db import open_state

    with open(sys.argv[1], "rb") as f:
        settings, secret = pickle.load(f)
    platform = settings.platforms[0]
    shop = (woocommerce.open_shop(platform, consumer_secret=secret) if platform.kind == "woocommerce"
            else shopware6.open_shop(platform, client_secret=secret))
    ctx = PlatformContext(settings, platform, open_erp(settings.erp), shop,
                          open_state(settings.daemon.state_url))
    print(json.dumps(dict(run_shop_to_erp(ctx).counts)))
    """
)


def run_child(world, kill_at: str | None, erp: ErpSettings | None = None) -> subprocess.CompletedProcess:
    # The settings object itself: it is what bootstrap would have built from the TOML file.
    blob = world.tmp_path / "child-settings.pickle"
    blob.write_bytes(pickle.dumps((world.settings(erp), world.kit.secret)))
    env = dict(os.environ)
    env.pop(KILL_ENV, None)
    if kill_at:
        env[KILL_ENV] = kill_at
    return subprocess.run([sys.executable, "-c", CHILD, str(blob)], env=env, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.slow
@pytest.mark.parametrize("shop_id_column", [True, False], ids=["shop-id-key", "email-key"])
@pytest.mark.parametrize("point", ["import:after-link", "import:after-insert"])
def test_kill_during_import_then_restart_imports_nothing_twice(world, point, shop_id_column):
    erp = world.erp_settings
    if not shop_id_column:
        erp = erp.model_copy(update={"columns": erp.columns.model_copy(update={"shop_id": None})})
    cid = world.shop_user("crash@example.com", first_name="Björn")
    world.age(cid)  # the oldest customer is processed first: the kill hits this one
    other = world.shop_user("after@example.com")
    killed = run_child(world, point, erp)
    assert killed.returncode == -9, killed.stderr
    rows = world.erp_rows()
    assert len(rows) == (1 if point == "import:after-insert" else 0)
    assert len(world.links()) == 1  # linked before the row existed: ERP->shop never sees it unlinked
    first = next(iter(world.links().values()))
    assert first.shop_id == cid

    done = run_child(world, None, erp)
    assert done.returncode == 0, done.stderr
    rows = world.erp_rows()
    emails = sorted(r["EMail"] for r in rows.values())
    assert emails == ["after@example.com", "crash@example.com"]  # one address each, none twice
    links = world.links()
    assert links[first.shop_id].erp_number == first.erp_number  # the interrupted one kept its number
    for sid in (cid, other):
        assert world.number_of(sid) == str(links[sid].erp_number)
        assert rows[links[sid].erp_number]["EMail"] == world.email_of(sid)
    assert Failures(world.state).list(PLATFORM) == []
    third = run_child(world, None, erp)
    assert json.loads(third.stdout.strip().splitlines()[-1]).get("imported", 0) == 0
    assert len(world.erp_rows()) == 2

"""Issue 13: the ``bueroplus`` profile and the shop mapping as büro+ data is really used, on the
three büro+ tables in SQLite and in MariaDB over ODBC, against the Shopware sandbox over HTTP.

1. private vs business from the address's own kind (Na1 "Firma"), never Na2 as company;
2. only addresses marked for the shop (WShopAdrKz) are pushed, WShopID is written back, a
   cleared flag deactivates (never deletes);
3. the shop's customer number range against the debtor range: reported, refused, prefixed;
4. an empty country fails the record with a reason, or takes ``default_country``;
5. ``shop_changes``: a customer's shop edits imported (newer wins, ties go to the ERP) or reported;
6. imported rows follow büro+ conventions (Na1/Na2, shop flag).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from syncd.core.rules import HistoryEvent
from syncd.shell.cli.check import mapping_checks, number_range_checks
from syncd.shell.status import collect_status, render_status_table
from syncd.state.failures import Failures
from syncd.state.history import History
from tests.support import shop_fixtures
from tests.support.bueroplus_world import PLATFORM, BpWorld, utcnow

sandbox = shop_fixtures.sandbox


@pytest.fixture(params=["sqlite", pytest.param("mariadb", marks=pytest.mark.realdb)])
def w(request, tmp_path, sandbox):
    world = BpWorld(request.param, tmp_path, sandbox)
    try:
        yield world
    finally:
        world.close()


def events(w: BpWorld, number: int) -> list[tuple[str, str | None]]:
    return [(e.event, e.reason) for e in History(w.state, utcnow).of_address(number, PLATFORM)]


# --- 1. private vs business ---------------------------------------------------------------------
def test_private_and_business_addresses_become_the_right_account_type(w):
    w.add(10001, na1="Herr", na2="Jürgen Meißner", first="Jürgen", last="Meißner")
    w.add(10002, na1="Firma", na2="Bäckerei Süß GmbH", first="Anna", last="Backes")
    w.add(10003, na1="Frau", na2="Erika Mustermann")  # no contact person: names from the name line
    w.add(10004, na1="firma", na2="Müller & Söhne KG")  # no contact, salutation in lower case
    report = w.push()
    assert report.counts["created"] == 4, report.items
    shop = w.by_number()
    person = shop["10001"]
    assert (person["accountType"], person["company"], person["firstName"], person["lastName"]) == (
        "private", None, "Jürgen", "Meißner")
    assert w.address_of(person)["company"] is None
    firm = shop["10002"]
    assert (firm["accountType"], firm["company"], firm["firstName"], firm["lastName"]) == (
        "business", "Bäckerei Süß GmbH", "Anna", "Backes")
    assert w.address_of(firm)["company"] == "Bäckerei Süß GmbH"
    split = shop["10003"]
    assert (split["accountType"], split["company"], split["firstName"], split["lastName"]) == (
        "private", None, "Erika", "Mustermann")
    bare = shop["10004"]
    assert (bare["accountType"], bare["company"], bare["lastName"]) == ("business", "Müller & Söhne KG",
                                                                        "Müller & Söhne KG")
    # A person who becomes a company in the ERP becomes a business account.
    w.update("Anschriften", 10001, Na1="Firma", Na2="Meißner Consulting", LtzAend=utcnow())
    w.push()
    assert w.by_number()["10001"]["accountType"] == "business"
    assert w.by_number()["10001"]["company"] == "Meißner Consulting"


def test_check_shows_the_private_business_rule_and_the_shop_flag(w):
    items = {i.name: i for i in mapping_checks(w.settings())}
    assert "Na1 is 'Firma'" in items["private/business"].detail
    assert "Na2 is the company name only on business addresses" in items["private/business"].detail
    assert "WShopAdrKz" in items["shop flag (platforms[0])"].detail
    assert "deactivated" in items["shop flag (platforms[0])"].detail
    assert "fails" in items["platforms[0].default_country"].detail


# --- 2. the shop flag and WShopID -----------------------------------------------------------------
def test_only_addresses_marked_for_the_shop_are_pushed_and_get_their_shop_id(w):
    w.add(10001, na1="Herr", na2="Jürgen Meißner", first="Jürgen", last="Meißner")
    w.add(70001, na1="Firma", na2="Lieferant Holz AG", shop=False)  # a supplier
    report = w.push()
    assert sorted(w.by_number()) == ["10001"]
    assert ("70001", "skipped") in {(i.record, i.action) for i in report.items}
    account = w.by_number()["10001"]
    assert w.row(10001)["WShopID"] == account["id"]  # written back, like imports do
    assert w.row(70001)["WShopID"] is None
    # Writing WShopID is no change of the address: the next cycle has nothing to do.
    assert sum(w.push().counts.values()) == 0

    # The flag is cleared: the account is deactivated, not deleted.
    w.update("Adressen", 10001, WShopAdrKz=False, LtzAend=utcnow())
    report = w.push()
    assert report.counts["deactivated"] == 1
    assert w.by_number()["10001"]["active"] is False
    assert (HistoryEvent.DEACTIVATED, "not marked for the shop (shop flag)") in events(w, 10001)
    # ... and set again: active again.
    w.update("Adressen", 10001, WShopAdrKz=True, LtzAend=utcnow() + timedelta(seconds=1))
    assert w.push().counts["reactivated"] == 1
    assert w.by_number()["10001"]["active"] is True


def test_a_cleared_flag_can_be_ignored_and_a_filter_on_a_column_works(w):
    w.add(10001, na1="Herr", na2="Jürgen Meißner", first="Jürgen", last="Meißner")
    w.add(10002, na1="Frau", na2="Eva Shop", first="Eva", last="Shop")
    w.update("Adressen", 10002, Sel4="Shopware")  # büro+ Sel4 "Shopware" in the notes' install
    w.push(erp={"shop_flag": "Sel4=shopware"})
    assert sorted(w.by_number()) == ["10002"]
    w.update("Adressen", 10002, Sel4=None, LtzAend=utcnow())
    w.push(erp={"shop_flag": "Sel4=shopware"}, unflagged="ignore")
    assert w.by_number()["10002"]["active"] is True
    # An empty shop_flag turns the profile's flag off: every address goes (a changed setting
    # reaches unchanged rows with the next full reconciliation; here the row changes).
    w.update("Adressen", 10001, LtzAend=utcnow() + timedelta(seconds=1))
    w.push(erp={"shop_flag": ""})
    assert sorted(w.by_number()) == ["10001", "10002"]


# --- 3. customer numbers --------------------------------------------------------------------------
def test_the_shops_number_range_overlapping_the_debtor_range_is_reported_refused_or_prefixed(w):
    w.add(10001, na1="Herr", na2="Jürgen Meißner", first="Jürgen", last="Meißner")
    w.add(10002, na1="Frau", na2="Eva Meier", first="Eva", last="Meier")
    settings = w.settings()
    ctx = w.ctx()
    (item,) = number_range_checks(settings, settings.platforms[0], ctx.shop)
    assert item.ok and "overlap" in item.detail and "pattern '{n}', next 10001" in item.detail
    assert "10000-69999" in item.detail and item.warning

    refuse = w.settings(platform={"number_range_overlap": "refuse"})
    (item,) = number_range_checks(refuse, refuse.platforms[0], ctx.shop)
    assert not item.ok and "customer_number_prefix" in item.detail
    report = w.push(platform={"number_range_overlap": "refuse"})
    assert report.config_faults and w.sb.customers() == []  # nothing pushed

    prefixed = w.settings(platform={"number_range_overlap": "refuse", "customer_number_prefix": "E"})
    (item,) = number_range_checks(prefixed, prefixed.platforms[0], ctx.shop)
    assert item.ok and "no overlap" in item.detail
    assert w.push(platform={"number_range_overlap": "refuse", "customer_number_prefix": "E"}
                  ).counts["created"] == 2
    # A storefront registration takes the shop's next number; it can no longer meet an ERP one.
    w.sb.create_customer_as_shop_user("new@example.com", "Geheim-123")
    assert sorted(w.by_number()) == ["10001", "E10001", "E10002"]

    # A range moved above the debtor range is fine without a prefix.
    w.sb.set_customer_number_range(start=70000, last_value=69999)
    (item,) = number_range_checks(settings, settings.platforms[0], ctx.shop)
    assert item.ok and "no overlap" in item.detail and "next 70000" in item.detail


def test_prefixed_numbers_are_recognised_by_the_import(w):
    w.add(10001, na1="Herr", na2="Jürgen Meißner", first="Jürgen", last="Meißner")
    w.push(platform={"customer_number_prefix": "E"})
    report = w.import_(platform={"customer_number_prefix": "E"}, shop_to_erp=True, next_address_number=10100)
    assert report.counts.get("created", 0) == 0 and w.numbers() == [10001]  # linked, not imported again


# --- 4. NULL country ----------------------------------------------------------------------------
def test_an_empty_country_fails_the_record_with_a_reason_or_takes_the_default(w):
    w.add(10001, na1="Herr", na2="Jürgen Meißner", first="Jürgen", last="Meißner")
    w.add(10005, na1="Frau", na2="Ohne Land", first="Ohne", last="Land", land=None)
    w.add(10006, na1="Herr", na2="Max Wien", first="Max", last="Wien", land=40)
    report = w.push()
    assert sorted(w.by_number()) == ["10001", "10006"]  # one bad record does not stop the batch
    failed = {f.record: f for f in Failures(w.state).list(PLATFORM)}
    reason = failed["10005"].reason
    assert "ERP address 10005" in reason and "Land" in reason and "default_country" in reason
    assert ("10005", "failed") in {(i.record, i.action) for i in report.items}
    status = render_status_table(collect_status(w.state, w.settings()), lang="en", width=300)
    assert "10005" in status and "default_country" in status

    w.update("Adressen", 10005, LtzAend=utcnow())
    w.push(platform={"default_country": "AT"})
    shop = w.by_number()
    with w.sb._store.lock:
        iso = w.sb._store.get("country", w.address_of(shop["10005"])["countryId"])["iso"]
    assert iso == "AT"
    assert w.address_of(shop["10006"])["countryId"] == w.sb.ids.countries["AT"]


# --- 5. shop changes ------------------------------------------------------------------------------
def _pushed_person(w: BpWorld) -> dict:
    w.add(10001, na1="Herr", na2="Jürgen Meißner", first="Jürgen", last="Meißner", city="Köln")
    w.push()
    return w.by_number()["10001"]


def test_shop_edits_are_imported_into_the_erp_row_newer_wins(w, captured_logs):
    account = _pushed_person(w)
    w.sb.edit_customer_as_shop_user(account["id"], lastName="Neumann")
    w.sb.edit_address_as_shop_user(account["defaultBillingAddressId"], lastName="Neumann", city="Bonn",
                                   zipcode="53111")
    report = w.import_(shop_changes="import")
    assert [i.action for i in report.items] == ["imported-change"], report.items
    row = w.row(10001)
    assert (row["NNa"], row["VNa"], row["Ort"], row["PLZ"]) == ("Neumann", "Jürgen", "Bonn", "53111")
    assert row["Na2"] == "Jürgen Neumann" and row["Na1"] == "Herr"  # the name line follows the name
    assert row["Anschriften.LtzAend"] > row["LtzAend"]  # stamped as changed, as büro+ would
    logged = [e for e in captured_logs.events() if e.get("event") == "ERP field overwritten by a shop change"]
    assert {(e["field"], e["old"], e["new"]) for e in logged} >= {
        ("last_name", "Meißner", "Neumann"), ("city", "Köln", "Bonn"), ("zip", "50667", "53111")}
    (event,) = [e for e in events(w, 10001) if e[0] == HistoryEvent.SHOP_CHANGE_IMPORTED]
    assert "city: 'Köln' -> 'Bonn'" in event[1]
    # The next ERP -> shop cycle confirms them; nothing flips back and forth.
    w.push()
    assert w.address_of(w.by_number()["10001"])["city"] == "Bonn"
    assert [i.action for i in w.import_(shop_changes="import").items] == []


def test_a_newer_or_equally_new_erp_change_wins_over_a_shop_edit(w):
    account = _pushed_person(w)
    w.sb.edit_address_as_shop_user(account["defaultBillingAddressId"], city="Bonn")
    w.update("Anschriften", 10001, Ort="Düsseldorf", LtzAend=utcnow() + timedelta(hours=1))  # newer
    report = w.import_(shop_changes="import")
    assert report.counts["shop-change-superseded"] == 1 and w.row(10001)["Ort"] == "Düsseldorf"
    # A tie goes to the ERP.
    tie = datetime(2030, 1, 2, 3, 4, 5)
    w.update("Anschriften", 10001, LtzAend=tie)
    w.update("Adressen", 10001, LtzAend=tie)
    w.set_shop_stamp(account["id"], tie.replace(tzinfo=UTC))
    report = w.import_(shop_changes="import")
    assert report.counts["shop-change-superseded"] == 1 and w.row(10001)["Ort"] == "Düsseldorf"


def test_shop_edits_are_reported_in_status_and_not_written(w):
    account = _pushed_person(w)
    w.sb.edit_address_as_shop_user(account["defaultBillingAddressId"], street="Neue Str. 5")
    report = w.import_(shop_changes="report")
    assert [i.action for i in report.items] == ["reported-change"]
    assert w.row(10001)["Str"] == "Hauptstr. 1"
    status = collect_status(w.state, w.settings())
    (edit,) = status["platforms"][0]["shop_changes"]
    assert edit["address"] == 10001
    assert edit["fields"] == {"street": {"erp": "Hauptstr. 1", "shop": "Neue Str. 5"}}
    table = render_status_table(status, lang="de", width=200)
    assert "Änderungen im Shop" in table and "Neue Str. 5" in table
    assert [e for e in events(w, 10001) if e[0] == HistoryEvent.SHOP_CHANGE_REPORTED]
    # The operator takes it over in the ERP: the report goes away.
    w.update("Anschriften", 10001, Str="Neue Str. 5")
    w.set_shop_stamp(account["id"], datetime.now(UTC))
    w.import_(shop_changes="report")
    assert collect_status(w.state, w.settings())["platforms"][0]["shop_changes"] == []


def test_shop_changes_ignore_leaves_the_erp_alone(w):
    account = _pushed_person(w)
    w.sb.edit_address_as_shop_user(account["defaultBillingAddressId"], city="Bonn")
    w.import_()
    assert w.row(10001)["Ort"] == "Köln"


# --- 6. imports follow büro+ conventions ----------------------------------------------------------
def test_imported_rows_follow_bueroplus_conventions(w):
    firm = w.sb.create_customer_as_shop_user("einkauf@acme.example", "Geheim-123", company="ACME GmbH",
                                             salutation="mr", first_name="Max", last_name="Einkauf")
    person = w.sb.create_customer_as_shop_user("erika@example.com", "Geheim-123", first_name="Erika",
                                               last_name="Musterfrau", salutation="mrs")
    report = w.import_(shop_to_erp=True, next_address_number=10100)
    assert report.counts["imported"] == 2, report.items
    by_shop = {w.row(n)["WShopID"]: w.row(n) for n in w.numbers()}
    f, p = by_shop[firm["id"]], by_shop[person["id"]]
    assert (f["Na1"], f["Na2"], f["VNa"], f["NNa"], bool(f["WShopAdrKz"])) == (
        "Firma", "ACME GmbH", "Max", "Einkauf", True)
    assert (p["Na1"], p["Na2"], p["VNa"], p["NNa"], bool(p["WShopAdrKz"])) == (
        "Frau", "Erika Musterfrau", "Erika", "Musterfrau", True)
    # Read back by the profile, they are what they were in the shop.
    erp = w.ctx().erp
    a, b = erp.get_address(int(f["AdrNr"])), erp.get_address(int(p["AdrNr"]))
    assert (a.business, a.company, b.business, b.company) == (True, "ACME GmbH", False, None)
    assert a.for_shop and b.for_shop


# --- `syncd check` shows the decisions ----------------------------------------------------------
def _config(w: BpWorld, tmp_path, platform_extra: str) -> str:
    schema = f'schema = "{w.schema}"' if w.schema else ""
    path = tmp_path / "syncd.toml"
    path.write_text(f"""
[daemon]
state_url = "sqlite:///{(tmp_path / 'check-state.db').as_posix()}"

[erp]
url = "{w.url}"
profile = "bueroplus"
{schema}

[mail]
transport = "outbox"
outbox_dir = "{(tmp_path / 'outbox').as_posix()}"

[[platforms]]
name = "shop"
url = "{w.sb.url}"
client_id = "{w.sb.client_id}"
client_secret = "env:SYNCD_I13_SHOP_SECRET"
{platform_extra}

[platforms.addresses]
shop_to_erp = false
""")
    return str(path)


def test_syncd_check_table_shows_the_mapping_decisions(w, tmp_path, monkeypatch, capsys):
    from syncd.shell.cli import run_cli
    from syncd.shell.logs import reset_logging

    monkeypatch.setenv("SYNCD_I13_SHOP_SECRET", w.sb.client_secret)
    monkeypatch.setenv("COLUMNS", "400")

    def check(extra: str) -> tuple[int, str]:
        try:
            code = run_cli(["--config", _config(w, tmp_path, extra), "check"])
        finally:
            reset_logging()
        out, err = capsys.readouterr()
        return code, " ".join((out + err).split())  # the table folds long cells

    code, out = check('number_range_overlap = "refuse"')
    assert code == 2, out
    assert "private/business" in out and "business when Na1 is 'Firma'" in out
    assert "only addresses with WShopAdrKz set are pushed" in out
    assert "customer number range" in out and "overlap" in out and "customer_number_prefix" in out
    code, out = check('number_range_overlap = "refuse"\ncustomer_number_prefix = "E"')
    assert code == 0, out
    assert "no overlap" in out


def test_a_shop_change_the_erp_cannot_hold_fails_alone(w):
    w.add(10001, na1="Herr", na2="Jürgen Meißner", first="Jürgen", last="Meißner")
    w.add(10002, na1="Frau", na2="Eva Meier", first="Eva", last="Meier")
    w.push()
    shop = w.by_number()
    long_city = "Sankt " + "Marien" * 12  # fits the shop (255), not Anschriften.Ort (60)
    w.sb.edit_address_as_shop_user(shop["10001"]["defaultBillingAddressId"], city=long_city)
    w.sb.edit_address_as_shop_user(shop["10002"]["defaultBillingAddressId"], city="Bonn")
    report = w.import_(shop_changes="import")
    actions = {i.record: i.action for i in report.items}
    assert actions == {shop["10001"]["id"]: "failed", shop["10002"]["id"]: "imported-change"}
    assert w.row(10001)["Ort"] == "Köln" and w.row(10002)["Ort"] == "Bonn"
    (failure,) = [f for f in Failures(w.state).list(PLATFORM) if f.record == shop["10001"]["id"]]
    assert "ERP address 10001" in failure.reason and "Ort" in failure.reason and "60" in failure.reason


def test_shop_ids_are_written_back_for_more_addresses_than_a_page(w):
    import sqlalchemy as sa

    numbers = list(range(20001, 20701))  # 700: more than an ERP page (500) and a shop batch (250)
    with w.engine.begin() as conn:
        conn.execute(sa.insert(w.t["Adressen"]), [
            {"AdrNr": str(n), "ReAnsNr": 1, "Status": "Kunde", "GspKz": False, "WShopAdrKz": n % 7 != 0,
             "LtzAend": w_stamp} for n, w_stamp in ((n, utcnow() - timedelta(days=1)) for n in numbers)])
        conn.execute(sa.insert(w.t["Anschriften"]), [
            {"AdrNr": str(n), "AnsNr": 1, "Na1": "Herr", "Na2": f"Kunde {n}", "Str": "Weg 1", "PLZ": "10115",
             "Ort": "Berlin", "Land": 276, "EMail1": f"k{n}@example.com", "AspNr": 1} for n in numbers])
    report = w.push()
    flagged = [n for n in numbers if n % 7 != 0]
    assert report.counts["created"] == len(flagged)
    shop = w.by_number()
    assert sorted(int(n) for n in shop) == flagged
    with w.engine.connect() as conn:
        ids = dict(conn.execute(sa.select(w.t["Adressen"].c.AdrNr, w.t["Adressen"].c.WShopID)).all())
    assert all(ids[str(n)] == shop[str(n)]["id"] for n in flagged)
    assert all(ids[str(n)] is None for n in numbers if n % 7 == 0)
    # Names from the name line (no contact persons), all private.
    assert {(c["accountType"], c["firstName"]) for c in shop.values()} == {("private", "Kunde")}
    assert sum(w.push().counts.values()) == 0


def test_shop_faults_while_reading_the_number_range_and_shop_edits_are_retried(w):
    w.add(10001, na1="Herr", na2="Jürgen Meißner", first="Jürgen", last="Meißner")
    refuse = {"number_range_overlap": "refuse", "customer_number_prefix": "E"}
    ctx = w.ctx(platform=refuse)
    ctx.shop.metadata()  # the metadata reads first, so the faults below meet the range's searches
    w.sb.faults.fail_next(1, 503)
    w.sb.faults.rate_limit = 1  # then a 429 with Retry-After
    from syncd.flows.erp_to_shop import run_erp_to_shop

    report = run_erp_to_shop(ctx)
    assert report.counts["created"] == 1 and not report.config_faults
    account = w.by_number()["E10001"]
    w.sb.edit_address_as_shop_user(account["defaultBillingAddressId"], city="Bonn")
    w.sb.faults.fail_next(2, 502)
    report = w.import_(platform=refuse, shop_changes="import")
    assert [i.action for i in report.items] == ["imported-change"] and w.row(10001)["Ort"] == "Bonn"


def test_an_address_deleted_before_its_shop_id_is_written_does_not_stop_the_others(w):
    import sqlalchemy as sa

    from syncd.flows.push_addresses import checkpoint

    for n in (10001, 10002, 10003):
        w.add(n, na1="Herr", na2=f"Kunde {n}", first="Max", last=f"Kunde{n}")

    def delete_one(name: str) -> None:
        if name == "after_link":
            with w.engine.begin() as conn:
                conn.execute(sa.delete(w.t["Adressen"]).where(w.t["Adressen"].c.AdrNr == "10002"))

    checkpoint.hook = delete_one
    try:
        report = w.push()
    finally:
        checkpoint.hook = None
    assert report.counts["created"] == 3 and not report.counts["failed"]
    shop = w.by_number()
    assert w.row(10001)["WShopID"] == shop["10001"]["id"] and w.row(10003)["WShopID"] == shop["10003"]["id"]

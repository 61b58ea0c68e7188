"""Contract tests: the Shopware connector against the sandbox over real HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from syncd.connectors.shopware6 import DETAIL_EXISTED, address_id, customer_id
from syncd.connectors.shopware6.metadata import MemoryCache
from syncd.connectors.shopware6.sync import SyncWriter
from syncd.core.rules import PushOutcome
from tests.support import shop_fixtures
from tests.support.shop_fixtures import store_login
from tests.support.shopware import erp, make_shop, sync_requests

sandbox = shop_fixtures.sandbox

VERSIONS = ["6.5.8.0", "6.6.10.0", "6.7.10.0"]


@pytest.mark.parametrize("sandbox", VERSIONS, indirect=True)
def test_push_creates_accounts_with_deterministic_ids_and_no_shop_mail(sandbox):
    shop = make_shop(sandbox)
    addresses = [erp(10001), erp(10002, company="ACME GmbH", first_name=None, last_name=None)]
    results = shop.push(addresses, {})
    assert [r.outcome for r in results] == [PushOutcome.CREATED, PushOutcome.CREATED]
    assert [r.shop_id for r in results] == [customer_id("shop", 10001), customer_id("shop", 10002)]
    stored = {c["id"]: c for c in sandbox.customers()}
    c1 = stored[customer_id("shop", 10001)]
    assert c1["customerNumber"] == "10001" and c1["email"] == "kunde10001@example.com"
    assert c1["defaultBillingAddressId"] == address_id("shop", 10001) == c1["defaultShippingAddressId"]
    assert c1["addresses"][0]["city"] == "Schöppingen"
    c2 = stored[customer_id("shop", 10002)]
    assert c2["company"] == "ACME GmbH" and c2["lastName"] == "ACME GmbH"
    if sandbox.shop_version.payment_method_on_customer:
        assert c1["defaultPaymentMethodId"]
    else:
        assert not c1.get("defaultPaymentMethodId")
    # The shop's own registration flow was suppressed on every write.
    syncs = sync_requests(sandbox)
    assert syncs and all(r.headers.get("sw-skip-trigger-flow") == "1" for r in syncs)
    assert sandbox.flow_mails == []


def test_replay_never_duplicates_and_flags_a_recovered_create(sandbox):
    shop = make_shop(sandbox)
    first = shop.push([erp(10001), erp(10002)], {})
    # A crash after the shop write but before the link was stored: the replay finds our ids.
    again = shop.push([erp(10001), erp(10002)], {})
    assert [r.outcome for r in again] == [PushOutcome.UPDATED, PushOutcome.UPDATED]
    assert all(r.detail == DETAIL_EXISTED for r in again)
    assert [r.shop_id for r in again] == [r.shop_id for r in first]
    # With the links known it is a plain update.
    linked = shop.push([erp(10001, city="Münster")], {10001: first[0].shop_id})
    assert linked[0].outcome == PushOutcome.UPDATED and linked[0].detail is None
    customers = sandbox.customers()
    assert len(customers) == 2
    assert sum(len(c["addresses"]) for c in customers) == 2
    assert {c["addresses"][0]["city"] for c in customers} == {"Münster", "Schöppingen"}


def test_self_registered_account_is_linked_not_overwritten(sandbox):
    own = sandbox.create_customer_as_shop_user("erika@example.com", "ihrgeheimnis", first_name="Erika")
    shop = make_shop(sandbox)
    [result] = shop.push([erp(10005, email="Erika@Example.com", first_name="Eri")], {})
    assert result.outcome == PushOutcome.LINKED and result.shop_id == own["id"]
    stored = sandbox.customer(own["id"])
    assert stored["customerNumber"] == "10005"
    assert stored["firstName"] == "Erika"  # what the customer entered stays
    assert store_login(sandbox, "erika@example.com", "ihrgeheimnis")
    assert len(sandbox.customers()) == 1
    # Once linked, ERP changes flow to the account; its own sales channel/language are kept.
    [update] = shop.push(
        [erp(10005, email="erika@example.com", first_name="Erika", city="Köln")], {10005: own["id"]}
    )
    assert update.outcome == PushOutcome.UPDATED and update.shop_id == own["id"]
    stored = sandbox.customer(own["id"])
    assert stored["defaultBillingAddressId"] == address_id("shop", 10005)
    assert len(sandbox.customers()) == 1


def test_duplicate_email_in_one_push_rejects_the_later_address_naming_both(sandbox):
    shop = make_shop(sandbox)
    results = shop.push([erp(10001, email="same@example.com"), erp(10002, email="SAME@example.com")], {})
    assert results[0].outcome == PushOutcome.CREATED
    assert results[1].outcome == PushOutcome.REJECTED and results[1].code == "SYNCD__DUPLICATE_EMAIL"
    assert "10001" in results[1].reason and "10002" in results[1].reason
    assert len(sandbox.customers()) == 1


def test_email_of_another_erp_address_is_refused_across_pushes(sandbox):
    shop = make_shop(sandbox)
    [first] = shop.push([erp(10001, email="same@example.com")], {})
    # A later push (links not passed): the shop holds our account for 10001 under that e-mail.
    [second] = shop.push([erp(10002, email="same@example.com")], {})
    assert second.outcome == PushOutcome.REJECTED and "10001" in second.reason and "10002" in second.reason
    # The flow may also pass the e-mails of linked addresses.
    [third] = shop.push([erp(10003, email="same@example.com")], {}, linked_emails={"same@example.com": 10001})
    assert third.outcome == PushOutcome.REJECTED and "10001" in third.reason
    assert [c["id"] for c in sandbox.customers()] == [first.shop_id]


def test_changing_our_email_to_a_foreign_accounts_email_is_refused(sandbox):
    other = sandbox.create_customer_as_shop_user("taken@example.com", "geheim1234")
    shop = make_shop(sandbox)
    [mine] = shop.push([erp(10001)], {})
    [changed] = shop.push([erp(10001, email="taken@example.com")], {10001: mine.shop_id})
    assert changed.outcome == PushOutcome.REJECTED and other["id"] in changed.reason
    assert sandbox.customer(mine.shop_id)["email"] == "kunde10001@example.com"


def test_bad_records_are_rejected_and_the_rest_is_written(sandbox):
    shop = make_shop(sandbox)
    results = shop.push(
        [
            erp(10001),
            erp(10002, country="XX"),
            erp(10003, street="S" * 300),
            erp(10004, email=None),
            erp(10005),
        ],
        {},
    )
    assert [r.outcome for r in results] == [
        PushOutcome.CREATED,
        PushOutcome.REJECTED,
        PushOutcome.REJECTED,
        PushOutcome.REJECTED,
        PushOutcome.CREATED,
    ]
    assert results[1].code == "SYNCD__UNKNOWN_COUNTRY" and results[2].code == "SYNCD__VALUE_TOO_LONG"
    assert {c["customerNumber"] for c in sandbox.customers()} == {"10001", "10005"}


def test_shop_side_rejections_map_to_their_records_and_bisect_without_pointers(sandbox, monkeypatch):
    shop = make_shop(sandbox)
    meta = shop.metadata()
    good = shop.mapper().map(erp(10001)).payload
    bad = dict(shop.mapper().map(erp(10002)).payload, lastName="")  # NotBlank in the shop
    also_good = shop.mapper().map(erp(10003)).payload
    writer = SyncWriter(shop.http)
    rejected = writer.upsert("customer", [good, bad, also_good])
    assert list(rejected) == [1]
    reason, code, field = rejected[1]
    assert "lastName" in reason and code and field == "lastName"
    assert {c["customerNumber"] for c in sandbox.customers()} == {"10001", "10003"}

    # Without usable pointers the writer bisects down to the bad record.
    import syncd.connectors.shopware6.sync as sync_module

    monkeypatch.setattr(sync_module, "record_position", lambda *a: None)
    records = [shop.mapper().map(erp(n)).payload for n in range(10010, 10018)]
    records[5] = dict(records[5], lastName="")
    before = len(sync_requests(sandbox))
    rejected = writer.upsert("customer", records)
    assert list(rejected) == [5]
    assert len(sync_requests(sandbox)) - before <= 2 * 3 + 1  # log2(8) levels, two halves each
    numbers = {c["customerNumber"] for c in sandbox.customers()}
    assert {str(n) for n in range(10010, 10018)} - numbers == {"10015"}
    assert meta.sales_channel_id


def test_fingerprints_skip_unchanged_linked_addresses(sandbox):
    shop = make_shop(sandbox)
    [first] = shop.push([erp(10001)], {}, fingerprints={})
    assert first.fingerprint
    assert shop.fingerprint(erp(10001)) == first.fingerprint
    before = len(sandbox.request_log)
    [same] = shop.push([erp(10001)], {10001: first.shop_id}, fingerprints={10001: first.fingerprint})
    assert same.outcome == PushOutcome.UNCHANGED and len(sandbox.request_log) == before  # no request at all
    [changed] = shop.push(
        [erp(10001, city="Münster")], {10001: first.shop_id}, fingerprints={10001: first.fingerprint}
    )
    assert changed.outcome == PushOutcome.UPDATED and changed.fingerprint != first.fingerprint
    assert shop.push([erp(10002)], {})[0].fingerprint is None  # not asked for


def test_batches_follow_batch_size(sandbox):
    shop = make_shop(sandbox, batch_size=3)
    results = shop.push([erp(n) for n in range(10001, 10008)], {})
    assert all(r.outcome == PushOutcome.CREATED for r in results)
    assert len(sync_requests(sandbox)) == 3
    assert len(sandbox.customers()) == 7
    # Reads are cheap for the shop, writes are not: one lookup per kind (e-mail, and for unlinked
    # addresses syncd's id and the customer number) covers several write batches.
    assert len([r for r in sandbox.request_log if r.path == "/api/search/customer"]) == 3


def test_passwords_set_in_one_call_log_in_and_never_reach_logs(sandbox, captured_logs):
    shop = make_shop(sandbox)
    a, b = shop.push([erp(10001), erp(10002)], {})
    before = len(sync_requests(sandbox))
    errors = shop.set_passwords({a.shop_id: "Kx7pQ2mZr9Tw", b.shop_id: "kurz"})
    assert errors[a.shop_id] is None and "too short" in errors[b.shop_id]
    assert "kurz" not in errors[b.shop_id]
    assert store_login(sandbox, "kunde10001@example.com", "Kx7pQ2mZr9Tw")
    assert not store_login(sandbox, "kunde10002@example.com", "kurz")
    assert len(sync_requests(sandbox)) - before == 2  # the bulk call, then the valid rest
    text = captured_logs.text
    assert "Kx7pQ2mZr9Tw" not in text and sandbox.client_secret not in text
    assert shop.http._token and shop.http._token not in text


def test_set_active_deactivates_and_reactivates(sandbox):
    shop = make_shop(sandbox)
    [r] = shop.push([erp(10001)], {})
    shop.set_passwords({r.shop_id: "Kx7pQ2mZr9Tw"})
    assert shop.set_active([r.shop_id], False) == {r.shop_id: None}
    assert sandbox.customer(r.shop_id)["active"] is False
    assert not store_login(sandbox, "kunde10001@example.com", "Kx7pQ2mZr9Tw")
    shop.set_active([r.shop_id], True)
    assert store_login(sandbox, "kunde10001@example.com", "Kx7pQ2mZr9Tw")
    unknown = "f" * 32
    assert shop.set_active([unknown], False)[unknown]


def test_reading_customers_orders_and_writing_back_numbers(sandbox):
    shop = make_shop(sandbox)
    start = datetime.now(UTC)
    a, b = shop.push([erp(10001, salutation="Frau", phone="0251 1"), erp(10002)], {})
    own = sandbox.create_customer_as_shop_user("self@example.com", "geheim1234", country="AT")
    changed = {c.id: c for c in shop.customers_changed_since(start)}
    assert set(changed) == {a.shop_id, b.shop_id, own["id"]}
    assert changed[a.shop_id].salutation == "Frau" and changed[a.shop_id].phone == "0251 1"
    assert changed[own["id"]].country == "AT" and changed[own["id"]].city == "Berlin"
    assert list(shop.customers_changed_since(datetime.now(UTC) + timedelta(hours=1))) == []

    assert list(shop.customers_with_orders(None)) == []
    sandbox.add_order(own["id"])
    with_orders = list(shop.customers_with_orders(start))
    assert [c.id for c in with_orders] == [own["id"]] and with_orders[0].order_count == 1
    assert [c.id for c in shop.customers_with_orders(None)] == [own["id"]]

    shop.set_customer_number(own["id"], "20001")
    assert shop.get_customers([own["id"], "0" * 32]) == {
        own["id"]: shop.get_customers([own["id"]])[own["id"]]
    }
    assert shop.get_customers([own["id"]])[own["id"]].customer_number == "20001"


def test_changed_since_is_the_literal_bound(sandbox):
    """The flow moves its bookmark back by ``rules.SHOP_CHANGE_OVERLAP`` once; the connector
    must not move it again (it did: 10 minutes instead of 5)."""
    shop = make_shop(sandbox)
    before = datetime.now(UTC) - timedelta(seconds=2)
    own = sandbox.create_customer_as_shop_user("late@example.com", "geheim1234")
    sandbox.add_order(own["id"])
    changed = datetime.now(UTC)
    # Changed and ordered 2 s, 2 min and 6 min before ``since``: none of them is at/after it
    # (the 2-minute case came back while the connector subtracted its own 5 minutes).
    for gap in (timedelta(seconds=2), timedelta(minutes=2), timedelta(minutes=6)):
        since = changed + gap
        assert [c.id for c in shop.customers_changed_since(since)] == [], gap
        assert [c.id for c in shop.customers_with_orders(since)] == [], gap
    assert [c.id for c in shop.customers_changed_since(before)] == [own["id"]]
    assert [c.id for c in shop.customers_with_orders(before)] == [own["id"]]


@pytest.mark.parametrize("sandbox", ["6.5.0.0", "6.6.10.0"], indirect=True)
def test_changed_since_pages_through_more_than_one_page(sandbox):
    shop = make_shop(sandbox)
    page = shop.traits().page_limit
    assert page == (100 if sandbox.version == "6.5.0.0" else 500)
    count = 2 * page + 17
    results = shop.push([erp(n) for n in range(10001, 10001 + count)], {})
    assert all(r.outcome == PushOutcome.CREATED for r in results)
    before = len(sandbox.request_log)
    ids = [c.id for c in shop.customers_changed_since(None)]
    assert len(ids) == len(set(ids)) == count
    assert len(sandbox.request_log) - before == 3


def test_check_reports_every_metadata_item(sandbox):
    shop = make_shop(sandbox, customer_group="Händler", customer_group_map={"X": "Fehlt"})
    items = {i.name: i for i in shop.check()}
    assert all(i.area == "shop:shop" for i in items.values())
    for name in (
        "connection",
        "version",
        "sales channel",
        "language",
        "default customer group",
        "default country",
        "salutation mr",
        "salutation mrs",
        "salutation not_specified",
        "countries",
        "customer group 'Händler'",
        "payment method",
    ):
        assert items[name].ok, items[name]
    assert not items["customer group 'Fehlt'"].ok
    assert "customer_group_map.X" in items["customer group 'Fehlt'"].detail


def test_check_names_a_missing_sales_channel_and_bad_credentials(sandbox):
    items = {i.name: i for i in make_shop(sandbox, sales_channel="Gibt es nicht").check()}
    assert not items["sales channel"].ok and "platforms.shop.sales_channel" in items["sales channel"].detail
    bad = make_shop(sandbox)
    bad.http._secret = "wrong-secret-value"
    items = bad.check()
    assert [i.name for i in items] == ["connection"] and not items[0].ok
    assert "wrong-secret-value" not in items[0].detail and sandbox.client_secret not in items[0].detail


def test_metadata_is_fetched_once_and_kept_in_the_tenant_cache(sandbox):
    cache = MemoryCache()
    make_shop(sandbox, cache=cache).push([erp(10001)], {})
    fetched = [r for r in sandbox.request_log if r.path == "/api/search/sales-channel"]
    assert len(fetched) == 1
    # A new process (new shop object) with the same tenant cache asks the shop no metadata.
    make_shop(sandbox, cache=cache).push([erp(10002)], {})
    assert len([r for r in sandbox.request_log if r.path == "/api/search/sales-channel"]) == 1
    assert (
        cache.get("shop", next(k for (_, k) in cache._data))["sales_channel_id"] == sandbox.sales_channel_id
    )
    # Cleared cache: fetched again.
    cache.clear()
    make_shop(sandbox, cache=cache).push([erp(10003)], {})
    assert len([r for r in sandbox.request_log if r.path == "/api/search/sales-channel"]) == 2


def test_recovery_link_is_sent_by_the_shop(sandbox):
    shop = make_shop(sandbox)
    [r] = shop.push([erp(10001)], {})
    shop.send_recovery_link(r.shop_id)
    assert list(sandbox.recovery_hashes.values()) == [r.shop_id]


@pytest.mark.parametrize("sandbox", ["6.7.10.0"], indirect=True)
def test_storefront_registration_racing_our_create_is_linked_on_a_unique_email_shop(sandbox, monkeypatch):
    assert sandbox.shop_version.enforces_unique_email
    import syncd.connectors.shopware6.push as push_module

    shop = make_shop(sandbox)
    real_lookup = push_module.CustomerPusher.lookup
    calls = []

    def racing_lookup(self, emails):
        calls.append(emails)
        if len(calls) == 1:  # the customer registers right after our lookup
            sandbox.create_customer_as_shop_user("race@example.com", "geheim1234")
            return []
        return real_lookup(self, emails)

    monkeypatch.setattr(push_module.CustomerPusher, "lookup", racing_lookup)
    # ERP numbers apart from the shop's own number range (10000 up): otherwise the lookup by
    # customer number, which runs after the e-mail lookup, would already see the new account.
    results = shop.push([erp(70001, email="race@example.com"), erp(70002)], {})
    assert [r.outcome for r in results] == [PushOutcome.LINKED, PushOutcome.CREATED]
    assert len(calls) == 2 and calls[1] == {"race@example.com"}
    assert len(sandbox.customers()) == 2


@pytest.mark.parametrize("sandbox", VERSIONS, indirect=True)
def test_link_update_and_passwords_on_every_version(sandbox):
    own = sandbox.create_customer_as_shop_user("self@example.com", "geheim1234")
    shop = make_shop(sandbox)
    results = shop.push([erp(10001, email="self@example.com"), erp(10002, first_name="Ä" * 51)], {})
    assert results[0].outcome == PushOutcome.LINKED and results[0].shop_id == own["id"]
    if sandbox.shop_version.address_name_caps:
        assert results[1].outcome == PushOutcome.REJECTED and results[1].code == "SYNCD__VALUE_TOO_LONG"
    else:
        assert results[1].outcome == PushOutcome.CREATED
    [r] = shop.push([erp(10003)], {})
    assert shop.set_passwords({r.shop_id: "Kx7pQ2mZr9Tw"}) == {r.shop_id: None}
    assert store_login(sandbox, "kunde10003@example.com", "Kx7pQ2mZr9Tw")
    assert {c.id for c in shop.customers_changed_since(None)} >= {own["id"], r.shop_id}


def test_shop_down_is_transient(sandbox):
    shop = make_shop(sandbox)
    sandbox.stop()
    from syncd.core.errors import TransientError

    with pytest.raises(TransientError) as exc:
        shop.push([erp(10001)], {})
    assert "connection failed" in str(exc.value) and sandbox.client_secret not in str(exc.value)


def test_account_deleted_in_the_shop_is_created_again_and_flagged(sandbox):
    from syncd.connectors.shopware6 import DETAIL_LINK_GONE
    from tests.support.shop_fixtures import admin_session

    shop = make_shop(sandbox)
    [mine] = shop.push([erp(10001)], {})
    foreign = sandbox.create_customer_as_shop_user("self@example.com", "geheim1234")
    [linked] = shop.push([erp(10002, email="self@example.com")], {})
    assert linked.outcome == PushOutcome.LINKED
    admin = admin_session(sandbox)
    for cid in (mine.shop_id, foreign["id"]):
        assert admin.delete(f"{sandbox.url}/api/customer/{cid}").status_code == 204
    results = shop.push(
        [erp(10001), erp(10002, email="self@example.com")], {10001: mine.shop_id, 10002: foreign["id"]}
    )
    assert [(r.outcome, r.detail) for r in results] == [(PushOutcome.CREATED, DETAIL_LINK_GONE)] * 2
    assert [r.shop_id for r in results] == [customer_id("shop", 10001), customer_id("shop", 10002)]
    assert {c["id"] for c in sandbox.customers()} == {customer_id("shop", 10001), customer_id("shop", 10002)}


def test_email_changed_in_the_shop_is_set_back_from_the_erp(sandbox):
    from tests.support.shop_fixtures import admin_session

    shop = make_shop(sandbox)
    [mine] = shop.push([erp(10001)], {})
    admin = admin_session(sandbox)
    resp = admin.patch(f"{sandbox.url}/api/customer/{mine.shop_id}", json={"email": "changed@example.com"})
    assert resp.status_code == 204
    [again] = shop.push([erp(10001)], {10001: mine.shop_id})
    assert again.outcome == PushOutcome.UPDATED and again.detail is None
    assert sandbox.customer(mine.shop_id)["email"] == "kunde10001@example.com"
    assert len(sandbox.customers()) == 1


def test_guest_accounts_with_the_same_email_are_not_linked(sandbox):
    from tests.support.shop_fixtures import admin_session, customer_payload

    guest = customer_payload(sandbox, 555, email="guest@example.com", guest=True)
    admin = admin_session(sandbox)
    resp = admin.post(
        f"{sandbox.url}/api/_action/sync",
        json={"g": {"entity": "customer", "action": "upsert", "payload": [guest]}},
        headers={"sw-skip-trigger-flow": "1"},
    )
    assert resp.status_code == 200, resp.text
    shop = make_shop(sandbox)
    [r] = shop.push([erp(10001, email="guest@example.com")], {})
    assert r.outcome == PushOutcome.CREATED and r.shop_id == customer_id("shop", 10001)
    assert r.shop_id in {c.id for c in shop.customers_changed_since(None)}
    assert guest["id"] not in {c.id for c in shop.customers_changed_since(None)}


def test_tenant_cache_holds_no_secret_or_token(sandbox):
    import json

    cache = MemoryCache()
    shop = make_shop(sandbox, cache=cache)
    shop.push([erp(10001)], {})
    dumped = json.dumps(list(cache._data.values()))
    assert sandbox.client_secret not in dumped and shop.http._token not in dumped


# --- adoption (issue 11 defect 4): an unlinked address whose account exists ---------------------

def test_our_account_written_since_its_insert_is_adopted_in_bulk_without_a_password(sandbox):
    shop = make_shop(sandbox, batch_size=4)
    numbers = list(range(70001, 70011))
    first = shop.push([erp(n) for n in numbers], {})
    assert shop.set_passwords({r.shop_id: f"Alt-Passwort-{r.number}" for r in first}).keys() == {
        r.shop_id for r in first}
    sandbox.request_log.clear()

    # the state store is gone: no links; one address changed meanwhile
    again = shop.push([erp(n, city="Linz" if n == 70004 else "Schöppingen") for n in numbers], {})

    assert [r.outcome for r in again] == [PushOutcome.ADOPTED] * len(numbers)
    assert [r.shop_id for r in again] == [r.shop_id for r in first]
    assert all(r.detail is None for r in again)
    assert sandbox.customer(first[3].shop_id)["addresses"][0]["city"] == "Linz"
    for n in numbers:  # the passwords stay what they were
        assert store_login(sandbox, f"kunde{n}@example.com", f"Alt-Passwort-{n}")
    # bulk: one e-mail search for the whole group of 10 found every account, so neither the id
    # nor the customer-number search was needed; never a search per record
    searches = [r for r in sandbox.request_log if r.path == "/api/search/customer"]
    assert len(searches) == 1


def test_a_numbered_account_another_address_is_linked_to_is_never_adopted_nor_duplicated(sandbox):
    from tests.support.shop_fixtures import admin_session

    shop = make_shop(sandbox)
    [mine] = shop.push([erp(70001)], {})
    # someone renumbered 70001's account in the shop to 70002
    resp = admin_session(sandbox).patch(f"{sandbox.url}/api/customer/{mine.shop_id}",
                                        json={"customerNumber": "70002"}, timeout=10)
    assert resp.status_code == 204

    def claims(ids):
        return {i: 70001 for i in ids if i == mine.shop_id}  # the state store's link

    [r] = shop.push([erp(70002)], {}, claims=claims)
    assert r.outcome == PushOutcome.REJECTED and r.code == "SYNCD__AMBIGUOUS_ACCOUNT"
    assert mine.shop_id in r.reason and "70001" in r.reason and "70002" in r.reason
    assert len(sandbox.customers()) == 1

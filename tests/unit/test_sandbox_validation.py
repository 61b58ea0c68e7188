"""The sandbox validates writes like Shopware's DAL: each rule, its code and its pointer."""

from __future__ import annotations

import pytest

from tests.support import shop_fixtures
from tests.support.shop_fixtures import admin_session, customer_payload, store_login

sandbox = shop_fixtures.sandbox  # the fixture

NOT_BLANK = "c1051bb4-d103-4f74-8988-acbcafc7fdc3"
TOO_LONG = "d94b19cc-114f-4f44-9cc4-4138e80a87b9"
TOO_SHORT = "9ff3fdc4-b214-49db-8718-39c315e33d45"
INVALID_EMAIL = "bd79c0ab-ddba-46cc-a703-a7a4b08de310"
INVALID_TYPE = "ba785a8c-82cb-4283-967c-3cf342181b40"


def _sync(sb, payload, **headers):
    s = admin_session(sb)
    return s.post(
        f"{sb.url}/api/_action/sync",
        json={"write-customer": {"entity": "customer", "action": "upsert", "payload": payload}},
        headers={"sw-skip-trigger-flow": "1", **headers},
    )


def _errors(resp):
    assert resp.status_code == 400, resp.text
    return [(e["source"]["pointer"], e["code"]) for e in resp.json()["errors"]]


@pytest.mark.parametrize(
    "field",
    [
        "customerNumber",
        "firstName",
        "lastName",
        "email",
        "groupId",
        "salesChannelId",
        "defaultBillingAddressId",
    ],
)
def test_each_required_customer_field_is_enforced_on_insert(sandbox, field):
    p = customer_payload(sandbox, 1)
    del p[field]
    if field == "defaultBillingAddressId":
        p["addresses"] = p["addresses"]  # the address still comes along, only the reference is missing
    assert _errors(_sync(sandbox, [p])) == [(f"/write-customer/0/{field}", NOT_BLANK)]
    assert sandbox.customers() == []


def test_language_is_filled_from_the_context_not_required(sandbox):
    p = customer_payload(sandbox, 1)
    del p["languageId"]
    assert _sync(sandbox, [p]).status_code == 200
    assert sandbox.customer(p["id"])["languageId"] == "2fbb5fe2e29a4d70aa5854ce7ce3e20b"
    q = customer_payload(sandbox, 2)
    del q["languageId"]
    assert _sync(sandbox, [q], **{"sw-language-id": sandbox.ids.language}).status_code == 200
    assert sandbox.customer(q["id"])["languageId"] == sandbox.ids.language


def test_required_fields_are_not_required_on_update(sandbox):
    p = customer_payload(sandbox, 1)
    assert _sync(sandbox, [p]).status_code == 200
    assert _sync(sandbox, [{"id": p["id"], "lastName": "Neu"}]).status_code == 200
    assert sandbox.customer(p["id"])["lastName"] == "Neu"


@pytest.mark.parametrize("field", ["firstName", "lastName", "city", "street", "countryId"])
def test_each_required_address_field_is_enforced(sandbox, field):
    p = customer_payload(sandbox, 1)
    del p["addresses"][0][field]
    assert _errors(_sync(sandbox, [p])) == [(f"/write-customer/0/addresses/0/{field}", NOT_BLANK)]


@pytest.mark.parametrize(
    "field,value",
    [
        ("id", "1234"),
        ("id", "0123456789ABCDEF0123456789ABCDEF"),
        ("groupId", "not-a-uuid"),
        ("salutationId", "0123456789abcdef0123456789abcdef0"),
    ],
)
def test_ids_must_be_32_lowercase_hex(sandbox, field, value):
    p = customer_payload(sandbox, 1, **{field: value})
    assert _errors(_sync(sandbox, [p])) == [(f"/write-customer/0/{field}", "FRAMEWORK__INVALID_UUID")]


@pytest.mark.parametrize(
    "email", ["plain", "a@b", "two@@example.com", "space in@example.com", "x@exa mple.com"]
)
def test_email_format(sandbox, email):
    assert _errors(_sync(sandbox, [customer_payload(sandbox, 1, email=email)])) == [
        ("/write-customer/0/email", INVALID_EMAIL)
    ]


def test_password_minimum_length_and_no_echo_of_the_value(sandbox):
    resp = _sync(sandbox, [customer_payload(sandbox, 1, password="kurz12")])
    assert _errors(resp) == [("/write-customer/0/password", TOO_SHORT)]
    assert "kurz12" not in resp.text
    assert resp.json()["errors"][0]["meta"]["parameters"]["{{ limit }}"] == 8
    assert _sync(sandbox, [customer_payload(sandbox, 1, password="genau8ch")]).status_code == 200


def test_a_bcrypt_hash_is_stored_unchanged_and_logs_in(sandbox):
    hashed = sandbox.hash_password("vorgehasht")
    p = customer_payload(sandbox, 1, password=hashed)
    assert _sync(sandbox, [p]).status_code == 200
    assert sandbox._store.passwords[p["id"]] == hashed.encode()
    assert store_login(sandbox, p["email"], "vorgehasht")


def test_empty_strings_count_as_blank(sandbox):
    p = customer_payload(sandbox, 1, firstName="", customerNumber="")
    assert sorted(_errors(_sync(sandbox, [p]))) == [
        ("/write-customer/0/customerNumber", NOT_BLANK),
        ("/write-customer/0/firstName", NOT_BLANK),
    ]


def test_wrong_types_are_refused(sandbox):
    p = customer_payload(sandbox, 1, customerNumber=10001, active="yes", vatIds="DE1")
    assert sorted(_errors(_sync(sandbox, [p]))) == [
        ("/write-customer/0/active", INVALID_TYPE),
        ("/write-customer/0/customerNumber", INVALID_TYPE),
        ("/write-customer/0/vatIds", INVALID_TYPE),
    ]


def test_unknown_and_write_protected_fields(sandbox):
    p = customer_payload(sandbox, 1, shoeSize=44, orderCount=3)
    assert sorted(_errors(_sync(sandbox, [p]))) == [
        ("/write-customer/0/orderCount", "FRAMEWORK__WRITE_CONSTRAINT_VIOLATION"),
        ("/write-customer/0/shoeSize", "FRAMEWORK__WRITE_UNEXPECTED_FIELD_ERROR"),
    ]


def test_customer_names_are_capped_at_255(sandbox):
    p = customer_payload(sandbox, 1, lastName="x" * 256)
    [(pointer, code)] = _errors(_sync(sandbox, [p]))
    assert (pointer, code) == ("/write-customer/0/lastName", TOO_LONG)


def test_html_is_stripped_from_strings(sandbox):
    p = customer_payload(sandbox, 1, company="<b>ACME</b> GmbH")
    assert _sync(sandbox, [p]).status_code == 200
    assert sandbox.customer(p["id"])["company"] == "ACME GmbH"


def test_unknown_foreign_keys_fail_like_the_database_with_500_and_write_nothing(sandbox):
    good = customer_payload(sandbox, 1)
    bad = customer_payload(sandbox, 2, groupId="0" * 32)
    resp = _sync(sandbox, [good, bad])
    assert resp.status_code == 500
    err = resp.json()["errors"][0]
    assert "1452" in err["detail"] and "customer_group_id" in err["detail"]
    assert sandbox.customers() == []


def test_default_address_may_point_to_a_stored_address(sandbox):
    p = customer_payload(sandbox, 1)
    assert _sync(sandbox, [p]).status_code == 200
    again = {k: v for k, v in customer_payload(sandbox, 1).items() if k != "addresses"}
    assert _sync(sandbox, [again]).status_code == 200
    dangling = customer_payload(sandbox, 2, defaultShippingAddressId="f" * 32)
    resp = _sync(sandbox, [dangling])
    assert resp.status_code == 500 and "default_shipping_address_id" in resp.json()["errors"][0]["detail"]


def test_default_address_given_as_nested_object(sandbox):
    p = customer_payload(sandbox, 1)
    address = p.pop("addresses")[0]
    del p["defaultBillingAddressId"], p["defaultShippingAddressId"]
    p["defaultBillingAddress"] = address
    p["defaultShippingAddressId"] = address["id"]
    assert _sync(sandbox, [p]).status_code == 200
    stored = sandbox.customer(p["id"])
    assert stored["defaultBillingAddressId"] == address["id"]
    assert stored["addresses"][0]["customerId"] == p["id"]


def test_addresses_without_ids_get_generated_ones_and_duplicate_on_replay(sandbox):
    """Shopware inserts a new child for every id-less address: why the connector must send ids."""
    p = customer_payload(sandbox, 1)
    p["addresses"].append(
        {
            "countryId": sandbox.ids.countries["AT"],
            "firstName": "A",
            "lastName": "B",
            "street": "S 1",
            "city": "Wien",
        }
    )
    assert _sync(sandbox, [p]).status_code == 200
    assert _sync(sandbox, [p]).status_code == 200
    assert len(sandbox.customer(p["id"])["addresses"]) == 3


def test_many_violations_in_many_records_are_all_reported(sandbox):
    batch = [customer_payload(sandbox, i) for i in range(10)]
    batch[3]["email"] = "bad"
    batch[7]["addresses"][0]["city"] = ""
    batch[9]["lastName"] = None
    assert sorted(_errors(_sync(sandbox, batch))) == [
        ("/write-customer/3/email", INVALID_EMAIL),
        ("/write-customer/7/addresses/0/city", NOT_BLANK),
        ("/write-customer/9/lastName", NOT_BLANK),
    ]


def test_delete_operation_and_not_found(sandbox):
    p = customer_payload(sandbox, 1)
    assert _sync(sandbox, [p]).status_code == 200
    s = admin_session(sandbox)
    resp = s.post(
        f"{sandbox.url}/api/_action/sync",
        json={
            "d": {"entity": "customer", "action": "delete", "payload": [{"id": p["id"]}, {"id": "a" * 32}]}
        },
    )
    assert resp.status_code == 200
    assert resp.json()["deleted"] == {"customer": [p["id"]]}
    assert resp.json()["notFound"] == {"customer": ["a" * 32]}
    assert sandbox.customers() == [] and sandbox._store.tables["customer_address"] == {}


def test_deleting_a_default_address_is_refused_by_the_foreign_key(sandbox):
    p = customer_payload(sandbox, 1)
    assert _sync(sandbox, [p]).status_code == 200
    s = admin_session(sandbox)
    resp = s.delete(f"{sandbox.url}/api/customer-address/{p['defaultBillingAddressId']}")
    assert resp.status_code == 500
    assert len(sandbox.customer(p["id"])["addresses"]) == 1


def test_malformed_sync_bodies(sandbox):
    s = admin_session(sandbox)
    url = f"{sandbox.url}/api/_action/sync"
    assert s.post(url, data=b"{not json", headers={"Content-Type": "application/json"}).status_code == 400
    assert (
        s.post(url, json={"x": {"entity": "customer", "action": "merge", "payload": []}}).status_code == 400
    )
    assert (
        s.post(url, json={"x": {"entity": "product", "action": "upsert", "payload": []}}).status_code == 400
    )
    resp = s.post(url, json={"x": {"entity": "customer", "action": "upsert", "payload": ["nope"]}})
    assert _errors(resp) == [("/x/0", "FRAMEWORK__WRITE_MALFORMED_INPUT")]


def test_flow_with_a_language_the_channel_lacks_answers_412_and_removes_that_customer(sandbox):
    english = "2fbb5fe2e29a4d70aa5854ce7ce3e20b"
    sandbox._store.put(
        "sales_channel",
        {
            **sandbox._store.get("sales_channel", sandbox.sales_channel_id),
            "languageIds": [sandbox.ids.language],
        },
    )
    ok = customer_payload(sandbox, 1)
    foreign = customer_payload(sandbox, 2, languageId=english)
    # with the skip header no flow runs, so nothing is checked
    assert _sync(sandbox, [customer_payload(sandbox, 3, languageId=english)]).status_code == 200
    s = admin_session(sandbox)
    resp = s.post(
        f"{sandbox.url}/api/_action/sync",
        json={"w": {"entity": "customer", "action": "upsert", "payload": [ok, foreign]}},
    )
    assert resp.status_code == 412
    assert resp.json()["errors"][0]["code"] == "SYSTEM__SALES_CHANNEL_LANGUAGE_NOT_AVAILABLE_EXCEPTION"
    assert sorted(c["customerNumber"] for c in sandbox.customers()) == ["1", "3"]
    assert [m["customer_id"] for m in sandbox.flow_mails] == [ok["id"]]


def test_malformed_writes_never_crash_the_sandbox(sandbox):
    s = admin_session(sandbox)
    bad_items = [
        {"id": 5},
        {"password": 12345678},
        {"email": ["a@example.com"]},
        {"addresses": "street"},
        {"addresses": [None, 5]},
        {"defaultBillingAddress": "abc"},
        {"vatIds": [1]},
        {"customFields": "x"},
        {"salesChannelId": 5},
        {"birthday": "notadate"},
        {"accountType": ["business"]},
    ]
    for item in bad_items:
        resp = s.post(
            f"{sandbox.url}/api/_action/sync",
            json={
                "w": {
                    "entity": "customer",
                    "action": "upsert",
                    "payload": [customer_payload(sandbox, 1, **item)],
                }
            },
        )
        assert resp.status_code == 400, (item, resp.text)
    for body in (
        {"w": "x"},
        {"w": {"entity": "customer", "action": "delete", "payload": [{"id": 5}, "x"]}},
        5,
    ):
        resp = s.post(f"{sandbox.url}/api/_action/sync", json=body)
        assert resp.status_code < 500, (body, resp.text)
    assert s.patch(f"{sandbox.url}/api/customer/{'a' * 32}", json=[1]).status_code in (400, 404)
    assert sandbox.customers() == []

"""What changes between the Shopware versions the sandbox plays."""

from __future__ import annotations

import pytest
import requests

from syncd.connectors.shopware6.sandbox import Sandbox
from tests.support import shop_fixtures
from tests.support.shop_fixtures import admin_session, customer_payload, store_login

sandbox = shop_fixtures.sandbox  # the fixture


def _sync(sb, payload):
    return admin_session(sb).post(
        f"{sb.url}/api/_action/sync",
        json={"write-customer": {"entity": "customer", "action": "upsert", "payload": payload}},
        headers={"sw-skip-trigger-flow": "1"},
    )


def test_unsupported_versions_are_refused():
    for bad in ("6.4.20.2", "6.8.0.0", "6.6", "latest"):
        with pytest.raises(ValueError):
            Sandbox(bad)


@pytest.mark.parametrize("sandbox", ["6.5.8.0", "6.6.10.0"], indirect=True)
def test_payment_method_is_required_up_to_66(sandbox):
    p = customer_payload(sandbox, 1)
    del p["defaultPaymentMethodId"]
    resp = _sync(sandbox, [p])
    assert resp.status_code == 400
    assert resp.json()["errors"][0]["source"]["pointer"] == "/write-customer/0/defaultPaymentMethodId"


@pytest.mark.parametrize("sandbox", ["6.7.2.0"], indirect=True)
def test_payment_method_is_gone_in_67(sandbox):
    p = customer_payload(sandbox, 1)
    assert "defaultPaymentMethodId" not in p
    assert _sync(sandbox, [p]).status_code == 200
    resp = _sync(sandbox, [customer_payload(sandbox, 2, defaultPaymentMethodId=sandbox.ids.payment_method)])
    assert resp.status_code == 400
    err = resp.json()["errors"][0]
    assert err["code"] == "FRAMEWORK__WRITE_UNEXPECTED_FIELD_ERROR"
    assert err["source"]["pointer"] == "/write-customer/0/defaultPaymentMethodId"


@pytest.mark.parametrize(
    "sandbox,capped", [("6.6.3.0", False), ("6.6.4.0", True), ("6.7.2.0", True)], indirect=["sandbox"]
)
def test_address_name_caps_since_664(sandbox, capped):
    p = customer_payload(sandbox, 1)
    p["addresses"][0].update(firstName="F" * 51, lastName="L" * 61)
    resp = _sync(sandbox, [p])
    if not capped:
        assert resp.status_code == 200
        return
    assert resp.status_code == 400
    got = {e["source"]["pointer"]: e["meta"]["parameters"]["{{ limit }}"] for e in resp.json()["errors"]}
    assert got == {
        "/write-customer/0/addresses/0/firstName": 50,
        "/write-customer/0/addresses/0/lastName": 60,
    }
    p["addresses"][0].update(firstName="F" * 50, lastName="L" * 60)
    assert _sync(sandbox, [p]).status_code == 200


@pytest.mark.parametrize("sandbox", ["6.6.10.0", "6.7.2.0"], indirect=True)
def test_duplicate_emails_are_accepted_where_the_version_does_not_check(sandbox):
    a = customer_payload(sandbox, 1, email="same@example.com")
    b = customer_payload(sandbox, 2, email="SAME@example.com")
    assert _sync(sandbox, [a]).status_code == 200
    assert _sync(sandbox, [b]).status_code == 200
    assert len(sandbox.customers()) == 2


@pytest.mark.parametrize("sandbox", ["6.7.10.0", "6.7.11.0"], indirect=True)
def test_newer_67_refuses_duplicate_emails_also_within_one_batch(sandbox):
    a = customer_payload(sandbox, 1, email="same@example.com")
    assert _sync(sandbox, [a]).status_code == 200
    b = customer_payload(sandbox, 2, email="Same@Example.com")
    resp = _sync(sandbox, [customer_payload(sandbox, 3), b])
    assert resp.status_code == 400
    err = resp.json()["errors"][0]
    assert err["code"] == "79d30fe0-febf-421e-ac9b-1bfd5c9007f7"
    # 6.7.10 still points at the customer id; the pointer fix (PR #18306) came later
    expected = "/write-customer/1/email" if sandbox.version == "6.7.11.0" else f"/{b['id']}/email"
    assert err["source"]["pointer"] == expected
    # within one batch
    c, d = (
        customer_payload(sandbox, 4, email="x@example.com"),
        customer_payload(sandbox, 5, email="x@example.com"),
    )
    assert _sync(sandbox, [c, d]).status_code == 400
    # a guest does not count, and an update of the same customer is fine
    assert (
        _sync(sandbox, [customer_payload(sandbox, 6, email="same@example.com", guest=True)]).status_code
        == 200
    )
    assert _sync(sandbox, [dict(a, lastName="Neu")]).status_code == 200


@pytest.mark.parametrize("sandbox", ["6.7.10.0"], indirect=True)
def test_customers_bound_to_other_channels_do_not_clash(sandbox):
    other_channel = "e" * 32
    sandbox._store.put("sales_channel", {"id": other_channel, "name": "B2B", "apiAlias": "sales_channel"})
    a = customer_payload(sandbox, 1, email="same@example.com", boundSalesChannelId=sandbox.ids.sales_channel)
    b = customer_payload(sandbox, 2, email="same@example.com", boundSalesChannelId=other_channel)
    assert _sync(sandbox, [a, b]).status_code == 200


@pytest.mark.parametrize("sandbox,has_type", [("6.5.0.0", False), ("6.5.8.0", True)], indirect=["sandbox"])
def test_account_type_exists_since_651(sandbox, has_type):
    p = customer_payload(sandbox, 1, accountType="business")
    resp = _sync(sandbox, [p])
    assert resp.status_code == (200 if has_type else 400)
    if has_type:
        assert sandbox.customer(p["id"])["accountType"] == "business"
        bad = _sync(sandbox, [customer_payload(sandbox, 2, accountType="reseller")])
        assert bad.json()["errors"][0]["code"] == "8e179f1b-97aa-4560-a02f-2a8b42e49df7"


@pytest.mark.parametrize("sandbox,filled", [("6.5.3.0", False), ("6.5.8.0", True)], indirect=["sandbox"])
def test_missing_salutation_is_filled_since_654(sandbox, filled):
    p = customer_payload(sandbox, 1)
    del p["salutationId"]
    assert _sync(sandbox, [p]).status_code == 200
    expected = sandbox.ids.salutations["not_specified"] if filled else None
    assert sandbox.customer(p["id"])["salutationId"] == expected


def _login(sb, email, password):
    return requests.post(
        f"{sb.url}/store-api/account/login",
        json={"email": email, "password": password},
        headers={"sw-access-key": sb.access_key},
        timeout=10,
    )


@pytest.mark.parametrize(
    "sandbox,code",
    [
        ("6.5.8.0", "CHECKOUT__CUSTOMER_IS_INACTIVE"),
        ("6.6.10.0", "CHECKOUT__CUSTOMER_AUTH_BAD_CREDENTIALS"),
        ("6.6.10.15", "CHECKOUT__CUSTOMER_AUTH_BAD_CREDENTIALS"),
    ],
    indirect=["sandbox"],
)
def test_inactive_customers_cannot_log_in(sandbox, code):
    p = customer_payload(sandbox, 1, password="geheim123", active=False)
    assert _sync(sandbox, [p]).status_code == 200
    resp = _login(sandbox, p["email"], "geheim123")
    assert resp.status_code == 401
    assert resp.json()["errors"][0]["code"] == code


@pytest.mark.parametrize(
    "sandbox,code",
    [("6.6.10.0", "CHECKOUT__CUSTOMER_NOT_FOUND"), ("6.7.8.1", "CHECKOUT__CUSTOMER_AUTH_BAD_CREDENTIALS")],
    indirect=["sandbox"],
)
def test_unknown_email_login_code_follows_the_enumeration_fix(sandbox, code):
    resp = _login(sandbox, "ghost@example.com", "whatever1")
    assert resp.status_code == 401 and resp.json()["errors"][0]["code"] == code


@pytest.mark.parametrize("sandbox", ["6.5.8.0", "6.6.10.0", "6.7.2.0", "6.7.11.0"], indirect=True)
def test_a_full_create_and_login_works_in_every_version(sandbox):
    p = customer_payload(sandbox, 1, password="geheim123")
    assert _sync(sandbox, [p]).status_code == 200
    assert store_login(sandbox, p["email"], "geheim123")


@pytest.mark.parametrize("sandbox,max_limit", [("6.5.0.0", 100), ("6.6.10.0", 500)], indirect=["sandbox"])
def test_search_limit_is_capped_per_version(sandbox, max_limit):
    s = admin_session(sandbox)
    assert s.post(f"{sandbox.url}/api/search/country", json={"limit": max_limit}).status_code == 200
    resp = s.post(f"{sandbox.url}/api/search/country", json={"limit": max_limit + 1})
    assert resp.status_code == 400
    assert resp.json()["errors"][0]["code"] == "FRAMEWORK__QUERY_LIMIT_EXCEEDED"


@pytest.mark.parametrize("sandbox", ["6.7.11.0"], indirect=True)
def test_an_email_freed_in_the_same_request_can_be_taken(sandbox):
    a = customer_payload(sandbox, 1, email="wechsel@example.com")
    assert _sync(sandbox, [a]).status_code == 200
    moved = {"id": a["id"], "email": "neu@example.com"}
    taker = customer_payload(sandbox, 2, email="wechsel@example.com")
    assert _sync(sandbox, [moved, taker]).status_code == 200
    assert sorted(c["email"] for c in sandbox.customers()) == ["neu@example.com", "wechsel@example.com"]

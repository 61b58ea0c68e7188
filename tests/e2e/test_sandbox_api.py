"""Contract tests of the Shopware sandbox over real HTTP: auth, search, CRUD, sync, Store API login."""

from __future__ import annotations

import time

import pytest
import requests

from tests.support import shop_fixtures
from tests.support.shop_fixtures import admin_session, customer_payload, store_login

sandbox = shop_fixtures.sandbox  # the fixture

ALL_VERSIONS = ["6.5.8.0", "6.6.3.0", "6.6.10.0", "6.7.2.0", "6.7.10.0"]


def _sync(session, sb, payload, *, key="write-customer", skip_flow=True, entity="customer", action="upsert"):
    headers = {"sw-skip-trigger-flow": "1"} if skip_flow else {}
    return session.post(
        f"{sb.url}/api/_action/sync",
        json={key: {"entity": entity, "action": action, "payload": payload}},
        headers=headers,
        timeout=10,
    )


def _token(sb, **overrides):
    body = {"grant_type": "client_credentials", "client_id": sb.client_id, "client_secret": sb.client_secret}
    body.update(overrides)
    return requests.post(f"{sb.url}/api/oauth/token", json=body, timeout=10)


# --- auth ---------------------------------------------------------------------------------------
def test_token_is_issued_for_the_integration_and_refused_for_a_bad_secret(sandbox):
    ok = _token(sandbox)
    assert ok.status_code == 200
    body = ok.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 600 and body["access_token"]
    assert "refresh_token" not in body  # client_credentials has none

    bad = _token(sandbox, client_secret="wrong")
    assert bad.status_code == 401
    assert bad.json()["errors"][0]["code"] == "4"

    # The password grant exists (Administration users, `accounts login-as`) but only for the
    # client "administration": an integration's access key there is league's invalid_client.
    wrong_client = _token(sandbox, grant_type="password")
    assert wrong_client.status_code == 401 and wrong_client.json()["errors"][0]["code"] == "4"
    unknown_grant = _token(sandbox, grant_type="implicit")
    assert unknown_grant.status_code == 400


def test_requests_without_or_with_a_bogus_token_get_shopware_401(sandbox):
    missing = requests.get(f"{sandbox.url}/api/_info/version", timeout=10)
    assert missing.status_code == 401
    err = missing.json()["errors"][0]
    assert err["code"] == "9" and err["detail"] == 'Missing "Authorization" header'

    bogus = requests.get(
        f"{sandbox.url}/api/_info/version", headers={"Authorization": "Bearer nope"}, timeout=10
    )
    assert bogus.status_code == 401
    assert bogus.json()["errors"][0]["detail"] == "Access token could not be verified"


def test_tokens_expire_after_their_lifetime(sandbox):
    sandbox.token_lifetime = 0.3
    s = admin_session(sandbox)
    assert s.get(f"{sandbox.url}/api/_info/version").status_code == 200
    time.sleep(0.4)
    assert s.get(f"{sandbox.url}/api/_info/version").status_code == 401


def test_expire_tokens_revokes_every_issued_token(sandbox):
    s = admin_session(sandbox)
    sandbox.expire_tokens()
    assert s.get(f"{sandbox.url}/api/_info/version").status_code == 401


@pytest.mark.parametrize("sandbox", ["6.5.8.0", "6.7.2.0"], indirect=True)
def test_version_endpoint_reports_the_played_version(sandbox):
    s = admin_session(sandbox)
    assert s.get(f"{sandbox.url}/api/_info/version").json() == {"version": sandbox.version}


def test_repeated_bad_secrets_are_throttled_and_a_success_resets(sandbox):
    codes = [_token(sandbox, client_secret="wrong").status_code for _ in range(11)]
    assert codes[:10] == [401] * 10
    assert codes[10] == 429
    err = _token(sandbox).json()["errors"][0]  # even the right secret waits out the throttle
    assert err["code"] == "FRAMEWORK__AUTH_THROTTLED"
    assert err["meta"]["parameters"]["seconds"] in range(1, 11)
    assert err["detail"] == f"Auth throttled for {err['meta']['parameters']['seconds']} seconds."


# --- metadata search ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "entity,field,value",
    [
        ("sales-channel", "name", "Storefront"),
        ("customer-group", "name", "Händler"),
        ("salutation", "salutationKey", "mrs"),
        ("country", "iso", "AT"),
        ("payment-method", "technicalName", "payment_invoice"),
        ("language", "name", "Deutsch"),
    ],
)
def test_metadata_is_searchable_by_its_natural_key(sandbox, entity, field, value):
    s = admin_session(sandbox)
    resp = s.post(
        f"{sandbox.url}/api/search/{entity}",
        json={"filter": [{"type": "equals", "field": field, "value": value}], "limit": 10},
    )
    assert resp.status_code == 200
    body = resp.json()
    assert body["total"] == 1 and body["aggregations"] == {}
    assert body["data"][0][field] == value
    assert body["data"][0]["apiAlias"] == entity.replace("-", "_")


def test_sales_channel_carries_its_defaults_and_domains(sandbox):
    s = admin_session(sandbox)
    sc = s.post(
        f"{sandbox.url}/api/search/sales-channel",
        json={"associations": {"domains": {}, "languages": {"associations": {"locale": {}}}}},
    ).json()["data"][0]
    for key in ("languageId", "customerGroupId", "paymentMethodId", "countryId", "currencyId", "accessKey"):
        assert sc[key], key
    assert sc["accessKey"] == sandbox.access_key
    assert [d["url"] for d in sc["domains"]] == [sandbox.url]
    assert {lang["locale"]["code"] for lang in sc["languages"]} == {"de-DE", "en-GB"}


def test_unknown_entity_and_unknown_field_are_refused(sandbox):
    s = admin_session(sandbox)
    assert s.post(f"{sandbox.url}/api/search/nonsense", json={}).status_code == 404
    resp = s.post(
        f"{sandbox.url}/api/search/customer",
        json={"filter": [{"type": "equals", "field": "nope", "value": 1}]},
    )
    assert resp.status_code == 400
    assert resp.json()["errors"][0]["code"] == "FRAMEWORK__UNMAPPED_FIELD"


def test_without_accept_json_the_shop_answers_json_api(sandbox):
    s = admin_session(sandbox)
    del s.headers["Accept"]
    resp = s.post(f"{sandbox.url}/api/search/country", json={"limit": 1})
    assert resp.headers["Content-Type"].startswith("application/vnd.api+json")
    assert "attributes" in resp.json()["data"][0]


# --- sync and validation ------------------------------------------------------------------------
def test_sync_upsert_creates_then_updates_and_stays_idempotent(sandbox):
    s = admin_session(sandbox)
    p = customer_payload(sandbox, 10001)
    first = _sync(s, sandbox, [p])
    assert first.status_code == 200, first.text
    assert first.json()["data"]["customer"] == [p["id"]]
    assert first.json()["data"]["customer_address"] == [p["defaultBillingAddressId"]]
    created = sandbox.customer(p["id"])
    assert created["updatedAt"] is None and created["customerNumber"] == "10001"

    p2 = dict(p, lastName="Neumann", addresses=p["addresses"])
    assert _sync(s, sandbox, [p2]).status_code == 200
    assert len(sandbox.customers()) == 1
    updated = sandbox.customer(p["id"])
    assert updated["lastName"] == "Neumann" and updated["updatedAt"] is not None
    assert len(updated["addresses"]) == 1


def test_one_invalid_record_rejects_the_whole_request_with_pointers(sandbox):
    s = admin_session(sandbox)
    good = customer_payload(sandbox, 1)
    bad_email = customer_payload(sandbox, 2, email="not-an-email")
    no_number = customer_payload(sandbox, 3)
    del no_number["customerNumber"]
    resp = _sync(s, sandbox, [good, bad_email, no_number])
    assert resp.status_code == 400
    pointers = {err["source"]["pointer"]: err["code"] for err in resp.json()["errors"]}
    assert pointers == {
        "/write-customer/1/email": "bd79c0ab-ddba-46cc-a703-a7a4b08de310",
        "/write-customer/2/customerNumber": "c1051bb4-d103-4f74-8988-acbcafc7fdc3",
    }
    assert sandbox.customers() == []  # nothing written, not even the good record


def test_list_shaped_sync_payload_points_at_the_operation_index(sandbox):
    s = admin_session(sandbox)
    bad = customer_payload(sandbox, 5, firstName="")
    resp = s.post(
        f"{sandbox.url}/api/_action/sync",
        json=[{"entity": "customer", "action": "upsert", "payload": [customer_payload(sandbox, 4), bad]}],
    )
    assert resp.status_code == 400
    assert [e["source"]["pointer"] for e in resp.json()["errors"]] == ["/0/1/firstName"]


def test_store_login_works_with_the_password_set_by_sync_and_refuses_others(sandbox):
    s = admin_session(sandbox)
    p = customer_payload(sandbox, 10001, password="geheim123")
    assert _sync(s, sandbox, [p]).status_code == 200
    assert store_login(sandbox, p["email"], "geheim123")
    assert store_login(sandbox, p["email"].upper(), "geheim123")  # e-mail lookup ignores case
    assert not store_login(sandbox, p["email"], "geheim124")
    resp = requests.post(
        f"{sandbox.url}/store-api/account/login",
        json={"username": p["email"], "password": "wrong-one"},
        headers={"sw-access-key": sandbox.access_key},
        timeout=10,
    )
    assert resp.status_code == 401
    assert resp.json()["errors"][0]["code"] == "CHECKOUT__CUSTOMER_AUTH_BAD_CREDENTIALS"


def test_customer_patch_sets_password_and_active(sandbox):
    s = admin_session(sandbox)
    p = customer_payload(sandbox, 10001)
    assert _sync(s, sandbox, [p]).status_code == 200
    assert not store_login(sandbox, p["email"], "neues-passwort")
    resp = s.patch(f"{sandbox.url}/api/customer/{p['id']}", json={"password": "neues-passwort"})
    assert resp.status_code == 204
    assert store_login(sandbox, p["email"], "neues-passwort")
    assert s.patch(f"{sandbox.url}/api/customer/{p['id']}", json={"active": False}).status_code == 204
    assert sandbox.customer(p["id"])["active"] is False
    assert not store_login(sandbox, p["email"], "neues-passwort")
    assert (
        s.patch(f"{sandbox.url}/api/customer/{p['id']}", json={"customerNumber": "20002"}).status_code == 204
    )
    assert sandbox.customer(p["id"])["customerNumber"] == "20002"


def test_sync_without_skip_header_records_the_registration_mail(sandbox):
    s = admin_session(sandbox)
    assert _sync(s, sandbox, [customer_payload(sandbox, 1)], skip_flow=True).status_code == 200
    assert sandbox.flow_mails == []
    assert _sync(s, sandbox, [customer_payload(sandbox, 2)], skip_flow=False).status_code == 200
    assert [m["email"] for m in sandbox.flow_mails] == ["kunde2@example.com"]
    # an update is no registration
    assert _sync(s, sandbox, [customer_payload(sandbox, 2, lastName="X")], skip_flow=False).status_code == 200
    assert len(sandbox.flow_mails) == 1
    logged = [r for r in sandbox.request_log if r.path == "/api/_action/sync"]
    assert logged[0].headers.get("sw-skip-trigger-flow") == "1"
    assert all("authorization" not in r.headers for r in sandbox.request_log)


def test_passwords_are_stored_as_bcrypt_and_never_returned(sandbox):
    s = admin_session(sandbox)
    p = customer_payload(sandbox, 1, password="geheim123")
    assert _sync(s, sandbox, [p]).status_code == 200
    stored = sandbox._store.passwords[p["id"]]
    assert stored.startswith(b"$2b$") and b"geheim123" not in stored
    got = s.get(f"{sandbox.url}/api/customer/{p['id']}").json()["data"]
    assert "password" not in got
    found = s.post(f"{sandbox.url}/api/search/customer", json={}).json()["data"][0]
    assert "password" not in found and "geheim123" not in str(sandbox.customers())


def test_an_unseeded_shop_has_system_data_but_no_sales_channel():
    from syncd.connectors.shopware6.sandbox import Sandbox

    with Sandbox(seed=False) as sb:
        s = admin_session(sb)

        def total(entity):
            return s.post(f"{sb.url}/api/search/{entity}", json={"total-count-mode": 1}).json()["total"]

        assert total("sales-channel") == 0 and total("customer-group") == 0 and total("payment-method") == 0
        assert total("salutation") == 3 and total("country") > 5


@pytest.mark.parametrize("behavior", ["use-queue-indexing", "disable-indexing"])
def test_indexing_behavior_header_is_accepted(sandbox, behavior):
    s = admin_session(sandbox)
    resp = s.post(
        f"{sandbox.url}/api/_action/sync",
        json={"w": {"entity": "customer", "action": "upsert", "payload": [customer_payload(sandbox, 1)]}},
        headers={"indexing-behavior": behavior, "sw-skip-trigger-flow": "1"},
    )
    assert resp.status_code == 200
    assert sandbox.request_log[-1].headers["indexing-behavior"] == behavior


@pytest.mark.parametrize("sandbox", [{"version": "6.7.2.0", "token_lifetime": 42}], indirect=True)
def test_fixture_takes_sandbox_keyword_arguments(sandbox):
    assert sandbox.version == "6.7.2.0"
    assert _token(sandbox).json()["expires_in"] == 42

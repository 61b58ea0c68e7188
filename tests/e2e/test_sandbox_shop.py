"""CRUD routes, shop-side events, Store API recovery, admin actions and the manual entry point."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.support import shop_fixtures
from tests.support.shop_fixtures import admin_session, customer_payload, store_login

sandbox = shop_fixtures.sandbox  # the fixture


def test_post_creates_with_204_and_location_and_refuses_an_existing_id(sandbox):
    s = admin_session(sandbox)
    p = customer_payload(sandbox, 1)
    resp = s.post(f"{sandbox.url}/api/customer", json=p, headers={"sw-skip-trigger-flow": "1"})
    assert resp.status_code == 204
    assert resp.headers["Location"] == f"{sandbox.url}/api/customer/{p['id']}"
    again = s.post(f"{sandbox.url}/api/customer", json=p)
    assert again.status_code == 400
    assert again.json()["errors"][0]["code"] == "FRAMEWORK__WRITE_TYPE_INTEND_ERROR"
    assert s.get(f"{sandbox.url}/api/customer/{p['id']}").json()["data"]["email"] == p["email"]
    basic = s.post(f"{sandbox.url}/api/customer?_response=basic", json=customer_payload(sandbox, 2))
    assert basic.status_code == 200 and basic.json()["data"]["customerNumber"] == "2"


def test_post_without_skip_header_records_a_flow_mail(sandbox):
    s = admin_session(sandbox)
    assert s.post(f"{sandbox.url}/api/customer", json=customer_payload(sandbox, 1)).status_code == 204
    assert [m["email"] for m in sandbox.flow_mails] == ["kunde1@example.com"]


def test_post_of_a_list_is_pointed_to_the_sync_api(sandbox):
    s = admin_session(sandbox)
    resp = s.post(f"{sandbox.url}/api/customer", json=[customer_payload(sandbox, 1)])
    assert resp.status_code == 400 and "sync" in resp.json()["errors"][0]["detail"]


def test_patch_validates_and_unknown_ids_are_404(sandbox):
    s = admin_session(sandbox)
    p = customer_payload(sandbox, 1)
    assert s.post(f"{sandbox.url}/api/customer", json=p).status_code == 204
    bad = s.patch(f"{sandbox.url}/api/customer/{p['id']}", json={"password": "kurz"})
    assert bad.status_code == 400 and bad.json()["errors"][0]["source"]["pointer"] == "/0/password"
    assert s.patch(f"{sandbox.url}/api/customer/{'a' * 32}", json={"active": False}).status_code == 404
    missing = s.get(f"{sandbox.url}/api/customer/{'a' * 32}")
    assert (
        missing.status_code == 404 and missing.json()["errors"][0]["code"] == "FRAMEWORK__RESOURCE_NOT_FOUND"
    )


def test_delete_removes_the_customer_and_its_addresses(sandbox):
    s = admin_session(sandbox)
    p = customer_payload(sandbox, 1)
    assert s.post(f"{sandbox.url}/api/customer", json=p).status_code == 204
    assert s.delete(f"{sandbox.url}/api/customer/{p['id']}").status_code == 204
    assert sandbox.customers() == []
    assert s.delete(f"{sandbox.url}/api/customer/{p['id']}").status_code == 404


def test_metadata_is_read_only(sandbox):
    s = admin_session(sandbox)
    resp = s.post(f"{sandbox.url}/api/country", json={"iso": "XX"})
    assert resp.status_code == 403


def test_a_storefront_customer_can_log_in_and_has_a_shop_number(sandbox):
    c = sandbox.create_customer_as_shop_user("erika@example.com", "selbst-gewaehlt")
    assert c["customerNumber"] == "10001" and c["boundSalesChannelId"] is None
    assert store_login(sandbox, "erika@example.com", "selbst-gewaehlt")
    assert sandbox.flow_mails == []
    # the reserved number range continues after it
    s = admin_session(sandbox)
    reserved = s.get(f"{sandbox.url}/api/_action/number-range/reserve/customer/{sandbox.sales_channel_id}")
    assert reserved.json() == {"number": "10002"}


def test_login_bumps_last_login_and_updated_at(sandbox):
    c = sandbox.create_customer_as_shop_user("erika@example.com", "selbst-gewaehlt")
    assert c["updatedAt"] is None
    assert store_login(sandbox, "erika@example.com", "selbst-gewaehlt")
    after = sandbox.customer(c["id"])
    assert after["lastLogin"] is not None and after["updatedAt"] == after["lastLogin"]


def test_store_api_needs_the_sales_channel_access_key(sandbox):
    resp = requests.post(
        f"{sandbox.url}/store-api/account/login",
        json={"username": "x@example.com", "password": "whatever1"},
        headers={"sw-access-key": "SWSCWRONG"},
        timeout=10,
    )
    assert resp.status_code == 412
    assert resp.json()["errors"][0]["code"] == "FRAMEWORK__ROUTING_SALES_CHANNEL_NOT_FOUND"


def test_duplicate_emails_shadow_the_later_account_at_login(sandbox):
    s = admin_session(sandbox)
    first = customer_payload(sandbox, 1, email="dup@example.com", password="erstes-pw")
    second = customer_payload(sandbox, 2, email="dup@example.com", password="zweites-pw")
    for p in (first, second):
        assert s.post(f"{sandbox.url}/api/customer", json=p).status_code == 204
        time.sleep(0.002)
    assert store_login(sandbox, "dup@example.com", "erstes-pw")
    assert not store_login(sandbox, "dup@example.com", "zweites-pw")


def _store(sb, path, body):
    return requests.post(
        f"{sb.url}/store-api/account/{path}", json=body, headers={"sw-access-key": sb.access_key}, timeout=10
    )


def test_password_recovery_sets_a_new_password(sandbox):
    c = sandbox.create_customer_as_shop_user("erika@example.com", "altes-passwort")
    bad_url = _store(
        sandbox, "recovery-password", {"email": c["email"], "storefrontUrl": "https://evil.test"}
    )
    assert bad_url.status_code == 400
    ok = _store(sandbox, "recovery-password", {"email": c["email"], "storefrontUrl": sandbox.storefront_url})
    assert ok.status_code == 200 and ok.json()["success"] is True
    [mail] = sandbox.recovery_mails
    assert mail.reset_url == f"{sandbox.url}/account/recover/password?hash={mail.hash}"
    assert sandbox.recovery_hashes == {mail.hash: c["id"]}
    mismatch = _store(
        sandbox,
        "recovery-password-confirm",
        {"hash": mail.hash, "newPassword": "neues-passwort", "newPasswordConfirm": "anderes-passwort"},
    )
    assert mismatch.status_code == 400
    done = _store(
        sandbox,
        "recovery-password-confirm",
        {"hash": mail.hash, "newPassword": "neues-passwort", "newPasswordConfirm": "neues-passwort"},
    )
    assert done.status_code == 200
    assert store_login(sandbox, c["email"], "neues-passwort")
    assert not store_login(sandbox, c["email"], "altes-passwort")
    assert sandbox.recovery_hashes == {}  # a hash works once
    reused = _store(
        sandbox,
        "recovery-password-confirm",
        {"hash": mail.hash, "newPassword": "drittes-passwort", "newPasswordConfirm": "drittes-passwort"},
    )
    # ResetPasswordRoute::checkHash: a used (deleted) hash is "expired", like an old one
    assert reused.status_code == 410
    assert reused.json()["errors"][0]["code"] == "CHECKOUT__CUSTOMER_RECOVERY_HASH_EXPIRED"


def test_recovery_hash_expires_after_two_hours_and_validation_comes_first(sandbox):
    c = sandbox.create_customer_as_shop_user("erika@example.com", "altes-passwort")
    _store(sandbox, "recovery-password", {"email": c["email"], "storefrontUrl": sandbox.storefront_url})
    _store(sandbox, "recovery-password", {"email": c["email"], "storefrontUrl": sandbox.storefront_url})
    first, second = sandbox.recovery_mails
    assert sandbox.recovery_hashes == {second.hash: c["id"]}  # one open recovery per customer
    assert len(second.hash) == 32 and second.hash.isalnum()
    short = _store(sandbox, "recovery-password-confirm",
                   {"hash": "unknown", "newPassword": "kurz", "newPasswordConfirm": "kurz"})
    assert short.status_code == 400  # the password is validated before the hash is looked at
    assert short.json()["errors"][0]["source"]["pointer"] == "/newPassword"
    new = {"newPassword": "neues-passwort", "newPasswordConfirm": "neues-passwort"}
    old = _store(sandbox, "recovery-password-confirm", {"hash": first.hash, **new})
    assert old.status_code == 410  # replaced by the second request
    sandbox.age_recovery(second.hash, 2 * 3600 - 60)
    sandbox.age_recovery(second.hash, 120)  # now 2 h + 1 min old
    late = _store(sandbox, "recovery-password-confirm", {"hash": second.hash, **new})
    assert late.status_code == 410
    assert late.json()["errors"][0]["code"] == "CHECKOUT__CUSTOMER_RECOVERY_HASH_EXPIRED"
    assert store_login(sandbox, c["email"], "altes-passwort")


def test_recovery_rows_through_the_admin_api_follow_the_unique_key(sandbox):
    c = sandbox.create_customer_as_shop_user("erika@example.com", "altes-passwort")
    s = admin_session(sandbox)
    row = {"id": "a" * 32, "customerId": c["id"], "hash": "H" * 32}
    assert s.post(f"{sandbox.url}/api/customer-recovery", json=row).status_code == 204
    twice = s.post(f"{sandbox.url}/api/customer-recovery", json={**row, "id": "b" * 32})
    assert twice.status_code == 500 and "uniq.customer_recovery.customer_id" in twice.text
    done = _store(sandbox, "recovery-password-confirm",
                  {"hash": "H" * 32, "newPassword": "neues-passwort", "newPasswordConfirm": "neues-passwort"})
    assert done.status_code == 200 and done.json()["success"] is True
    assert store_login(sandbox, c["email"], "neues-passwort")
    assert s.post(f"{sandbox.url}/api/customer-recovery", json=row).status_code == 204
    assert s.delete(f"{sandbox.url}/api/customer/{c['id']}").status_code == 204
    assert sandbox.recovery_hashes == {}  # the customer's delete cascades


def test_recovery_needs_exactly_one_active_match(sandbox):
    sandbox.create_customer_as_shop_user("inaktiv@example.com", "passwort12", active=False)
    resp = _store(
        sandbox, "recovery-password", {"email": "inaktiv@example.com", "storefrontUrl": sandbox.url}
    )
    assert resp.status_code == 401
    assert sandbox.recovery_mails == []


def test_admin_email_check(sandbox):
    c = sandbox.create_customer_as_shop_user("erika@example.com", "passwort12")
    s = admin_session(sandbox)
    url = f"{sandbox.url}/api/_admin/check-customer-email-valid"
    assert s.post(url, json={"email": "neu@example.com"}).json() == {"isValid": True}
    taken = s.post(url, json={"email": "ERIKA@example.com"})
    assert (
        taken.status_code == 400
        and taken.json()["errors"][0]["code"] == "79d30fe0-febf-421e-ac9b-1bfd5c9007f7"
    )
    assert s.post(url, json={"email": "erika@example.com", "id": c["id"]}).status_code == 200


def test_concurrent_syncs_neither_lose_nor_duplicate(sandbox):
    def push(start):
        s = admin_session(sandbox)
        batch = [customer_payload(sandbox, n) for n in range(start, start + 50)]
        return s.post(
            f"{sandbox.url}/api/_action/sync",
            json={"w": {"entity": "customer", "action": "upsert", "payload": batch}},
        ).status_code

    with ThreadPoolExecutor(8) as pool:
        # overlapping ranges: the same ids arrive from several threads at once
        codes = list(pool.map(push, [0, 25, 50, 75, 100, 125, 150, 175]))
    assert codes == [200] * 8
    customers = sandbox.customers()
    assert len(customers) == 225 == len({c["customerNumber"] for c in customers})
    assert len(sandbox._store.tables["customer_address"]) == 225


def test_module_entry_point_serves_until_sigterm():
    proc = subprocess.Popen(
        [sys.executable, "-m", "syncd.connectors.shopware6.sandbox", "--port", "0", "--version", "6.5.8.0"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
    )
    try:
        first = proc.stdout.readline()
        assert first.startswith("Shopware 6.5.8.0 sandbox on http://127.0.0.1:")
        url = first.rsplit(" ", 1)[1].strip()
        client_id = proc.stdout.readline().split("=", 1)[1].strip()
        secret = proc.stdout.readline().split("=", 1)[1].strip()
        token = requests.post(
            f"{url}/api/oauth/token",
            json={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
            timeout=10,
        )
        assert token.status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        proc.stdout.close()


def test_module_entry_point_refuses_a_bad_version():
    proc = subprocess.run(
        [sys.executable, "-m", "syncd.connectors.shopware6.sandbox", "--version", "5.7"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
    )
    assert proc.returncode == 2 and "5.7" in proc.stderr


def test_recovery_through_the_admin_proxy_needs_no_access_key(sandbox):
    c = sandbox.create_customer_as_shop_user("erika@example.com", "altes-passwort")
    s = admin_session(sandbox)
    resp = s.post(
        f"{sandbox.url}/api/_proxy/store-api/{sandbox.sales_channel_id}/account/recovery-password",
        json={"email": c["email"], "storefrontUrl": sandbox.storefront_url},
    )
    assert resp.status_code == 200
    assert [m.customer_id for m in sandbox.recovery_mails] == [c["id"]]
    anonymous = requests.post(
        f"{sandbox.url}/api/_proxy/store-api/{sandbox.sales_channel_id}/account/recovery-password",
        json={"email": c["email"], "storefrontUrl": sandbox.storefront_url},
        timeout=10,
    )
    assert anonymous.status_code == 401


def test_token_accepts_a_form_encoded_body(sandbox):
    resp = requests.post(
        f"{sandbox.url}/api/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": sandbox.client_id,
            "client_secret": sandbox.client_secret,
        },
        timeout=10,
    )
    assert resp.status_code == 200 and resp.json()["access_token"]


def test_get_list_takes_criteria_from_the_query(sandbox):
    s = admin_session(sandbox)
    for n in range(1, 4):
        assert s.post(f"{sandbox.url}/api/customer", json=customer_payload(sandbox, n)).status_code == 204
    body = s.get(f"{sandbox.url}/api/customer?limit=2&page=2&total-count-mode=1").json()
    assert body["total"] == 3 and len(body["data"]) == 1


def test_storefront_edits_are_validated_and_move_updated_at(sandbox):
    c = sandbox.create_customer_as_shop_user("erika@example.com", "passwort12")
    edited = sandbox.edit_customer_as_shop_user(c["id"], lastName="Neuname")
    assert edited["lastName"] == "Neuname" and edited["updatedAt"] is not None
    address = sandbox.edit_address_as_shop_user(c["defaultBillingAddressId"], city="Köln")
    assert address["city"] == "Köln" and address["updatedAt"] is not None
    with pytest.raises(ValueError, match="email"):
        sandbox.edit_customer_as_shop_user(c["id"], email="kaputt")
    with pytest.raises(KeyError):
        sandbox.edit_customer_as_shop_user("a" * 32, lastName="X")


def test_an_added_country_is_searchable(sandbox):
    country_id = sandbox.add_country("SE", "Schweden", "SWE")
    s = admin_session(sandbox)
    body = s.post(
        f"{sandbox.url}/api/search/country",
        json={"filter": [{"type": "equals", "field": "iso", "value": "SE"}]},
    ).json()
    assert [c["id"] for c in body["data"]] == [country_id]


def test_store_login_is_throttled_after_repeated_failures(sandbox):
    sandbox.create_customer_as_shop_user("erika@example.com", "richtiges-pw")
    codes = [
        _store(sandbox, "login", {"username": "erika@example.com", "password": "falsch123"}).status_code
        for _ in range(11)
    ]
    assert codes == [401] * 10 + [429]
    throttled = _store(sandbox, "login", {"username": "erika@example.com", "password": "richtiges-pw"})
    assert throttled.status_code == 429
    assert throttled.json()["errors"][0]["code"] == "CHECKOUT__CUSTOMER_AUTH_THROTTLED"
    assert store_login(sandbox, "other@example.com", "x") is False  # other keys are not affected
    assert _store(sandbox, "login", {"username": "other@example.com", "password": "x"}).status_code == 401


def test_a_restarted_sandbox_keeps_its_url_data_and_tokens(sandbox):
    s = admin_session(sandbox)
    p = customer_payload(sandbox, 1)
    assert s.post(f"{sandbox.url}/api/customer", json=p).status_code == 204
    url = sandbox.url
    sandbox.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/api/_info/version", timeout=2)
    sandbox.start()
    assert sandbox.url == url
    assert s.get(f"{url}/api/customer/{p['id']}").status_code == 200


def test_check_password_mirrors_the_store_login(sandbox):
    c = sandbox.create_customer_as_shop_user("erika@example.com", "passwort12")
    assert sandbox.check_password("erika@example.com", "passwort12")
    assert not sandbox.check_password("erika@example.com", "passwort13")
    sandbox.edit_customer_as_shop_user(c["id"], active=False)
    assert not sandbox.check_password("erika@example.com", "passwort12")
    assert not store_login(sandbox, "erika@example.com", "passwort12")


def test_benchmark_runs_end_to_end_on_a_small_shop(capsys):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "sandbox.py"
    spec = importlib.util.spec_from_file_location("sandbox_benchmark", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)

    assert bench.main(["--customers", "500"]) == 0
    out = capsys.readouterr().out
    assert "customers=500 batch=250 requests=2" in out
    assert "ratio sync/baseline" in out and "all 6 pages of 100" in out

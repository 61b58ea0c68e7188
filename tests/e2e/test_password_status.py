"""Issues 15/18, password status "own password" where the shop allows it to be exact: the Store API
change-password route of the sandbox, and the storefront's own "forgot password" seen by the
cycle (``recovery_watch``) so that a later login no longer hides it; initial and reset-by-staff
beside them, in `accounts list` and `accounts export --changed-by-customer`, never a password."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import requests

from syncd.flows import accounts
from syncd.state.cursors import Cursors
from syncd.state.db import open_state
from syncd.state.history import History
from tests.e2e.test_accounts_ops import _age_state, _export
from tests.support import wired_env as wired
from tests.support.flow_harness import STATE_STORES, Harness, harness_on
from tests.support.mailserver import smtp_server, smtp_server_factory, smtp_tls_files  # noqa: F401
from tests.support.shop_fixtures import admin_session, store_login
from tests.support.wired_env import Env, assert_nowhere, read_mail

env, sandbox = wired.env, wired.sandbox  # fixtures


def _store(shop, path: str, body: dict, token: str | None = None) -> requests.Response:
    headers = {"sw-access-key": shop.access_key, "Accept": "application/json"}
    if token:
        headers["sw-context-token"] = token
    return requests.post(f"{shop.url}/store-api{path}", json=body, headers=headers, timeout=10)


def _login(shop, email: str, password: str) -> str:
    resp = _store(shop, "/account/login", {"email": email, "password": password})
    assert resp.status_code == 200, resp.text
    return resp.json()["contextToken"]


def test_initial_staff_and_own_passwords_each_shown_exactly(env: Env, capsys):
    wired.erp_fixtures.insert_addresses(env.erp_url, wired.TABLE, [
        {"number": 10004, "first_name": "Dora", "last_name": "Dietz", "salutation": "Frau",
         "street": "Allee 4", "zip": "50667", "city": "Köln", "country": "DE", "email": "dora@example.com"}])
    code, _, err = env.cli(capsys, "sync", "--direction", "erp-to-shop")
    assert code == 0, err
    mailed = dict(read_mail(p) for p in env.outbox_files())
    _age_state(env)  # the mails went out a while ago
    code, _, err = env.cli(capsys, "accounts", "reset-password", "10002")
    assert code == 0, err
    rows = _export(env, capsys)
    assert {n: r["password_status"] for n, r in rows.items()} == {
        "10001": "initial", "10002": "reset by staff", "10004": "initial"}

    # 10001 changes the password on the account page (Store API change-password, logged in).
    token = _login(env.shop, "anna@example.com", mailed["anna@example.com"])
    bad = _store(env.shop, "/account/change-password", {
        "password": "wrong-one", "newPassword": "Annas-Neues-1", "newPasswordConfirm": "Annas-Neues-1"},
        token)
    assert bad.status_code == 400  # the current password is checked
    ok = _store(env.shop, "/account/change-password", {"password": mailed["anna@example.com"],
                                                       "newPassword": "Annas-Neues-1",
                                                       "newPasswordConfirm": "Annas-Neues-1"}, token)
    assert ok.status_code == 200, ok.text
    # Logged in again right after: Shopware keeps nothing that tells that password write apart
    # from the login's own write (README, password status limits), so 10001 is not counted below.
    assert store_login(env.shop, "anna@example.com", "Annas-Neues-1")

    # 10004 uses the storefront's "forgot password": the request is seen by the next cycle ...
    assert _store(env.shop, "/account/recovery-password", {"email": "dora@example.com",
                                                           "storefrontUrl": env.shop.storefront_url}).ok
    code, _, err = env.cli(capsys, "sync", "--direction", "erp-to-shop")
    assert code == 0, err
    # ... and 10002 asks for one too but never uses it: still the staff's password.
    assert _store(env.shop, "/account/recovery-password", {"email": "bernd@example.com",
                                                           "storefrontUrl": env.shop.storefront_url}).ok
    code, _, err = env.cli(capsys, "sync", "--direction", "erp-to-shop")
    assert code == 0, err
    mail = [m for m in env.shop.recovery_mails if m.email == "dora@example.com"][-1]
    confirm = _store(env.shop, "/account/recovery-password-confirm", {
        "hash": mail.hash, "newPassword": "Doras-Eigenes-1", "newPasswordConfirm": "Doras-Eigenes-1"})
    assert confirm.status_code == 200, confirm.text
    # A login afterwards bumps updatedAt to lastLogin: the recovery is still known to be used.
    assert store_login(env.shop, "dora@example.com", "Doras-Eigenes-1")

    rows = _export(env, capsys)
    assert rows["10004"]["password_status"] == "own password"
    assert rows["10002"]["password_status"] == "reset by staff"
    assert sorted(_export(env, capsys, "--changed-by-customer")) == ["10004"]
    code, out, err = env.cli(capsys, "accounts", "list", "--format", "json")
    assert code == 0, err
    listed = {str(r["address"]): r["password_status"] for r in json.loads(out)["accounts"]}
    assert listed["10004"] == "own password" and listed["10002"] == "reset by staff"

    with open_state(f"sqlite:///{env.state_db}") as store:
        events = History(store, clock=lambda: None).of_address(10004, "shop")
    seen = [e for e in events if e.event == "recovery_requested"]
    assert len(seen) == 1 and mail.hash not in (seen[0].reason or "")
    for secret in ("Doras-Eigenes-1", "Annas-Neues-1", mail.hash, *mailed.values()):
        assert_nowhere(secret, out, err, json.dumps(rows), files=[env.state_db])


def _age(e: Env, minutes: int = 10) -> None:
    """``_age_state`` plus the watch's bookmarks: everything so far happened ``minutes`` ago."""
    _age_state(e, minutes)
    with open_state(f"sqlite:///{e.state_db}") as store:
        cursors = Cursors(store)
        for name in ("shop-writes", "customer-recovery"):
            stored = cursors.get("shop", name)
            if stored and stored.get("at"):
                at = datetime.fromisoformat(stored["at"]) - timedelta(minutes=minutes)
                cursors.set("shop", name, {"at": at.isoformat()})


def test_change_password_on_the_account_page_is_an_own_password(env: Env, capsys):
    code, _, err = env.cli(capsys, "sync", "--direction", "erp-to-shop")
    assert code == 0, err
    mailed = dict(read_mail(p) for p in env.outbox_files())
    _age(env)
    token = _login(env.shop, "bernd@example.com", mailed["bernd@example.com"])
    _age(env)  # that login was a while ago too
    ok = _store(env.shop, "/account/change-password", {"password": mailed["bernd@example.com"],
                                                       "newPassword": "Bernds-Neues-1",
                                                       "newPasswordConfirm": "Bernds-Neues-1"}, token)
    assert ok.status_code == 200, ok.text
    rows = _export(env, capsys, "--changed-by-customer")
    assert sorted(rows) == ["10002"] and rows["10002"]["password_status"] == "own password"
    assert "Bernds-Neues-1" not in json.dumps(rows)


def test_a_password_change_seen_by_the_cycle_survives_the_next_login(env: Env, capsys):
    """The account page's write is kept as evidence by the next cycle (``password_writes``): a
    later login no longer hides it; a visible profile edit is told apart from it."""
    code, _, err = env.cli(capsys, "sync", "--direction", "erp-to-shop")
    assert code == 0, err
    mailed = dict(read_mail(p) for p in env.outbox_files())
    _age(env)
    token = _login(env.shop, "anna@example.com", mailed["anna@example.com"])
    _age(env)
    new = "Annas-Neues-2"
    assert _store(env.shop, "/account/change-password", {"password": mailed["anna@example.com"],
                                                         "newPassword": new, "newPasswordConfirm": new},
                  token).status_code == 200
    # 10002 edits the name on the profile page instead (a write the shop shows).
    bernd = next(c["id"] for c in env.shop.customers() if c["email"] == "bernd@example.com")
    assert admin_session(env.shop).patch(f"{env.shop.url}/api/customer/{bernd}",
                                         json={"lastName": "Bauer-Neu"}, timeout=10).status_code == 204
    code, _, err = env.cli(capsys, "sync", "--direction", "erp-to-shop")
    assert code == 0, err
    assert store_login(env.shop, "anna@example.com", new)  # the login that used to hide it
    rows = _export(env, capsys)
    assert rows["10001"]["password_status"] == "own password"
    assert rows["10002"]["password_status"] == "initial"  # the name change explains that write
    with open_state(f"sqlite:///{env.state_db}") as store:
        history = History(store, clock=lambda: None)
        assert [e.event for e in history.of_address(10001, "shop")].count("password_changed_in_shop") == 1
        assert "password_changed_in_shop" not in [e.event for e in history.of_address(10002, "shop")]
    assert_nowhere(new, json.dumps(rows), files=[env.state_db])


# ------------------------------------------------------------------ SQLite and PostgreSQL state
@pytest.fixture(params=STATE_STORES)
def harness(request, tmp_path: Path, sandbox, smtp_server) -> Iterator[Harness]:  # noqa: F811
    with harness_on(request.param, tmp_path, sandbox, smtp_server) as h:
        yield h


def test_a_used_recovery_is_an_own_password_on_either_state_store(harness: Harness) -> None:
    harness.insert([{"number": n, "email": f"kunde{n}@example.com", "first_name": "Jörg",
                     "last_name": f"Kühn-{n}", "street": "Weg 1", "zip": "01067", "city": "Dresden",
                     "country": "DE"} for n in (10001, 10002)])
    harness.run()
    shop = harness.sandbox
    for n in (10001, 10002):
        assert _store(shop, "/account/recovery-password", {"email": f"kunde{n}@example.com",
                                                           "storefrontUrl": shop.storefront_url}).ok
    report = harness.run()
    assert report.counts["recovery-requested"] == 2, report.items
    harness.run()  # read again within the overlap: recorded once
    mail = [m for m in shop.recovery_mails if m.email == "kunde10001@example.com"][-1]
    new = "Eigenes-Passwort-1"
    assert _store(shop, "/account/recovery-password-confirm",
                  {"hash": mail.hash, "newPassword": new, "newPasswordConfirm": new}).ok
    assert store_login(shop, "kunde10001@example.com", "Eigenes-Passwort-1")
    ctx = harness.context()
    rows = {r.address: r.password_status for r in accounts.list_accounts(
        harness.state, ["shop"], shops={"shop": ctx.shop})}
    assert rows == {10001: "own password", 10002: "initial"}
    events = History(harness.state, clock=lambda: None).of_address(10001, "shop")
    assert [e.event for e in events].count("recovery_requested") == 1

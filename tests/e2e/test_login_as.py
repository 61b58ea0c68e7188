"""`syncd accounts login-as ADDRESS` (issue 18): the printed one-time link, followed by a browser-
like client, ends in a storefront session of that customer in the Shopware sandbox (its Admin API
token route, its storefront route), works once, and neither the link nor the shop's token reaches
the logs, the state store or the history; shops without the mechanism are refused (exit 2)."""

from __future__ import annotations

import html
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from syncd.connectors.shopware6.sandbox.imitation import SESSION_COOKIE, TOKEN_LIFETIME
from syncd.connectors.woocommerce.sandbox import WooSandbox
from syncd.flows import login_as
from syncd.shell.login_link import OneTimeLink
from syncd.state.db import open_state
from syncd.state.history import History
from tests.support import wired_env as wired
from tests.support.flow_harness import STATE_STORES, Harness, harness_on
from tests.support.mailserver import smtp_server, smtp_server_factory, smtp_tls_files  # noqa: F401
from tests.support.wired_env import Env, assert_nowhere, subprocess_env

env, sandbox = wired.env, wired.sandbox  # fixtures

STAFF, STAFF_PW, STAFF_ENV = "kundendienst", "Adm1n-Pässwort!", "SYNCD_TEST_STAFF_PW"


def _configure(e: Env, monkeypatch: pytest.MonkeyPatch, *, user: str | None = STAFF) -> None:
    e.write_config()
    text = e.config.read_text()
    keys = (f'login_as_user = "{user}"\n' if user else "") + f'login_as_password = "env:{STAFF_ENV}"\n'
    e.config.write_text(text.replace('name = "shop"\n', 'name = "shop"\n' + keys, 1))
    monkeypatch.setenv(STAFF_ENV, STAFF_PW)


def _synced(e: Env, capsys, monkeypatch) -> str:
    _configure(e, monkeypatch)
    code, _, err = e.cli(capsys, "sync", "--direction", "erp-to-shop")
    assert code == 0, err
    return next(c["id"] for c in e.shop.customers() if c["email"] == "anna@example.com")


def _start(e: Env, *args: str) -> subprocess.Popen:
    environ = subprocess_env(e)
    environ[STAFF_ENV] = STAFF_PW
    return subprocess.Popen(
        [sys.executable, "-m", "syncd", "--config", str(e.config), "--log-format", "json", "--log-level",
         "debug", "accounts", "login-as", "10001", "--lang", "en", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environ, cwd=e.root)


def _link(proc: subprocess.Popen) -> tuple[list[str], str]:
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("http://127.0.0.1:"):
            return lines, line.strip()
    raise AssertionError(f"no link printed: {lines!r}; stderr: {proc.stderr.read()}")


def _form(page: str) -> tuple[str, dict[str, str]]:
    action = html.unescape(re.search(r'<form[^>]*action="([^"]+)"', page).group(1))
    fields = {html.unescape(k): html.unescape(v)
              for k, v in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page)}
    return action, fields


def test_the_link_opens_the_customers_storefront_session_once(env: Env, capsys, monkeypatch) -> None:
    shop_id = _synced(env, capsys, monkeypatch)
    staff_id = env.shop.add_admin_user(STAFF, STAFF_PW)
    proc = _start(env, "--wait", "2m")
    try:
        printed, link = _link(proc)
        assert "One-time link for ERP address 10001" in printed[0] and STAFF in printed[0]

        browser = requests.Session()
        page = browser.get(link, timeout=10)
        assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
        action, fields = _form(page.text)
        assert action == env.shop.storefront_url + "/account/login/imitate-customer"
        assert fields["customerId"] == shop_id and fields["userId"] == staff_id
        # The browser submits the form: the storefront logs it in as the customer.
        landed = browser.post(action, data=fields, timeout=10)
        assert landed.status_code == 200 and landed.url.endswith("/account")
        assert "anna@example.com" in landed.text
        session = env.shop.imitation.session_of(browser.cookies[SESSION_COOKIE])
        assert (session.customer_id, session.imitating_user_id) == (shop_id, staff_id)

        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Link used" in out
    # The second use of the link fails: it answered once and is gone.
    with pytest.raises(requests.ConnectionError):
        requests.get(link, timeout=5)

    token = fields["token"]
    nonce = link.rsplit("/", 1)[1]
    logs = err
    assert "login-as used" in logs  # the structured log saw the work ...
    for secret in (token, nonce):  # ... and never the token or the link
        assert_nowhere(secret, "".join(printed[:1]), out, logs,
                       files=[env.state_db, Path(f"{env.state_db}-wal")])
    with open_state(f"sqlite:///{env.state_db}") as store:
        events = History(store, clock=None).of_address(10001, "shop")
    mine = [ev for ev in events if ev.event == "staff_login_as"]
    assert len(mine) == 1 and STAFF in mine[0].reason and "http" not in mine[0].reason


def test_the_shops_token_is_bound_and_expires_as_documented(env: Env, capsys, monkeypatch) -> None:
    """Shopware's token is an HMAC over sales channel, customer and user that lives 3600 s; it is
    not consumed (the one-time property is syncd's link)."""
    shop_id = _synced(env, capsys, monkeypatch)
    env.shop.add_admin_user(STAFF, STAFF_PW)
    other = next(c["id"] for c in env.shop.customers() if c["email"] == "bernd@example.com")
    proc = _start(env, "--wait", "1m")
    try:
        _, link = _link(proc)
        action, fields = _form(requests.get(link, timeout=10).text)
        proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    store_api = env.shop.url + "/store-api/account/login/imitate-customer"
    headers = {"sw-access-key": env.shop.access_key}
    assert requests.post(store_api, json=fields, headers=headers, timeout=10).status_code == 200
    # Another customer or another user with the same token: refused.
    for forged in ({**fields, "customerId": other}, {**fields, "userId": "0" * 32}):
        resp = requests.post(store_api, json=forged, headers=headers, timeout=10)
        assert resp.status_code == 403, resp.text
    # An hour later it is expired, at the storefront too (back at the login page, logged out).
    env.shop.imitation.clock_skew = TOKEN_LIFETIME + 1
    assert requests.post(store_api, json=fields, headers=headers, timeout=10).status_code == 403
    late = requests.Session().post(action, data=fields, timeout=10)
    assert late.url.endswith("/account/login") and SESSION_COOKIE not in late.cookies
    assert shop_id


def test_an_unused_link_expires_and_records_nothing(env: Env, capsys, monkeypatch) -> None:
    _synced(env, capsys, monkeypatch)
    env.shop.add_admin_user(STAFF, STAFF_PW)
    proc = _start(env, "--wait", "1s", "--lang", "de")  # German this time (the last --lang wins)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1 and "ungenutzt abgelaufen" in err, err
    assert out.startswith("Einmal-Link für ERP-Adresse 10001")
    with open_state(f"sqlite:///{env.state_db}") as store:
        events = History(store, clock=None).of_address(10001, "shop")
    assert not [ev for ev in events if ev.event == "staff_login_as"]


@pytest.mark.parametrize("sandbox", ["6.6.4.0"], indirect=True)
def test_shopware_before_6_6_5_is_refused_with_the_reason(env: Env, capsys, monkeypatch) -> None:
    _synced(env, capsys, monkeypatch)
    env.shop.add_admin_user(STAFF, STAFF_PW)
    code, out, err = env.cli(capsys, "accounts", "login-as", "10001", "--wait", "5s")
    assert code == 2 and "6.6.5.0" in err and "http://127.0.0.1" not in out


def test_refusals_name_the_reason_and_exit_2(env: Env, capsys, monkeypatch) -> None:
    _synced(env, capsys, monkeypatch)
    _configure(env, monkeypatch, user=None)
    code, _, err = env.cli(capsys, "accounts", "login-as", "10001")
    assert code == 2 and "platforms[0].login_as_user" in err
    _configure(env, monkeypatch)
    env.shop.add_admin_user(STAFF, STAFF_PW)
    code, _, err = env.cli(capsys, "accounts", "login-as", "10003")  # invalid e-mail: never linked
    assert code == 2 and "10003" in err
    # An inactive account: the shop would refuse it, so syncd does up front.
    code, _, err = env.cli(capsys, "accounts", "deactivate", "10001")
    assert code == 0, err
    code, _, err = env.cli(capsys, "accounts", "login-as", "10001")
    assert code == 2 and "inactive" in err


def test_a_staff_user_without_the_permission_is_told_which_one(env: Env, capsys, monkeypatch) -> None:
    _synced(env, capsys, monkeypatch)
    env.shop.add_admin_user(STAFF, STAFF_PW, privileges=("customer:read",))
    code, out, err = env.cli(capsys, "accounts", "login-as", "10001", "--wait", "5s")
    assert code == 1 and "api_proxy_imitate-customer" in err and "http://127.0.0.1" not in out
    env.shop.add_admin_user(STAFF, "something else")
    code, _, err = env.cli(capsys, "accounts", "login-as", "10001", "--wait", "5s")
    assert code == 1 and "refused the login of staff user" in err and STAFF_PW not in err


def test_woocommerce_is_refused_with_the_reason(tmp_path: Path, capsys, monkeypatch) -> None:
    with WooSandbox() as woo:
        e = wired.make_env(tmp_path, woo, monkeypatch)
        _configure(e, monkeypatch)
        code, _, err = e.cli(capsys, "sync", "--direction", "erp-to-shop")
        assert code == 0, err
        code, out, err = e.cli(capsys, "accounts", "login-as", "10001")
    assert code == 2 and "WooCommerce has no 'log in as customer'" in err and "platforms[0].kind" in err
    assert "http://127.0.0.1" not in out


# ------------------------------------------------------------------ SQLite and PostgreSQL state
@pytest.fixture(params=STATE_STORES)
def harness(request, tmp_path: Path, sandbox, smtp_server) -> Iterator[Harness]:  # noqa: F811
    with harness_on(request.param, tmp_path, sandbox, smtp_server) as h:
        yield h


def test_the_history_records_the_use_on_either_state_store(harness: Harness) -> None:
    harness.insert([{"number": 10001, "email": "kunde@example.com", "first_name": "Jörg", "last_name": "Kühn",
                     "street": "Weg 1", "zip": "01067", "city": "Dresden", "country": "DE"}])
    harness.run()
    harness.sandbox.add_admin_user(STAFF, STAFF_PW)
    ctx = harness.context()
    ctx.platform = ctx.platform.model_copy(update={"login_as_user": STAFF})
    form, shop_id = login_as.start(ctx, 10001, STAFF_PW)
    assert "token" not in repr(form) or "<hidden>" in repr(form)
    with OneTimeLink(form) as link:
        page = requests.get(link.url, timeout=10)
        assert link.wait(5) and page.status_code == 200
        assert requests.get(link.url, timeout=10).status_code == 410  # used: gone, even before it closes
    login_as.record_use(ctx, 10001, shop_id, form.staff_user)
    events = History(harness.state, clock=None).of_address(10001, "shop")
    assert [e.event for e in events][-1] == "staff_login_as"
    with harness.state.connect() as conn:
        dump = " ".join(str(r) for r in conn.execute(sa.text("SELECT * FROM history")))
    assert form.fields["token"] not in dump and link.url not in dump

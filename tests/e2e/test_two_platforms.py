"""Two shops of different kinds (Shopware 6 and WooCommerce) in one configuration, each with its
own settings, password field and sender, served by one `syncd run` process and one ERP."""

from __future__ import annotations

import email
import email.policy
import json
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from syncd.connectors.woocommerce.sandbox import WooSandbox
from tests.support import wired_env as wired
from tests.support.shops import ShopwareKit, WooKit
from tests.support.wired_env import Env, assert_nowhere, subprocess_env

env, sandbox = wired.env, wired.sandbox  # fixtures: pytest finds them by these module-level names

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
WOO_SECRET_ENV = "SYNCD_WIRED_WOO_SECRET"  # noqa: S105 - a variable name
SW_SENDER, WOO_SENDER = "sw@example.com", "woo@example.com"


@pytest.fixture
def woo():
    with WooSandbox() as sb:
        yield sb


def two_platform_config(e: Env, woo: WooSandbox, woo_addresses: str = "deactivate_blocked = false") -> None:
    text = wired.config_text(e, poll="1s")
    text = text.replace('name = "shop"\n', f'name = "shop"\nsender = "Shopware-Shop <{SW_SENDER}>"\n', 1)
    text += f"""
[[platforms]]
name = "woo"
kind = "woocommerce"
url = "{woo.url}"
consumer_key = "{woo.consumer_key}"
consumer_secret = "env:{WOO_SECRET_ENV}"
sender = "Woo-Shop <{WOO_SENDER}>"

[platforms.addresses]
erp_to_shop = true
send_credentials = true
email_layout = "credentials_en"
password_field = "Sel6"
shop_to_erp = false
{woo_addresses}
"""
    e.config.write_text(text)


def _mails(e: Env) -> dict[str, dict[str, str]]:
    """sender -> recipient -> password, from the outbox (German and English layouts)."""
    import re

    out: dict[str, dict[str, str]] = {}
    for path in e.outbox_files():
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        text = message.get_body(preferencelist=("plain",)).get_content()
        found = re.search(r"(?:Passwort|Password):\s+(\S+)", text)
        assert found, text
        sender = email.utils.parseaddr(str(message["From"]))[1]
        to = email.utils.parseaddr(str(message["To"]))[1]
        assert to not in out.setdefault(sender, {}), f"two mails from {sender} to {to}"
        out[sender][to] = found.group(1)
    return out


def test_one_daemon_serves_a_shopware_and_a_woocommerce_shop_from_one_erp(env: Env, woo, monkeypatch, capsys):
    monkeypatch.setenv(WOO_SECRET_ENV, woo.consumer_secret)
    two_platform_config(env, woo)
    code, out, err = env.cli(capsys, "check")
    assert code == 0, out + err
    assert "shop:shop" in out and "shop:woo" in out

    log = env.root / "daemon.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "syncd", "--config", str(env.config), "--log-format", "json", "run"],
        stdout=subprocess.DEVNULL, stderr=log.open("wb"), env={**subprocess_env(env),
                                                               WOO_SECRET_ENV: woo.consumer_secret},
        cwd=env.root,
    )
    try:
        deadline = time.monotonic() + 40
        while len(env.outbox_files()) < 4 and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()[-3000:]
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    assert code == 0, log.read_text()[-3000:]

    mails = _mails(env)
    wanted = {"anna@example.com", "bernd@example.com"}  # 10003's e-mail is invalid
    assert set(mails) == {SW_SENDER, WOO_SENDER}
    assert set(mails[SW_SENDER]) == set(mails[WOO_SENDER]) == wanted
    sw, wc = ShopwareKit(env.shop), WooKit(woo)
    for to in wanted:
        assert sw.login(to, mails[SW_SENDER][to]) and wc.login(to, mails[WOO_SENDER][to])
        assert mails[SW_SENDER][to] != mails[WOO_SENDER][to]
        assert not wc.login(to, mails[SW_SENDER][to])  # each shop got its own password
    assert sorted(a.number for a in wc.accounts()) == ["10001", "10002"]
    assert sorted(a.number for a in sw.accounts()) == ["10001", "10002"]
    assert env.password_fields() == {10001: None, 10002: None, 10003: None}  # Sel5, Shopware's
    with sqlite3.connect(env.erp_db) as conn:  # and Sel6, WooCommerce's
        assert conn.execute('SELECT "Sel6" FROM "Adressen" WHERE "Sel6" IS NOT NULL').fetchall() == []
        shop_ids = dict(conn.execute(
            'SELECT "AdrNr", "ShopId" FROM "Adressen" WHERE "AdrNr" IN (10001, 10002)'))
    # One column holds one shop's id: the first platform's ([erp] shop_id_platform), never
    # overwritten by the second's in every cycle.
    assert shop_ids == {int(a.number): a.id for a in sw.accounts()}
    writes = [json.loads(line) for line in log.read_text().splitlines()
              if '"shop ids written to the ERP"' in line]
    assert writes and {w["platform"] for w in writes} == {"shop"}

    code, out, _ = env.cli(capsys, "status", "--json")
    status = json.loads(out)
    assert [p["name"] for p in status["platforms"]] == ["shop", "woo"]
    assert all(p["linked"] == 2 for p in status["platforms"])
    passwords = [pw for by_to in mails.values() for pw in by_to.values()]
    for pw in passwords:
        assert_nowhere(pw, log.read_text(), out, files=list(env.state_db.parent.glob("state.db*")))


def test_check_and_run_refuse_deactivation_for_woocommerce_naming_the_key(env: Env, woo, monkeypatch, capsys):
    monkeypatch.setenv(WOO_SECRET_ENV, woo.consumer_secret)
    two_platform_config(env, woo, "deactivate_blocked = true")
    rows = env.erp_rows()
    code, out, _ = env.cli(capsys, "check")
    assert code == 2
    [line] = [x for x in out.splitlines() if "unsupported: platforms[woo].addresses.deactivate_blocked" in x]
    assert "FAILED" in line and "active flag" in line
    code, out, err = env.cli(capsys, "run")
    assert code == 2
    assert "platforms[1].addresses.deactivate_blocked" in err and "active flag" in err
    assert env.erp_rows() == rows and woo.customers() == [] and env.shop.customers() == []
    assert env.outbox_files() == []


def test_accounts_on_a_woocommerce_platform(env: Env, woo, monkeypatch, capsys):
    """`syncd accounts` works on the WooCommerce platform beside the Shopware one: list, and
    deactivate is refused with the reason (no active flag) instead of pretending."""
    monkeypatch.setenv(WOO_SECRET_ENV, woo.consumer_secret)
    two_platform_config(env, woo)
    code, out, err = env.cli(capsys, "sync", "--direction", "erp-to-shop")
    assert code == 0, out + err
    code, out, err = env.cli(capsys, "accounts", "list", "--platform", "woo")
    assert code == 0 and "anna@example.com" in out and "bernd@example.com" in out, out + err
    code, out, err = env.cli(capsys, "accounts", "deactivate", "10001", "--platform", "woo")
    assert code != 0 and "active flag" in out + err
    assert WooKit(woo).login("anna@example.com", _mails(env)[WOO_SENDER]["anna@example.com"])

"""Issue 11, defect 8: work held back by a configuration fault fails the cycle.

A wrong SMTP password (a real aiosmtpd server refusing AUTH with 535) or a customer_group_map
target missing in the shop used to give `check` exit 2 but `sync` exit 0 while every mail or
account waited. Now `sync` exits 1 with one line naming the fault, `status --json` shows the
cycle as not ok with the reason, and after the fix the waiting work is done (nothing lost, I6)
and `sync` exits 0."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest

from tests.support import mailserver
from tests.support import wired_env as wired
from tests.support.wired_env import FIELD, TABLE, Env, assert_nowhere, make_env

# fixtures, found by these module-level names: ``env`` runs each case for each platform kind
env, shop = wired.kind_env, wired.shop
smtp_server_factory, smtp_tls_files = mailserver.smtp_server_factory, mailserver.smtp_tls_files

SMTP_ENV = "SYNCD_FAULT_SMTP"


def _last_cycle(e: Env, capsys) -> dict:
    code, out, err = e.cli(capsys, "status", "--json")
    assert code == 0, err
    return json.loads(out)["platforms"][0]


def _fault_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("syncd: shop erp-to-shop:")]


def test_a_refused_smtp_login_fails_the_sync_and_the_mails_go_out_after_the_fix(
        env: Env, capsys, captured_logs, smtp_server_factory, monkeypatch):
    server = smtp_server_factory("starttls", users={"versand": "Richtig-Passwort-3"})
    monkeypatch.setenv(SMTP_ENV, "Falsch-Passwort-7")
    env.write_config(mail=f"""transport = "smtp"
host = "127.0.0.1"
port = {server.port}
security = "starttls"
ca_file = "{server.ca_file}"
username = "versand"
password = "env:{SMTP_ENV}"
""")
    code, _out, _err = env.cli(capsys, "check")
    assert code == 2

    code, out, err = env.cli(capsys, "sync", "--direction", "erp-to-shop")
    assert code == 1, out + err
    lines = _fault_lines(err)
    assert len(lines) == 1, err
    assert "configuration fault" in lines[0] and "mail.password" in lines[0] and "535" in lines[0]
    assert "2 record(s) wait" in lines[0]
    assert "Falsch-Passwort-7" not in out + err + captured_logs.text
    assert len(env.shop.customers()) == 2, "the accounts are created; only their mails wait"
    assert server.accepted == 0
    assert all(v is None for v in env.password_fields().values()), "no password field written for nothing"
    shop = _last_cycle(env, capsys)
    assert shop["last_cycle"]["ok"] is False and "mail.password" in shop["last_cycle"]["error"]
    assert shop["pending"] == 2

    code, out, err = env.cli(capsys, "sync", "--direction", "erp-to-shop")  # still wrong: still 1
    assert code == 1 and len(_fault_lines(err)) == 1, err

    monkeypatch.setenv(SMTP_ENV, "Richtig-Passwort-3")  # the operator fixes the secret
    code, out, err = env.cli(capsys, "sync", "--direction", "erp-to-shop")
    assert code == 0, out + err
    messages = server.wait_for(2)
    assert sorted(str(m["To"]).split("<")[-1].rstrip(">") for m in messages) == [
        "anna@example.com", "bernd@example.com"]
    for message in messages:
        body = message.get_body(preferencelist=("plain",)).get_content()
        password = re.search(r"Passwort:\s+(\S+)", body).group(1)
        assert env.kit.login(str(message["To"]).split("<")[-1].rstrip(">"), password)
        assert_nowhere(password, out, err, captured_logs.text, files=[env.state_db])
    assert all(v is None for v in env.password_fields().values())
    shop = _last_cycle(env, capsys)
    assert shop["last_cycle"] == {**shop["last_cycle"], "ok": True, "error": None}
    assert shop["pending"] == 0


def test_a_refused_login_is_not_retried_in_place_and_a_4xx_one_is_transient():
    """The transport's classification, against the real server: 535 is a configuration fault
    that is not asked again at once; the bare TransientError stays for a server that is down."""
    from syncd.config.model import MailSettings
    from syncd.connectors.mail.smtp import SmtpTransport
    from syncd.core.errors import ConfigurationFault, TransientError

    with mailserver.MailServer(users={"versand": "richtig"}) as server:
        settings = MailSettings(transport="smtp", host="127.0.0.1", port=server.port, security="none",
                                username="versand", password="x", sender="Shop <shop@example.com>")
        transport = SmtpTransport(settings, password="falsch")
        with pytest.raises(ConfigurationFault) as refused:
            transport.connect()
        assert refused.value.key == "mail.password" and "535" in str(refused.value)
        seen = server.connections
        with pytest.raises(ConfigurationFault):
            transport.connect()
        assert server.connections == seen, "a refused login is not tried again at once"
    down = SmtpTransport(settings.model_copy(update={"port": mailserver.free_port()}), password="richtig")
    with pytest.raises(TransientError) as unreachable:
        down.connect()
    assert not isinstance(unreachable.value, ConfigurationFault)


def _with_group_map(e: Env, mapping: str) -> None:
    text = wired.config_text(e)
    line = f'sales_channel = "Storefront"\ncustomer_group_map = {{ {mapping} }}\n'
    e.config.write_text(text.replace('sales_channel = "Storefront"\n', line, 1))


ROWS = [
    {"number": 20007, "first_name": "Greta", "last_name": "Großhändler", "salutation": "Frau",
     "street": "Kai 7", "zip": "28195", "city": "Bremen", "country": "DE", "email": "greta@example.org",
     "customer_group": "GH"},
    {"number": 20011, "first_name": "Ole", "last_name": "Olsen", "salutation": "Herr", "street": "Deich 11",
     "zip": "25980", "city": "Sylt", "country": "DE", "email": "ole@example.org"},
]


@wired.shopware_only("customer_group_map is refused by check for WooCommerce: its customers have no "
                     "customer group (the WordPress role is read-only over the REST API)")
def test_a_customer_group_map_target_missing_in_the_shop_fails_the_sync_until_fixed(
        tmp_path: Path, shop, monkeypatch, capsys):
    e = make_env(tmp_path, shop.sandbox, monkeypatch, rows=ROWS)
    _with_group_map(e, 'GH = "Großhandel"')
    code, out, err = e.cli(capsys, "check")
    assert code == 2 and "Großhandel" in out

    code, out, err = e.cli(capsys, "sync", "--direction", "erp-to-shop")
    assert code == 1, out + err
    lines = _fault_lines(err)
    assert len(lines) == 1, err
    assert "mapping target missing" in lines[0] and "Großhandel" in lines[0]
    assert "1 record(s) wait" in lines[0]
    numbers = sorted(c["customerNumber"] for c in e.shop.customers())
    assert numbers == ["20011"], "the address with a known group is not held up"
    assert len(e.outbox_files()) == 1
    shop = _last_cycle(e, capsys)
    assert shop["last_cycle"]["ok"] is False and "Großhandel" in shop["last_cycle"]["error"]
    assert [f["address"] for f in shop["failed"]] == ["20007"]

    # Nothing about the address changes in the ERP: the change scan alone would never see it again.
    code, out, err = e.cli(capsys, "sync", "--direction", "erp-to-shop")
    assert code == 1 and len(_fault_lines(err)) == 1

    _with_group_map(e, 'GH = "Händler"')  # the operator maps to a group the shop has
    code, out, err = e.cli(capsys, "sync", "--direction", "erp-to-shop")
    assert code == 0, out + err
    assert sorted(c["customerNumber"] for c in e.shop.customers()) == ["20007", "20011"]
    greta = next(c for c in e.shop.customers() if c["customerNumber"] == "20007")
    from syncd.connectors.shopware6.sandbox.seed import sid
    assert greta["groupId"] == sid("customer_group", "Händler")
    assert len(e.outbox_files()) == 2, "the held-back account got its credentials mail"
    shop = _last_cycle(e, capsys)
    assert shop["last_cycle"]["ok"] is True and shop["failed"] == []
    with sqlite3.connect(e.erp_db) as conn:
        assert conn.execute(f'SELECT COUNT(*) FROM "{TABLE}" WHERE "{FIELD}" IS NOT NULL').fetchone() == (0,)


def test_the_daemons_cycle_result_and_health_mark_a_config_deferred_cycle_failed(tmp_path):
    from syncd.flows.context import CycleReport, PlatformContext
    from syncd.shell.metrics import Metrics
    from syncd.shell.scheduler import CycleOutcome, CycleRunner
    from syncd.state.db import open_state
    from tests.e2e.test_daemon import make_settings

    store = open_state(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        settings = make_settings(tmp_path)
        ctx = PlatformContext(settings=settings, platform=settings.platforms[0], erp=None, shop=None,
                              state=store)
        metrics = Metrics()
        metrics.set_jobs([("shop", "erp-to-shop", 60.0)])
        runner = CycleRunner(store, holder="me", lease_ttl=30, metrics=metrics)

        def held_back(c):
            report = CycleReport(c.platform.name, "erp-to-shop")
            report.add(1, "created")
            report.add(1, "deferred", "mail server: refused")
            report.config_fault("mail.password: SMTP authentication failed: 535")
            return report

        result = runner.run(ctx, "erp-to-shop", held_back)
        assert result.outcome is CycleOutcome.FAILED and result.report is not None
        assert "configuration fault" in result.error and "mail.password" in result.error
        healthy, body = metrics.health()
        assert not healthy and "mail.password" in body["jobs"]["shop/erp-to-shop"]["reason"]
        assert runner.run(ctx, "erp-to-shop", lambda c: CycleReport(c.platform.name, "erp-to-shop")).outcome \
            is CycleOutcome.OK
    finally:
        store.close()

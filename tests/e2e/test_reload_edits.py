"""The configuration edited while `syncd run` runs (a real process), then SIGHUP: the keys added by
the go-live, messaging, reminder, SMS and second-platform features take effect without a restart,
queued mails are neither lost nor sent twice; an invalid edit is refused naming file, key and
value, the daemon goes on with its old configuration, and `syncd status` shows the refusal."""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from syncd.connectors.shopware6.sandbox import Sandbox
from tests.support import wired_env as wired
from tests.support.dbs import state_store
from tests.support.restart_env import Syncd, address, mails_by_recipient, wait_for
from tests.support.wired_env import TABLE, Env

# fixtures, found by these module-level names: ``env`` runs each case for each platform kind
env, shop = wired.kind_env, wired.shop

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

SENDER = 'sender = "Testshop <shop@example.com>"\n'
ADDRESSES = "[platforms.addresses]\n"


def in_mail(line: str) -> Callable[[str], str]:
    return lambda text: text.replace(SENDER, SENDER + line + "\n", 1)


def in_addresses(line: str) -> Callable[[str], str]:
    return lambda text: text.replace(ADDRESSES, ADDRESSES + line + "\n", 1)


def appended(block: str) -> Callable[[str], str]:
    return lambda text: text + "\n" + block + "\n"


def reloads(p: Syncd, event: str) -> list[dict]:
    return [e for e in p.events() if e.get("event") == event]


def hup_and_wait(p: Syncd, event: str = "configuration reloaded") -> dict:
    """SIGHUP, then the daemon's answer (the newest ``event`` log line)."""
    before = len(reloads(p, event))
    p.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: len(reloads(p, event)) > before, event, 60, every=0.05, alive=p)
    return reloads(p, event)[-1]


def status(e: Env, capsys) -> dict:
    code, out, err = e.cli(capsys, "status", "--json")
    assert code == 0, err
    return json.loads(out)


def start(e: Env) -> Syncd:
    p = Syncd(e, e.root / "daemon.log")
    wait_for(lambda: any(ev.get("event") == "daemon started" for ev in p.events()), "the start", 60,
             every=0.05, alive=p)
    return p


# (what, the edit, the key path the error must name, the value it must show)
BAD_EDITS = [
    ("mail rate", in_mail("max_per_minute = -3"), "mail.max_per_minute", "-3"),
    ("canary", in_addresses('canary = "many"'), "platforms[0].addresses.canary", "many"),
    ("go-live date", in_addresses('send_credentials_since = "gestern"'),
     "platforms[0].addresses.send_credentials_since", "gestern"),
    ("notification event", appended('[[notifications]]\ngroup = "*"\nevent = "exploded"'),
     "notifications[0].event", "exploded"),
    ("reminder kind", appended('[[reminders]]\nname = "r"\nkind = "weekly"\nlayout = "x"'),
     "reminders[0].kind", "weekly"),
    ("sms provider", appended('[sms]\nenabled = true\nprovider = "pigeon"'), "sms.provider", "pigeon"),
    ("second platform with the first one's name",
     appended('[[platforms]]\nname = "shop"\nurl = "http://127.0.0.1:9"\nclient_id = "x"\n'
              'client_secret = "env:NOPE"'), "platforms", "shop"),
    ("shop changes", in_addresses('shop_changes = "sometimes"'), "platforms[0].addresses.shop_changes",
     "sometimes"),
]


def test_an_invalid_edit_is_refused_with_file_key_and_value_and_the_old_config_keeps_running(
        env: Env, capsys):
    env.write_config(poll="1s")
    good = env.config.read_text()
    p = start(env)
    try:
        wait_for(lambda: len(env.outbox_files()) == 2, "the first two mails", 60, alive=p)
        for number, (what, edit, key, value) in enumerate(BAD_EDITS):
            env.config.write_text(edit(good))
            refused = hup_and_wait(p, "reload refused; the running configuration stays")
            error = refused["error"]
            assert str(env.config) in error and key in error and value in error, (what, error)
            assert p.proc.poll() is None, what
            # status with the refused file: exit 2 with the file's error, after what the running
            # daemon made of it
            code, out, err = env.cli(capsys, "status", "--json")
            shown = json.loads(out)["reload"]
            assert code == 2 and key in err, (what, err)
            assert shown["ok"] is False and shown["error"] == error, what
            code, out, _ = env.cli(capsys, "status")
            assert code == 2 and "Reload refused" in out and key in out.replace("\n", ""), (what, out)
            # ... and the full status once the file loads again (an edit the daemon has not seen)
            env.config.write_text(good)
            assert status(env, capsys)["reload"]["error"] == error
            # the old configuration still works: a new address is pushed and mailed
            wired.erp_fixtures.insert_addresses(env.erp_url, TABLE, [address(40000 + number)])
            wait_for(lambda: len(env.outbox_files()) == 3 + number, f"a mail after the refused {what}", 60,
                     alive=p)
        env.config.write_text(good)
        ok = hup_and_wait(p)
        assert ok["changed"] == []
        assert status(env, capsys)["reload"]["ok"] is True
        code, out, _ = env.cli(capsys, "status")
        assert "Reload refused" not in out
    finally:
        code = p.stop()
    assert code == 0
    mails = mails_by_recipient(env)
    assert all(len(pw) == 1 for pw in mails.values()), mails


def _mail_to(e: Env, recipient: str) -> list[Path]:
    import email
    import email.policy
    import email.utils

    out = []
    for path in e.outbox_files():
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if email.utils.parseaddr(str(message["To"]))[1] == recipient:
            out.append(path)
    return out


def _cycles(p: Syncd, platform: str) -> int:
    return sum(1 for ev in p.events()
               if ev.get("event") == "cycle finished" and ev.get("platform") == platform)


def test_an_edit_asking_woocommerce_for_what_it_cannot_do_is_refused_at_reload(env: Env, capsys):
    """I7 at SIGHUP too: what ``check`` refuses for the kind is no running configuration."""
    if env.kit.kind != "woocommerce":
        pytest.skip("Shopware carries out link mode")
    env.write_config(poll="1s")
    good = env.config.read_text()
    p = start(env)
    try:
        wait_for(lambda: len(env.outbox_files()) == 2, "the first two mails", 60, alive=p)
        # with a layout that carries the link: only the kind refuses it
        env.config.write_text(good.replace('email_layout = "credentials"',
                                           'email_layout = "set_password_link"\ncredential_mode = "link"'))
        refused = hup_and_wait(p, "reload refused; the running configuration stays")
        assert "credential_mode" in refused["error"] and "WooCommerce" in refused["error"], refused
        assert p.proc.poll() is None
    finally:
        code = p.stop()
    assert code == 0, p.log.read_text()[-3000:]

@wired.shopware_only("its step 3 mails the blocked event of a deactivation, and deactivate_blocked is "
                     "refused by check for WooCommerce (no active flag)")
def test_new_values_take_effect_at_sighup_without_losing_or_repeating_a_queued_mail(env: Env, capsys,
                                                                                   monkeypatch):
    """One daemon, one edit after another: the rate limit raised (the queue drains), a canary
    added and removed, an event mail table, reminders and SMS, shop_changes, a second platform
    added and removed, and go-live's send_credentials_since."""
    env.write_config(poll="1s", mail="max_per_minute = 1")
    base = env.config.read_text()
    wired.erp_fixtures.insert_addresses(env.erp_url, TABLE, [address(n) for n in (40100, 40101)])
    valid = ["anna@example.com", "bernd@example.com", address(40100)["email"], address(40101)["email"]]
    second = Sandbox()
    second.start()
    monkeypatch.setenv("SYNCD_RELOAD_SECOND", second.client_secret)  # the child's, for step 5
    p = start(env)
    try:
        # 1. [mail] max_per_minute = 1: one mail, the rest queued (pending), none lost.
        wait_for(lambda: len(env.outbox_files()) == 1, "the first mail", 60, alive=p)
        wait_for(lambda: _cycles(p, "shop") >= 6, "three more cycles", 60, alive=p)
        assert len(env.outbox_files()) == 1, "the limit of one mail a minute"
        assert status(env, capsys)["platforms"][0]["pending"] == 3
        text = base.replace("max_per_minute = 1", "max_per_minute = 1000")
        env.config.write_text(text)
        assert hup_and_wait(p)["changed"] == ["mail.max_per_minute"]
        wait_for(lambda: len(env.outbox_files()) == 4, "the queued mails", 60, alive=p)
        assert sorted(mails_by_recipient(env)) == sorted(valid)

        # 2. platforms[].addresses.canary = 1: the first mail of the new configuration goes, the
        # next waits; removing the canary lets it go.
        env.config.write_text(in_addresses("canary = 1")(text))
        assert hup_and_wait(p)["changed"] == ["platforms[shop].addresses.canary"]
        wired.erp_fixtures.insert_addresses(env.erp_url, TABLE, [address(n) for n in (40102, 40103)])
        wait_for(lambda: len(env.outbox_files()) == 5, "the canary mail", 60, alive=p)
        wait_for(lambda: status(env, capsys)["platforms"][0]["canary"]["holding"], "the canary holding", 30,
                 alive=p)
        cycles = _cycles(p, "shop")
        wait_for(lambda: _cycles(p, "shop") >= cycles + 4, "two more cycles", 60, alive=p)
        assert len(env.outbox_files()) == 5 and status(env, capsys)["platforms"][0]["pending"] == 1
        env.config.write_text(text)
        assert hup_and_wait(p)["changed"] == ["platforms[shop].addresses.canary"]
        wait_for(lambda: len(env.outbox_files()) == 6, "the mail the canary held", 60, alive=p)

        # 3. [[notifications]] added: blocking an address now mails the office.
        text = appended('[[notifications]]\ngroup = "*"\nevent = "blocked"\n'
                        'internal_to = ["innendienst@example.com"]\nto_customer = false')(text)
        env.config.write_text(text)
        assert hup_and_wait(p)["changed"] == ["notifications"]
        wired.erp_fixtures.update_address(env.erp_url, TABLE, 10001, {"blocked": True})
        wait_for(lambda: _mail_to(env, "innendienst@example.com"), "the event mail", 60, alive=p)

        # 4. [[reminders]], [sms] and shop_changes: taken (the keys named), the daemon goes on.
        text = in_addresses('shop_changes = "report"')(text)
        text = appended('[sms]\nenabled = true\nprovider = "http"\nurl = "http://127.0.0.1:9/sms"\n'
                        'body_template = \'{"to": {{ to|tojson }}, "text": {{ text|tojson }}}\'\n\n'
                        '[[reminders]]\nname = "versand"\nkind = "shipping_confirmation"\n'
                        'layout = "shipping_confirmation"\nchannel = "email"')(text)
        env.config.write_text(text)
        changed = hup_and_wait(p)["changed"]
        assert {"reminders", "platforms[shop].addresses.shop_changes", "sms.enabled", "sms.provider",
                "sms.url", "sms.body_template"} <= set(changed), changed

        # 5. A second platform added: its cycles run and push; removed: they stop.
        env.config.write_text(text + f"""
[[platforms]]
name = "zweit"
url = "{second.url}"
client_id = "{second.client_id}"
client_secret = "env:SYNCD_RELOAD_SECOND"
sales_channel = "Storefront"

[platforms.addresses]
send_credentials = false
shop_to_erp = false
""")
        assert hup_and_wait(p)["changed"] == ["platforms[zweit]"]
        wait_for(lambda: len(second.customers()) == 5, "the second shop's accounts", 60, alive=p)
        env.config.write_text(text)
        assert hup_and_wait(p)["changed"] == ["platforms[zweit]"]
        after = _cycles(p, "zweit")
        cycles = _cycles(p, "shop")
        wait_for(lambda: _cycles(p, "shop") >= cycles + 4, "cycles after the removal", 60, alive=p)
        assert _cycles(p, "zweit") <= after + 2, "a removed platform keeps cycling"  # 2: in flight at HUP

        # 6. send_credentials_since in the future: a new account is created without a mail (held).
        env.config.write_text(in_addresses('send_credentials_since = "2999-01-01"')(text))
        assert hup_and_wait(p)["changed"] == ["platforms[shop].addresses.send_credentials_since"]
        mails = len(env.outbox_files())
        wired.erp_fixtures.insert_addresses(env.erp_url, TABLE, [address(40104)])
        wait_for(lambda: status(env, capsys)["platforms"][0]["held"] == 1, "the held mail", 60, alive=p)
        assert len(env.outbox_files()) == mails
        assert str(40104) in {a.number for a in env.kit.accounts()}
    finally:
        code = p.stop()
        second.stop()
    assert code == 0, p.log.read_text()[-3000:]
    for path in _mail_to(env, "innendienst@example.com"):
        path.unlink()  # the event mail: no password in it
    got = mails_by_recipient(env)
    assert {to: len(pw) for to, pw in got.items() if len(pw) != 1} == {}, "a credentials mail sent twice"
    for to, (password,) in got.items():
        assert env.kit.login(to, password) is (to != "anna@example.com"), to  # 10001: blocked in step 3
    assert env.password_fields().get(40104) is None


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.realdb)])
def store(request, tmp_path):
    with state_store(request.param, tmp_path) as s:
        yield s


def test_the_reload_outcome_is_kept_in_either_store_and_a_start_forgets_it(store):
    from datetime import UTC, datetime

    from syncd.config.loader import parse_settings
    from syncd.shell import reloads
    from syncd.shell.status import collect_status

    text = ('[erp]\nurl = "sqlite:///erp.db"\n[[platforms]]\nname = "shop"\nurl = "https://s.example"\n'
            'client_id = "id"\nclient_secret = "env:X"\n')
    old = parse_settings(text)
    new = parse_settings(text.replace("[erp]", '[mail]\nmax_per_minute = 30\n[erp]') + (
        '[[platforms]]\nname = "woo"\nkind = "woocommerce"\nurl = "https://w.example"\n'
        'consumer_key = "ck"\nconsumer_secret = "env:Y"\n'
        '[platforms.addresses]\ndeactivate_blocked = false\n'))
    assert reloads.changed_keys(old, new) == ["mail.max_per_minute", "platforms[woo]"]
    assert reloads.changed_keys(new, old) == ["mail.max_per_minute", "platforms[woo]"]

    assert collect_status(store, old)["reload"] is None
    at = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    reloads.record(store, at=at, ok=False, error="config.toml: mail.max_per_minute: ... (got -3)")
    assert collect_status(store, old)["reload"] == {
        "at": "2026-03-01T08:00:00Z", "ok": False, "error": "config.toml: mail.max_per_minute: ... (got -3)",
        "changed": []}
    assert [p["name"] for p in collect_status(store, old)["platforms"]] == ["shop"]  # no platform ""
    reloads.forget(store)
    assert collect_status(store, old)["reload"] is None


def test_reloads_during_the_sends_lose_and_repeat_no_mail(env: Env, capsys):
    """SIGHUP after SIGHUP while a slow shop keeps credential jobs in flight: each reload swaps
    the contexts under the running cycle, which finishes with the ones it started with."""
    numbers = list(range(40200, 40224))
    wired.erp_fixtures.insert_addresses(env.erp_url, TABLE, [address(n) for n in numbers])
    env.write_config(poll="1s")
    env.shop.faults.latency = env.kit.kill_latency  # about 3 s of sends: several reloads fall among them
    p = start(env)
    reloaded = 0
    try:
        expected = 2 + len(numbers)
        while len(env.outbox_files()) < expected:
            hup_and_wait(p)
            reloaded += 1
            assert reloaded < 200, f"{len(env.outbox_files())} of {expected} mails after {reloaded} reloads"
        assert reloaded >= 3, "the reloads should fall among the sends"
    finally:
        code = p.stop()
    assert code == 0, p.log.read_text()[-3000:]
    got = mails_by_recipient(env)
    assert len(got) == expected and all(len(pw) == 1 for pw in got.values())
    for to, (password,) in got.items():
        assert env.kit.login(to, password), to
    assert not [v for v in env.password_fields().values() if v]

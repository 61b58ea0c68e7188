"""`syncd retry` and `syncd history` end to end: a SQLite ERP, the shop sandbox of each kind, a
real SMTP server on loopback (tests/support/mailserver.py), the state store in tmp_path."""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from syncd.config.loader import load_settings
from syncd.shell.daemon import Daemon
from syncd.state.db import open_state
from syncd.state.history import History
from tests.support import erp_fixtures, mailserver
from tests.support import wired_env as wired
from tests.support.wired_env import TABLE, Env, assert_nowhere

# fixtures, found by these module-level names: ``env`` runs each case for each platform kind
env, shop = wired.kind_env, wired.shop
smtp_server_factory, smtp_tls_files = mailserver.smtp_server_factory, mailserver.smtp_tls_files

NO_DEACTIVATION = "deactivation is refused by check for WooCommerce (customers have no active flag)"


@pytest.fixture
def smtp(env: Env, smtp_server_factory):
    server = smtp_server_factory()
    env.write_config(mail=_smtp_config(server))
    return server


def _smtp_config(server) -> str:
    return f'transport = "smtp"\nhost = "127.0.0.1"\nport = {server.port}\nsecurity = "none"\n'


def _password(message) -> str:
    return re.search(r"Passwort:\s+(\S+)", message.get_body(preferencelist=("plain",)).get_content()).group(1)


def _to(message) -> str:
    return str(message["To"]).split("<")[-1].rstrip(">")


def _failed(e: Env, capsys) -> list[dict]:
    code, out, err = e.cli(capsys, "status", "--json")
    assert code == 0, err
    return json.loads(out)["platforms"][0]["failed"]


def _history(e: Env, capsys, address: int) -> list[dict]:
    code, out, err = e.cli(capsys, "history", address, "--format", "json")
    assert code == 0, err
    data = json.loads(out)
    assert data["address"] == str(address)
    return data["events"]


def _history_rows(e: Env) -> list[tuple]:
    with sqlite3.connect(e.state_db) as conn:
        return conn.execute("SELECT * FROM history").fetchall()


# --- retry -----------------------------------------------------------------------------------------

def test_retry_pushes_a_row_corrected_without_its_stamp_and_mails_it(env: Env, capsys, smtp, captured_logs):
    code, _, err = env.cli(capsys, "sync", "--direction", "erp-to-shop")
    assert code == 0, err
    assert [f["address"] for f in _failed(env, capsys)] == ["10003"]
    # Corrected by a tool that does not touch the change stamp: the change scan cannot see it.
    erp_fixtures.update_address(env.erp_url, TABLE, 10003, {"email": "clara@example.com"}, touch=False)

    code, out, err = env.cli(capsys, "retry", "10003")

    assert code == 0, out + err
    assert re.search(r"shop 10003: ok: mailed", out), out
    [mail] = [m for m in smtp.wait_for(3) if _to(m) == "clara@example.com"]
    assert env.kit.login("clara@example.com", _password(mail))
    assert _failed(env, capsys) == []
    assert_nowhere(_password(mail), out, err, captured_logs.text,
                   files=[env.state_db, env.state_db.with_name("state.db-wal")])


def test_a_failed_row_corrected_without_its_stamp_is_pushed_by_the_next_cycle(env: Env, capsys, smtp):
    code, _, err = env.cli(capsys, "sync", "--direction", "erp-to-shop")
    assert code == 0, err
    erp_fixtures.update_address(env.erp_url, TABLE, 10003, {"email": "clara@example.com"}, touch=False)

    code, out, err = env.cli(capsys, "sync", "--direction", "erp-to-shop", "--dry-run")
    assert code == 0, err
    assert "would-create 1" in out and "would-mail 1" in out  # the dry run predicts it

    code, out, err = env.cli(capsys, "sync", "--direction", "erp-to-shop")

    assert code == 0, err
    assert "created 1" in out and "mailed 1" in out
    assert [_to(m) for m in smtp.wait_for(3)].count("clara@example.com") == 1
    assert _failed(env, capsys) == []
    # An unchanged failed row is not pushed again each cycle.
    erp_fixtures.update_address(env.erp_url, TABLE, 10002, {"email": "also-not-an-address"})
    env.cli(capsys, "sync", "--direction", "erp-to-shop")
    code, out, _ = env.cli(capsys, "sync", "--direction", "erp-to-shop")
    assert code == 0 and "10002" not in out


def test_retry_failed_resends_a_bounced_mail_and_exits_1_for_what_still_fails(env: Env, capsys, smtp):
    smtp.reject_recipient("bernd@example.com", 550)
    code, _, err = env.cli(capsys, "sync", "--direction", "erp-to-shop")
    assert code == 0, err
    assert {(f["address"], f["step"]) for f in _failed(env, capsys)} == {("10002", "credentials"),
                                                                         ("10003", "validate")}
    smtp.accept_recipient("bernd@example.com")

    code, out, err = env.cli(capsys, "retry", "--failed")

    assert code == 1  # 10003's e-mail is still invalid
    assert "shop 10003: FAILED" in err and "invalid e-mail address" in err
    assert "shop 10002: ok: mailed" in out
    [mail] = [m for m in smtp.messages if _to(m) == "bernd@example.com"]
    assert env.kit.login("bernd@example.com", _password(mail))
    assert [f["address"] for f in _failed(env, capsys)] == ["10003"]
    events = [e["event"] for e in _history(env, capsys, 10002)]
    assert events == ["created", "mail_failed", "pushed", "mail_sent"]  # the retry pushes, then mails
    # The shipped German layout was the first mail's: the successor keeps its purpose.
    code, out, _ = env.cli(capsys, "accounts", "export")
    assert ",initial" in [line for line in out.splitlines() if ",10002," in line][0]


def test_retry_of_an_unknown_address_or_without_a_target_exits_2_and_changes_nothing(env: Env, capsys, smtp):
    code, _, err = env.cli(capsys, "sync", "--direction", "erp-to-shop")
    assert code == 0, err
    before = env.state_digest()
    sent = smtp.accepted

    code, out, err = env.cli(capsys, "retry", "10001", "99999")
    assert code == 2 and "99999" in err and "no such ERP address" in err
    assert env.state_digest() == before and smtp.accepted == sent
    code, _, err = env.cli(capsys, "retry")
    assert code == 2 and "--failed" in err
    code, _, err = env.cli(capsys, "retry", "10001", "--failed")
    assert code == 2
    code, _, err = env.cli(capsys, "retry", "--failed", "--platform", "nope")
    assert code == 2 and "nope" in err
    assert env.state_digest() == before


def test_retry_sends_a_deferred_mail_now_and_history_shows_deferred_then_sent(env: Env, capsys, smtp):
    smtp.fail_next(100, 451)
    code, out, err = env.cli(capsys, "sync", "--direction", "erp-to-shop")
    assert code == 0, err
    assert "deferred 2" in out
    smtp.reset_faults()

    code, out, err = env.cli(capsys, "retry", "10001")
    assert code == 0, out + err
    [mail] = [m for m in smtp.wait_for(1) if _to(m) == "anna@example.com"]
    assert env.kit.login("anna@example.com", _password(mail))

    events = _history(env, capsys, 10001)
    assert [e["event"] for e in events] == ["created", "mail_deferred", "pushed", "mail_sent"]
    assert "451" in events[1]["reason"]
    assert "anna@example.com" in events[3]["reason"]
    assert all(e["at"].endswith("Z") and e["platform"] == "shop" for e in events)
    # 10002 was not named: its mail still waits for its backoff.
    assert [e["event"] for e in _history(env, capsys, 10002)] == ["created", "mail_deferred"]


# --- history ---------------------------------------------------------------------------------------

@wired.shopware_only(NO_DEACTIVATION + "; the history ends with a deactivation")
def test_history_of_an_address_through_create_and_mail(env: Env, capsys, smtp, monkeypatch):
    code, _, err = env.cli(capsys, "sync", "--direction", "erp-to-shop")
    assert code == 0, err

    events = _history(env, capsys, 10001)
    assert [e["event"] for e in events] == ["created", "mail_sent"]
    assert events[0]["shop_id"] and events[0]["shop_id"] == events[1]["shop_id"]
    assert events[0]["at"] <= events[1]["at"]
    rejected = _history(env, capsys, 10003)
    assert [e["event"] for e in rejected] == ["rejected"]
    assert "invalid e-mail address" in rejected[0]["reason"]

    # Blocked in the ERP, then deactivated by an operator: each says why.
    erp_fixtures.update_address(env.erp_url, TABLE, 10002, {"blocked": True})
    env.write_config(mail=_smtp_config(smtp), addresses="deactivate_blocked = true")
    code, _, err = env.cli(capsys, "sync", "--direction", "erp-to-shop")
    assert code == 0, err
    assert [e["event"] for e in _history(env, capsys, 10002)][-1] == "deactivated"

    monkeypatch.setenv("LC_ALL", "de_DE.UTF-8")
    code, out, err = env.cli(capsys, "history", "10001")
    assert code == 0, err
    assert "Ereignis" in out and "Konto angelegt" in out and "Mail gesendet" in out
    code, out, err = env.cli(capsys, "history", "10001", "--lang", "en")
    assert "Event" in out and "account created" in out and "mail sent" in out and "Ereignis" not in out
    code, out, _ = env.cli(capsys, "history", "424242", "--lang", "en")
    assert code == 0 and "no events" in out and "90 days" in out
    code, _, err = env.cli(capsys, "history", "abc")
    assert code == 2

    # No password, no mail body in the history table (nor anywhere in the state store).
    rows = _history_rows(env)
    assert rows
    text = "\n".join(" ".join(str(v) for v in row) for row in rows)
    for message in smtp.messages:
        password = _password(message)
        assert password not in text
        assert "Passwort" not in text
        assert_nowhere(password, files=[env.state_db, env.state_db.with_name("state.db-wal")])


def test_the_daemon_prunes_history_older_than_history_days(env: Env, capsys, smtp):
    code, _, err = env.cli(capsys, "sync", "--direction", "erp-to-shop")
    assert code == 0, err
    assert len(_history(env, capsys, 10001)) == 2
    now = datetime.now(UTC)
    store = open_state(f"sqlite:///{env.state_db.as_posix()}")
    try:
        # An event recorded 20 days later, by the clock the test controls.
        History(store, lambda: now + timedelta(days=20)).record("shop", 10001, "pushed", reason="later")
        env.write_config(mail=_smtp_config(smtp), daemon="history_days = 30")
        settings = load_settings(str(env.config)).settings
        assert settings.daemon.history_days == 30

        def housekeeping(at: datetime) -> None:
            daemon = Daemon(settings, build_context=lambda p: None, jobs={"erp-to-shop": lambda c: None},
                            store=store, pid_file=False, install_signals=False, clock=lambda: at)
            daemon.store = store
            daemon._housekeeping()

        housekeeping(now + timedelta(days=29))
        assert len(History(store, lambda: now).of_address(10001)) == 3  # none older than 30 days
        housekeeping(now + timedelta(days=31))
        assert [e.reason for e in History(store, lambda: now).of_address(10001)] == ["later"]
        housekeeping(now + timedelta(days=51))
        assert History(store, lambda: now).of_address(10001) == []
    finally:
        store.close()


def test_history_days_defaults_to_90_and_refuses_nonsense(env: Env, capsys):
    assert load_settings(str(env.config)).settings.daemon.history_days == 90
    env.write_config(daemon="history_days = 0")
    code, _, err = env.cli(capsys, "check")
    assert code == 2 and "history_days" in err


@wired.shopware_only(NO_DEACTIVATION + "; the history ends with an operator's deactivation")
def test_history_records_links_imports_and_an_operators_deactivation(env: Env, capsys, smtp):
    env.shop.create_customer_as_shop_user("anna@example.com", "Selbst-Gewaehlt-1", first_name="Anna",
                                          last_name="Adler")
    erika = env.shop.create_customer_as_shop_user("erika@example.com", "Geheim-123")
    text = env.config.read_text().replace("shop_to_erp = false", "shop_to_erp = true\n"
                                          "next_address_number = 10050\nonly_with_orders = false")
    env.config.write_text(text)

    code, _, err = env.cli(capsys, "sync", "--direction", "erp-to-shop")
    assert code == 0, err
    [linked] = _history(env, capsys, 10001)
    assert linked["event"] == "adopted" and "the customer made in the shop" in linked["reason"]
    code, _, err = env.cli(capsys, "sync", "--direction", "shop-to-erp")
    assert code == 0, err
    code, out, _ = env.cli(capsys, "accounts", "list", "--format", "json")
    [imported] = [a for a in json.loads(out)["accounts"] if a["shop_id"] == erika["id"]]
    event, *later = _history(env, capsys, imported["address"])
    assert event["event"] == "imported" and "erika@example.com" in event["reason"]
    # the import also makes the shop customer an ERP customer: the "validated" account event
    assert [e["event"] for e in later] in ([], ["validated"])
    assert event["shop_id"] == erika["id"]

    code, _, err = env.cli(capsys, "accounts", "deactivate", "10002")
    assert code == 0, err
    last = _history(env, capsys, 10002)[-1]
    assert last["event"] == "deactivated" and "operator" in last["reason"]


def test_the_same_refusal_again_is_not_a_new_event(env: Env, capsys, smtp):
    code, _, err = env.cli(capsys, "sync", "--direction", "erp-to-shop")
    assert code == 0, err
    for _ in range(2):  # a daily reconciliation re-checks every failed record
        code, out, err = env.cli(capsys, "sync", "--direction", "erp-to-shop", "--full")
        assert code == 0, out + err
    assert [e["event"] for e in _history(env, capsys, 10003)] == ["rejected"]
    # A different reason is.
    erp_fixtures.update_address(env.erp_url, TABLE, 10003, {"email": "still@@broken"})
    code, _, err = env.cli(capsys, "sync", "--direction", "erp-to-shop")
    assert code == 0, err
    events = _history(env, capsys, 10003)
    assert [e["event"] for e in events] == ["rejected", "rejected"] and "still@@broken" in events[1]["reason"]


def test_retry_failed_over_several_batches_through_shop_and_smtp_faults(tmp_path, shop, monkeypatch,  # noqa: F811
                                                                        capsys, smtp_server_factory):
    rows = [{"number": n, "first_name": "Kunde", "last_name": str(n), "street": "Weg 1", "zip": "10115",
             "city": "Berlin", "country": "DE", "email": f"kunde{n}@@kaputt"} for n in range(20001, 20008)]
    e = wired.make_env(tmp_path, shop.sandbox, monkeypatch, rows=rows)
    server = smtp_server_factory()
    e.write_config(mail=_smtp_config(server))
    e.config.write_text(e.config.read_text().replace('name = "shop"\n', 'name = "shop"\nbatch_size = 2\n', 1))
    code, _, err = e.cli(capsys, "sync", "--direction", "erp-to-shop")
    assert code == 0, err
    assert len(_failed(e, capsys)) == 7
    for n in range(20001, 20008):  # corrected without touching the stamp
        erp_fixtures.update_address(e.erp_url, TABLE, n, {"email": f"kunde{n}@example.com"}, touch=False)

    # The shop answers 503 a few times (within the retry budget) and the mail server defers one
    # recipient's mail (451, beyond the budget): that one waits, everything else is done.
    shop.sandbox.faults.fail_next(2, 503)
    server.reject_recipient("kunde20004@example.com", 451)
    code, out, err = e.cli(capsys, "retry", "--failed")

    assert code == 1, out + err
    assert "shop 20004: FAILED" in err and "451" in err
    for n in (20001, 20002, 20003, 20005, 20006, 20007):
        assert f"shop {n}: ok: mailed" in out
        [mail] = [m for m in server.messages if _to(m) == f"kunde{n}@example.com"]
        assert shop.login(f"kunde{n}@example.com", _password(mail))
    assert _failed(e, capsys) == []  # 20004's mail is deferred, not failed: `status` counts it pending
    assert [x["event"] for x in _history(e, capsys, 20004)][-1] == "mail_deferred"

    server.accept_recipient("kunde20004@example.com")
    code, out, err = e.cli(capsys, "retry", "20004")
    assert code == 0, out + err
    [mail] = [m for m in server.messages if _to(m) == "kunde20004@example.com"]
    assert shop.login("kunde20004@example.com", _password(mail))
    assert len(server.messages) == 7  # one mail each

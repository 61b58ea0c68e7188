"""The wired CLI verbs against real components: a SQLite ERP, the Shopware sandbox over HTTP,
the outbox transport, the state store in tmp_path. Each test runs `syncd` through ``run_cli``."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from tests.support import erp_fixtures, mailserver
from tests.support import wired_env as wired
from tests.support.wired_env import FIELD, TABLE, Env, assert_nowhere, make_env, read_mail

# fixtures, found by these module-level names: ``env`` runs each case for each platform kind
env, shop, sandbox = wired.kind_env, wired.shop, wired.sandbox
smtp_server_factory, smtp_tls_files = mailserver.smtp_server_factory, mailserver.smtp_tls_files


def _state_files(e: Env) -> list:
    return [e.state_db, e.state_db.with_name("state.db-wal")]


# --- sync ----------------------------------------------------------------------------------------

def test_dry_run_writes_nothing_anywhere(env: Env, capsys):
    # A first real sync makes the state store exist (and links two accounts); then a new
    # address and a changed one give the dry run something to report.
    assert env.cli(capsys, "sync")[0] == 0
    erp_fixtures.insert_addresses(env.erp_url, TABLE, [
        {"number": 10004, "first_name": "Dora", "last_name": "Dach", "email": "dora@example.com",
         "street": "Allee 4", "zip": "50667", "city": "Köln", "country": "DE"},
        {"number": 10005, "last_name": "Ernst", "email": "ernst@", "street": "Platz 5", "zip": "01067",
         "city": "Dresden", "country": "DE"},
    ])
    erp_fixtures.update_address(env.erp_url, TABLE, 10001, {"city": "Potsdam"})
    before = (env.erp_rows(), env.shop.customers(), env.outbox_files(), env.state_digest())

    code, out, err = env.cli(capsys, "sync", "--dry-run")

    assert code == 0, err
    assert "would-create 1" in out and "would-mail 1" in out and "would-update 1" in out
    assert "10005" in out and "invalid e-mail address" in out  # the failing record and its reason
    assert (env.erp_rows(), env.shop.customers(), env.outbox_files(), env.state_digest()) == before


def test_dry_run_without_a_state_store_does_not_create_it(env: Env, capsys):
    code, out, err = env.cli(capsys, "sync", "--dry-run", "--direction", "erp-to-shop")
    assert code == 0, err
    assert "would-create 2" in out
    assert not env.state_db.exists() and not env.state_db.parent.exists()
    assert env.shop.customers() == [] and env.outbox_files() == []


def test_sync_creates_accounts_mails_them_and_status_shows_the_cycle(env: Env, capsys, captured_logs):
    code, out, err = env.cli(capsys, "sync", "--direction", "erp-to-shop")

    assert code == 0, err  # a failed record is reported, not a failed run
    assert "created 2" in out and "mailed 2" in out
    assert "10003" in out and "invalid e-mail address" in out
    mails = env.outbox_files()
    assert len(mails) == 2
    for path in mails:
        to, password = read_mail(path)
        assert env.kit.login(to, password)
        assert_nowhere(password, out, err, captured_logs.text, files=_state_files(env))
    assert all(v is None for v in env.password_fields().values())  # I2 after the cycle

    code, out, err = env.cli(capsys, "status", "--json")
    assert code == 0, err
    status = json.loads(out)
    assert list(status) == ["platforms", "reload"]
    assert status["reload"] is None  # no daemon has reloaded
    (shop,) = status["platforms"]
    assert set(shop) == {"name", "last_cycle", "linked", "pending", "failed", "reconcile", "messages",
                         "approvals", "reminders", "shop_changes",
                         "held", "canary", "credential_channels", "bounces"}
    assert shop["credential_channels"] == {"email": 2, "sms": 0, "both": 0, "none": 0}
    assert shop["reconcile"] is None  # no reconciliation yet
    assert shop["name"] == "shop" and shop["linked"] == 2 and shop["pending"] == 0
    assert shop["last_cycle"]["ok"] is True and shop["last_cycle"]["finished"].endswith("Z")
    assert shop["failed"] == [{"address": "10003", "step": "validate",
                               "reason": "invalid e-mail address 'not-an-address'"}]

    code, out, _ = env.cli(capsys, "status")
    assert code == 0 and "shop" in out and "10003" in out and "invalid e-mail" in out


def test_sync_settles_a_stray_password_field_first(env: Env, capsys):
    # A value no job owns (e.g. left by a crash of another tool) is cleared before new work.
    erp_fixtures.update_address(env.erp_url, TABLE, 10002, {FIELD: "Leftover-123"}, touch=False)
    code, _, err = env.cli(capsys, "sync", "--direction", "shop-to-erp")
    assert code == 0, err
    assert env.password_fields()[10002] is None


def test_a_cycle_that_fails_exits_1_and_is_recorded(env: Env, capsys):
    env.shop.stop()  # the shop is gone: the cycle fails after its retries
    code, out, err = env.cli(capsys, "sync", "--direction", "erp-to-shop")
    assert code == 1
    assert "FAILED" in out and "erp-to-shop" in err
    code, out, _ = env.cli(capsys, "status", "--json")
    assert json.loads(out)["platforms"][0]["last_cycle"]["ok"] is False


# --- check ---------------------------------------------------------------------------------------

def test_check_passes_on_a_good_setup_and_creates_no_state_store(env: Env, capsys):
    code, out, err = env.cli(capsys, "check")
    assert code == 0, out + err
    for expected in ("platforms[0].addresses.password_field", "reads 'Sel5'", "authenticated", "outbox",
                     "platforms[shop].addresses.shop_to_erp"):
        assert expected in out, expected
    assert not env.state_db.parent.exists()


def _untouched(e: Env, rows_before) -> None:
    assert e.erp_rows() == rows_before
    assert e.shop.customers() == [] and e.outbox_files() == []
    assert not e.state_db.parent.exists()


@pytest.mark.parametrize(
    ("table", "needle"),
    [
        ({"password_type": None}, "Sel5"),  # no such column
        ({"password_type": "int"}, "Sel5"),  # not a text column
        ({"password_len": 6}, "Sel5"),  # too short for the password
    ],
    ids=["missing", "integer", "too-short"],
)
def test_check_refuses_a_bad_password_column(tmp_path, sandbox, monkeypatch, capsys, table, needle):
    e = make_env(tmp_path, sandbox, monkeypatch, **table)
    rows = e.erp_rows()
    code, out, err = e.cli(capsys, "check")
    assert code == 2
    line = next(x for x in out.splitlines() if "platforms[0].addresses.password_field" in x)
    assert "FAILED" in line and needle in line
    _untouched(e, rows)


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [('city = "Ort"', 'city = "Stadt"', "erp.columns.city"),
     ('address_table = "Adressen"', 'address_table = "Adresse"', "erp.address_table")],
    ids=["column", "table"],
)
def test_check_and_run_refuse_an_unknown_table_or_column(env: Env, capsys, old, new, key):
    env.config.write_text(env.config.read_text().replace(old, new))
    value = new.split('"')[1]
    rows = env.erp_rows()
    code, out, _ = env.cli(capsys, "check")
    assert code == 2
    failed = [x for x in out.splitlines() if "FAILED" in x]
    assert any(value in x for x in failed), out
    code, _, err = env.cli(capsys, "run")
    assert code == 2 and key in err and value in err and str(env.config) in err
    _untouched(env, rows)


def _credentials_layout_without_the_password(env: Env, folder: Path) -> None:
    """An operator's ``credentials`` layout that never reads the password column."""
    layouts = folder / "layouts" / "credentials"
    layouts.mkdir(parents=True)
    (layouts / "subject.txt.j2").write_text("Willkommen\n")
    (layouts / "body.txt.j2").write_text("Hallo {{ address.last_name }}, Ihr Konto ist bereit.\n")
    env.write_config(mail=f'layouts_dir = "{(folder / "layouts").as_posix()}"')


def test_check_refuses_a_layout_that_does_not_read_the_password_field(env: Env, capsys, tmp_path):
    _credentials_layout_without_the_password(env, tmp_path)
    rows = env.erp_rows()
    code, out, _ = env.cli(capsys, "check")
    assert code == 2
    line = next(x for x in out.splitlines() if "email_layout" in x and "FAILED" in x)
    assert "credentials" in line
    assert "Sel5" in out
    _untouched(env, rows)


@pytest.mark.parametrize("table", [{"password_type": None}, {"password_type": "int"}, {"password_len": 6}],
                         ids=["missing", "integer", "too-short"])
def test_run_refuses_a_bad_password_field_before_writing_anything(tmp_path, sandbox, monkeypatch, capsys,
                                                                   table):
    e = make_env(tmp_path, sandbox, monkeypatch, **table)
    rows = e.erp_rows()
    code, out, err = e.cli(capsys, "run")
    assert code == 2
    assert str(e.config) in err and "platforms[0].addresses.password_field" in err and "Sel5" in err
    _untouched(e, rows)
    assert not (tmp_path / "syncd.pid").exists()


def test_sync_refuses_a_layout_without_the_password_field(env: Env, capsys, tmp_path):
    _credentials_layout_without_the_password(env, tmp_path)
    rows = env.erp_rows()
    code, _, err = env.cli(capsys, "sync")
    assert code == 2 and "platforms[0].addresses.email_layout" in err
    _untouched(env, rows)


# --- layouts, clear-cache, service ---------------------------------------------------------------

def test_layouts_list_shows_shipped_and_operator_layouts(env: Env, capsys, tmp_path):
    own = tmp_path / "layouts" / "credentials"
    own.mkdir(parents=True)
    (own / "subject.txt.j2").write_text("Zugang\n")
    (own / "body.txt.j2").write_text("Passwort: {{ erp.Sel5 }}\n")
    env.write_config(mail=f'layouts_dir = "{(tmp_path / "layouts").as_posix()}"')
    code, out, _ = env.cli(capsys, "layouts", "list")
    assert code == 0
    lines = {x.split("│")[1].strip(): x for x in out.splitlines() if x.count("│") >= 3}
    assert "operator" in lines["credentials"] and str(own) in lines["credentials"]
    assert "shipped" in lines["credentials_en"]


def test_layouts_preview_renders_the_erp_row_with_a_placeholder(env: Env, capsys):
    before = (env.erp_rows(), env.outbox_files())
    code, out, err = env.cli(capsys, "layouts", "preview", "credentials_en", "--address", "10001")
    assert code == 0, err
    assert out.startswith("Subject: ") and "Adler" in out and "anna@example.com" in out
    assert "••••" in out
    code, html, _ = env.cli(capsys, "layouts", "preview", "credentials", "--address", "10002", "--html")
    assert code == 0 and "<" in html and "Bauer" in html
    assert (env.erp_rows(), env.outbox_files()) == before
    assert not env.state_db.parent.exists()


def test_layouts_preview_of_an_unknown_address_or_layout_exits_2(env: Env, capsys):
    code, _, err = env.cli(capsys, "layouts", "preview", "credentials", "--address", "99999")
    assert code == 2 and "99999" in err
    code, _, err = env.cli(capsys, "layouts", "preview", "nosuch", "--address", "10001")
    assert code == 2 and "nosuch" in err


def test_clear_cache_empties_the_tenant_cache(env: Env, capsys):
    assert env.cli(capsys, "sync", "--direction", "erp-to-shop")[0] == 0
    from syncd.state.db import open_state

    def entries() -> int:
        with open_state(f"sqlite:///{env.state_db}") as store, store.connect() as conn:
            return len(conn.exec_driver_sql("SELECT scope FROM cache").fetchall())

    cached = entries()
    assert cached > 0  # the connectors keep table and shop metadata there
    code, out, _ = env.cli(capsys, "clear-cache")
    assert code == 0 and f"{cached} entries removed" in out
    assert entries() == 0


def test_clear_cache_restart_without_a_running_daemon_exits_1(env: Env, capsys, monkeypatch):
    monkeypatch.setattr("syncd.shell.service_control.systemd_booted", lambda: False)
    code, out, err = env.cli(capsys, "clear-cache", "--restart")
    assert code == 1
    assert "entries removed" in out and "no running syncd found" in err


@pytest.mark.skipif(sys.platform == "win32", reason="Linux behaviour")
def test_service_points_to_systemd_on_linux(env: Env, capsys):
    code, _, err = env.cli(capsys, "service", "install")
    assert code == 2 and "systemd" in err


@pytest.mark.parametrize("send_credentials", [True, False])
def test_run_refuses_an_unknown_column_before_writing_anything(env: Env, capsys, send_credentials):
    text = env.config.read_text().replace('city = "Ort"', 'city = "Stadt"')
    if not send_credentials:
        text = text.replace("send_credentials = true", "send_credentials = false")
    env.config.write_text(text)
    rows = env.erp_rows()
    code, _, err = env.cli(capsys, "run")
    assert code == 2
    assert str(env.config) in err and "erp.columns.city" in err and "Stadt" in err
    _untouched(env, rows)


def test_sync_while_another_instance_holds_the_lease_exits_1(env: Env, capsys):
    from syncd.state.db import open_state
    from syncd.state.leases import Leases

    with open_state(f"sqlite:///{env.state_db}") as store:
        assert Leases(store).acquire("shop/erp-to-shop", "other-host:1:abc", 300)
    code, out, err = env.cli(capsys, "sync", "--direction", "erp-to-shop")
    assert code == 1
    assert "shop/erp-to-shop" in err and "lease" in err
    assert env.shop.customers() == [] and env.outbox_files() == []


def test_check_and_sync_through_a_real_smtp_server(env: Env, capsys, captured_logs, smtp_server_factory,
                                                   monkeypatch):
    server = smtp_server_factory("starttls", users={"shop": "Smtp-Pass-77"})
    monkeypatch.setenv("SYNCD_WIRED_SMTP", "Smtp-Pass-77")
    env.write_config(mail=f"""transport = "smtp"
host = "127.0.0.1"
port = {server.port}
security = "starttls"
ca_file = "{server.ca_file}"
username = "shop"
password = "env:SYNCD_WIRED_SMTP"
""")
    code, out, err = env.cli(capsys, "check")
    assert code == 0, out + err
    assert "starttls to 127.0.0.1" in out and "AUTH as shop" in out
    assert server.accepted == 0  # the check sends nothing

    code, out, err = env.cli(capsys, "sync", "--direction", "erp-to-shop")
    assert code == 0, err
    messages = server.wait_for(2)
    for message in messages:
        body = message.get_body(preferencelist=("plain",)).get_content()
        password = re.search(r"Passwort:\s+(\S+)", body).group(1)
        assert env.kit.login(str(message["To"]).split("<")[-1].rstrip(">"), password)
        assert_nowhere(password, out, err, captured_logs.text, files=_state_files(env))
    assert "Smtp-Pass-77" not in out + err + captured_logs.text
    assert env.outbox_files() == []


def test_check_reports_an_unreachable_smtp_server(env: Env, capsys):
    port = mailserver.free_port()
    env.write_config(mail=f'transport = "smtp"\nhost = "127.0.0.1"\nport = {port}\nsecurity = "none"\n')
    code, out, _ = env.cli(capsys, "check")
    assert code == 2
    line = next(x for x in out.splitlines() if "smtp" in x and "mail" in x)
    assert "FAILED" in line


def test_status_sync_and_dry_run_on_a_postgresql_state_store(env: Env, capsys):
    from sqlalchemy import create_engine, text

    from tests.support.dbs import pg_schema_url

    with pg_schema_url("syncd_wired") as url:
        text_cfg = env.config.read_text().replace(f"sqlite:///{env.state_db.as_posix()}", url)
        env.config.write_text(text_cfg)
        # A database nobody migrated yet reads as empty (status never migrates).
        code, out, err = env.cli(capsys, "status", "--json")
        assert code == 0, err
        assert json.loads(out)["platforms"][0]["linked"] == 0

        assert env.cli(capsys, "sync", "--direction", "erp-to-shop")[0] == 0
        engine = create_engine(url)
        try:
            def counts() -> tuple:
                with engine.connect() as conn:
                    return tuple(conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()
                                 for t in ("links", "cycles", "credential_jobs", "cache", "cursors"))

            before = counts()
            erp_fixtures.insert_addresses(env.erp_url, TABLE, [
                {"number": 10004, "last_name": "Dach", "email": "dora@example.com", "street": "Allee 4",
                 "zip": "50667", "city": "Köln", "country": "DE"},
            ])
            code, out, err = env.cli(capsys, "sync", "--dry-run")
            assert code == 0 and "would-create 1" in out, err
            assert counts() == before
        finally:
            engine.dispose()
        code, out, _ = env.cli(capsys, "status", "--json")
        shop = json.loads(out)["platforms"][0]
        assert shop["linked"] == 2 and shop["last_cycle"]["ok"] is True


def test_run_names_the_file_for_a_layouts_dir_that_is_not_a_folder(env: Env, capsys, tmp_path):
    env.write_config(mail=f'layouts_dir = "{(tmp_path / "nope").as_posix()}"')
    code, _, err = env.cli(capsys, "run")
    assert code == 2 and str(env.config) in err and "mail.layouts_dir" in err and "nope" in err
    assert not env.state_db.parent.exists()


def test_ctrl_c_during_sync_closes_the_cycle_record_and_releases_the_lease(env: Env, capsys, monkeypatch):
    def interrupted(ctx, *, dry_run=False):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr("syncd.flows.erp_to_shop.run_erp_to_shop", interrupted)
        code, _, err = env.cli(capsys, "sync", "--direction", "erp-to-shop")
    assert code == 1 and "interrupted" in err  # click turns Ctrl-C into Abort: exit 1
    code, out, _ = env.cli(capsys, "status", "--json")
    last = json.loads(out)["platforms"][0]["last_cycle"]
    assert last["ok"] is False and last["finished"] is not None
    code, out, err = env.cli(capsys, "sync", "--direction", "erp-to-shop")  # no stale lease in the way
    assert code == 0 and "created 2" in out, err


def test_runtime_builds_one_context_per_platform_across_threads(env: Env):
    import threading

    from syncd.config.loader import load_settings
    from syncd.config.secrets import resolve_all
    from syncd.shell.bootstrap import open_runtime

    loaded = load_settings(env.config)
    runtime = open_runtime(loaded, resolve_all(loaded.settings, loaded.path))
    try:
        start = threading.Barrier(8)
        seen = []

        def ask() -> None:
            start.wait()
            seen.append(runtime.context("shop"))

        threads = [threading.Thread(target=ask) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(seen) == 8 and len({id(c) for c in seen}) == 1
    finally:
        runtime.close()

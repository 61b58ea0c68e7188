"""Reconciliation (issue 11, defect 5): drift the change scan cannot see is found and repaired by
`syncd sync --full`, and `syncd status` says what was found. Real components throughout: a
SQLite ERP, the shop sandbox of each platform kind over HTTP (``shop`` fixture: Shopware 6,
WooCommerce), the outbox transport, the CLI in-process."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from syncd.state.db import open_state
from syncd.state.failures import Failures
from syncd.state.links import Links
from tests.support import erp_fixtures
from tests.support import wired_env as wired
from tests.support.mailserver import smtp_server, smtp_server_factory, smtp_tls_files  # noqa: F401 - fixtures
from tests.support.wired_env import TABLE, Env, make_env, read_mail

shop = wired.shop  # fixture: a sandbox of each platform kind
NO_DEACTIVATION = wired.shopware_only(
    "deactivating blocked or vanished addresses is refused by check for WooCommerce (customers have no "
    "active flag); this case deactivates")


def _row(n: int, **kw) -> dict:
    # Shaped unlike the shared samples: companies, an Austrian address, numbers with gaps.
    row = {"number": n, "first_name": f"Vera{n % 7}", "last_name": f"Öztürk-{n}", "salutation": "Frau",
           "street": f"Lindenweg {n % 90 + 1}", "zip": f"{1010 + n % 80:04d}", "city": "Wien",
           "country": "AT", "email": f"v.{n}@beispiel.at"}
    if n % 4 == 0:
        row.update(company=f"Öztürk & Partner {n} KG")
    row.update(kw)
    return row


ROWS = [_row(n) for n in (20003, 20011, 20017, 20040, 20041, 20052, 20090)] + [
    # fails validation: still_failed; stamped long ago, so that only the first (full) scan reads it
    _row(20100, email="kaputt@@beispiel.at", Geaendert=erp_fixtures.utcnow() - timedelta(days=30)),
]
GOOD = 7


@pytest.fixture
def env(tmp_path: Path, shop, monkeypatch: pytest.MonkeyPatch) -> Env:  # noqa: F811
    return make_env(tmp_path, shop.sandbox, monkeypatch, rows=ROWS)


def _status(e: Env, capsys) -> dict:
    code, out, err = e.cli(capsys, "status", "--json")
    assert code == 0, err
    (platform,) = json.loads(out)["platforms"]
    return platform


def _mails(e: Env) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for path in e.outbox_files():
        to, password = read_mail(path)
        out.setdefault(to, []).append(password)
    return out


def test_shop_that_lost_its_data_is_refilled_by_full_sync_and_status_shows_the_drift(env: Env, capsys):
    code, out, err = env.cli(capsys, "sync", "--direction", "erp-to-shop")
    assert code == 0, err
    assert len(env.shop.customers()) == GOOD and len(env.outbox_files()) == GOOD

    env.shop.lose_customers()  # the shop restored an empty backup
    assert env.shop.customers() == []

    # What an operator saw before: all linked, nothing to do - the change scan cannot know.
    assert _status(env, capsys)["linked"] == GOOD
    code, out, err = env.cli(capsys, "sync", "--direction", "erp-to-shop")
    assert code == 0 and env.shop.customers() == []

    code, out, err = env.cli(capsys, "sync", "--direction", "erp-to-shop", "--full")
    assert code == 0, out + err
    assert "missing_in_shop" in out  # the drift table of the summary

    numbers = [a.number for a in env.kit.accounts()]
    assert sorted(int(n) for n in numbers) == sorted(r["number"] for r in ROWS[:GOOD])
    mails = _mails(env)
    for r in ROWS[:GOOD]:
        first, second = mails[r["email"]]  # one more credentials mail each, with a new password
        assert second != first
        assert env.kit.login(r["email"], second)
    status = _status(env, capsys)
    drift = status["reconcile"]["counts"]
    assert drift["missing_in_shop"] == GOOD and drift["repaired"] == GOOD
    assert drift["erp_addresses"] == len(ROWS) and drift["links"] == GOOD
    assert drift["unlinked"] == 0 and drift["orphaned_links"] == 0 and drift["stale"] == 0
    assert drift["still_failed"] == 1 and drift["failed_rechecked"] == 1
    assert status["reconcile"]["finished"].endswith("Z")
    assert status["pending"] == 0 and status["linked"] == GOOD

    # In step now: a second reconciliation finds nothing and mails nobody.
    code, out, err = env.cli(capsys, "sync", "--direction", "erp-to-shop", "--full")
    assert code == 0, err
    drift = _status(env, capsys)["reconcile"]["counts"]
    assert drift["missing_in_shop"] == 0 and drift["repaired"] == 0 and drift["stale"] == 0
    assert len(env.outbox_files()) == 2 * GOOD
    code, out, _ = env.cli(capsys, "status")
    assert code == 0 and "missing_in_shop 0" in out and "still_failed 1" in out


def test_a_fixed_failure_the_change_scan_does_not_see_is_reevaluated(env: Env, capsys):
    code, out, err = env.cli(capsys, "sync", "--direction", "erp-to-shop")
    assert code == 0, err
    [failed] = _status(env, capsys)["failed"]
    assert failed["address"] == "20100" and "kaputt@@" in failed["reason"]
    # A failure recorded without the row's fingerprint (by a syncd before migration 0004): only the
    # reconciliation can tell the row was fixed. (With it, the next cycle does: test_cli_records.)
    store = open_state(f"sqlite:///{env.state_db.as_posix()}")
    try:
        with store.begin() as conn:
            conn.execute(sa.text("UPDATE failures SET fingerprint = NULL"))
    finally:
        store.close()

    # Fixed in the ERP by a tool that does not move the change stamp.
    erp_fixtures.update_address(env.erp_url, TABLE, 20100, {"EMail": "vera.fixed@beispiel.at"}, touch=False)
    code, out, err = env.cli(capsys, "sync", "--direction", "erp-to-shop")
    assert code == 0 and _status(env, capsys)["failed"] == [failed]  # the scan does not see it

    code, out, err = env.cli(capsys, "sync", "--direction", "erp-to-shop", "--full")
    assert code == 0, out + err
    status = _status(env, capsys)
    assert status["failed"] == []
    assert status["reconcile"]["counts"]["failed_rechecked"] == 1
    assert status["reconcile"]["counts"]["still_failed"] == 0
    assert status["reconcile"]["counts"]["repaired"] == 1
    [password] = _mails(env)["vera.fixed@beispiel.at"]
    assert env.kit.login("vera.fixed@beispiel.at", password)


def test_dry_run_full_counts_drift_and_writes_nothing(env: Env, capsys):
    assert env.cli(capsys, "sync", "--direction", "erp-to-shop")[0] == 0
    env.shop.lose_customers()
    before = (env.erp_rows(), env.outbox_files(), env.state_digest())
    code, out, err = env.cli(capsys, "sync", "--direction", "erp-to-shop", "--full", "--dry-run")
    assert code == 0, err
    assert "would-repair" in out
    assert (env.erp_rows(), env.outbox_files(), env.state_digest()) == before
    assert env.shop.customers() == []


# --- more than one page of every stream, every kind of drift ------------------------------------

# Stamped an hour apart, long ago: the first scan reads them all; later edits that keep the stamp
# are outside the scan's overlap window (all but the newest row), so the scan misses them.
MANY = [_row(30000 + 3 * i, Geaendert=erp_fixtures.utcnow() - timedelta(days=40, hours=i)) for i in range(40)]


def test_reconcile_over_many_pages_finds_and_repairs_each_kind_of_drift(tmp_path, shop, monkeypatch,  # noqa: F811
                                                                        capsys):
    """Every kind of drift over several pages; the blocked and the vanished address only where the
    kind deactivates (WooCommerce refuses deactivate_blocked: there they are not made)."""
    from syncd.flows import reconcile as reconcile_flow

    e = make_env(tmp_path, shop.sandbox, monkeypatch, rows=MANY)
    # ERP pages of 7, push chunks of 5, link pages of 6: every stream is read in several pages.
    e.write_config(erp="batch_size = 7", addresses="deactivate_blocked = true" if shop.deactivates else "")
    monkeypatch.setattr(reconcile_flow, "LINK_PAGE", 6)
    platform_url = f'url = "{shop.url}"\n'
    e.config.write_text(e.config.read_text().replace(platform_url, platform_url + "batch_size = 5\n"))
    assert e.cli(capsys, "sync", "--direction", "erp-to-shop")[0] == 0
    assert len(e.shop.customers()) == 40
    state = open_state(f"sqlite:///{e.state_db.as_posix()}", migrate=False)
    try:
        links = Links(state).get_many("shop", [r["number"] for r in MANY])
    finally:
        state.close()

    lost = [30000, 30033, 30117]  # gone from the shop
    e.shop.lose_customers([links[n].shop_id for n in lost])
    edited = 30060  # the customer's data changed in the shop, not by syncd
    if shop.kind == "woocommerce":
        e.shop.data.update(links[edited].shop_id, {"last_name": "Überschrieben"})
    else:
        e.shop.edit_customer_as_shop_user(links[edited].shop_id, lastName="Überschrieben")
    changed = 30090  # changed in the ERP without moving the stamp
    erp_fixtures.update_address(e.erp_url, TABLE, changed, {"Ort": "Graz"}, touch=False)
    blocked, gone = 30024, 30051
    if shop.deactivates:
        erp_fixtures.update_address(e.erp_url, TABLE, blocked, {"Gesperrt": 1}, touch=False)  # stamp kept
        _delete_row(e, gone)  # deleted from the ERP
    late = 39999  # inserted with a stamp far older than the scan's window
    erp_fixtures.insert_addresses(e.erp_url, TABLE, [
        _row(late, Geaendert=erp_fixtures.utcnow() - timedelta(days=50))])
    assert e.cli(capsys, "sync", "--direction", "erp-to-shop")[0] == 0
    assert str(late) not in {a.number for a in e.kit.accounts()}  # missed by the scan

    code, out, err = e.cli(capsys, "sync", "--direction", "erp-to-shop", "--full")
    assert code == 0, out + err

    drift = _status(e, capsys)["reconcile"]["counts"]
    deactivated = 2 if shop.deactivates else 0
    assert drift["erp_addresses"] == 41 - deactivated // 2 and drift["links"] == 41
    assert drift["missing_in_shop"] == 3 and drift["stale"] == 2 and drift["unlinked"] == 1
    assert drift["blocked_linked"] == deactivated // 2 and drift["orphaned_links"] == deactivated // 2
    assert drift["repaired"] == 3 + 2 + 1 + deactivated and drift["still_failed"] == 0
    by_number = {a.number: a for a in e.kit.accounts()}
    assert all(str(n) in by_number for n in lost) and str(late) in by_number
    assert by_number[str(edited)].last_name == _row(edited)["last_name"]
    if shop.kind == "woocommerce":
        assert by_number[str(changed)].city == "Graz"
    else:
        assert e.shop.customer(by_number[str(changed)].id)["addresses"][0]["city"] == "Graz"
    if shop.deactivates:
        assert by_number[str(blocked)].active is False and by_number[str(gone)].active is False
    mails = _mails(e)
    assert all(len(mails[_row(n)["email"]]) == 2 for n in lost) and len(mails[_row(late)["email"]]) == 1
    assert len(e.outbox_files()) == 40 + 3 + 1

    # Nothing left: the next reconciliation repairs nothing.
    assert e.cli(capsys, "sync", "--direction", "erp-to-shop", "--full")[0] == 0
    drift = _status(e, capsys)["reconcile"]["counts"]
    assert drift["repaired"] == 0 and drift["stale"] == 0 and drift["missing_in_shop"] == 0
    assert drift["orphaned_links"] == deactivated // 2  # reported for as long as the link exists


def _delete_row(e: Env, number: int) -> None:
    import sqlite3

    with sqlite3.connect(e.erp_db) as conn:
        conn.execute(f'DELETE FROM "{TABLE}" WHERE "AdrNr" = ?', (number,))


def test_failures_among_reads_only_the_given_records(tmp_path):
    store = open_state(f"sqlite:///{tmp_path / 's.db'}")
    try:
        f = Failures(store)
        f.record("shop", "erp-to-shop", 7, "validate", "x")
        f.record("shop", "credentials", 8, "credentials", "y")
        f.record("other", "erp-to-shop", 9, "validate", "z")
        assert f.among("shop", "erp-to-shop", [7, 8, 9, 10]) == {"7"}
    finally:
        store.close()


# --- the daemon reconciles on its own ---------------------------------------------------------

def test_daemon_reconciles_every_interval_and_publishes_drift_metrics(tmp_path, shop, monkeypatch,  # noqa: F811
                                                                      capsys):
    import socket
    import urllib.request

    from tests.e2e.test_cli_wired_daemon import _events, _start, _stop, _wait

    e = make_env(tmp_path, shop.sandbox, monkeypatch, rows=ROWS)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    e.write_config(poll="1s", daemon=f'reconcile_interval = "3s"\nmetrics_port = {port}')
    log = e.root / "daemon.log"
    proc = _start(e, log)
    try:
        _wait(lambda: len(e.outbox_files()) == GOOD, "the first mails", proc, log)
        e.shop.lose_customers()
        # No sync is asked for: the daemon's own schedule finds the loss and repairs it.
        _wait(lambda: len(e.outbox_files()) == 2 * GOOD, "the re-created accounts' mails", proc, log)
        _wait(lambda: len(e.shop.customers()) == GOOD, "the accounts back in the shop", proc, log)
        due = [x for x in _events(log) if x.get("event", "").startswith("reconciliation due")]
        assert due, "the reconcile job never ran"
        status = _status(e, capsys)
        assert status["reconcile"] is not None
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            metrics = resp.read().decode()
        assert 'syncd_drift_records{kind="still_failed",platform="shop"} 1.0' in metrics
        assert "syncd_last_reconcile_timestamp_seconds" in metrics
        # Later runs keep coming, every interval, and find nothing more to repair.
        runs = len([x for x in _events(log) if x.get("event") == "reconciliation done"])
        _wait(lambda: len([x for x in _events(log) if x.get("event") == "reconciliation done"]) >= runs + 1,
              "the next reconciliation", proc, log)
    finally:
        code = _stop(proc)
    assert code == 0, log.read_text()[-3000:]
    done = [x for x in _events(log) if x.get("event") == "reconciliation done"]
    assert any(x["missing_in_shop"] == GOOD and x["repaired"] == GOOD for x in done)
    assert done[-1]["missing_in_shop"] == 0 and done[-1]["repaired"] == 0
    assert len(e.outbox_files()) == 2 * GOOD


# --- the ERP on every backend, the state store on PostgreSQL -----------------------------------

@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.realdb),
                        pytest.param("mariadb", marks=pytest.mark.realdb)])
def harness(request, tmp_path: Path, shop, smtp_server):  # noqa: F811
    from contextlib import ExitStack

    from tests.support.dbs import mariadb_url, pg_schema_url, pg_url, unique_name
    from tests.support.flow_harness import Harness

    with ExitStack() as stack:
        if request.param == "sqlite":
            url, state_url = f"sqlite:///{tmp_path / 'erp.db'}", ""
        else:
            url = pg_url() if request.param == "postgresql" else mariadb_url()
            state_url = stack.enter_context(pg_schema_url("reconcile_state"))
        h = Harness(tmp_path, url, unique_name("erp_reconcile"), shop, smtp_server, state_url=state_url)
        stack.callback(h.drop)
        stack.callback(h.close)
        yield h


def test_full_run_on_each_erp_backend_recreates_lost_accounts_and_reports_orphans(harness):
    from syncd.flows import reconcile as reconcile_flow
    from tests.support.flow_harness import password_of

    rows = [_row(n, **{"email": f"r{n}@beispiel.at"}) for n in (41001, 41002, 41010, 41011, 41020, 41099)]
    harness.insert(rows)
    first = harness.run()
    assert first.counts["created"] == 6 and first.counts["mailed"] == 6
    links = Links(harness.state).get_many("shop", [r["number"] for r in rows])
    harness.sandbox.lose_customers([links[41002].shop_id, links[41099].shop_id])
    engine = sa.create_engine(harness.erp_url)
    try:
        t = sa.Table(harness.table, sa.MetaData(), autoload_with=engine)
        with engine.begin() as conn:
            conn.execute(t.delete().where(t.c.AdrNr == 41020))
    finally:
        engine.dispose()

    report = reconcile_flow.run_full(harness.context())

    assert report.drift["missing_in_shop"] == 2 and report.drift["orphaned_links"] == 1
    assert report.counts["created"] == 2 and report.counts["mailed"] == 2
    for n in (41002, 41099):
        mails = harness.mails_to(f"r{n}@beispiel.at")
        assert len(mails) == 2
        assert harness.kit.login(f"r{n}@beispiel.at", password_of(mails[-1]))
    if harness.kit.deactivates:  # two re-created, the orphan's account deactivated
        assert report.drift["repaired"] == 3
        assert harness.sandbox.customer(links[41020].shop_id)["active"] is False
    else:  # WooCommerce: deactivate_blocked = false, so a vanished address is reported, its account kept
        assert report.drift["repaired"] == 2
        assert harness.sandbox.customer(links[41020].shop_id) is not None
    assert harness.password_fields() == {}


def test_address_fingerprint_is_unchanged_by_the_faster_hashing():
    # Links store this fingerprint: a different text after an upgrade would re-push every address.
    import hashlib
    from dataclasses import asdict
    from datetime import UTC, datetime
    from decimal import Decimal

    from syncd.core.domain import ErpAddress
    from syncd.flows.fingerprints import address_fingerprint

    def before(a: ErpAddress) -> str:  # the implementation reconciliation replaced
        data = asdict(a)
        # (+ the fields issues 13 and 18 added, which the old dataclass did not have)
        for key in ("row", "problems", "modified_at", "blocked", "business", "for_shop", "marked_deleted"):
            data.pop(key, None)
        blob = json.dumps(data, sort_keys=True, default=str, ensure_ascii=False)
        return hashlib.sha256(blob.encode()).hexdigest()

    samples = [
        ErpAddress(number=1),
        ErpAddress(number=20017, email="Ä@beispiel.at", company="Öztürk & Partner", salutation="Frau",
                   first_name="Vera", last_name="Öztürk", street="Lindenweg 1", zip="1010", city="Wien",
                   country="AT", phone="+43 1 234", customer_group=Decimal("7.0"), blocked=True,
                   modified_at=datetime(2026, 1, 2, tzinfo=UTC), row={"nested": {"x": [1, 2]}},
                   problems=("too long",)),
    ]
    for a in samples:
        assert address_fingerprint(a) == before(a)


def test_daemon_schedule_counts_from_the_last_stored_reconciliation(tmp_path):
    # In-process, with jobs that only note what ran: "shop" was reconciled almost an interval ago
    # (by an earlier process), so it is due within a second; "b2b" never was, so it waits a whole
    # interval. A restart must not postpone a due reconciliation by another day.
    import threading
    import time
    from datetime import UTC, datetime
    from datetime import timedelta as td

    from syncd.flows.context import CycleReport
    from syncd.state.drift import DriftReports
    from tests.e2e.test_daemon import Recorder, build_context_for, make_settings, start, stop, wait_for

    store = open_state(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        now = datetime.now(UTC)
        DriftReports(store).set("shop", now - td(hours=1), now - td(hours=1) + td(seconds=1.5),
                                {"missing_in_shop": 4, "repaired": 4})
        settings = make_settings(tmp_path, platforms=("shop", "b2b"), reconcile_interval="1h")
        rec = Recorder()
        full_started: list[float] = []
        lock = threading.Lock()

        def full(ctx):
            with lock:
                full_started.append(time.monotonic())
            rec.note("full", ctx.platform.name)
            return CycleReport(ctx.platform.name, "erp-to-shop")

        from syncd.shell.daemon import Daemon

        daemon = Daemon(settings, build_context=build_context_for(store),
                        jobs={"erp-to-shop": rec.erp_to_shop}, reconcile=full, store=store,
                        install_signals=False)
        t0 = time.monotonic()
        thread, result = start(daemon)
        wait_for(lambda: rec.count("erp-to-shop") >= 2, what="ordinary cycles")
        published = daemon.metrics.registry.get_sample_value(
            "syncd_drift_records", {"platform": "shop", "kind": "missing_in_shop"})
        wait_for(lambda: rec.count("full", "shop") >= 1, timeout=10, what="the due reconciliation")
        time.sleep(1.0)
        assert stop(daemon, thread, result) == 0
    finally:
        store.close()
    assert published == 4  # the stored counts are metrics from the start
    assert rec.count("full", "shop") == 1 and rec.count("full", "b2b") == 0
    assert full_started[0] - t0 >= 1.0  # when it fell due (1.5 s after start), not at start
    assert rec.count("erp-to-shop", "shop") >= 1 and rec.count("erp-to-shop", "b2b") >= 2


@NO_DEACTIVATION
def test_many_vanished_addresses_are_reported_not_deactivated(tmp_path, shop, monkeypatch, capsys,  # noqa: F811
                                                               caplog):
    # A read_source pointed at the wrong view looks like customers vanishing by the dozen: the
    # reconciliation says so and leaves their accounts alone.
    e = make_env(tmp_path, shop.sandbox, monkeypatch, rows=MANY)
    assert e.cli(capsys, "sync", "--direction", "erp-to-shop")[0] == 0
    import sqlite3

    with sqlite3.connect(e.erp_db) as conn:
        conn.execute(f'DELETE FROM "{TABLE}" WHERE "AdrNr" < 30036')  # 12 of 40
    code, out, err = e.cli(capsys, "sync", "--direction", "erp-to-shop", "--full")
    assert code == 0, out + err
    drift = _status(e, capsys)["reconcile"]["counts"]
    assert drift["orphaned_links"] == 12 and drift["repaired"] == 0
    assert all(c["active"] for c in e.shop.customers())
    assert "too many at once" in caplog.text

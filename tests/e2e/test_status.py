"""`syncd status`: the documented JSON shape from a real state store, readable while a writer
holds the store, and the table in German and English."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, insert, select, text

from syncd.config.model import Settings
from syncd.shell.status import collect_status, render_status_table
from syncd.state.cycles import Cycles
from syncd.state.db import open_state
from syncd.state.failures import Failures
from syncd.state.leases import Leases, make_holder
from syncd.state.schema import credential_jobs, cycles, links
from tests.support.dbs import pg_url, unique_name

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
RUNNING = make_holder() + ":erp-to-shop"


def settings_for(url: str) -> Settings:
    return Settings.model_validate(
        {
            "daemon": {"state_url": url},
            "erp": {"url": "sqlite://"},
            "platforms": [
                {"name": n, "url": "http://127.0.0.1:9", "client_id": "id", "client_secret": "env:X"}
                for n in ("shop", "b2b", "idle")
            ],
        }
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state.db'}"
        return
    base = pg_url()
    schema = unique_name("status")
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{base}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def populate(store) -> None:
    clock = iter(T0 + timedelta(minutes=i) for i in range(100))
    cycles = Cycles(store, clock=lambda: next(clock))
    first = cycles.start("shop", "erp-to-shop", "h")
    cycles.finish(first, ok=True, counts={"created": 2})
    second = cycles.start("shop", "shop-to-erp", "h")
    cycles.finish(second, ok=False, counts={}, error="TransientError: shop 503")
    # still running: its holder holds the cycle's lease (this process, alive)
    assert Leases(store).acquire("b2b/erp-to-shop", RUNNING, 300)
    cycles.start("b2b", "erp-to-shop", RUNNING)
    with store.begin() as conn:
        conn.execute(insert(links), [
            {"platform": "shop", "shop_id": f"s{i}", "erp_number": 10000 + i, "kind": "erp",
             "created_at": T0, "updated_at": T0}
            for i in range(3)
        ] + [{"platform": "b2b", "shop_id": "x", "erp_number": 10000, "kind": "erp", "created_at": T0,
              "updated_at": T0}])
        conn.execute(insert(credential_jobs), [
            {"platform": "shop", "erp_number": 10000 + i, "step": step, "created_at": T0, "updated_at": T0}
            for i, step in enumerate(["pending", "field_written", "sending", "sent", "done", "failed"])
        ])
    fclock = iter([T0, T0 + timedelta(hours=1)])
    failures = Failures(store, clock=lambda: next(fclock))
    failures.record("shop", "erp-to-shop", 10005, "credentials", "SMTP 550 mailbox unavailable", "550")
    failures.record("shop", "shop-to-erp", "0190abc", "import", "number 70001 outside debtor range")


def test_json_shape_and_counts(url):
    store = open_state(url)
    try:
        populate(store)
        status = collect_status(store, settings_for(url))
        Leases(store).release("b2b/erp-to-shop", RUNNING)
    finally:
        store.close()
    json.dumps(status)  # what `syncd status --json` prints must serialise as is
    shop, b2b, idle = status["platforms"]
    assert list(shop) == ["name", "last_cycle", "linked", "pending", "failed", "reconcile", "shop_changes",
                          "held", "canary", "messages", "approvals", "reminders",
                          "credential_channels", "bounces"]
    assert shop["bounces"] == {"bounced": 0, "soft": 0, "latest": None}
    assert shop["credential_channels"] == {"email": 0, "sms": 0, "both": 0, "none": 0}
    assert shop["reminders"] == {"scheduled": 0, "done": 0, "stopped": 0, "cancelled": 0}
    assert shop["messages"] == {"pending": 0, "sending": 0, "sent": 0, "deferred": 0, "failed": 0}
    assert shop["approvals"] == {"in-progress": 0, "approved": 0, "rejected": 0}
    assert shop["shop_changes"] == []  # only shop_changes = "report" fills it (issue 13)
    assert list(shop["last_cycle"]) == ["started", "finished", "ok", "state", "error"]
    assert shop["name"] == "shop"
    assert shop["last_cycle"] == {"started": "2026-03-01T08:02:00Z", "finished": "2026-03-01T08:03:00Z",
                                  "ok": False, "state": "failed", "error": "TransientError: shop 503"}
    assert shop["linked"] == 3
    assert shop["pending"] == 4, "pending, field_written, sending and sent jobs; not done or failed"
    assert shop["failed"] == [
        {"address": "0190abc", "step": "import", "reason": "number 70001 outside debtor range"},
        {"address": "10005", "step": "credentials", "reason": "SMTP 550 mailbox unavailable"},
    ]
    assert b2b["last_cycle"] == {"started": "2026-03-01T08:04:00Z", "finished": None, "ok": None,
                                 "state": "running", "error": None}
    assert (b2b["linked"], b2b["pending"], b2b["failed"]) == (1, 0, [])
    never = {"started": None, "finished": None, "ok": None, "state": None, "error": None}
    assert idle == {"name": "idle", "last_cycle": never, "linked": 0, "pending": 0, "failed": [],
                    "reconcile": None, "held": 0, "canary": None, "messages": shop["messages"],
                    "approvals": shop["approvals"],
                    "reminders": shop["reminders"], "shop_changes": [], "bounces": shop["bounces"],
                    "credential_channels": shop["credential_channels"]}
    assert shop["reconcile"] is None and b2b["reconcile"] is None


def test_reconcile_drift_in_json_and_table(url):
    from syncd.state.drift import KEYS, DriftReports

    store = open_state(url)
    try:
        populate(store)
        DriftReports(store).set("b2b", T0, T0 + timedelta(seconds=42),
                                {"missing_in_shop": 185, "repaired": 185, "still_failed": 2})
        status = collect_status(store, settings_for(url))
    finally:
        store.close()
    json.dumps(status)
    shop, b2b, _idle = status["platforms"]
    assert shop["reconcile"] is None
    assert list(b2b["reconcile"]) == ["started", "finished", "counts"]
    assert b2b["reconcile"]["started"] == "2026-03-01T08:00:00Z"
    assert b2b["reconcile"]["finished"] == "2026-03-01T08:00:42Z"
    assert list(b2b["reconcile"]["counts"]) == list(KEYS)
    counts = b2b["reconcile"]["counts"]
    assert counts["missing_in_shop"] == 185 and counts["unlinked"] == 0
    table = render_status_table(status, lang="en", width=200)
    assert "Last reconciliation" in table and "missing_in_shop 185" in table and "still_failed 2" in table


def test_status_reads_while_a_writer_holds_the_store(tmp_path):
    url = f"sqlite:///{tmp_path / 'state.db'}"
    daemon_store = open_state(url)
    populate(daemon_store)
    holding, release = threading.Event(), threading.Event()

    def writer():
        with daemon_store.begin() as conn:  # BEGIN IMMEDIATE: the write lock, as a cycle holds it
            conn.execute(insert(links).values(platform="shop", shop_id="new", erp_number=20000, kind="erp",
                                              created_at=T0, updated_at=T0))
            holding.set()
            release.wait(10)

    t = threading.Thread(target=writer)
    t.start()
    try:
        assert holding.wait(5)
        # `syncd status` opens without migrating: migrate_store takes SQLite's write lock even
        # when the schema is current, which would wait for the daemon's cycle.
        reader = open_state(url, migrate=False)
        started = time.monotonic()
        status = collect_status(reader, settings_for(url))
        assert time.monotonic() - started < 2, "status must not wait for the writer's lock"
        assert status["platforms"][0]["linked"] == 3, "uncommitted rows are not seen"
        reader.close()
    finally:
        release.set()
        t.join()
        daemon_store.close()


def test_table_german_and_english(tmp_path):
    url = f"sqlite:///{tmp_path / 'state.db'}"
    store = open_state(url)
    populate(store)
    status = collect_status(store, settings_for(url))
    store.close()
    en = render_status_table(status, lang="en")
    de = render_status_table(status, lang="de")
    assert "Platform" in en and "pending" in en and "FAILED" in en and "running" in en and "never" in en
    assert "SMTP 550 mailbox unavailable" in en and "10005" in en
    assert "Plattform" in de and "offen" in de and "FEHLER" in de and "läuft" in de and "noch nie" in de
    assert "Fehlerhafte Datensätze" in de


def test_table_language_follows_locale(monkeypatch):
    status = {"platforms": [{"name": "shop", "last_cycle": {"started": None, "finished": None, "ok": None},
                             "linked": 0, "pending": 0, "failed": []}]}
    for var in ("LC_ALL", "LC_MESSAGES", "LANG", "LANGUAGE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LANG", "de_DE.UTF-8")
    assert "Plattform" in render_status_table(status)
    monkeypatch.setenv("LANG", "C.UTF-8")
    assert "Platform" in render_status_table(status)
    assert "Failed records" not in render_status_table(status), "no failures table without failures"


KILLED_CYCLE = """
import sys, time
from syncd.state.cycles import Cycles
from syncd.state.db import open_state
from syncd.state.leases import Leases, make_holder

store = open_state(sys.argv[1], migrate=False)
holder = make_holder() + ":erp-to-shop"
assert Leases(store).acquire("shop/erp-to-shop", holder, 300)
Cycles(store).start("shop", "erp-to-shop", holder)
print("running", flush=True)
time.sleep(600)
"""


def test_a_killed_cycle_shows_as_interrupted_not_running(url, tmp_path):
    """A SIGKILLed process leaves its cycle open and its lease row valid for minutes: status
    tells it from a running one (the lease's lock died with the process), before and after a
    new holder takes the lease over."""
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    from syncd.flows.context import CycleReport, PlatformContext
    from syncd.shell.scheduler import CycleOutcome, CycleRunner

    open_state(url).close()
    script = tmp_path / "killed.py"
    script.write_text(KILLED_CYCLE)
    proc = subprocess.Popen([sys.executable, str(script), url], stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2])))
    settings = settings_for(url)
    store = open_state(url, migrate=False)
    try:
        assert proc.stdout.readline().strip() == "running"
        assert collect_status(store, settings)["platforms"][0]["last_cycle"]["state"] == "running"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 5  # PostgreSQL: the server notices the closed session
        while True:
            last = collect_status(store, settings)["platforms"][0]["last_cycle"]
            if last["state"] == "interrupted" or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert last["state"] == "interrupted" and last["finished"] is None and last["ok"] is False
        status = collect_status(store, settings)
        assert "INTERRUPTED" in render_status_table(status, lang="en")
        assert "ABGEBROCHEN" in render_status_table(status, lang="de")

        # A new holder takes the lease over at once and closes the dead record.
        platform = settings.platforms[0]
        ctx = PlatformContext(settings=settings, platform=platform, erp=None, shop=None, state=store)
        runner = CycleRunner(store, holder=make_holder(), lease_ttl=300)
        result = runner.run(ctx, "erp-to-shop", lambda c: CycleReport("shop", "erp-to-shop"))
        assert result.outcome is CycleOutcome.OK, "taken over at once, not after the 5 minute ttl"
        with store.connect() as conn:
            dead = conn.execute(select(cycles).where(cycles.c.id != result.cycle_id)).one()
        assert dead.finished is None and dead.ok is False and dead.error.startswith("interrupted")
        assert collect_status(store, settings)["platforms"][0]["last_cycle"]["state"] == "ok"
    finally:
        if proc.poll() is None:
            proc.kill()
        store.close()

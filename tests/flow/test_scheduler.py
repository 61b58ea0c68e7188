"""One cycle under its lease (CycleRunner) and the APScheduler set-up (timetable), on a real SQLite
store."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import select

from syncd.core.redaction import error_text, sensitive
from syncd.flows.context import CycleReport, PlatformContext
from syncd.shell.scheduler import CycleOutcome, CycleRunner
from syncd.shell.timetable import build_scheduler, schedule_cycles
from syncd.state.db import open_state
from syncd.state.leases import Leases
from syncd.state.schema import cycles
from tests.e2e.test_daemon import make_settings


@pytest.fixture
def store(tmp_path):
    s = open_state(f"sqlite:///{tmp_path / 'state.db'}")
    yield s
    s.close()


@pytest.fixture
def ctx(tmp_path, store):
    settings = make_settings(tmp_path)
    platform = settings.platforms[0]
    return PlatformContext(settings=settings, platform=platform, erp=None, shop=None, state=store)


def ok_job(ctx):
    r = CycleReport(ctx.platform.name, "erp-to-shop")
    r.add(1, "created")
    return r


def test_lease_is_renewed_while_a_long_cycle_runs(store, ctx):
    runner = CycleRunner(store, holder="me", lease_ttl=0.6)
    other = Leases(store)
    attempts = []

    def long_job(c):
        for _ in range(6):  # 1.5 s: more than twice the ttl
            time.sleep(0.25)
            attempts.append(other.acquire("shop/erp-to-shop", "intruder", 5))
        return ok_job(c)

    result = runner.run(ctx, "erp-to-shop", long_job)
    assert result.outcome is CycleOutcome.OK
    assert attempts == [False] * 6, "the lease expired under a running cycle"
    assert other.holder_of("shop/erp-to-shop") is None, "released at the end"


def test_cycle_runs_with_gc_paused(store, ctx):
    """The runner owns the GC pause: the job sees the collector off, whether it returns or
    raises, and it is back on after the cycle (connectors and flows do not switch it)."""
    import gc

    runner = CycleRunner(store, holder="me", lease_ttl=30)
    seen = []

    def job(c):
        seen.append(gc.isenabled())
        return ok_job(c)

    def failing(c):
        seen.append(gc.isenabled())
        raise RuntimeError("push failed")

    assert gc.isenabled()
    assert runner.run(ctx, "erp-to-shop", job).outcome is CycleOutcome.OK
    assert gc.isenabled()
    assert runner.run(ctx, "shop-to-erp", failing).outcome is CycleOutcome.FAILED
    assert gc.isenabled()
    assert seen == [False, False]


def test_error_text_is_redacted_and_keeps_the_cause(store, ctx):
    runner = CycleRunner(store, holder="me", lease_ttl=30)
    secret = "Xk9-pw-unique-4711"

    def leaky(c):
        try:
            raise ValueError(f"shop rejected password {secret}")
        except ValueError as exc:
            raise RuntimeError("push failed") from exc

    with sensitive(secret):
        result = runner.run(ctx, "erp-to-shop", leaky)
    assert result.outcome is CycleOutcome.FAILED
    with store.connect() as conn:
        (row,) = conn.execute(select(cycles)).all()
    assert secret not in row.error and "[REDACTED]" in row.error
    assert row.error.startswith("RuntimeError: push failed; caused by ValueError")
    assert row.ok is False and row.counts == {}


def test_error_text_is_bounded():
    assert len(error_text(RuntimeError("x" * 10_000))) <= 2000


def test_standby_when_another_instance_holds_the_lease(store, ctx):
    Leases(store).acquire("shop/erp-to-shop", "other", 30)
    runner = CycleRunner(store, holder="me", lease_ttl=30)
    called = []
    result = runner.run(ctx, "erp-to-shop", lambda c: called.append(1))
    assert result.outcome is CycleOutcome.STANDBY and called == []
    with store.connect() as conn:
        assert conn.execute(select(cycles)).all() == [], "a standby is not a cycle"


def test_sweep_of_a_shop_to_erp_cycle_waits_for_the_erp_to_shop_lease(store, ctx):
    """The sweep touches password fields: it must not run while anyone (even this process's
    own erp-to-shop job) works that direction."""
    swept = []
    runner = CycleRunner(store, holder="me", lease_ttl=30, sweep=lambda c: swept.append(1))
    Leases(store).acquire("shop/erp-to-shop", "me:erp-to-shop", 30)  # our own erp-to-shop cycle
    result = runner.run(ctx, "shop-to-erp", ok_job)
    assert result.outcome is CycleOutcome.WAITING and swept == []
    Leases(store).release("shop/erp-to-shop", "me:erp-to-shop")
    assert runner.run(ctx, "shop-to-erp", ok_job).outcome is CycleOutcome.OK
    assert swept == [1]
    assert runner.run(ctx, "erp-to-shop", ok_job).outcome is CycleOutcome.OK
    assert swept == [1], "one sweep per platform and start"


def test_closed_runner_starts_nothing(store, ctx):
    runner = CycleRunner(store, holder="me", lease_ttl=30)
    runner.close()
    assert runner.run(ctx, "erp-to-shop", ok_job).outcome is CycleOutcome.STOPPED
    assert runner.wait_idle(0.1)


def test_lost_lease_is_logged(store, ctx, captured_logs):
    runner = CycleRunner(store, holder="me", lease_ttl=0.3)

    def job(c):
        # Simulate a stall past the ttl during which another instance takes over.
        with store.begin() as conn:
            from syncd.state.schema import leases

            conn.execute(leases.update().values(holder="thief"))
        time.sleep(0.5)
        return ok_job(c)

    result = runner.run(ctx, "erp-to-shop", job)
    assert "lease lost while working" in captured_logs
    assert result.outcome is CycleOutcome.FAILED and "lease shop/erp-to-shop lost" in result.error
    assert result.report is not None and result.report.counts == {"created": 1}, "the work itself was done"


def test_scheduler_never_overlaps_a_job_and_survives_errors():
    scheduler = build_scheduler()
    lock = threading.Lock()
    running = {"now": 0, "max": 0, "calls": 0}

    def job(platform, direction):
        with lock:
            running["now"] += 1
            running["calls"] += 1
            running["max"] = max(running["max"], running["now"])
            n = running["calls"]
        try:
            time.sleep(0.25)  # longer than the interval
            if n == 1:
                raise RuntimeError("first run fails")
        finally:
            with lock:
                running["now"] -= 1

    ids = schedule_cycles(scheduler, {"erp-to-shop": job}, {"shop": 0.05})
    assert ids == ["shop/erp-to-shop"]
    scheduler.start()
    try:
        deadline = time.monotonic() + 10
        while running["calls"] < 3:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        scheduler.shutdown(wait=False)
    assert running["max"] == 1, "max_instances=1: a job never overlaps itself"
    job_threads = [t for t in threading.enumerate() if t.name.startswith("job:")]
    assert all(t.daemon for t in job_threads), "job threads must not keep a stopping process alive"


def test_old_cycle_records_are_pruned(store):
    from datetime import UTC, datetime, timedelta

    from syncd.shell.timetable import prune_cycles
    from syncd.state.cycles import Cycles

    now = datetime(2026, 6, 1, tzinfo=UTC)
    for days_ago in (40, 31, 29, 1):
        started = now - timedelta(days=days_ago)
        cid = Cycles(store, clock=lambda s=started: s).start("shop", "erp-to-shop", "h")
        if days_ago != 31:  # one left open by a crash
            Cycles(store, clock=lambda s=started: s).finish(cid, ok=True, counts={})
    assert prune_cycles(store, now=now) == 2
    with store.connect() as conn:
        left = conn.execute(select(cycles.c.started).order_by(cycles.c.started)).scalars().all()
    assert [(now - s.replace(tzinfo=UTC)).days for s in left] == [29, 1]
    assert prune_cycles(store, now=now) == 0


def test_taking_over_a_dead_holders_lease_sweeps_again(store, ctx, captured_logs):
    """What a SIGKILLed process leaves: an open cycle record and a lease row that is not expired,
    with no lock behind it (the kernel released that). Taken over at once, not after the ttl."""
    from datetime import UTC, datetime, timedelta

    from syncd.state.cycles import Cycles
    from syncd.state.schema import leases

    swept = []
    runner = CycleRunner(store, holder="me", lease_ttl=30, sweep=lambda c: swept.append(1))
    assert runner.run(ctx, "erp-to-shop", ok_job).outcome is CycleOutcome.OK
    assert runner.run(ctx, "erp-to-shop", ok_job).outcome is CycleOutcome.OK
    assert swept == [1]
    dead = "otherhost:4242:1700000000:0123456789ab:erp-to-shop"
    open_cycle = Cycles(store).start("shop", "erp-to-shop", dead)
    with store.begin() as conn:
        conn.execute(leases.insert().values(name="shop/erp-to-shop", holder=dead,
                                            expires_at=datetime.now(UTC) + timedelta(minutes=5)))
    result = runner.run(ctx, "erp-to-shop", ok_job)
    assert result.outcome is CycleOutcome.OK, "no wait for the dead row's expiry"
    assert swept == [1, 1], "the dead holder's in-flight passwords are settled before new work"
    assert "took over the lease" in captured_logs
    with store.connect() as conn:
        row = conn.execute(select(cycles).where(cycles.c.id == open_cycle)).one()
    assert row.finished is None and row.ok is False and row.error.startswith("interrupted")
    assert dead in row.error
    assert runner.run(ctx, "shop-to-erp", ok_job).outcome is CycleOutcome.OK
    assert swept == [1, 1], "a lease it released cleanly is no reason to sweep"


def test_a_cycle_waits_for_its_own_processs_sweep_instead_of_standing_by(store, ctx):
    """The sweep runs under the erp-to-shop lease. An erp-to-shop cycle that starts while a
    shop-to-erp cycle of the same process is sweeping must wait for that sweep, not report
    "another instance holds the lease" and idle a whole poll interval."""
    sweeping, release = threading.Event(), threading.Event()

    def slow_sweep(c):
        sweeping.set()
        assert release.wait(10)
        return CycleReport(c.platform.name, "sweep")

    runner = CycleRunner(store, holder="me", lease_ttl=30, sweep=slow_sweep)
    results = {}
    first = threading.Thread(target=lambda: results.__setitem__(
        "shop-to-erp", runner.run(ctx, "shop-to-erp", lambda c: CycleReport(c.platform.name, "shop-to-erp"))))
    first.start()
    assert sweeping.wait(10)
    second = threading.Thread(
        target=lambda: results.__setitem__("erp-to-shop", runner.run(ctx, "erp-to-shop", ok_job)))
    second.start()
    time.sleep(0.3)  # the erp-to-shop cycle is now at its lease while the sweep still runs
    release.set()
    first.join(10)
    second.join(10)
    assert results["erp-to-shop"].outcome is CycleOutcome.OK, results
    assert results["shop-to-erp"].outcome is CycleOutcome.OK, results

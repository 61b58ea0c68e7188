"""The daemon in-process: cycles keep coming after one raises, the sweep runs first, leases
make it stand by, reloads swap the configuration and clear the cache, a bad reload is refused."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from syncd.config.model import Settings
from syncd.flows.context import CycleReport, PlatformContext
from syncd.shell.daemon import Daemon
from syncd.shell.pidfile import read_pid, store_identity, write_pid
from syncd.state.cache import Cache
from syncd.state.db import open_state
from syncd.state.leases import Leases
from syncd.state.schema import cycles, leases


def make_settings(tmp_path: Path, *, platforms=("shop",), poll="150ms", **daemon) -> Settings:
    return Settings.model_validate(
        {
            "daemon": {
                "state_url": f"sqlite:///{tmp_path / 'state.db'}",
                "poll_interval": poll,
                "lease_ttl": "30s",
                "shutdown_timeout": "5s",
                "pid_file": str(tmp_path / "syncd.pid"),
                **daemon,
            },
            "erp": {"url": "sqlite://"},
            "platforms": [
                {"name": n, "url": "http://127.0.0.1:9", "client_id": "id", "client_secret": "env:X"}
                for n in platforms
            ],
        }
    )


class Recorder:
    """Jobs and sweep that note what ran, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self.fail_first = set()

    def note(self, kind: str, platform: str) -> None:
        with self.lock:
            self.events.append((kind, platform))

    def count(self, kind: str, platform: str | None = None) -> int:
        with self.lock:
            return sum(1 for k, p in self.events if k == kind and (platform is None or p == platform))

    def sweep(self, ctx: PlatformContext) -> None:
        self.note("sweep", ctx.platform.name)

    def erp_to_shop(self, ctx: PlatformContext) -> CycleReport:
        name = ctx.platform.name
        self.note("erp-to-shop", name)
        if name in self.fail_first and self.count("erp-to-shop", name) == 1:
            raise RuntimeError("shop said no") from ConnectionError("connection reset by peer")
        report = CycleReport(name, "erp-to-shop")
        report.add(10001, "created")
        report.add(10002, "mailed")
        return report


def build_context_for(store):
    def build(platform) -> PlatformContext:
        return PlatformContext(settings=None, platform=platform, erp=None, shop=None, state=store)

    return build


def wait_for(predicate, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@pytest.fixture
def store(tmp_path):
    s = open_state(f"sqlite:///{tmp_path / 'state.db'}")
    yield s
    s.close()


def start(daemon: Daemon) -> tuple[threading.Thread, list[int]]:
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(daemon.run()), daemon=True)
    thread.start()
    return thread, result


def stop(daemon: Daemon, thread: threading.Thread, result: list[int]) -> int:
    daemon.request_stop()
    thread.join(timeout=15)
    assert not thread.is_alive(), "the daemon did not stop"
    return result[0]


def cycle_rows(store):
    with store.connect() as conn:
        return conn.execute(select(cycles).order_by(cycles.c.id)).all()


def test_failing_cycle_is_recorded_and_next_cycle_runs(tmp_path, store, captured_logs):
    settings = make_settings(tmp_path)
    rec = Recorder()
    rec.fail_first = {"shop"}
    daemon = Daemon(settings, build_context=build_context_for(store), jobs={"erp-to-shop": rec.erp_to_shop},
                    sweep=rec.sweep, store=store, install_signals=False)
    thread, result = start(daemon)
    wait_for(lambda: rec.count("erp-to-shop") >= 3, what="three cycles")
    assert read_pid(tmp_path / "syncd.pid") is not None, "pid file written while running"
    assert stop(daemon, thread, result) == 0
    assert not (tmp_path / "syncd.pid").exists(), "pid file removed at exit"

    assert rec.events[0] == ("sweep", "shop"), "the start-up sweep runs before the first cycle"
    assert rec.count("sweep") == 1
    rows = cycle_rows(store)
    assert rows[0].ok is False
    assert "RuntimeError: shop said no" in rows[0].error
    assert "connection reset by peer" in rows[0].error, "the cause is recorded too"
    assert all(r.ok for r in rows[1:]) and len(rows) >= 2
    assert rows[1].counts == {"created": 1, "mailed": 1}
    assert all(r.finished is not None for r in rows)
    assert "cycle failed" in captured_logs and "shop said no" in captured_logs
    with store.connect() as conn:
        assert conn.execute(select(leases)).all() == [], "leases released at stop"
    # metrics saw both outcomes
    reg = daemon.metrics.registry
    assert reg.get_sample_value("syncd_cycles_total", {"platform": "shop", "direction": "erp-to-shop",
                                                       "result": "failed"}) == 1
    assert reg.get_sample_value("syncd_records_mailed_total", {"platform": "shop"}) >= 1


def test_sweep_failure_blocks_the_platform_until_it_succeeds(tmp_path, store):
    settings = make_settings(tmp_path, platforms=("a", "b"))
    rec = Recorder()
    attempts = {"a": 0}

    def sweep(ctx):
        rec.sweep(ctx)
        if ctx.platform.name == "a":
            attempts["a"] += 1
            if attempts["a"] < 3:
                raise ConnectionError("ERP unreachable")

    daemon = Daemon(settings, build_context=build_context_for(store), jobs={"erp-to-shop": rec.erp_to_shop},
                    sweep=sweep, store=store, install_signals=False)
    thread, result = start(daemon)
    wait_for(lambda: rec.count("erp-to-shop", "a") >= 1, what="platform a's first cycle")
    assert stop(daemon, thread, result) == 0
    first_cycle_a = rec.events.index(("erp-to-shop", "a"))
    sweeps_a = [i for i, e in enumerate(rec.events) if e == ("sweep", "a")]
    assert len(sweeps_a) == 3 and sweeps_a[-1] < first_cycle_a, "no cycle before a successful sweep"
    assert rec.events.index(("erp-to-shop", "b")) < first_cycle_a, "platform b was not held up by a"


def test_lease_held_elsewhere_means_standby(tmp_path, store):
    settings = make_settings(tmp_path)
    other = Leases(store)
    assert other.acquire("shop/erp-to-shop", "other-host:1:abc", 30)
    rec = Recorder()
    daemon = Daemon(settings, build_context=build_context_for(store), jobs={"erp-to-shop": rec.erp_to_shop},
                    sweep=rec.sweep, store=store, install_signals=False)
    thread, result = start(daemon)
    try:
        wait_for(lambda: daemon.metrics.health()[1]["jobs"].get("shop/erp-to-shop", {}).get("reason")
                 == "standby", what="standby")
        time.sleep(0.4)
        assert rec.events == [], "nothing may run (not even the sweep) while another instance holds the lease"
        assert daemon.metrics.health()[0], "a standby instance is healthy"
        other.release("shop/erp-to-shop", "other-host:1:abc")
        wait_for(lambda: rec.count("erp-to-shop") >= 1, what="takeover after release")
        assert rec.events[0] == ("sweep", "shop")
    finally:
        assert stop(daemon, thread, result) == 0


def test_reload_swaps_config_clears_cache_and_refuses_bad_config(tmp_path, store, captured_logs):
    settings = make_settings(tmp_path)
    new_settings = make_settings(tmp_path, platforms=("shop", "second"))
    rec = Recorder()
    reloads = iter([ValueError("config.toml: platforms[0].url: bad"), new_settings])

    def reload():
        item = next(reloads)
        if isinstance(item, Exception):
            raise item
        return item

    Cache(store).set("erp", "columns", {"a": 1})
    daemon = Daemon(settings, build_context=build_context_for(store), jobs={"erp-to-shop": rec.erp_to_shop},
                    sweep=rec.sweep, reload=reload, store=store, install_signals=False)
    thread, result = start(daemon)
    try:
        wait_for(lambda: rec.count("erp-to-shop", "shop") >= 1, what="first cycle")
        daemon.request_reload()  # refused: keeps running with the old config
        wait_for(lambda: "reload refused" in captured_logs, what="refusal")
        assert Cache(store).get("erp", "columns") == {"a": 1}, "a refused reload changes nothing"
        n = rec.count("erp-to-shop", "shop")
        wait_for(lambda: rec.count("erp-to-shop", "shop") > n, what="cycles after refused reload")

        daemon.request_reload()
        wait_for(lambda: rec.count("erp-to-shop", "second") >= 1, what="the new platform's cycle")
        assert Cache(store).get("erp", "columns") is None, "reload clears the cache"
        assert ("sweep", "second") in rec.events
        assert rec.events.index(("sweep", "second")) < rec.events.index(("erp-to-shop", "second"))
        assert set(daemon.metrics.health()[1]["jobs"]) == {"shop/erp-to-shop", "second/erp-to-shop"}
    finally:
        assert stop(daemon, thread, result) == 0
    assert rec.count("sweep", "shop") == 1, "a reload does not sweep platforms already swept"


def test_second_daemon_with_same_pid_file_refuses(tmp_path, store, captured_logs):
    import subprocess
    import sys

    settings = make_settings(tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        write_pid(tmp_path / "syncd.pid", holder.pid, store=store_identity(settings.daemon.state_url))
        rec = Recorder()
        daemon = Daemon(settings, build_context=build_context_for(store),
                        jobs={"erp-to-shop": rec.erp_to_shop}, store=store, install_signals=False)
        assert daemon.run() == 1
        assert rec.events == []
        assert "already running" in captured_logs
        assert read_pid(tmp_path / "syncd.pid") == holder.pid
    finally:
        holder.kill()
        holder.wait()


def test_platform_that_cannot_be_built_fails_its_cycles_not_the_daemon(tmp_path, store):
    settings = make_settings(tmp_path, platforms=("good", "bad"))
    rec = Recorder()
    built = {"bad": 0}

    def build(platform):
        if platform.name == "bad":
            built["bad"] += 1
            raise ConnectionError("shop DNS lookup failed")
        return build_context_for(store)(platform)

    daemon = Daemon(settings, build_context=build, jobs={"erp-to-shop": rec.erp_to_shop}, sweep=rec.sweep,
                    store=store, install_signals=False)
    thread, result = start(daemon)
    wait_for(lambda: rec.count("erp-to-shop", "good") >= 2 and built["bad"] >= 3, what="cycles")
    assert stop(daemon, thread, result) == 0
    ok, body = daemon.metrics.health()
    assert not ok
    assert "shop DNS lookup failed" in body["jobs"]["bad/erp-to-shop"]["reason"]
    bad = [r for r in cycle_rows(store) if r.platform == "bad"]
    assert bad and all(r.ok is False and "platform not ready" in r.error for r in bad), \
        "`syncd status` must show the failing platform"


def test_config_error_from_build_context_exits_2(tmp_path, store):
    from syncd.core.errors import ConfigError

    settings = make_settings(tmp_path)

    def build(platform):
        raise ConfigError("unknown sales channel", key="platforms[0].sales_channel", value="Nope")

    daemon = Daemon(settings, build_context=build, jobs={"erp-to-shop": Recorder().erp_to_shop}, store=store,
                    install_signals=False)
    assert daemon.run() == 2
    assert not (tmp_path / "syncd.pid").exists()


def test_watchdog_pings_stop_when_the_scheduler_stalls(tmp_path, store, monkeypatch):
    import os
    import socket

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "n.sock"))
    sock.settimeout(0.05)
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "n.sock"))
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))

    def drain() -> list[str]:
        got = []
        while True:
            try:
                got.append(sock.recv(4096).decode())
            except TimeoutError:
                return got

    rec = Recorder()
    daemon = Daemon(make_settings(tmp_path), build_context=build_context_for(store),
                    jobs={"erp-to-shop": rec.erp_to_shop}, store=store, install_signals=False)
    thread, result = start(daemon)
    try:
        wait_for(lambda: rec.count("erp-to-shop") >= 1, what="first cycle")
        time.sleep(0.5)
        assert sum(m == "WATCHDOG=1" for m in drain()) >= 3, "pings every 0.1 s while healthy"
        daemon._scheduler.pause()  # the scheduler stops dispatching: its heartbeat goes stale
        time.sleep(2.5)
        drain()
        time.sleep(0.5)
        assert "WATCHDOG=1" not in drain(), "no pings for a stalled scheduler: systemd restarts us"
        assert not daemon.healthy()
        daemon._scheduler.resume()
        wait_for(daemon.healthy, what="recovery")
    finally:
        assert stop(daemon, thread, result) == 0
        sock.close()

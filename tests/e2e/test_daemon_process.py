"""The daemon as a real process: SIGTERM mid-cycle finishes the cycle's record and exits 0,
systemd notifications arrive on a socket the test binds, a stuck cycle is abandoned after the
shutdown timeout, and `clear-cache --restart` finds a foreground daemon through its pid file
and makes it reload."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from syncd.config.model import Settings
from syncd.core.errors import SyncdError
from syncd.shell.pidfile import read_pid
from syncd.shell.service_control import restart_running_service
from syncd.state.cache import Cache
from syncd.state.db import open_state
from syncd.state.schema import cycles, leases

REPO = Path(__file__).resolve().parents[2]

# The child reads its settings from a JSON file (the reload re-reads it) and runs a job that
# marks its start in a file, then works for JOB_SECONDS.
CHILD = textwrap.dedent(
    """
    import json, os, sys, time
    from pathlib import Path
    from syncd.config.model import Settings
    from syncd.shell.daemon import run_daemon
    from syncd.flows.context import CycleReport, PlatformContext
    from syncd.shell.logs import configure_logging

    configure_logging("json", "info", stream=sys.stderr)
    cfg, marks = Path(sys.argv[1]), Path(sys.argv[2])
    job_seconds = float(os.environ.get("JOB_SECONDS", "0"))

    def load():
        return Settings.model_validate(json.loads(cfg.read_text()))

    def mark(text):
        with marks.open("a") as fh:
            fh.write(text + "\\n")

    def build(platform):
        return PlatformContext(settings=None, platform=platform, erp=None, shop=None, state=None)

    def job(ctx):
        mark(f"start {ctx.platform.name}")
        time.sleep(job_seconds)
        report = CycleReport(ctx.platform.name, "erp-to-shop")
        report.add(10001, "created")
        mark(f"end {ctx.platform.name}")
        return report

    def sweep(ctx):
        mark(f"sweep {ctx.platform.name}")

    sys.exit(run_daemon(load(), build_context=build, jobs={"erp-to-shop": job}, sweep=sweep, reload=load))
    """
)


def settings_dict(tmp_path: Path, platforms=("shop",), **daemon) -> dict:
    return {
        "daemon": {
            "state_url": f"sqlite:///{tmp_path / 'state.db'}",
            "poll_interval": "1h",
            "shutdown_timeout": "20s",
            **daemon,
        },
        "erp": {"url": "sqlite://"},
        "platforms": [
            {"name": n, "url": "http://127.0.0.1:9", "client_id": "id", "client_secret": "env:X"}
            for n in platforms
        ],
    }


class Child:
    def __init__(self, tmp_path: Path, cfg: dict, *, job_seconds: float = 0, env: dict | None = None):
        self.tmp = tmp_path
        self.cfg_path = tmp_path / "settings.json"
        self.cfg_path.write_text(json.dumps(cfg))
        self.marks = tmp_path / "marks.txt"
        self.marks.touch()
        script = tmp_path / "child.py"
        script.write_text(CHILD)
        full_env = dict(os.environ, PYTHONPATH=str(REPO), JOB_SECONDS=str(job_seconds))
        for k in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
            full_env.pop(k, None)
        full_env.update(env or {})
        self.stderr = tmp_path / "stderr.log"
        self.proc = subprocess.Popen(
            [sys.executable, str(script), str(self.cfg_path), str(self.marks)],
            env=full_env,
            stdout=subprocess.DEVNULL,
            stderr=self.stderr.open("w"),
        )

    def marks_list(self) -> list[str]:
        return self.marks.read_text().splitlines()

    def wait_mark(self, text: str, timeout: float = 20, count: int = 1) -> None:
        deadline = time.monotonic() + timeout
        while self.marks_list().count(text) < count:
            if self.proc.poll() is not None:
                pytest.fail(f"daemon exited {self.proc.returncode}: {self.stderr.read_text()[-3000:]}")
            assert time.monotonic() < deadline, f"no {text!r}; marks {self.marks_list()}"
            time.sleep(0.02)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def notify_socket(tmp_path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp_path / "notify.sock")
    sock.bind(path)
    sock.settimeout(0.2)
    yield sock, path
    sock.close()


def drain(sock: socket.socket) -> list[dict[str, str]]:
    messages = []
    while True:
        try:
            data = sock.recv(4096)
        except TimeoutError:
            return messages
        messages.append(dict(line.split("=", 1) for line in data.decode("utf-8").splitlines()))


def rows(db: Path, table):
    store = open_state(f"sqlite:///{db}", migrate=False)
    try:
        with store.connect() as conn:
            return conn.execute(select(table)).all()
    finally:
        store.close()


def test_sigterm_mid_cycle_finishes_the_record_and_exits_0(tmp_path, notify_socket):
    sock, path = notify_socket
    child = Child(tmp_path, settings_dict(tmp_path), job_seconds=1.5,
                  env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"})
    try:
        child.wait_mark("start shop")
        pid_file = tmp_path / "state.pid"
        assert read_pid(pid_file) == child.proc.pid, "pid file next to the SQLite state DB"
        time.sleep(0.5)  # some watchdog pings
        child.proc.send_signal(signal.SIGTERM)
        assert child.proc.wait(timeout=20) == 0, child.stderr.read_text()[-3000:]
    finally:
        child.kill()
    assert child.marks_list() == ["sweep shop", "start shop", "end shop"], "the cycle in flight finished"
    (row,) = rows(tmp_path / "state.db", cycles)
    assert row.ok is True and row.finished is not None and row.counts == {"created": 1}
    assert rows(tmp_path / "state.db", leases) == [], "leases released"
    assert not pid_file.exists(), "pid file removed"

    messages = drain(sock)
    kinds = [next(k for k in m if k in ("READY", "WATCHDOG", "STOPPING", "STATUS")) for m in messages]
    assert kinds[0] == "READY" and messages[0]["MAINPID"] == str(child.proc.pid)
    assert kinds.count("WATCHDOG") >= 2, f"watchdog pings at half the interval: {kinds}"
    stop_at = kinds.index("STOPPING")
    assert all(k != "WATCHDOG" for k in kinds[stop_at + 1:]), "no pings after STOPPING"
    assert any("shop erp-to-shop: ok" in m.get("STATUS", "") for m in messages[stop_at:]), \
        "the finished cycle is reported after STOPPING"


def test_stuck_cycle_is_abandoned_after_shutdown_timeout(tmp_path):
    child = Child(tmp_path, settings_dict(tmp_path, shutdown_timeout="500ms"), job_seconds=60)
    try:
        child.wait_mark("start shop")
        started = time.monotonic()
        child.proc.send_signal(signal.SIGTERM)
        assert child.proc.wait(timeout=20) == 1, "an abandoned cycle is not a clean stop"
        assert time.monotonic() - started < 10, "the daemon waited far longer than shutdown_timeout"
    finally:
        child.kill()
    (row,) = rows(tmp_path / "state.db", cycles)
    assert row.ok is False and "shutdown timeout" in row.error and row.finished is not None
    assert not (tmp_path / "state.pid").exists()


def test_restart_through_pid_file_makes_the_daemon_reload(tmp_path, notify_socket):
    sock, path = notify_socket
    cfg = settings_dict(tmp_path)
    child = Child(tmp_path, cfg, env={"NOTIFY_SOCKET": path})
    try:
        child.wait_mark("end shop")
        store = open_state(f"sqlite:///{tmp_path / 'state.db'}")
        Cache(store).set("shop", "sales_channels", ["Storefront"])
        # The operator adds a platform, then runs `syncd clear-cache --restart`.
        child.cfg_path.write_text(json.dumps(settings_dict(tmp_path, platforms=("shop", "second"))))
        settings = Settings.model_validate(cfg)
        sentence = restart_running_service(settings, booted=False)
        assert f"pid {child.proc.pid}" in sentence and "SIGHUP" in sentence
        child.wait_mark("end second")
        assert Cache(store).get("shop", "sales_channels") is None, "the reload cleared the cache"
        store.close()
        assert child.proc.poll() is None, "SIGHUP must not stop the daemon"
        messages = drain(sock)
        assert any("RELOADING" in m for m in messages)
        assert "sweep second" in child.marks_list()
        assert child.marks_list().index("sweep second") < child.marks_list().index("start second")
        child.proc.send_signal(signal.SIGINT)
        assert child.proc.wait(timeout=20) == 0
    finally:
        child.kill()
    with pytest.raises(SyncdError, match="no running syncd found"):
        restart_running_service(Settings.model_validate(cfg), booted=False)


def test_restart_uses_systemctl_when_systemd_runs_the_unit(tmp_path):
    log = tmp_path / "calls.txt"
    fake = tmp_path / "systemctl"
    fake.write_text(f"#!/bin/sh\necho \"$@\" >> {log}\nexit 0\n")
    fake.chmod(0o755)
    settings = Settings.model_validate(settings_dict(tmp_path))
    sentence = restart_running_service(settings, config_path="/etc/syncd/acme.toml", systemctl=str(fake),
                                       booted=True)
    assert "syncd@acme.service" in sentence
    assert log.read_text().splitlines() == [
        "is-active --quiet syncd@acme.service",
        "restart syncd@acme.service",
    ]

    fake.write_text(f"#!/bin/sh\necho \"$@\" >> {log}\n[ \"$1\" = is-active ] && exit 0\n"
                    "echo 'Access denied' >&2; exit 4\n")
    with pytest.raises(SyncdError, match="Access denied"):
        restart_running_service(
            settings, config_path="/etc/syncd/config.toml", systemctl=str(fake), booted=True
        )
    assert log.read_text().splitlines()[-1] == "restart syncd.service"


def test_inactive_unit_falls_back_to_pid_file(tmp_path):
    fake = tmp_path / "systemctl"
    fake.write_text("#!/bin/sh\nexit 3\n")  # is-active: inactive
    fake.chmod(0o755)
    settings = Settings.model_validate(settings_dict(tmp_path))
    with pytest.raises(SyncdError, match=r"no active systemd unit syncd.service.*state.pid"):
        restart_running_service(settings, systemctl=str(fake), booted=True)


def test_missing_systemctl_falls_back_to_pid_file(tmp_path):
    settings = Settings.model_validate(settings_dict(tmp_path))
    with pytest.raises(SyncdError, match="no running syncd found"):
        restart_running_service(settings, systemctl=str(tmp_path / "no-such-systemctl"), booted=True)


TWO_CHILD = textwrap.dedent(
    """
    import json, os, sys, time
    from syncd.config.model import Settings
    from syncd.shell.daemon import run_daemon
    from syncd.flows.context import CycleReport, PlatformContext
    from syncd.shell.logs import configure_logging

    configure_logging("json", "warning", stream=sys.stderr)
    url, out, piddir = sys.argv[1:4]
    settings = Settings.model_validate({
        "daemon": {"state_url": url, "poll_interval": "50ms", "lease_ttl": "30s",
                   "pid_file": os.path.join(piddir, f"{os.getpid()}.pid")},
        "erp": {"url": "sqlite://"},
        "platforms": [{"name": "shop", "url": "http://127.0.0.1:9", "client_id": "i",
                       "client_secret": "env:X"}],
    })

    def build(platform):
        return PlatformContext(settings=None, platform=platform, erp=None, shop=None, state=None)

    def job(ctx):
        start = time.time()
        time.sleep(0.03)
        with open(out, "a") as fh:
            fh.write(json.dumps([os.getpid(), start, time.time()]) + "\\n")
        return CycleReport("shop", "erp-to-shop")

    sys.exit(run_daemon(settings, build_context=build, jobs={"erp-to-shop": job}))
    """
)


@pytest.mark.realdb
def test_two_daemons_on_one_postgresql_store_never_overlap(tmp_path):
    from sqlalchemy import create_engine, text

    from tests.support.dbs import pg_url, unique_name

    base = pg_url()
    schema = unique_name("daemons")
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = f"{base}?options=-csearch_path%3D{schema}"
    script = tmp_path / "two.py"
    script.write_text(TWO_CHILD)
    out = tmp_path / "runs.jsonl"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    for k in ("NOTIFY_SOCKET", "WATCHDOG_USEC"):
        env.pop(k, None)
    procs = []
    try:
        procs = [subprocess.Popen([sys.executable, str(script), url, str(out), str(tmp_path)], env=env,
                                  stderr=subprocess.PIPE, text=True) for _ in range(2)]
        deadline = time.monotonic() + 60

        def progress() -> tuple[int, set[int]]:
            lines = out.read_text().splitlines() if out.exists() else []
            return len(lines), {json.loads(line)[0] for line in lines}

        def wait_for(condition, what: str) -> None:
            while not condition():
                assert time.monotonic() < deadline, f"{what}: {progress()}"
                assert all(p.poll() is None for p in procs if p not in stopped), [
                    p.stderr.read() for p in procs if p.poll() is not None
                ]
                time.sleep(0.05)

        stopped: list[subprocess.Popen] = []
        wait_for(lambda: progress()[0] >= 10, "too few cycles")
        if len(progress()[1]) < 2:
            # Lease fairness is not promised: one instance may win every tick. Stop it, and the
            # other must take over the work.
            holder = next(p for p in procs if p.pid in progress()[1])
            holder.send_signal(signal.SIGTERM)
            assert holder.wait(timeout=30) == 0, holder.stderr.read()
            stopped.append(holder)
            wait_for(lambda: len(progress()[1]) == 2, "the other instance never took over")
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        codes = [p.wait(timeout=30) for p in procs]
        assert codes == [0, 0], [p.stderr.read() for p in procs]
        with admin.connect() as conn:
            rows = conn.execute(text(f'SELECT holder, started, finished FROM "{schema}".cycles')).all()
            left = conn.execute(text(f'SELECT count(*) FROM "{schema}".leases')).scalar_one()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
    runs = sorted((json.loads(line) for line in out.read_text().splitlines()), key=lambda r: r[1])
    assert {r[0] for r in runs} == {p.pid for p in procs}, "both instances should have worked"
    for (pid1, _s1, e1), (pid2, s2, _e2) in zip(runs, runs[1:], strict=False):
        assert s2 >= e1, f"pid {pid2} started at {s2} while pid {pid1} ran until {e1}"
    assert len(rows) == len(runs) and all(r.finished is not None for r in rows)
    assert left == 0, "both released their leases at stop"

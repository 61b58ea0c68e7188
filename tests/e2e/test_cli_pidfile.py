"""Issue 11, defect 7, with real processes: a pid file naming a live process that is not this
store's daemon makes `syncd run` refuse nothing and `syncd clear-cache --restart` signal
nothing; the real daemon is still found (tests/e2e/test_cli_wired_daemon.py covers its SIGHUP)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from syncd.shell.pidfile import read_pid
from tests.e2e.test_cli_wired_daemon import _events, _start, _stop, _wait
from tests.support import wired_env as wired
from tests.support.wired_env import Env

# fixtures, found by these module-level names: ``env`` runs each case for each platform kind
env, shop, sandbox = wired.kind_env, wired.shop, wired.sandbox

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and pid files")


@pytest.fixture
def sleeper():
    proc = subprocess.Popen(["sleep", "60"])
    yield proc
    proc.kill()
    proc.wait()


def test_a_pid_file_naming_an_unrelated_process_is_neither_signalled_nor_obeyed(env: Env, capsys, sleeper,
                                                                                monkeypatch):
    monkeypatch.setattr("syncd.shell.service_control.systemd_booted", lambda: False)
    pid_file = env.root / "syncd.pid"
    pid_file.write_text(f"{sleeper.pid}\n")  # what a crashed daemon left; the pid got reused

    code, out, err = env.cli(capsys, "clear-cache", "--restart")
    assert code == 1
    assert "entries removed" in out
    assert f"pid {sleeper.pid} is not a syncd daemon" in err and "not signalled" in err
    assert sleeper.poll() is None, "sleep must not have been signalled"

    log = env.root / "daemon.log"
    proc = _start(env, log)
    try:
        _wait(lambda: any(e.get("event") == "daemon started" for e in _events(log)), "the start", proc, log)
        assert read_pid(pid_file) == proc.pid
        warning = next(e for e in _events(log) if e.get("event") == "replacing stale pid file")
        assert warning["level"] == "warning" and warning["stale_pid"] == sleeper.pid
        assert "not a syncd daemon" in warning["reason"]
    finally:
        assert _stop(proc) == 0, log.read_text()[-3000:]
    assert sleeper.poll() is None


def test_a_daemon_for_another_state_store_sharing_the_pid_file_is_left_alone(env: Env, capsys, monkeypatch):
    monkeypatch.setattr("syncd.shell.service_control.systemd_booted", lambda: False)
    log = env.root / "daemon.log"
    proc = _start(env, log)
    try:
        _wait(lambda: any(e.get("event") == "daemon started" for e in _events(log)), "the start", proc, log)
        # A second tenant, its own state store, the same [daemon] pid_file by mistake.
        other = env.root / "other.toml"
        other.write_text(env.config.read_text().replace(str(env.state_db.as_posix()),
                                                        str((env.root / "other" / "state.db").as_posix())))
        code, out, err = env.cli(capsys, "--config", other, "clear-cache", "--restart")
        assert code == 1, out + err
        assert "another state store" in err and "not signalled" in err
        code, out, err = env.cli(capsys, "--config", other, "run")
        assert code == 1
        assert read_pid(env.root / "syncd.pid") == proc.pid

        code, out, err = env.cli(capsys, "clear-cache", "--restart")  # the daemon's own store
        assert code == 0, err
        assert f"pid {proc.pid}" in out
        _wait(lambda: any(e.get("event") == "configuration reloaded" for e in _events(log)),
              "the reload", proc, log)
        assert sum(e.get("signal") == "SIGHUP" for e in _events(log)) == 1, json.dumps(_events(log))[-2000:]
    finally:
        assert _stop(proc) == 0, log.read_text()[-3000:]

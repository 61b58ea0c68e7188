"""`syncd run` as a real process against the SQLite ERP, the sandbox and the outbox: it creates
accounts and mails them, stops cleanly on SIGTERM with every password field empty, and
`syncd clear-cache --restart` finds it through its pid file and makes it reload."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from syncd.shell.pidfile import read_pid
from tests.support import wired_env as wired
from tests.support.wired_env import Env, assert_nowhere, read_mail, subprocess_env

# fixtures, found by these module-level names: ``env`` runs each case for each platform kind
env, shop, sandbox = wired.kind_env, wired.shop, wired.sandbox

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def _start(e: Env, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "syncd", "--config", str(e.config), "--log-format", "json", "run"],
        stdout=subprocess.DEVNULL, stderr=log.open("wb"), env=subprocess_env(e), cwd=e.root,
    )


def _events(log: Path) -> list[dict]:
    out = []
    for line in log.read_text(errors="replace").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def _wait(predicate, what: str, proc: subprocess.Popen, log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            pytest.fail(f"syncd run exited {proc.returncode} before {what}:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise


def test_run_creates_accounts_and_mails_and_stops_clean_on_sigterm(env: Env, capsys):
    env.write_config(poll="1s")
    log = env.root / "daemon.log"
    proc = _start(env, log)
    try:
        _wait(lambda: len(env.outbox_files()) == 2, "two credential mails", proc, log)
        # A new address while it runs: picked up by a later poll, no restart needed.
        wired.erp_fixtures.insert_addresses(env.erp_url, wired.TABLE, [
            {"number": 10004, "last_name": "Dach", "email": "dora@example.com", "street": "Allee 4",
             "zip": "50667", "city": "Köln", "country": "DE"},
        ])
        _wait(lambda: len(env.outbox_files()) == 3, "the third mail", proc, log)
    finally:
        code = _stop(proc)
    assert code == 0, log.read_text()[-3000:]
    assert all(v is None for v in env.password_fields().values())  # I2 after a clean stop
    assert not (env.root / "syncd.pid").exists()
    text = log.read_text()
    assert any(e.get("event") == "daemon stopped" for e in _events(log))
    for path in env.outbox_files():
        to, password = read_mail(path)
        assert env.kit.login(to, password)
        assert_nowhere(password, text, files=[env.state_db, env.state_db.with_name("state.db-wal")])
    code, out, _ = env.cli(capsys, "status", "--json")
    shop = json.loads(out)["platforms"][0]
    assert code == 0 and shop["linked"] == 3 and shop["last_cycle"]["ok"] is True


def test_clear_cache_restart_makes_the_foreground_daemon_reload(env: Env, capsys, monkeypatch):
    monkeypatch.setattr("syncd.shell.service_control.systemd_booted", lambda: False)
    log = env.root / "daemon.log"
    proc = _start(env, log)
    try:
        pid_file = env.root / "syncd.pid"
        _wait(lambda: any(e.get("event") == "cycle finished" and e.get("direction") == "erp-to-shop"
                          for e in _events(log)), "a first erp-to-shop cycle", proc, log)
        assert read_pid(pid_file) == proc.pid
        # Reports read while the daemon runs (no migrating open that would wait for its lock).
        started = time.monotonic()
        code, out, err = env.cli(capsys, "status", "--json")
        assert code == 0, err
        assert json.loads(out)["platforms"][0]["linked"] == 2 and time.monotonic() - started < 5

        code, out, err = env.cli(capsys, "clear-cache", "--restart")

        assert code == 0, err
        assert "entries removed" in out and f"pid {proc.pid}" in out
        _wait(lambda: any(e.get("event") == "configuration reloaded" for e in _events(log)),
              "the reload", proc, log)
        time.sleep(0.3)
        assert proc.poll() is None  # reloaded, still running
        assert any(e.get("signal") == "SIGHUP" for e in _events(log))
    finally:
        code = _stop(proc)
    assert code == 0, log.read_text()[-3000:]


def test_run_reload_keeps_the_running_config_when_the_new_one_is_bad(env: Env, capsys, monkeypatch):
    log = env.root / "daemon.log"
    proc = _start(env, log)
    try:
        _wait(lambda: any(e.get("event") == "daemon started" for e in _events(log)), "the start", proc, log)
        bad = env.config.read_text().replace('password_field = "Sel5"', 'password_field = "Sel55"')
        env.config.write_text(bad)
        proc.send_signal(signal.SIGHUP)
        _wait(lambda: any(e.get("event") == "reload refused; the running configuration stays"
                          for e in _events(log)), "the refused reload", proc, log)
        refused = next(e for e in _events(log) if e.get("event", "").startswith("reload refused"))
        assert "Sel55" in refused["error"] and "password_field" in refused["error"]
        assert proc.poll() is None
    finally:
        code = _stop(proc)
    assert code == 0


def test_sync_draws_a_progress_bar_on_a_terminal(env: Env):
    import os
    import pty

    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "syncd", "--config", str(env.config), "--log-level", "warning", "sync",
             "--direction", "erp-to-shop"],
            stdin=subprocess.DEVNULL, stdout=follower, stderr=follower, env=subprocess_env(env), cwd=env.root,
        )
        os.close(follower)
        chunks = []
        while True:
            try:
                data = os.read(leader, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        assert proc.wait(timeout=60) == 0
    finally:
        os.close(leader)
    shown = b"".join(chunks).decode(errors="replace")
    assert "shop erp-to-shop" in shown  # the bar's label
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", shown)
    assert re.search(r"shop erp-to-shop [━ ]*3/\S*", plain), plain[:400]  # done from ctx.progress
    assert "created 2" in shown

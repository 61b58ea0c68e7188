"""Pid file: written and removed, stale files replaced, a live owner refuses a second daemon;
a pid that now names some other process (issue 11, defect 7) is neither trusted nor signalled."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from syncd.shell.pidfile import (
    AlreadyRunning,
    PidFile,
    owner_of,
    read_pid,
    remove_pid,
    running_pid,
    store_identity,
    write_pid,
)

STORE = store_identity("sqlite:////var/lib/syncd/acme/state.db")


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_write_read_remove(tmp_path):
    path = tmp_path / "run" / "syncd.pid"
    write_pid(path)
    assert read_pid(path) == os.getpid()
    assert running_pid(path) == os.getpid()
    assert remove_pid(path)
    assert not path.exists()
    assert read_pid(path) is None


def test_live_owner_refuses_second_daemon(tmp_path):
    path = tmp_path / "syncd.pid"
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        write_pid(path, other.pid, store=STORE)
        with pytest.raises(AlreadyRunning) as err:
            write_pid(path, store=STORE)
        assert str(other.pid) in str(err.value) and str(path) in str(err.value)
        assert read_pid(path) == other.pid, "the live owner's file must be left alone"
        assert not remove_pid(path), "we must not remove another process's pid file"
        assert path.exists()
    finally:
        other.kill()
        other.wait()


def test_stale_file_is_replaced(tmp_path):
    path = tmp_path / "syncd.pid"
    dead = _dead_pid()
    path.write_text(f"{dead}\n")
    assert running_pid(path) is None
    with PidFile(path):
        assert read_pid(path) == os.getpid()
    assert not path.exists()


@pytest.mark.parametrize("content", ["", "garbage\n", "-5\n"])
def test_garbage_file_counts_as_stale(tmp_path, content):
    path = tmp_path / "syncd.pid"
    path.write_text(content)
    assert read_pid(path) is None
    write_pid(path)
    assert read_pid(path) == os.getpid()


@pytest.fixture
def sleeper():
    proc = subprocess.Popen(["sleep", "60"])
    yield proc
    proc.kill()
    proc.wait()


def _fake_syncd_run(tmp_path: Path) -> subprocess.Popen:
    """A live process whose command line is ``.../syncd --config X run`` (an old daemon)."""
    script = tmp_path / "bin" / "syncd"
    script.parent.mkdir()
    script.write_text(f"#!{sys.executable}\nimport time\ntime.sleep(60)\n")
    script.chmod(0o755)
    return subprocess.Popen([str(script), "--config", str(tmp_path / "c.toml"), "run"])


@pytest.mark.parametrize("fmt", ["old", "reused"])
def test_a_pid_now_naming_an_unrelated_process_is_replaced_with_a_warning(tmp_path, sleeper, captured_logs,
                                                                         fmt):
    path = tmp_path / "state.pid"
    if fmt == "old":  # a file from before start times were recorded
        path.write_text(f"{sleeper.pid}\n")
    else:  # the daemon that wrote it started an hour before this pid's process: the pid was reused
        started = psutil.Process(sleeper.pid).create_time() - 3600
        path.write_text(f"{sleeper.pid}\n" + json.dumps({"started": started, "store": STORE}) + "\n")
    owner = owner_of(path, STORE)
    assert owner is not None and not owner.ours and not owner.blocks
    assert running_pid(path, STORE) is None
    with PidFile(path, store=STORE):
        assert read_pid(path) == os.getpid()
        assert running_pid(path, STORE) == os.getpid()
    warning = next(e for e in captured_logs.events() if e["event"] == "replacing stale pid file")
    assert warning["level"] == "warning" and warning["stale_pid"] == sleeper.pid
    assert ("'sleep'" in warning["reason"]) if fmt == "old" else ("another process" in warning["reason"])
    assert sleeper.poll() is None


def test_a_live_daemon_for_another_state_store_is_not_ours_but_not_replaced(tmp_path, sleeper):
    path = tmp_path / "shared.pid"
    write_pid(path, sleeper.pid, store=store_identity("postgresql://syncd@db/other"))
    owner = owner_of(path, STORE)
    assert owner is not None and not owner.ours and owner.blocks and "another state store" in owner.reason
    assert running_pid(path, STORE) is None
    with pytest.raises(AlreadyRunning, match="another state store"):
        write_pid(path, store=STORE)
    assert read_pid(path) == sleeper.pid


def test_an_old_format_file_naming_a_syncd_run_blocks_but_is_not_ours(tmp_path):
    old = _fake_syncd_run(tmp_path)
    try:
        path = tmp_path / "state.pid"
        path.write_text(f"{old.pid}\n")
        owner = owner_of(path, STORE)
        assert owner is not None and not owner.ours and owner.blocks and "old-format" in owner.reason
        with pytest.raises(AlreadyRunning, match="old-format"):
            write_pid(path, store=STORE)
        assert read_pid(path) == old.pid
    finally:
        old.kill()
        old.wait()


def test_the_record_holds_start_time_and_store_but_no_secret(tmp_path):
    path = tmp_path / "state.pid"
    url = "postgresql://syncd:Geheim-42@db.example/syncd"
    write_pid(path, store=store_identity(url))
    first, second = path.read_text().splitlines()
    assert int(first) == os.getpid()
    record = json.loads(second)
    assert abs(record["started"] - psutil.Process().create_time()) < 0.01
    assert record["store"] == store_identity("postgresql://syncd:other@db.example/syncd")  # password-blind
    assert "Geheim-42" not in path.read_text()
    assert running_pid(path, record["store"]) == os.getpid()
    assert running_pid(path, STORE) is None
    # the same SQLite file named two ways is one store
    assert store_identity(f"sqlite:///{tmp_path}/x/../state.db") == store_identity(f"sqlite:///{tmp_path}/state.db")

"""Pid file: written and removed, stale files replaced, a live owner refuses a second daemon."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from syncd.pidfile import AlreadyRunning, PidFile, read_pid, remove_pid, running_pid, write_pid


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
        write_pid(path, other.pid)
        with pytest.raises(AlreadyRunning) as err:
            write_pid(path)
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

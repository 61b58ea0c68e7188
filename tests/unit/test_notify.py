"""sd_notify: datagrams reach a socket the test binds (path and abstract), UTF-8 intact."""

from __future__ import annotations

import os
import socket
import uuid

import pytest

from syncd.shell import notify


@pytest.fixture(params=["path", "abstract"])
def notify_socket(request, tmp_path, monkeypatch):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if request.param == "path":
        address = str(tmp_path / "notify.sock")
        sock.bind(address)
        monkeypatch.setenv("NOTIFY_SOCKET", address)
    else:
        name = f"syncd-test-{uuid.uuid4().hex}"
        sock.bind("\0" + name)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
    sock.settimeout(2)
    yield sock
    sock.close()


def _recv(sock: socket.socket) -> dict[str, str]:
    data = sock.recv(4096).decode("utf-8")
    return dict(line.split("=", 1) for line in data.splitlines())


def test_ready_stopping_watchdog_status(notify_socket):
    assert notify.ready("läuft – 2 Plattformen")
    msg = _recv(notify_socket)
    assert msg["READY"] == "1"
    assert msg["STATUS"] == "läuft – 2 Plattformen"
    assert msg["MAINPID"] == str(os.getpid())

    assert notify.watchdog()
    assert _recv(notify_socket) == {"WATCHDOG": "1"}

    assert notify.status("Größe € ok")
    assert _recv(notify_socket) == {"STATUS": "Größe € ok"}

    assert notify.reloading()
    msg = _recv(notify_socket)
    assert msg["RELOADING"] == "1" and int(msg["MONOTONIC_USEC"]) > 0

    assert notify.stopping("bye")
    assert _recv(notify_socket) == {"STOPPING": "1", "STATUS": "bye"}


def test_no_socket_is_a_silent_no_op(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert notify.ready() is False
    assert notify.watchdog() is False


def test_unreachable_socket_is_logged_not_raised(monkeypatch, tmp_path, captured_logs):
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens"))
    assert notify.ready() is False
    assert "sd_notify failed" in captured_logs


@pytest.mark.parametrize(
    ("usec", "pid", "expected"),
    [
        ("30000000", None, 30.0),
        ("30000000", "self", 30.0),
        ("30000000", "1", None),  # meant for another process (e.g. our parent)
        ("0", None, None),
        ("junk", None, None),
        (None, None, None),
    ],
)
def test_watchdog_interval(monkeypatch, usec, pid, expected):
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    if usec is not None:
        monkeypatch.setenv("WATCHDOG_USEC", usec)
    if pid is not None:
        monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()) if pid == "self" else pid)
    assert notify.watchdog_interval() == expected

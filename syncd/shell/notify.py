"""sd_notify over ``$NOTIFY_SOCKET`` (systemd ``Type=notify``), stdlib only.

Without the variable every call is a silent no-op, so the daemon sends the same messages
whether or not systemd started it. Messages are UTF-8 (the ``sdnotify`` package encodes
latin-1 and drops a ``STATUS`` with a euro sign). A send that fails is logged, never raised:
losing a status line must not kill the service (the watchdog notices a daemon that is truly
stuck).
"""

from __future__ import annotations

import os
import socket
import time

import structlog

log = structlog.get_logger("syncd.notify")


def _address() -> str | None:
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return None
    if path.startswith("@"):
        # Linux abstract namespace: systemd writes '@', the kernel wants a leading NUL.
        return "\0" + path[1:]
    return path


def notify(**fields: object) -> bool:
    """Send ``KEY=value`` lines (``notify(READY=1, STATUS="...")``); True when sent."""
    address = _address()
    if address is None or not fields:
        return False
    payload = "\n".join(f"{key}={value}" for key, value in fields.items()).encode("utf-8")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(payload)
    except OSError as exc:
        log.warning("sd_notify failed", error=str(exc), fields=sorted(fields))
        return False
    return True


def ready(status: str | None = None) -> bool:
    fields: dict[str, object] = {"READY": 1}
    if status:
        fields["STATUS"] = status
    fields["MAINPID"] = os.getpid()
    return notify(**fields)


def stopping(status: str | None = None) -> bool:
    fields: dict[str, object] = {"STOPPING": 1}
    if status:
        fields["STATUS"] = status
    return notify(**fields)


def reloading(status: str | None = None) -> bool:
    # systemd >= 253 wants the monotonic time of the reload request next to RELOADING=1.
    fields: dict[str, object] = {"RELOADING": 1, "MONOTONIC_USEC": time.monotonic_ns() // 1000}
    if status:
        fields["STATUS"] = status
    return notify(**fields)


def watchdog() -> bool:
    return notify(WATCHDOG=1)


def status(text: str) -> bool:
    return notify(STATUS=text)


def watchdog_interval() -> float | None:
    """The watchdog period in seconds when systemd expects pings from *this* process.

    ``WATCHDOG_PID`` guards against a child process inheriting the variables and pinging in
    the parent's place (systemd sets it to the main PID)."""
    usec = os.environ.get("WATCHDOG_USEC")
    if not usec:
        return None
    pid = os.environ.get("WATCHDOG_PID")
    if pid:
        try:
            if int(pid) != os.getpid():
                return None
        except ValueError:
            return None
    try:
        value = int(usec)
    except ValueError:
        log.warning("ignoring malformed WATCHDOG_USEC", value=usec)
        return None
    if value <= 0:
        return None
    return value / 1_000_000

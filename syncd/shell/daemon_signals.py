"""How a running daemon is told to stop or reload from outside: POSIX signals (SIGTERM/SIGINT
stop, SIGHUP reloads) and, for the Windows service, a stop event set by the service manager.

Kept apart from ``syncd.shell.daemon`` so that the Windows service host (``syncd.winservice``) can hand
over its stop event without the daemon ever importing the service module.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

import structlog

log = structlog.get_logger("syncd.daemon")

# Set by the Windows service (``syncd.winservice``) before it runs `syncd run` in-process: its
# stop request is the Windows counterpart of SIGTERM.
_external_stop: threading.Event | None = None


def use_external_stop(event: threading.Event | None) -> threading.Event | None:
    """Make daemons created from now on stop when ``event`` is set; returns the previous one."""
    global _external_stop
    previous, _external_stop = _external_stop, event
    return previous


def external_stop() -> threading.Event | None:
    """The stop event a service host handed over, if any."""
    return _external_stop


def trap_signals(stack: ExitStack, *, on_stop: Callable[[], None], on_reload: Callable[[], None]) -> None:
    """SIGTERM/SIGINT call ``on_stop``, SIGHUP (where it exists) ``on_reload``; the previous
    handlers come back when ``stack`` closes. Python delivers signals to the main thread only:
    elsewhere (a daemon started from a test's thread) nothing is trapped."""
    if threading.current_thread() is not threading.main_thread():
        log.warning("signals not trapped: the daemon does not run in the main thread")
        return

    def stop(signum: int, _frame: object) -> None:
        log.info("signal received", signal=signal.Signals(signum).name)
        on_stop()

    def hup(_signum: int, _frame: object) -> None:
        log.info("signal received", signal="SIGHUP")
        on_reload()

    wanted: dict[int, Callable[[int, Any], None]] = {signal.SIGTERM: stop, signal.SIGINT: stop}
    if hasattr(signal, "SIGHUP"):
        wanted[signal.SIGHUP] = hup
    for signum, handler in wanted.items():
        previous = signal.signal(signum, handler)
        stack.callback(signal.signal, signum, previous)

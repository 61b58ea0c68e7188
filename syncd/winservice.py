"""The Windows service host's entry point: ``SyncdService`` (pywin32, the optional ``windows``
extra). Imports cleanly on every system; only the service class needs Windows.

Installed services name this class by its dotted path (``syncd.shell.service_control.SERVICE_CLASS``),
so it stays here. Nothing in syncd imports this module: the service manager loads it, and it
loads the CLI. Installing, starting and stopping the service is ``syncd.shell.service_control``.

The service runs exactly what `syncd run` runs: ``SvcDoRun`` calls the CLI in-process
(``syncd --config PATH run``) after handing the daemon a stop event
(``syncd.shell.daemon_signals.use_external_stop``) that ``SvcStop`` sets — the Windows counterpart of
SIGTERM. The configuration path is kept with the service registration (service custom option
``config``).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any

from syncd.shell.service_control import (
    CONFIG_OPTION,
    DESCRIPTION,
    DISPLAY_NAME,
    SERVICE_NAME,
    STOP_WAIT_HINT_MS,
)


class ServiceLoop:
    """What the service does, free of pywin32 so it is testable anywhere: run the CLI's
    `run` with a stop event the service manager's stop request sets."""

    def __init__(self, config_path: str | None, run_cli: Callable[[list[str]], int] | None = None) -> None:
        self.config_path = config_path
        self.stop_event = threading.Event()
        self._run_cli = run_cli

    def args(self) -> list[str]:
        args = ["--log-format", "json"]
        if self.config_path:
            args += ["--config", self.config_path]
        return [*args, "run"]

    def run(self) -> int:
        from syncd.shell.daemon_signals import use_external_stop

        run_cli = self._run_cli
        if run_cli is None:
            from syncd.shell.cli import run_cli as cli_entry

            run_cli = cli_entry
        previous = use_external_stop(self.stop_event)
        try:
            return int(run_cli(self.args()) or 0)
        finally:
            use_external_stop(previous)

    def stop(self) -> None:
        self.stop_event.set()


if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    try:
        import servicemanager
        import win32service
        import win32serviceutil
    except ImportError:  # the extra is not installed: service_control.service_command explains
        pass
    else:

        class SyncdService(win32serviceutil.ServiceFramework):
            _svc_name_ = SERVICE_NAME
            _svc_display_name_ = DISPLAY_NAME
            _svc_description_ = DESCRIPTION

            def __init__(self, args: Any) -> None:
                super().__init__(args)
                try:
                    config = win32serviceutil.GetServiceCustomOption(self._svc_name_, CONFIG_OPTION)
                except Exception:
                    config = None
                self.loop = ServiceLoop(config)

            def SvcStop(self) -> None:  # noqa: N802 - pywin32's name
                self.ReportServiceStatus(win32service.SERVICE_STOP_PENDING, waitHint=STOP_WAIT_HINT_MS)
                self.loop.stop()

            def SvcDoRun(self) -> None:  # noqa: N802 - pywin32's name
                servicemanager.LogInfoMsg(f"{SERVICE_NAME}: starting (config {self.loop.config_path})")
                code = self.loop.run()
                if code:
                    servicemanager.LogErrorMsg(f"{SERVICE_NAME}: stopped with exit code {code}")
                    # A non-zero service exit code lets the recovery options restart it.
                    self.ReportServiceStatus(win32service.SERVICE_STOPPED, win32ExitCode=code)
                else:
                    servicemanager.LogInfoMsg(f"{SERVICE_NAME}: stopped")

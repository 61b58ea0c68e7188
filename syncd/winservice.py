"""`syncd service install|remove|start|stop`: syncd as a Windows service (pywin32, the optional
``windows`` extra). Imports cleanly on every system; only the service class and the service
manager calls need Windows.

The service runs exactly what `syncd run` runs: ``SvcDoRun`` calls the CLI in-process
(``syncd --config PATH run``) after handing the daemon a stop event (``syncd.daemon.
use_external_stop``) that ``SvcStop`` sets — the Windows counterpart of SIGTERM. The
configuration path is kept with the service registration (service custom option ``config``).

Steps for an operator (an elevated prompt, in the venv syncd is installed in):

    pip install "syncd[windows]"
    python -m pywin32_postinstall -install        # once per Python, registers pywin32's DLLs
    syncd --config C:\\ProgramData\\syncd\\config.toml service install
    syncd service start                            # stop / remove likewise
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from syncd.errors import ConfigError, SyncdError

SERVICE_NAME = "syncd"
DISPLAY_NAME = "syncd ERP/shop synchronisation"
DESCRIPTION = "Keeps ERP customer addresses and shop customer accounts in step and mails credentials."
ACTIONS = ("install", "remove", "start", "stop", "restart")
CONFIG_OPTION = "config"
STOP_WAIT_HINT_MS = 60_000  # the daemon's shutdown_timeout (default 30 s) plus margin

NOT_WINDOWS = (
    "Windows services exist only on Windows; on Linux run syncd as a systemd service "
    "(systemd/syncd.service, or syncd@TENANT.service for several tenants) / "
    "Windows-Dienste gibt es nur unter Windows; unter Linux die systemd-Units verwenden"
)


def _api() -> Any:
    """pywin32's service helpers, or a clear error where they cannot exist."""
    if sys.platform != "win32":
        raise ConfigError(NOT_WINDOWS)
    try:
        import win32service
        import win32serviceutil
    except ImportError as exc:
        raise ConfigError(
            'pywin32 is not installed: pip install "syncd[windows]", then '
            "python -m pywin32_postinstall -install (elevated)"
        ) from exc
    return _Pywin32(win32serviceutil, win32service)


class _Pywin32:
    """The five service manager operations syncd needs, over pywin32."""

    def __init__(self, util: Any, svc: Any) -> None:
        self.util, self.svc = util, svc

    def install(self, name: str, config: str) -> None:
        self.util.InstallService(
            self.util.GetServiceClassString(SyncdService),
            name,
            DISPLAY_NAME,
            startType=self.svc.SERVICE_AUTO_START,
            description=DESCRIPTION,
        )
        self.util.SetServiceCustomOption(name, CONFIG_OPTION, config)

    def remove(self, name: str) -> None:
        self.util.RemoveService(name)

    def start(self, name: str) -> None:
        self.util.StartService(name)

    def stop(self, name: str) -> None:
        self.util.StopService(name)

    def restart(self, name: str) -> None:
        self.util.RestartService(name)


_SENTENCES = {
    "install": "Installed the Windows service {name} (config {config}, starts automatically). / "
    "Windows-Dienst {name} installiert (Konfiguration {config}, startet automatisch).",
    "remove": "Removed the Windows service {name}. / Windows-Dienst {name} entfernt.",
    "start": "Started the Windows service {name}. / Windows-Dienst {name} gestartet.",
    "stop": "Stopped the Windows service {name}. / Windows-Dienst {name} gestoppt.",
    "restart": "Restarted the Windows service {name}. / Windows-Dienst {name} neu gestartet.",
}


def service_command(
    action: str,
    *,
    config_path: str | Path | None = None,
    name: str = SERVICE_NAME,
    api: Any = None,
) -> str:
    """Run one `syncd service ACTION`; returns the sentence for the operator. Raises
    ConfigError (exit 2) for an unknown action, a missing config for install, or a system
    without Windows services; SyncdError (exit 1) when the service manager refuses."""
    if action not in ACTIONS:
        raise ConfigError("unknown service action", value=action, allowed=", ".join(ACTIONS))
    config = None
    if action == "install":
        if config_path is None:
            raise ConfigError("syncd service install needs the configuration file (--config PATH)")
        config = str(Path(config_path).resolve())
        if not Path(config).is_file():
            raise ConfigError("configuration file not found", key="--config", value=config)
    backend = api if api is not None else _api()
    try:
        if action == "install":
            backend.install(name, config)
        else:
            getattr(backend, action)(name)
    except ConfigError:
        raise
    except Exception as exc:  # pywintypes.error: (code, function, message)
        detail = getattr(exc, "strerror", None) or str(exc)
        raise SyncdError(f"Windows service {name}: {action} failed: {detail}") from exc
    return _SENTENCES[action].format(name=name, config=config)


def restart_service(name: str = SERVICE_NAME, *, api: Any = None) -> str:
    """Used by `syncd clear-cache --restart` on Windows; returns the service name."""
    service_command("restart", name=name, api=api)
    return name


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
        from syncd.daemon import use_external_stop

        run_cli = self._run_cli
        if run_cli is None:
            from syncd.cli import run_cli as cli_entry

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
    except ImportError:  # the extra is not installed: service_command explains
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

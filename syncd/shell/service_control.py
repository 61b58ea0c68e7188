"""Service control: tell the service manager (systemd, Windows) or a foreground daemon what to do.

`syncd clear-cache --restart` and `syncd service install|remove|start|stop|restart` end here.
Nothing here imports the daemon or the CLI: the Windows service host's entry point
(``syncd.winservice.SyncdService``) is registered by its dotted name, so installing a service
does not import the code that runs it (no circle CLI → service control → service → CLI).

Windows service steps for an operator (an elevated prompt, in the venv syncd is installed in):

    pip install "syncd[windows]"
    python -m pywin32_postinstall -install        # once per Python, registers pywin32's DLLs
    syncd --config C:\\ProgramData\\syncd\\config.toml service install
    syncd service start                            # stop / remove likewise
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from syncd.core.errors import ConfigError, SyncdError
from syncd.shell.pidfile import default_pid_file, store_identity

if TYPE_CHECKING:
    from syncd.config.model import Settings

SERVICE_NAME = "syncd"
DISPLAY_NAME = "syncd ERP/shop synchronisation"
DESCRIPTION = "Keeps ERP customer addresses and shop customer accounts in step and mails credentials."
# What pywin32's GetServiceClassString(SyncdService) returns for the class imported as
# syncd.winservice; services installed by earlier versions have it in the registry, so it
# never changes (winservice.py stays where it is).
SERVICE_CLASS = "syncd.winservice.SyncdService"
ACTIONS = ("install", "remove", "start", "stop", "restart")
CONFIG_OPTION = "config"
STOP_WAIT_HINT_MS = 60_000  # the daemon's shutdown_timeout (default 30 s) plus margin

NOT_WINDOWS = (
    "Windows services exist only on Windows; on Linux run syncd as a systemd service "
    "(systemd/syncd.service, or syncd@TENANT.service for several tenants) / "
    "Windows-Dienste gibt es nur unter Windows; unter Linux die systemd-Units verwenden"
)


# --- Windows: the service manager -------------------------------------------------------------

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
            SERVICE_CLASS,
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


# --- systemd, or a foreground daemon ----------------------------------------------------------

def systemd_booted() -> bool:
    """sd_booted(): systemd is the init system of this machine."""
    return os.path.isdir("/run/systemd/system")


def unit_for(config_path: str | os.PathLike[str] | None) -> str:
    """The unit running ``config_path``: ``/etc/syncd/TENANT.toml`` belongs to
    ``syncd@TENANT.service`` (the template unit), anything else to ``syncd.service``.
    ``$SYNCD_UNIT`` overrides (a unit the operator named differently)."""
    explicit = os.environ.get("SYNCD_UNIT")
    if explicit:
        return explicit
    if config_path is not None:
        path = Path(config_path)
        tenant = path.parent == Path("/etc/syncd") and path.stem not in ("config", "syncd")
        if tenant and path.suffix == ".toml":
            return f"syncd@{path.stem}.service"
    return "syncd.service"


def restart_running_service(
    settings: Settings,
    *,
    config_path: str | os.PathLike[str] | None = None,
    systemctl: str = "systemctl",
    booted: bool | None = None,
) -> str:
    """Make the running syncd pick up a cleared cache; return the sentence telling the
    operator what was done (English / German). Raises SyncdError when no syncd runs.

    Order: the systemd unit when systemd runs it, the Windows service, a foreground daemon
    found through its pid file (SIGHUP: it reloads and empties its cache without stopping)."""
    import subprocess

    from syncd.shell.pidfile import owner_of

    if sys.platform == "win32":
        name = restart_service()
        return f"Restarted the Windows service {name}. / Windows-Dienst {name} neu gestartet."

    unit = unit_for(config_path)
    under_systemd = booted if booted is not None else systemd_booted()
    if under_systemd:
        try:
            active = subprocess.run([systemctl, "is-active", "--quiet", unit], check=False, timeout=30)
        except FileNotFoundError:  # systemd without its client (a minimal container image)
            active = None
        if active is not None and active.returncode == 0:
            done = subprocess.run([systemctl, "restart", unit], capture_output=True, text=True, check=False,
                                  timeout=120)
            if done.returncode != 0:
                detail = (done.stderr or done.stdout).strip() or f"exit code {done.returncode}"
                raise SyncdError(
                    f"systemctl restart {unit} failed: {detail} (run it as root, e.g. with sudo) / "
                    f"Neustart von {unit} fehlgeschlagen"
                )
            return (
                f"Restarted the systemd unit {unit} (systemctl restart {unit}). / "
                f"systemd-Unit {unit} neu gestartet."
            )

    path = default_pid_file(settings)
    # Only a process proven to be the daemon of this state store gets the signal: a stale pid
    # may name any process by now.
    owner = owner_of(path, store_identity(settings.daemon.state_url))
    if owner is not None and owner.ours:
        os.kill(owner.pid, signal.SIGHUP)
        return (
            f"Sent SIGHUP to the syncd daemon (pid {owner.pid}, pid file {path}): it reloads its "
            f"configuration and works with the emptied cache from its next cycle. / SIGHUP an den "
            f"syncd-Dienst (PID {owner.pid}) gesendet: er lädt die Konfiguration neu und arbeitet ab dem "
            "nächsten Lauf mit dem geleerten Cache."
        )
    where = f"no active systemd unit {unit}, " if under_systemd else ""
    found = (f"pid file {path}: {owner.reason}, not signalled" if owner
             else f"no live process in pid file {path}")
    raise SyncdError(
        f"no running syncd found ({where}{found}); the cache is empty and "
        f"is refilled when syncd next starts / kein laufender syncd gefunden"
    )

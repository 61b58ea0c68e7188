"""`syncd service install|remove|start|stop`: the Windows service (pywin32, optional extra).
Imports cleanly everywhere; on other systems the verbs explain where the systemd units are."""

from __future__ import annotations

import sys

import click

from syncd.config.loader import LoadedConfig

from .common import CliState, pass_state
from .messages import msg


def service_action(action: str, loaded: LoadedConfig | None) -> None:
    """The Windows service manager (``syncd.shell.service_control``); prints what was done."""
    from syncd.shell.service_control import service_command

    config_path = str(loaded.path) if loaded is not None else None
    click.echo(service_command(action, config_path=config_path))


def _windows_only() -> None:
    if sys.platform != "win32":
        raise click.UsageError(msg("windows_only"))


@click.group("service", help="Windows service: install, remove, start, stop (needs the 'windows' extra).")
def service_group() -> None:
    pass


@service_group.command("install", help="Register syncd (with this --config) as an automatic Windows service.")
@pass_state
def install_cmd(state: CliState) -> None:
    _windows_only()
    service_action("install", state.load())


@service_group.command("remove", help="Unregister the Windows service.")
def remove_cmd() -> None:
    _windows_only()
    service_action("remove", None)


@service_group.command("start", help="Start the Windows service.")
def start_cmd() -> None:
    _windows_only()
    service_action("start", None)


@service_group.command("stop", help="Stop the Windows service.")
def stop_cmd() -> None:
    _windows_only()
    service_action("stop", None)

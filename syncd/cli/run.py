"""`syncd run`: the daemon in the foreground (what the service runs)."""

from __future__ import annotations

import click

from syncd.config.loader import LoadedConfig
from syncd.config.secrets import Secrets

from .common import CliState, not_available, pass_state


def run_daemon(loaded: LoadedConfig, secrets: Secrets, *, log_format: str | None) -> None:
    """Replaced by the integrator with the real daemon loop."""
    not_available("syncd run")


@click.command(
    "run",
    help="Run the daemon in the foreground (what the systemd/Windows service starts). "
    "Stops gracefully on SIGTERM/SIGINT; sends systemd readiness and watchdog notifications "
    "when started by systemd.",
)
@pass_state
def run_cmd(state: CliState) -> None:
    loaded = state.load()
    run_daemon(loaded, state.secrets(), log_format=state.log_format)

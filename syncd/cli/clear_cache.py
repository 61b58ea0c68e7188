"""`syncd clear-cache`: empty the tenant cache; optionally restart the running service."""

from __future__ import annotations

import click

from syncd.config.loader import LoadedConfig

from .common import CliState, not_available, pass_state


def clear_cache(loaded: LoadedConfig, *, restart: bool) -> None:
    """Replaced by the integrator (cache clearing plus systemd/Windows/pid-file restart)."""
    not_available("syncd clear-cache")


@click.command(
    "clear-cache",
    help="Empty the tenant cache (ERP and shop metadata: columns, layouts, sales channels, groups, "
    "countries, ...). With --restart, also restart the running service (systemd unit, Windows "
    "service, or a foreground daemon via its pid file).",
)
@click.option("--restart", is_flag=True, help="Restart the running service afterwards.")
@pass_state
def clear_cache_cmd(state: CliState, restart: bool) -> None:
    clear_cache(state.load(), restart=restart)

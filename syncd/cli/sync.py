"""`syncd sync`: one full cycle now."""

from __future__ import annotations

import click

from syncd.config.loader import LoadedConfig
from syncd.config.secrets import Secrets

from .common import CliState, check_platform, not_available, pass_state, platform_option

DIRECTIONS = ("erp-to-shop", "shop-to-erp", "both")


def sync_once(
    loaded: LoadedConfig, secrets: Secrets, *, platform: str | None, direction: str, dry_run: bool
) -> int:
    """Replaced by the integrator: run one cycle, print a report, return the exit code."""
    not_available("syncd sync")


@click.command(
    "sync",
    help="Run one full synchronisation cycle now, with a progress bar on a terminal. "
    "--dry-run reports what would happen and writes nothing anywhere.",
)
@platform_option()
@click.option(
    "--direction",
    type=click.Choice(DIRECTIONS),
    default="both",
    show_default=True,
    help="erp-to-shop: push ERP addresses (and credential mails); shop-to-erp: import shop customers.",
)
@click.option("--dry-run", is_flag=True, help="Report what would be done; change nothing.")
@pass_state
@click.pass_context
def sync_cmd(
    ctx: click.Context, state: CliState, platform: str | None, direction: str, dry_run: bool
) -> None:
    loaded = state.load()
    check_platform(state, platform)
    code = sync_once(loaded, state.secrets(), platform=platform, direction=direction, dry_run=dry_run)
    ctx.exit(code or 0)

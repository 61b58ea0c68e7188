"""`syncd status`: per platform the last cycle, counts linked / pending / failed, and the failed
records with their reasons."""

from __future__ import annotations

import click

from syncd.config.loader import LoadedConfig

from .common import CliState, check_platform, not_available, pass_state, platform_option


def show_status(loaded: LoadedConfig, *, as_json: bool, platform: str | None) -> None:
    """Replaced by the integrator (syncd.status)."""
    not_available("syncd status")


@click.command(
    "status",
    help="Show per platform the last cycle, how many addresses are linked, pending and failed, "
    "and the failed records with reasons. --json prints one stable JSON object (see README).",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@platform_option()
@pass_state
def status_cmd(state: CliState, as_json: bool, platform: str | None) -> None:
    check_platform(state, platform)
    show_status(state.load(), as_json=as_json, platform=platform)

"""`syncd status`: per platform the last cycle, counts linked / pending / failed, and the failed
records with their reasons (``syncd.shell.status``). Reads only, also while the daemon runs: the
store is opened without migrating, and a store that does not exist yet reads as empty."""

from __future__ import annotations

import json

import click

from syncd.config.loader import LoadedConfig

from .common import CliState, check_platform, pass_state, platform_option


def show_status(loaded: LoadedConfig, *, as_json: bool, platform: str | None) -> None:
    from syncd.shell.bootstrap import open_state_read_only
    from syncd.shell.status import collect_status, render_status_table

    store = open_state_read_only(loaded.settings.daemon.state_url)
    try:
        status = collect_status(store, loaded.settings)
    finally:
        store.close()
    if platform is not None:
        status = {"platforms": [p for p in status["platforms"] if p["name"] == platform]}
    if as_json:
        click.echo(json.dumps(status, ensure_ascii=False))
    else:
        click.echo(render_status_table(status), nl=False)


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

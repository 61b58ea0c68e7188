"""`syncd status`: per platform the last cycle, counts linked / pending / failed, and the failed
records with their reasons (``syncd.shell.status``). Reads only, also while the daemon runs: the
store is opened without migrating, and a store that does not exist yet reads as empty."""

from __future__ import annotations

import json

import click

from syncd.config.loader import LoadedConfig
from syncd.core.errors import ConfigError

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
        status = {**status, "platforms": [p for p in status["platforms"] if p["name"] == platform]}
    if as_json:
        click.echo(json.dumps(status, ensure_ascii=False))
    else:
        click.echo(render_status_table(status), nl=False)


@click.command(
    "status",
    help="Show per platform the last cycle, how many addresses are linked, pending and failed, "
    "and the failed records with reasons, and a configuration reload the running daemon refused. "
    "--json prints one stable JSON object (see README).",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@platform_option()
@pass_state
def status_cmd(state: CliState, as_json: bool, platform: str | None) -> None:
    try:
        loaded = state.load()
    except ConfigError:
        show_refused_reload(state.config_path, as_json=as_json)
        raise  # exit 2 with the error, after what the running daemon made of the file
    check_platform(state, platform)
    show_status(loaded, as_json=as_json, platform=platform)


def show_refused_reload(config_path: str | None, *, as_json: bool) -> None:
    """The file does not load (an edit in progress, or one the daemon refused at SIGHUP): the
    platforms' counts need the file, but the running daemon's reload outcome does not. The state
    store is found from the file's ``[daemon] state_url`` as written (or its default); anything
    unreadable shows nothing here and leaves the configuration error to speak."""
    import tomllib

    from syncd.config.loader import find_config
    from syncd.config.model import default_state_url
    from syncd.shell.bootstrap import open_state_read_only
    from syncd.shell.reloads import last
    from syncd.shell.status import render_status_table

    try:
        raw = tomllib.loads(find_config(config_path).read_text(encoding="utf-8-sig"))
        url = (raw.get("daemon") or {}).get("state_url") or default_state_url()
        store = open_state_read_only(str(url))
        try:
            with store.connect() as conn:
                reload = last(conn)
        finally:
            store.close()
    except Exception:  # noqa: BLE001 - only an addition to the configuration error that follows
        return
    if reload is None or reload["ok"]:
        return
    status = {"platforms": [], "reload": reload}
    if as_json:
        click.echo(json.dumps(status, ensure_ascii=False))
    else:
        click.echo(render_status_table(status, only_reload=True), nl=False)

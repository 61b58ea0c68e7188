"""`syncd clear-cache`: empty the tenant cache; optionally restart the running service."""

from __future__ import annotations

import click

from syncd.config.loader import LoadedConfig

from .common import CliState, pass_state

_CLEARED = {
    "en": "Cache cleared: {n} entries removed.",
    "de": "Cache geleert: {n} Einträge entfernt.",
}


def clear_cache(loaded: LoadedConfig, *, restart: bool) -> None:
    from syncd.shell.bootstrap import open_state_read_only
    from syncd.shell.service_control import restart_running_service
    from syncd.shell.status import locale_language
    from syncd.state.cache import Cache

    # Not a migrating open: that would wait for a running daemon's cycle. A store that does not
    # exist yet has nothing cached (and is not created for this).
    store = open_state_read_only(loaded.settings.daemon.state_url)
    try:
        removed = Cache(store).clear()
    finally:
        store.close()
    click.echo(_CLEARED.get(locale_language(), _CLEARED["en"]).format(n=removed))
    if restart:
        # Raises SyncdError (exit 1) with a clear sentence when no syncd runs.
        click.echo(restart_running_service(loaded.settings, config_path=loaded.path))


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

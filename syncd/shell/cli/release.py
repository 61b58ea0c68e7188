"""`syncd release PLATFORM`: the operator checked the canary's mails; the held rest may go.

The canary (``platforms[].addresses.canary``) lives in ``syncd.flows.mailbudget``; this command
only marks it released in the state store. The next cycle (daemon or `syncd sync`) sends the
waiting mails, within the rate limits.
"""

from __future__ import annotations

import click

from .common import CliState, pass_state

_TEXT = {
    "en": {"none": "platform {p!r} has no canary (platforms[].addresses.canary is not set)",
           "done": "{p}: canary released ({sent} of {size} mail(s) sent); the next cycle sends the rest"},
    "de": {"none": "Plattform {p!r} hat keinen Probelauf (platforms[].addresses.canary ist nicht gesetzt)",
           "done": "{p}: Probelauf freigegeben ({sent} von {size} Mail(s) versandt); der nächste Lauf "
                   "versendet den Rest"},
}


@click.command("release", help="Release the mails a canary holds back (platforms[].addresses.canary).")
@click.argument("platform")
@pass_state
def release_cmd(state: CliState, platform: str) -> None:
    from syncd.flows.context import PlatformContext
    from syncd.flows.mailbudget import release
    from syncd.shell.status import locale_language
    from syncd.state.db import open_state

    t = _TEXT[locale_language()]
    loaded = state.load()
    settings = loaded.settings
    chosen = next((p for p in settings.platforms if p.name == platform), None)
    if chosen is None:
        names = ", ".join(p.name for p in settings.platforms)
        raise click.BadParameter(f"no platform {platform!r} in {loaded.path} (configured: {names})",
                                 param_hint="PLATFORM")
    if not chosen.addresses.canary:
        raise click.UsageError(t["none"].format(p=platform))
    store = open_state(settings.daemon.state_url)
    try:
        # Only the state store is needed: the canary is a cursor and a count of sent mails.
        ctx = PlatformContext(settings=settings, platform=chosen, erp=None, shop=None,  # type: ignore[arg-type]
                              state=store)
        done = release(ctx)
    finally:
        store.close()
    assert done is not None
    click.echo(t["done"].format(p=platform, sent=done.sent, size=done.size))

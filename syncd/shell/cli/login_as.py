"""`syncd accounts login-as ADDRESS`: print a one-time link that opens the storefront logged in as
that customer (``syncd.flows.login_as``, ``syncd.shell.login_link``), wait for its one use.

Exit codes: 0 the link was used; 1 it expired unused, or the shop failed; 2 refused (the shop has
no such mechanism, the staff login is not configured, the address is not linked or its account
is inactive)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from syncd.config.durations import parse_duration
from syncd.config.secrets import resolve_secret

from .common import CliState, check_platform, pass_state, platform_option
from .messages import LANG_OPTION, language

if TYPE_CHECKING:
    from syncd.config.loader import LoadedConfig
    from syncd.flows.context import PlatformContext

_TEXT = {
    "link": {
        "en": "One-time link for ERP address {n} (staff user {user}; open it within {minutes} min in a "
              "browser on this machine, it works once):",
        "de": "Einmal-Link für ERP-Adresse {n} (Benutzer {user}; innerhalb von {minutes} Min. in einem "
              "Browser auf diesem Rechner öffnen, er gilt nur einmal):",
    },
    "used": {"en": "Link used: the storefront session of address {n} is open; the link is gone.",
             "de": "Link benutzt: die Shop-Sitzung von Adresse {n} ist geöffnet; der Link gilt nicht mehr."},
    "expired": {"en": "The link expired unused; nothing was opened.",
                "de": "Der Link ist ungenutzt abgelaufen; es wurde nichts geöffnet."},
}
MAX_WAIT = 3600.0  # the shop's token lives an hour (ImitateCustomerTokenGenerator::TOKEN_LIFETIME)


def _say(key: str, lang: str | None, **values: object) -> str:
    return _TEXT[key][language(lang)].format(**values)


def _wait_seconds(value: str) -> float:
    try:
        seconds = parse_duration(value)
    except (ValueError, TypeError) as exc:
        raise click.BadParameter(str(exc), param_hint="--wait") from None
    if not 0 < seconds <= MAX_WAIT:
        raise click.BadParameter(f"must be more than 0 and at most 1h (the shop's token lives an hour), "
                                 f"got {value!r}", param_hint="--wait")
    return seconds


@click.command("login-as", help="Print a one-time link that logs you into the storefront as the customer of "
               "this ERP address (Shopware 6.6.5.0+: the shop's own 'log in as customer'); waits for its one "
               "use. Needs platforms[].login_as_user / login_as_password.")
@platform_option()
@click.argument("address", type=click.IntRange(min=0))
@click.option("--wait", "wait", default="10m", show_default=True, metavar="DURATION",
              help="How long the link waits for its one use (at most 1h).")
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True,
              help="Loopback port of the link (0: any free one; fix it to forward it over SSH).")
@LANG_OPTION
@pass_state
@click.pass_context
def login_as_cmd(ctx: click.Context, state: CliState, platform: str | None, address: int, wait: str,
                 port: int, lang: str | None) -> None:
    from syncd.shell.bootstrap import open_runtime

    from .accounts_view import _platforms

    seconds = _wait_seconds(wait)
    loaded = state.load()
    check_platform(state, platform)
    names = _platforms(loaded, platform)
    if len(names) != 1:
        raise click.UsageError(f"several platforms are configured ({', '.join(names)}); choose one with "
                               "--platform / mehrere Plattformen: eine mit --platform wählen")
    runtime = open_runtime(loaded, state.secrets())
    try:
        ctx.exit(_login_as(runtime.context(names[0]), loaded, address, seconds, port, lang))
    finally:
        runtime.close()


def _login_as(pctx: PlatformContext, loaded: LoadedConfig, address: int, seconds: float, port: int,
              lang: str | None) -> int:
    from syncd.flows import login_as
    from syncd.flows.accounts import UnknownAddresses
    from syncd.shell.login_link import OneTimeLink

    index = loaded.settings.platforms.index(pctx.platform)
    # Resolved here only: the daemon never needs the staff login, so it never holds it.
    password = resolve_secret(pctx.platform.login_as_password, file=str(loaded.path),
                              key=f"platforms[{index}].login_as_password")
    try:
        form, shop_id = login_as.start(pctx, address, password)
    except UnknownAddresses as exc:
        raise click.BadParameter(str(exc), param_hint="ADDRESS") from None
    with OneTimeLink(form, port=port) as link:
        click.echo(_say("link", lang, n=address, user=form.staff_user, minutes=round(seconds / 60, 1)))
        click.echo(link.url)
        used = link.wait(seconds)
    if not used:
        click.echo(_say("expired", lang), err=True)
        return 1
    login_as.record_use(pctx, address, shop_id, form.staff_user)
    click.echo(_say("used", lang, n=address))
    return 0

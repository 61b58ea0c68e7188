"""`syncd bounces`: the bounce mailbox of ``[mail.bounces]``.

``check`` reads it once (what the daemon does every ``poll_interval``) and releases addresses whose
ERP e-mail changed; ``list`` shows the bounces on record. Exit codes: 0; 1 when the mailbox could not
be read or a message failed; 2 when ``[mail.bounces]`` is off or misconfigured."""

from __future__ import annotations

import json
import sys

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from syncd.core.errors import ConfigError
from syncd.core.rules import account_label

from .common import CliState, check_platform, pass_state, platform_option

_WHAT = {
    "read": "read / gelesen", "hard": "hard bounces / unzustellbar", "soft": "soft bounces / vorübergehend",
    "duplicate": "seen before / schon erfasst", "not-ours": "not syncd's / nicht von syncd",
    "no-bounce": "no bounce / kein Bounce", "unknown-tag": "unknown tag / unbekannte Kennung",
    "error": "errors / Fehler", "cleared": "e-mail changed / E-Mail geändert",
    "retried": "queued again / erneut eingereiht",
    "moved": "waiting messages readdressed / wartende Nachrichten umadressiert",
}


@click.group("bounces", help="Bounced mails ([mail.bounces]): check the mailbox, list them. / "
                             "Unzustellbare Mails: Postfach prüfen, anzeigen.")
def bounces_group() -> None:
    pass


@bounces_group.command("check", help="Read the bounce mailbox once and release addresses whose ERP e-mail "
                                     "changed. / Bounce-Postfach einmal lesen.")
@pass_state
@click.pass_context
def check_cmd(ctx: click.Context, state: CliState) -> None:
    from syncd.shell.bootstrap import open_runtime
    from syncd.shell.bounces import check_bounces

    loaded = state.load()
    if not loaded.settings.mail.bounces.enabled:
        raise ConfigError("is off; nothing to check", file=str(loaded.path), key="mail.bounces.enabled")
    runtime = open_runtime(loaded, state.secrets())

    def context(name: str):  # noqa: ANN202 - a platform removed from the configuration: None
        try:
            return runtime.context(name)
        except KeyError:
            return None

    try:
        report = check_bounces(loaded.settings, runtime.state, context, file=str(loaded.path))
    finally:
        runtime.close()
    for what, where, detail in report.items:
        click.echo(f"{what}: {where}: {detail}")
    click.echo(", ".join(f"{report.counts[k]} {label}" for k, label in _WHAT.items() if report.counts[k])
               or "nothing to read / nichts zu lesen")
    if report.counts["error"]:
        ctx.exit(1)


@bounces_group.command("list", help="Bounces on record, newest first. / Erfasste Bounces, neueste zuerst.")
@platform_option()
@click.option("--open", "only_open", is_flag=True, help="Only hard bounces still blocking their address.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@pass_state
def list_cmd(state: CliState, platform: str | None, only_open: bool, as_json: bool) -> None:
    from syncd.shell.bootstrap import open_state_read_only
    from syncd.state.bounces import Bounces

    check_platform(state, platform)
    loaded = state.load()
    store = open_state_read_only(loaded.settings.daemon.state_url)
    try:
        rows = Bounces(store).open(platform) if only_open else Bounces(store).all(platform)
    finally:
        store.close()
    rows = sorted(rows, key=lambda b: b.id, reverse=True)
    if as_json:
        for b in rows:
            click.echo(json.dumps({
                "platform": b.platform, "address": _label(b.erp_number), "kind": b.kind, "email": b.email,
                "severity": b.severity, "status": b.status, "diagnostic": b.diagnostic,
                "bounced_at": b.bounced_at.isoformat(),
                "cleared_at": b.cleared_at.isoformat() if b.cleared_at else None,
            }, ensure_ascii=False))
        return
    table = Table()
    for title in ("platform", "address / Adresse", "mail", "e-mail", "bounce", "status", "at / am (UTC)",
                  "cleared / aufgehoben", "diagnostic / Meldung"):
        table.add_column(title, overflow="fold")
    for b in rows:
        number = str(_label(b.erp_number) or "–")
        table.add_row(escape(b.platform), number, b.kind, escape(b.email), b.severity,
                      b.status or "–", b.bounced_at.isoformat(timespec="minutes"),
                      b.cleared_at.isoformat(timespec="minutes") if b.cleared_at else "–",
                      escape(b.diagnostic or ""))
    Console(highlight=False, width=None if sys.stdout.isatty() else 200).print(table)
    click.echo(f"{len(rows)} bounce(s)")


def _label(number: int | None) -> int | str | None:
    """A contact person's account as "10001-2"; an address's number as it is."""
    return account_label(number) if number is not None and number < 0 else number

"""`syncd reminders`: the order-driven reminders of the state store (``syncd.flows.reminders.ops``).

``list`` shows every scheduled, sent, stopped and cancelled reminder with its next due time and
its messages; ``cancel ORDER`` stops all reminders of one order (by order number or id) so no
further message is queued for it. Exit codes: 0, 1 when ``cancel`` found nothing to stop."""

from __future__ import annotations

import json
import sys

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .common import CliState, check_platform, pass_state, platform_option


@click.group("reminders", help="Order-driven reminders: list them, cancel them for one order. / "
                               "Erinnerungen zu Bestellungen anzeigen und stoppen.")
def reminders_group() -> None:
    pass


@reminders_group.command("list", help="Due, sent, stopped and cancelled reminders per order.")
@platform_option()
@click.option("--order", "order", metavar="ORDER", help="Only this order (number or id).")
@click.option("--state", "states", multiple=True,
              type=click.Choice(["scheduled", "done", "stopped", "cancelled"]), help="Only these states.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option("--limit", default=1000, show_default=True, help="At most this many per platform.")
@pass_state
def list_cmd(state: CliState, platform: str | None, order: str | None, states: tuple[str, ...],
             as_json: bool, limit: int) -> None:
    from syncd.flows.reminders.ops import list_reminders
    from syncd.shell.bootstrap import open_state_read_only

    check_platform(state, platform)
    loaded = state.load()
    names = [p.name for p in loaded.settings.platforms if platform in (None, p.name)]
    store = open_state_read_only(loaded.settings.daemon.state_url)
    try:
        lines = list(list_reminders(store, names, order=order, states=states or None, limit=limit))
    finally:
        store.close()
    if as_json:
        for line in lines:
            click.echo(json.dumps(line.as_json(), ensure_ascii=False))
        return
    table = Table(show_lines=False)
    for title in ("platform", "order / Bestellung", "reminder / Erinnerung", "state / Status", "sent",
                  "next due / fällig", "messages / Nachrichten", "reason / Grund"):
        table.add_column(title, overflow="fold")
    for line in lines:
        table.add_row(escape(line.platform), escape(line.order), escape(line.reminder), line.state,
                      str(line.sent), line.next_due.isoformat(timespec="minutes") if line.next_due else "–",
                      escape(line.messages) or "–", escape(line.reason or ""))
    Console(highlight=False, width=None if sys.stdout.isatty() else 200).print(table)
    click.echo(f"{len(lines)} reminder(s) / Erinnerung(en)")


@reminders_group.command("cancel", help="Stop every reminder of ORDER (order number or id). / "
                                        "Alle Erinnerungen einer Bestellung stoppen.")
@platform_option()
@click.argument("order")
@pass_state
@click.pass_context
def cancel_cmd(ctx: click.Context, state: CliState, platform: str | None, order: str) -> None:
    from syncd.core.clock import utcnow
    from syncd.flows.reminders.ops import cancel
    from syncd.state.db import open_state

    check_platform(state, platform)
    loaded = state.load()
    names = [p.name for p in loaded.settings.platforms if platform in (None, p.name)]
    store = open_state(loaded.settings.daemon.state_url)
    try:
        count = sum(cancel(store, name, order, utcnow()) for name in names)
    finally:
        store.close()
    if not count:
        click.echo(f"no reminder of order {order!r} to cancel / keine Erinnerung zu Bestellung {order!r}",
                   err=True)
        ctx.exit(1)
    click.echo(f"{count} reminder(s) of order {order} cancelled / {count} Erinnerung(en) gestoppt")

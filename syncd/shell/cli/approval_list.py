"""`syncd accounts list --state`: shop accounts in one approval state (``syncd.state.approvals``).
A module of its own so that ``accounts`` and ``account_events`` both use it without an import
circle."""

from __future__ import annotations

import sys

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from syncd.config.loader import LoadedConfig
from syncd.core.rules import account_label


def list_by_state(loaded: LoadedConfig, *, platform: str | None, state: str) -> None:
    """The approval records in ``state``: one row per shop account."""
    from syncd.flows.accounts import iso
    from syncd.shell.bootstrap import open_state_read_only
    from syncd.state.approvals import Approvals

    store = open_state_read_only(loaded.settings.daemon.state_url)
    table = Table(show_lines=False)
    for name in ("platform", "shop id", "address", "email", "state", "requested group", "reason", "since"):
        table.add_column(name, overflow="fold")
    count = 0
    try:
        for name in [p.name for p in loaded.settings.platforms if platform in (None, p.name)]:
            for a in Approvals(store).of_state(name, state):
                count += 1
                number = "" if a.erp_number is None else account_label(a.erp_number)
                table.add_row(escape(name), a.shop_id, number,
                              escape(a.email or ""), a.state, escape(a.requested_group or ""),
                              escape(a.reason or ""), iso(a.updated_at))
    finally:
        store.close()
    Console(highlight=False, width=None if sys.stdout.isatty() else 200).print(table)
    click.echo(f"{count} account(s) / Konto/Konten")

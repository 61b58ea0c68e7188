"""`syncd layouts`: the available e-mail layouts and rendered previews.

A preview reads the real ERP row, puts a placeholder where the password would be, renders and
prints; it writes nothing (no password field, no state store, no mail)."""

from __future__ import annotations

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from syncd.config.loader import LoadedConfig
from syncd.config.secrets import Secrets

from .common import CliState, check_platform, pass_state, platform_option


def list_layouts(loaded: LoadedConfig) -> None:
    from syncd.render.store import LayoutStore

    store = LayoutStore(loaded.settings.mail.layouts_dir)
    table = Table()
    table.add_column("Layout")
    table.add_column("Origin / Herkunft", overflow="fold")
    for name in store.names():
        folder = store.folder(name)
        operator = store.layouts_dir is not None and folder is not None and str(folder).startswith(
            str(store.layouts_dir))
        table.add_row(escape(name), escape(f"operator: {folder}") if operator else "shipped")
    Console(highlight=False, width=160).print(table)


def preview_layout(
    loaded: LoadedConfig, secrets: Secrets, *, name: str, address: int, platform: str | None, html: bool
) -> None:
    from syncd.render.store import LayoutError, LayoutStore
    from syncd.shell.bootstrap import open_erp_for

    settings = loaded.settings
    chosen = next(p for p in settings.platforms if platform is None or p.name == platform)
    store = LayoutStore(settings.mail.layouts_dir)
    erp = open_erp_for(settings, secrets)  # in-memory metadata cache
    try:
        row = erp.get_address(address)
    finally:
        erp.close()
    if row is None:
        raise click.BadParameter(f"ERP address {address} does not exist", param_hint="--address")
    try:
        rendered = store.preview(name, row, chosen.addresses.password_field, platform=chosen,
                                 sender=chosen.sender or settings.mail.sender)
    except LayoutError as exc:  # unknown name or a broken template: the operator's input, exit 2
        raise click.BadParameter(str(exc), param_hint="NAME") from None
    stale = store.staleness(name)
    if stale is not None:
        from .check import staleness_text
        from .messages import msg

        click.echo(f"syncd: {msg('warning')}: {staleness_text(stale)}", err=True)
    click.echo(f"Subject: {rendered.subject}\n")
    if html:
        if rendered.html is None:
            raise click.UsageError(f"layout {name!r} has no HTML part (body.html.j2)")
        click.echo(rendered.html)
    else:
        click.echo(rendered.text)


@click.group("layouts", help="E-mail layouts: list the available ones, preview one for an ERP address.")
def layouts_group() -> None:
    pass


@layouts_group.command("list", help="List shipped layouts and those in [mail] layouts_dir (which override).")
@pass_state
def list_cmd(state: CliState) -> None:
    list_layouts(state.load())


@layouts_group.command(
    "preview", help="Render layout NAME for ERP address N with a placeholder password (nothing is sent)."
)
@click.argument("name")
@click.option("--address", required=True, type=click.IntRange(min=0), metavar="N", help="ERP address number.")
@platform_option()
@click.option("--html", is_flag=True, help="Show the HTML part instead of the text part.")
@pass_state
def preview_cmd(state: CliState, name: str, address: int, platform: str | None, html: bool) -> None:
    loaded = state.load()
    check_platform(state, platform)
    preview_layout(loaded, state.secrets(), name=name, address=address, platform=platform, html=html)

"""`syncd check`: validate configuration and secrets (and, once wired, connectivity, ERP table
and password field, layouts, shop metadata); print a table; exit 0 when all pass, else 2."""

from __future__ import annotations

import sys

import click
from rich.console import Console
from rich.table import Table

from syncd.config.loader import LoadedConfig
from syncd.config.secrets import Secrets, resolve_secret
from syncd.domain import CheckItem
from syncd.errors import ConfigError
from syncd.state.db import probe_state

from .common import CliState, pass_state
from .messages import msg


def collect_checks(loaded: LoadedConfig, secrets: Secrets | None) -> list[CheckItem]:
    """Checks beyond config and secrets: the integrator extends this with ERP, shop, mail and
    layout checks. ``secrets`` is None when a secret could not be resolved."""
    return []


def secret_checks(loaded: LoadedConfig) -> tuple[list[CheckItem], Secrets | None]:
    """Each secret resolved on its own, so one table shows every missing secret at once."""
    settings, file = loaded.settings, str(loaded.path)
    wanted: list[tuple[str, str | None]] = [
        ("erp.password", settings.erp.password),
        ("mail.password", settings.mail.password),
    ] + [(f"platforms[{i}].client_secret", p.client_secret) for i, p in enumerate(settings.platforms)]
    items, values = [], {}
    for key, ref in wanted:
        if not ref:
            continue
        try:
            values[key] = resolve_secret(ref, file=file, key=key)
            items.append(CheckItem("secrets", key, True, _describe_ref(ref)))
        except ConfigError as exc:
            items.append(CheckItem("secrets", key, False, str(exc)))
    if not all(i.ok for i in items):
        return items, None
    secrets = Secrets(
        erp_password=values.get("erp.password"),
        mail_password=values.get("mail.password"),
        client_secrets={
            p.name: values[f"platforms[{i}].client_secret"] for i, p in enumerate(settings.platforms)
        },
    )
    return items, secrets


def _describe_ref(ref: str) -> str:
    scheme, sep, _ = ref.partition(":")
    if sep and scheme in ("keyring", "env", "credential"):
        return ref  # a reference names where the secret is, never the secret
    return "plain text in the configuration file (warning)"


def render_checks(items: list[CheckItem], console: Console) -> None:
    table = Table(show_lines=False)
    for key in ("col_area", "col_check", "col_result", "col_detail"):
        table.add_column(msg(key), overflow="fold")
    for item in items:
        result = f"[green]{msg('ok')}[/green]" if item.ok else f"[bold red]{msg('failed')}[/bold red]"
        table.add_row(item.area, item.name, result, item.detail, end_section=False)
    console.print(table)


@click.command(
    "check",
    help="Validate the configuration, secrets, connectivity, ERP table and columns, password field "
    "type and length, layouts and shop metadata. Prints a table; exit 0 when everything passes, 2 otherwise.",
)
@pass_state
@click.pass_context
def check_cmd(ctx: click.Context, state: CliState) -> None:
    loaded = state.load()
    items = [CheckItem("config", str(loaded.path), True, "valid")]
    ok, detail = probe_state(loaded.settings.daemon.state_url)
    items.append(CheckItem("state", "daemon.state_url", ok, detail))
    found, secrets = secret_checks(loaded)
    items += found
    items += collect_checks(loaded, secrets)
    # Off a terminal (CI logs, pipes) rich would assume 80 columns and fold every detail.
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
    render_checks(items, console)
    failed = [i for i in items if not i.ok]
    if failed:
        click.echo(msg("check_failed", n=len(failed)), err=True)
        ctx.exit(2)
    click.echo(msg("check_ok"))

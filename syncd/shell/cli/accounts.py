"""`syncd accounts`: the operator side of customer accounts. The work is in ``syncd.flows.accounts``;
this module parses, picks the platform, prints, and maps outcomes to exit codes (0 all done,
1 some address was not done, 2 an address that is not linked)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from syncd.config.loader import LoadedConfig
from syncd.config.secrets import Secrets
from syncd.core.errors import AccessError, whoami

from .common import CliState, check_platform, pass_state, platform_option

if TYPE_CHECKING:
    from syncd.flows.accounts import AccountAction
    from syncd.flows.context import PlatformContext


def _platforms(loaded: LoadedConfig, platform: str | None) -> list[str]:
    return [p.name for p in loaded.settings.platforms if platform is None or p.name == platform]


@dataclass(frozen=True)
class Filters:
    inactive: bool = False
    credentials_sent: bool | None = None
    changed_by_customer: bool = False


def _rows(state: CliState, platform: str | None, filters: Filters):  # noqa: ANN202 - a generator
    """The accounts, their password status refined from the shop when it can be reached (one
    search per 100 accounts); without it the status comes from the state store alone, said on
    stderr. ``--changed-by-customer`` needs the shop: then a failure is an error."""
    from syncd.core.errors import ConfigError, SyncdError
    from syncd.core.redaction import redact
    from syncd.flows.accounts import list_accounts
    from syncd.shell.bootstrap import open_shop_for, open_state_read_only

    loaded = state.load()
    names = _platforms(loaded, platform)
    shops: dict[str, Any] = {}

    def warn(name: str, exc: Exception) -> None:
        if filters.changed_by_customer:
            raise SyncdError(f"platform {name!r}: the shop is needed for --changed-by-customer: "
                             f"{redact(str(exc))}")
        click.echo(f"warning: platform {name!r}: shop not reachable, password status from the state store "
                   f"only / Shop nicht erreichbar: {redact(str(exc))}", err=True)

    try:
        secrets = state.secrets()
    except ConfigError as exc:
        secrets = None
        for name in names:
            warn(name, exc)
    store = open_state_read_only(loaded.settings.daemon.state_url)
    try:
        if secrets is not None:
            for p in loaded.settings.platforms:
                if p.name in names:
                    shops[p.name] = open_shop_for(loaded.settings, p, secrets, erp_columns=False)
        yield from list_accounts(store, names, inactive=filters.inactive,
                                 credentials_sent=filters.credentials_sent,
                                 changed_by_customer=filters.changed_by_customer, shops=shops,
                                 on_shop_error=warn)
    finally:
        for shop in shops.values():
            shop.close()
        store.close()


def list_accounts(state: CliState, *, platform: str | None, filters: Filters) -> None:
    from syncd.flows.accounts import CSV_HEADER, iso

    table = Table(show_lines=False)
    for name in CSV_HEADER:
        table.add_column(name.replace("_", " "), overflow="fold")
    count = 0
    for row in _rows(state, platform, filters):
        count += 1
        table.add_row(escape(row.platform), str(row.address), row.shop_id, escape(row.email or ""), row.kind,
                      "yes" if row.active else "no", iso(row.credentials_sent_at) or "–", row.password_status)
    Console(highlight=False, width=None if sys.stdout.isatty() else 200).print(table)
    click.echo(f"{count} account(s) / Konto/Konten")


def export_accounts(state: CliState, *, platform: str | None, output: str, filters: Filters) -> None:
    from syncd.flows.accounts import write_csv

    if output == "-":
        write_csv(_rows(state, platform, filters), sys.stdout)
        return
    target = Path(output).expanduser().absolute()
    # Written beside the target and renamed at the end: a failed export leaves no half file, and
    # an unusable path is found before the state store is read.
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    hint = (f"create the folder {target.parent} first, or choose another file with -o"
            if not target.parent.is_dir() else
            f"choose a file in a folder {whoami()} may write, with -o")
    try:
        fh = open(tmp, "w", encoding="utf-8", newline="")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise AccessError.from_os(target, "write the export", exc, hint) from None
    try:
        with fh:
            n = write_csv(_rows(state, platform, filters), fh)
        os.replace(tmp, target)
    except OSError as exc:
        raise AccessError.from_os(target, "write the export", exc, hint) from None
    finally:
        tmp.unlink(missing_ok=True)
    click.echo(f"{n} account(s) written to {target}", err=True)


@contextmanager
def _context(loaded: LoadedConfig, secrets: Secrets, platform: str | None) -> Iterator[PlatformContext]:
    from syncd.shell.bootstrap import open_runtime

    names = _platforms(loaded, platform)
    if len(names) != 1:
        raise click.UsageError(
            f"several platforms are configured ({', '.join(names)}); choose one with --platform"
        )
    runtime = open_runtime(loaded, secrets)
    try:
        yield runtime.context(names[0])
    finally:
        runtime.close()


def _run(loaded: LoadedConfig, secrets: Secrets, platform: str | None,
         work: Callable[[PlatformContext], list[AccountAction]], *, hint: str) -> int:
    from syncd.flows.accounts import UnknownAddresses
    from syncd.shell.bootstrap import preflight

    preflight(loaded, secrets)  # a wrong password field is refused before any write (I7)
    with _context(loaded, secrets, platform) as ctx:
        try:
            outcomes = work(ctx)
        except UnknownAddresses as exc:
            raise click.BadParameter(str(exc), param_hint=hint) from None
    for o in outcomes:
        line = f"{o.address}: {o.action}" + (f" ({o.detail})" if o.detail else "")
        click.echo(line, err=not o.ok)
    return 0 if all(o.ok for o in outcomes) else 1


def send_credentials(
    loaded: LoadedConfig, secrets: Secrets, *, platform: str | None, addresses: tuple[int, ...]
) -> int:
    from syncd.flows import accounts

    return _run(loaded, secrets, platform, lambda ctx: accounts.send_credentials(ctx, addresses),
                hint="ADDRESS...")


def reset_password(loaded: LoadedConfig, secrets: Secrets, *, platform: str | None, address: int) -> int:
    from syncd.flows import accounts

    return _run(loaded, secrets, platform, lambda ctx: [accounts.reset_password(ctx, address)],
                hint="ADDRESS")


def deactivate(loaded: LoadedConfig, secrets: Secrets, *, platform: str | None, address: int) -> int:
    from syncd.flows import accounts

    return _run(loaded, secrets, platform, lambda ctx: [accounts.deactivate(ctx, address)], hint="ADDRESS")


def create(loaded: LoadedConfig, secrets: Secrets, *, platform: str | None, address: int) -> int:
    from syncd.flows import accounts

    return _run(loaded, secrets, platform, lambda ctx: [accounts.create(ctx, address)], hint="ADDRESS")


def delete(loaded: LoadedConfig, secrets: Secrets, *, platform: str | None, address: int) -> int:
    from syncd.flows import accounts

    return _run(loaded, secrets, platform, lambda ctx: [accounts.delete(ctx, address)], hint="ADDRESS")


@click.group(
    "accounts",
    help="Customer accounts: list, export (CSV), create, send credentials, reset passwords, deactivate, "
         "delete.",
)
def accounts_group() -> None:
    pass


def _filters(fn):  # noqa: ANN001, ANN202 - click decorator stack
    fn = click.option("--inactive", is_flag=True,
                      help="Include deactivated accounts (default: active accounts only).")(fn)
    fn = click.option(
        "--credentials-sent/--no-credentials-sent",
        "credentials_sent",
        default=None,
        help="Only accounts that were (not) mailed credentials or a link; default: both.",
    )(fn)
    fn = click.option("--changed-by-customer", is_flag=True,
                      help="Only accounts whose customer set a password of their own (password status "
                           "'own password'; asks the shop).")(fn)
    return fn


@accounts_group.command("list", help="List linked customer accounts with their password status.")
@platform_option()
@_filters
@pass_state
def list_cmd(state: CliState, platform: str | None, inactive: bool, credentials_sent: bool | None,
             changed_by_customer: bool) -> None:
    check_platform(state, platform)
    list_accounts(state, platform=platform, filters=Filters(inactive, credentials_sent, changed_by_customer))


@accounts_group.command(
    "export", help="Export linked customer accounts as CSV (stable, documented columns: see README)."
)
@platform_option()
@_filters
@click.option("--output", "-o", default="-", metavar="FILE", help="CSV file to write; '-' = stdout.")
@pass_state
def export_cmd(state: CliState, platform: str | None, output: str, inactive: bool,
               credentials_sent: bool | None, changed_by_customer: bool) -> None:
    check_platform(state, platform)
    export_accounts(state, platform=platform, output=output,
                    filters=Filters(inactive, credentials_sent, changed_by_customer))


def _prepare(state: CliState, platform: str | None) -> tuple[LoadedConfig, Secrets]:
    loaded = state.load()
    check_platform(state, platform)
    return loaded, state.secrets()


@accounts_group.command(
    "send-credentials", help="Generate new passwords for these ERP addresses and mail them credentials."
)
@platform_option()
@click.argument("addresses", nargs=-1, required=True, type=click.IntRange(min=0), metavar="ADDRESS...")
@pass_state
@click.pass_context
def send_credentials_cmd(
    ctx: click.Context, state: CliState, platform: str | None, addresses: tuple[int, ...]
) -> None:
    ctx.exit(send_credentials(*_prepare(state, platform), platform=platform, addresses=addresses))


@accounts_group.command("reset-password", help="Reset the shop password of one ERP address and mail it.")
@platform_option()
@click.argument("address", type=click.IntRange(min=0))
@pass_state
@click.pass_context
def reset_password_cmd(ctx: click.Context, state: CliState, platform: str | None, address: int) -> None:
    ctx.exit(reset_password(*_prepare(state, platform), platform=platform, address=address))


@accounts_group.command("deactivate", help="Deactivate the shop account of one ERP address.")
@platform_option()
@click.argument("address", type=click.IntRange(min=0))
@pass_state
@click.pass_context
def deactivate_cmd(ctx: click.Context, state: CliState, platform: str | None, address: int) -> None:
    ctx.exit(deactivate(*_prepare(state, platform), platform=platform, address=address))


@accounts_group.command("create", help="Create the shop account of one ERP address now and mail it its "
                        "credentials (or set-password link).")
@platform_option()
@click.argument("address", type=click.IntRange(min=0))
@pass_state
@click.pass_context
def create_cmd(ctx: click.Context, state: CliState, platform: str | None, address: int) -> None:
    ctx.exit(create(*_prepare(state, platform), platform=platform, address=address))


@accounts_group.command("delete", help="Delete the shop account of one ERP address and its link; the ERP "
                        "address stays.")
@platform_option()
@click.argument("address", type=click.IntRange(min=0))
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@pass_state
@click.pass_context
def delete_cmd(ctx: click.Context, state: CliState, platform: str | None, address: int, yes: bool) -> None:
    loaded, secrets = _prepare(state, platform)
    if not yes:
        if not sys.stdin.isatty():
            raise click.UsageError("refusing to delete without confirmation: pass --yes "
                                   "/ ohne Bestätigung wird nichts gelöscht: --yes angeben")
        click.confirm(f"Delete the shop account of ERP address {address}? / Shop-Konto der ERP-Adresse "
                      f"{address} löschen?", abort=True)
    ctx.exit(delete(loaded, secrets, platform=platform, address=address))

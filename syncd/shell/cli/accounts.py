"""`syncd accounts`: the operator side of customer accounts. The work is in ``syncd.flows.accounts``;
this module parses, picks the platform, prints, and maps outcomes to exit codes (0 all done,
1 some address was not done, 2 an address that is not linked)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import click

from syncd.config.loader import LoadedConfig
from syncd.config.secrets import Secrets
from syncd.core.rules import account_label

from .accounts_view import LIST_FIELDS, Filters, _platforms, export_accounts, list_accounts
from .common import AccountKey, CliState, check_platform, pass_state, platform_option
from .login_as import login_as_cmd
from .messages import LANG_OPTION

__all__ = ["LIST_FIELDS", "accounts_group"]

if TYPE_CHECKING:
    from syncd.flows.accounts import AccountAction
    from syncd.flows.context import PlatformContext


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
        line = f"{account_label(o.address)}: {o.action}" + (f" ({o.detail})" if o.detail else "")
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
         "delete, erase (GDPR), approve / reject, forgot-username.",
)
def accounts_group() -> None:
    pass


accounts_group.add_command(login_as_cmd)


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
    fn = click.option(
        "--never-mailed", is_flag=True,
        help="Only accounts whose credentials mail was held at go-live (send_credentials_since); "
        "send it with `accounts send-credentials`.",
    )(fn)
    return fn


def _state_filter(fn):  # noqa: ANN001, ANN202 - the --state option (syncd.shell.cli.account_events)
    return click.option("--state", "approval", type=click.Choice(("in-progress", "approved", "rejected")),
                        default=None,
                        help='Only accounts in this approval state (see approval = "manual").')(fn)


def _list_by_state(state: CliState, platform: str | None, approval: str | None) -> bool:
    """``accounts list --state``: the approval records instead of the links; True when handled."""
    if approval is None:
        return False
    from .approval_list import list_by_state

    list_by_state(state.load(), platform=platform, state=approval)
    return True


@accounts_group.command(
    "list", help="List linked customer accounts by ERP number, with name, e-mail and password status. "
    "--format csv / json: stable English field names (see README)."
)
@platform_option()
@_filters
@_state_filter
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table",
              show_default=True, help="table: for people; csv / json: stable fields for scripts (README).")
@LANG_OPTION
@pass_state
def list_cmd(state: CliState, platform: str | None, inactive: bool, credentials_sent: bool | None,
             changed_by_customer: bool, never_mailed: bool, fmt: str, lang: str | None,
             approval: str | None = None) -> None:
    check_platform(state, platform)
    if _list_by_state(state, platform, approval):
        return
    list_accounts(state, state.load(), platform=platform, filters=Filters(inactive, credentials_sent,
                  changed_by_customer, never_mailed), fmt=fmt, lang=lang)


@accounts_group.command(
    "export", help="Export linked customer accounts as CSV (stable, documented columns: see README)."
)
@platform_option()
@_filters
@click.option("--output", "-o", default="-", metavar="FILE", help="CSV file to write; '-' = stdout.")
@click.option("--excel", is_flag=True,
              help="For spreadsheet programs: semicolon-separated, UTF-8 with a byte-order mark.")
@pass_state
def export_cmd(state: CliState, platform: str | None, output: str, inactive: bool,
               credentials_sent: bool | None, changed_by_customer: bool, never_mailed: bool,
               excel: bool) -> None:
    check_platform(state, platform)
    export_accounts(state, platform=platform, output=output,
                    filters=Filters(inactive, credentials_sent, changed_by_customer, never_mailed),
                    excel=excel)


def _prepare(state: CliState, platform: str | None) -> tuple[LoadedConfig, Secrets]:
    loaded = state.load()
    check_platform(state, platform)
    return loaded, state.secrets()


@accounts_group.command(
    "send-credentials", help="Generate new passwords for these ERP addresses and mail them credentials."
)
@platform_option()
@click.argument("addresses", nargs=-1, required=True, type=AccountKey(), metavar="ADDRESS...")
@pass_state
@click.pass_context
def send_credentials_cmd(
    ctx: click.Context, state: CliState, platform: str | None, addresses: tuple[int, ...]
) -> None:
    ctx.exit(send_credentials(*_prepare(state, platform), platform=platform, addresses=addresses))


@accounts_group.command("reset-password", help="Reset the shop password of one ERP address and mail it.")
@platform_option()
@click.argument("address", type=AccountKey())
@pass_state
@click.pass_context
def reset_password_cmd(ctx: click.Context, state: CliState, platform: str | None, address: int) -> None:
    ctx.exit(reset_password(*_prepare(state, platform), platform=platform, address=address))


def erase(loaded: LoadedConfig, secrets: Secrets, *, platform: str | None, address: int) -> int:
    from syncd.flows import accounts

    return _run(loaded, secrets, platform, lambda ctx: [accounts.erase(ctx, address)], hint="ADDRESS")


@accounts_group.command(
    "erase",
    help="Erase one ERP address on request (GDPR): delete its shop account, the link and syncd's "
    "history of it; a tombstone keeps the account from being created again. A company's contact "
    "persons' accounts (10001-2) are erased with it; 10001-2 erases one contact's.",
)
@platform_option()
@click.argument("address", type=AccountKey())
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_state
@click.pass_context
def erase_cmd(ctx: click.Context, state: CliState, platform: str | None, address: int, yes: bool) -> None:
    if not yes:
        shown = account_label(address)
        click.confirm(f"Erase address {shown} and delete its shop account (a company's with its contact "
                      f"persons' accounts)? / Adresse {shown} und ihr Shop-Konto (bei einer Firma mit den "
                      "Konten ihrer Ansprechpartner) endgültig löschen?", abort=True)
    ctx.exit(erase(*_prepare(state, platform), platform=platform, address=address))


@accounts_group.command("deactivate", help="Deactivate the shop account of one ERP address.")
@platform_option()
@click.argument("address", type=AccountKey())
@pass_state
@click.pass_context
def deactivate_cmd(ctx: click.Context, state: CliState, platform: str | None, address: int) -> None:
    ctx.exit(deactivate(*_prepare(state, platform), platform=platform, address=address))


@accounts_group.command("create", help="Create the shop account of one ERP address now and mail it its "
                        "credentials (or set-password link).")
@platform_option()
@click.argument("address", type=AccountKey())
@pass_state
@click.pass_context
def create_cmd(ctx: click.Context, state: CliState, platform: str | None, address: int) -> None:
    ctx.exit(create(*_prepare(state, platform), platform=platform, address=address))


@accounts_group.command("delete", help="Delete the shop account of one ERP address and its link; the ERP "
                        "address stays.")
@platform_option()
@click.argument("address", type=AccountKey())
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@pass_state
@click.pass_context
def delete_cmd(ctx: click.Context, state: CliState, platform: str | None, address: int, yes: bool) -> None:
    loaded, secrets = _prepare(state, platform)
    if not yes:
        if not sys.stdin.isatty():
            raise click.UsageError("refusing to delete without confirmation: pass --yes "
                                   "/ ohne Bestätigung wird nichts gelöscht: --yes angeben")
        click.confirm(f"Delete the shop account of ERP address {account_label(address)}? / Shop-Konto der "
                      f"ERP-Adresse {account_label(address)} löschen?", abort=True)
    ctx.exit(delete(loaded, secrets, platform=platform, address=address))

"""`syncd accounts`: the operator side of customer accounts."""

from __future__ import annotations

import click

from syncd.config.loader import LoadedConfig
from syncd.config.secrets import Secrets

from .common import CliState, check_platform, not_available, pass_state, platform_option


def list_accounts(loaded: LoadedConfig, secrets: Secrets, *, platform: str | None, **filters: bool) -> None:
    not_available("syncd accounts list")


def export_accounts(
    loaded: LoadedConfig, secrets: Secrets, *, platform: str | None, output: str, **filters: bool
) -> None:
    not_available("syncd accounts export")


def send_credentials(
    loaded: LoadedConfig, secrets: Secrets, *, platform: str | None, addresses: tuple[int, ...]
) -> None:
    not_available("syncd accounts send-credentials")


def reset_password(loaded: LoadedConfig, secrets: Secrets, *, platform: str | None, address: int) -> None:
    not_available("syncd accounts reset-password")


def deactivate(loaded: LoadedConfig, secrets: Secrets, *, platform: str | None, address: int) -> None:
    not_available("syncd accounts deactivate")


@click.group(
    "accounts", help="Customer accounts: list, export (CSV), send credentials, reset passwords, deactivate."
)
def accounts_group() -> None:
    pass


def _filters(fn):  # noqa: ANN001, ANN202 - click decorator stack
    fn = click.option("--inactive", is_flag=True, help="Only deactivated accounts.")(fn)
    fn = click.option(
        "--credentials-sent", is_flag=True, help="Only accounts that were mailed credentials."
    )(fn)
    fn = click.option("--no-credentials", is_flag=True, help="Only accounts never mailed credentials.")(fn)
    return fn


def _prepare(state: CliState, platform: str | None) -> tuple[LoadedConfig, Secrets]:
    loaded = state.load()
    check_platform(state, platform)
    return loaded, state.secrets()


@accounts_group.command("list", help="List linked customer accounts with their password status.")
@platform_option()
@_filters
@pass_state
def list_cmd(state: CliState, platform: str | None, **filters: bool) -> None:
    list_accounts(*_prepare(state, platform), platform=platform, **filters)


@accounts_group.command("export", help="Export linked customer accounts as CSV (stable, documented columns).")
@platform_option()
@_filters
@click.option("--output", "-o", default="-", metavar="FILE", help="CSV file to write; '-' = stdout.")
@pass_state
def export_cmd(state: CliState, platform: str | None, output: str, **filters: bool) -> None:
    export_accounts(*_prepare(state, platform), platform=platform, output=output, **filters)


@accounts_group.command(
    "send-credentials", help="Generate new passwords for these ERP addresses and mail them credentials."
)
@platform_option()
@click.argument("addresses", nargs=-1, required=True, type=click.IntRange(min=0), metavar="ADDRESS...")
@pass_state
def send_credentials_cmd(state: CliState, platform: str | None, addresses: tuple[int, ...]) -> None:
    send_credentials(*_prepare(state, platform), platform=platform, addresses=addresses)


@accounts_group.command("reset-password", help="Reset the shop password of one ERP address and mail it.")
@platform_option()
@click.argument("address", type=click.IntRange(min=0))
@pass_state
def reset_password_cmd(state: CliState, platform: str | None, address: int) -> None:
    reset_password(*_prepare(state, platform), platform=platform, address=address)


@accounts_group.command("deactivate", help="Deactivate the shop account of one ERP address.")
@platform_option()
@click.argument("address", type=click.IntRange(min=0))
@pass_state
def deactivate_cmd(state: CliState, platform: str | None, address: int) -> None:
    deactivate(*_prepare(state, platform), platform=platform, address=address)

"""`syncd secrets set NAME`: store a secret in the OS keyring, print the reference to use."""

from __future__ import annotations

import re
import sys

import click
from keyring.errors import KeyringError

from syncd.config.secrets import KEYRING_SERVICE, keyring_backend
from syncd.core.errors import SyncdError

from .messages import msg

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


@click.group("secrets", help="Secrets in the OS keyring (referenced in the config as keyring:SERVICE/NAME).")
def secrets_group() -> None:
    pass


def _name(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    if not _NAME.match(value):
        raise click.BadParameter("use 1-64 letters, digits, '_', '.' or '-'")
    return value


@secrets_group.command(
    "set",
    help="Store secret NAME in the OS keyring (service 'syncd'). Prompts without echo, or reads "
    "one line from stdin with --stdin. Prints the reference to put into the configuration.",
)
@click.argument("name", callback=_name)
@click.option("--stdin", "from_stdin", is_flag=True, help="Read the secret from the first line of stdin.")
@click.option(
    "--service", default=KEYRING_SERVICE, show_default=True, callback=_name, help="Keyring service."
)
def set_cmd(name: str, from_stdin: bool, service: str) -> None:
    backend = keyring_backend(key=f"keyring:{service}/{name}")  # refuses plain-text backends
    if from_stdin:
        value = sys.stdin.readline().rstrip("\r\n")
    else:
        value = click.prompt(msg("secret_prompt", name=name), hide_input=True, confirmation_prompt=True)
    if not value:
        raise click.UsageError(msg("secret_empty"))
    try:
        backend.set_password(service, name, value)
    except KeyringError as exc:
        raise SyncdError(f"the keyring refused to store {service}/{name}: {exc}") from exc
    click.echo(msg("secret_stored", backend=type(backend).__name__))
    click.echo(f'  password = "keyring:{service}/{name}"')

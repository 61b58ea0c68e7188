"""What every verb shares: the global options, lazily loaded configuration and secrets."""

from __future__ import annotations

from dataclasses import dataclass, field

import click

from syncd.config.loader import LoadedConfig, load_settings
from syncd.config.secrets import Secrets, resolve_all
from syncd.core.rules import parse_account


@dataclass
class CliState:
    config_path: str | None = None
    log_format: str | None = None
    log_level: str = "info"
    _loaded: LoadedConfig | None = field(default=None, repr=False)
    _secrets: Secrets | None = field(default=None, repr=False)

    def load(self) -> LoadedConfig:
        """The validated configuration (ConfigError -> exit 2 before anything is written)."""
        if self._loaded is None:
            self._loaded = load_settings(self.config_path)
        return self._loaded

    def secrets(self) -> Secrets:
        """All secrets resolved (a missing one is a ConfigError -> exit 2)."""
        if self._secrets is None:
            loaded = self.load()
            self._secrets = resolve_all(loaded.settings, loaded.path)
        return self._secrets


pass_state = click.make_pass_decorator(CliState, ensure=True)


def platform_option(required: bool = False):  # noqa: ANN201 - a click decorator
    return click.option(
        "--platform",
        "platform",
        metavar="NAME",
        required=required,
        help="Only this platform ([[platforms]] name); default: all.",
    )


def check_platform(state: CliState, name: str | None) -> None:
    """Unknown --platform is a usage error naming the configured ones."""
    if name is None:
        return
    names = [p.name for p in state.load().settings.platforms]
    if name not in names:
        raise click.BadParameter(
            f"{name!r} is not a configured platform; configured: {', '.join(names)}",
            param_hint="--platform",
        )


class AccountKey(click.ParamType):
    """An ERP number ("10001") or a contact person's account ("10001-2")."""

    name = "address"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        key = parse_account(str(value))
        if key is None:
            self.fail(f"{value!r} is no ERP number (10001) or contact account (10001-2) / "
                      "keine Adressnummer", param, ctx)
        return key

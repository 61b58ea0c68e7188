"""`syncd layouts`: the available e-mail layouts and rendered previews."""

from __future__ import annotations

import click

from syncd.config.loader import LoadedConfig
from syncd.config.secrets import Secrets

from .common import CliState, check_platform, not_available, pass_state, platform_option


def list_layouts(loaded: LoadedConfig) -> None:
    not_available("syncd layouts list")


def preview_layout(
    loaded: LoadedConfig, secrets: Secrets, *, name: str, address: int, platform: str | None, html: bool
) -> None:
    not_available("syncd layouts preview")


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

"""`syncd demo`: the whole flow on this machine with no outside systems."""

from __future__ import annotations

from pathlib import Path

import click

from syncd.shell.status import locale_language


def run_demo(directory: Path | None, platform: str = "shopware6") -> None:
    from rich.console import Console
    from rich.text import Text

    from syncd.shell.demo import render_summary
    from syncd.shell.demo import run_demo as run

    result = run(directory, platform)
    console = Console()
    for part in render_summary(result, lang=locale_language()):
        # Lines of text hold paths and commands to copy: never broken at the console width (a
        # terminal wraps them softly); tables and the mail panel fit themselves to it.
        console.print(part, soft_wrap=isinstance(part, Text))
    if result.login_ok is False:
        raise click.ClickException("the mailed password did not log in to the sandbox shop")


@click.command(
    "demo",
    help="Run the whole flow on this machine with no outside systems: a SQLite ERP with sample "
    "addresses, a local shop sandbox, mails to a local outbox. Prints what happened. "
    "Needs no configuration file.",
)
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Working folder for the demo files (default: a new temporary folder).",
)
@click.option(
    "--platform",
    "platform",
    type=click.Choice(["shopware6", "woocommerce"]),
    default="shopware6",
    show_default=True,
    help="The kind of shop the sandbox plays / die Art des Sandbox-Shops.",
)
@click.pass_context
def demo_cmd(ctx: click.Context, directory: Path | None, platform: str) -> None:
    root = ctx.find_root()
    if root.get_parameter_source("log_level") in (None, click.core.ParameterSource.DEFAULT):
        # The summary is the demo's output, and its tables list every record that did not go
        # through: per-record logs (warnings included) would only repeat it ahead of it.
        from syncd.shell.logs import configure_logging

        configure_logging(root.params.get("log_format"), "error")
    run_demo(directory, platform)

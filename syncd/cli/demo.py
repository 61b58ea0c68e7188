"""`syncd demo`: the whole flow on this machine with no outside systems."""

from __future__ import annotations

from pathlib import Path

import click

from .common import not_available


def run_demo(directory: Path | None) -> None:
    """Replaced by the integrator: SQLite ERP, local shop sandbox, mails to a local outbox."""
    not_available("syncd demo")


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
def demo_cmd(directory: Path | None) -> None:
    run_demo(directory)

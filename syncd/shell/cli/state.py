"""`syncd state export FILE` / `syncd state import FILE`: move the state store between backends
(SQLite <-> PostgreSQL) or machines (``syncd.state.transfer``).

Both act on the configured ``daemon.state_url`` unless ``--url`` names another store, so a move
is: export with the old configuration, point ``state_url`` at the new store, import. Errors are
one line naming the file: exit 2 for the file or an occupied target, 1 when a store fails.
"""

from __future__ import annotations

from pathlib import Path

import click

from syncd.core.redaction import redact

from .common import CliState, pass_state

_TEXT = {
    "exported": {
        "en": "Exported {total} rows to {path} ({tables}).",
        "de": "{total} Zeilen nach {path} exportiert ({tables}).",
    },
    "imported": {
        "en": "Imported {total} rows from {path} ({tables}).",
        "de": "{total} Zeilen aus {path} importiert ({tables}).",
    },
}


class StateCommandError(click.ClickException):
    """One line on stderr, ``syncd: state VERB: ...``, with the README's exit code."""

    def __init__(self, verb: str, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.verb = verb
        self.exit_code = exit_code

    def show(self, file=None) -> None:  # noqa: ANN001 - click's signature
        click.echo(f"syncd: state {self.verb}: {redact(self.message)}", err=True)


def _text(key: str, **values: object) -> str:
    from syncd.shell.status import locale_language

    table = _TEXT[key]
    return table.get(locale_language(), table["en"]).format(**values)


def _url(state: CliState, url: str | None) -> str:
    return url if url else state.load().settings.daemon.state_url


def _summary(rows: dict[str, int]) -> str:
    return ", ".join(f"{name} {n}" for name, n in rows.items() if n) or "-"


def _run(verb: str, action):  # noqa: ANN001, ANN202
    from syncd.core.errors import ConfigError, SyncdError
    from syncd.state.transfer import TransferError

    try:
        return action()
    except TransferError as exc:
        raise StateCommandError(verb, str(exc), 2 if exc.usage else 1) from exc
    except ConfigError:
        raise
    except SyncdError as exc:
        raise StateCommandError(verb, str(exc), 1) from exc


url_option = click.option(
    "--url", "url", metavar="URL",
    help="The state store to use instead of daemon.state_url (an SQLAlchemy URL).",
)


@click.group("state", help="Move the state store between SQLite and PostgreSQL (or machines): "
             "export it to a versioned JSON-lines file, import that into an empty store.")
def state_group() -> None:
    pass


@state_group.command("export", help="Write every row of the state store (links, cursors, credential "
                     "jobs, failures, number allocations, cycles, cache) to FILE. Safe while the "
                     "daemon runs: one consistent snapshot. The store never holds passwords.")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite FILE if it exists.")
@url_option
@pass_state
def export_cmd(state: CliState, file: Path, force: bool, url: str | None) -> None:
    from syncd.shell.bootstrap import open_state_read_only
    from syncd.state.transfer import export_store

    def action():  # noqa: ANN202
        from syncd.shell.bootstrap import state_file
        from syncd.state.transfer import TransferError

        source = _url(state, url)
        path = state_file(source)
        if path is not None and not path.exists():
            raise TransferError(f"{path}: no state store there, nothing to export")
        store = open_state_read_only(source)
        try:
            return export_store(store, file, overwrite=force)
        finally:
            store.close()

    result = _run("export", action)
    click.echo(_text("exported", total=result.total, path=file, tables=_summary(result.rows)))


@state_group.command("import", help="Load FILE (from `syncd state export`) into the state store, in "
                     "one transaction. Refuses a store that already holds rows unless --replace. "
                     "Stop the daemon first.")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--replace", is_flag=True, help="Delete the target store's rows first (same transaction).")
@url_option
@pass_state
def import_cmd(state: CliState, file: Path, replace: bool, url: str | None) -> None:
    from syncd.state.db import open_state
    from syncd.state.transfer import check_file, import_store

    def action():  # noqa: ANN202
        check_file(file)  # a bad file creates no store
        store = open_state(_url(state, url))
        try:
            return import_store(store, file, replace=replace)
        finally:
            store.close()

    result = _run("import", action)
    click.echo(_text("imported", total=result.total, path=file, tables=_summary(result.rows)))

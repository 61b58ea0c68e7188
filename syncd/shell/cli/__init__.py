"""The ``syncd`` command.

Exit codes: 0 success, 1 runtime failure, 2 usage or configuration error. Errors are shown as
one redacted line on stderr; a traceback goes to the log (redacted like every log event), never
raw to the terminal.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click
import structlog

from syncd import __version__
from syncd.core.errors import AccessError, ConfigError, SyncdError
from syncd.core.redaction import redact
from syncd.shell.logs import LEVELS, configure_logging

from . import account_events  # noqa: F401 - adds approve / reject / forgot-username to `accounts`
from .accounts import accounts_group
from .bounces import bounces_group
from .check import check_cmd
from .clear_cache import clear_cache_cmd
from .common import CliState
from .demo import demo_cmd
from .layouts import layouts_group
from .messages import msg
from .records import history_cmd, retry_cmd
from .release import release_cmd
from .reminders import reminders_group
from .run import run_cmd
from .secrets import secrets_group
from .service import service_group
from .state import state_group
from .status import status_cmd
from .sync import sync_cmd

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2

log = structlog.get_logger("syncd.cli")


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110},
    help="syncd keeps ERP customer addresses and online-shop customer accounts in step and mails "
    "new customers their credentials.\n\nExit codes: 0 success, 1 runtime failure, 2 usage or "
    "configuration error.",
)
@click.option(
    "--config",
    "config_path",
    metavar="PATH",
    envvar=None,
    help="Configuration file. Default: $SYNCD_CONFIG, then /etc/syncd/config.toml "
    r"(Windows: %PROGRAMDATA%\syncd\config.toml).",
)
@click.option(
    "--log-format",
    type=click.Choice(["json", "console"]),
    default=None,
    help="Log rendering on stderr. Default: console on a terminal, JSON lines otherwise.",
)
@click.option(
    "--log-level",
    type=click.Choice(LEVELS, case_sensitive=False),
    default="info",
    show_default=True,
    help="Least severe log level shown.",
)
@click.version_option(__version__, prog_name="syncd")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, log_format: str | None, log_level: str) -> None:
    configure_logging(log_format, log_level)
    ctx.obj = CliState(config_path=config_path, log_format=log_format, log_level=log_level.lower())


for command in (
    run_cmd,
    sync_cmd,
    check_cmd,
    clear_cache_cmd,
    status_cmd,
    accounts_group,
    layouts_group,
    secrets_group,
    demo_cmd,
    service_group,
    state_group,
    retry_cmd,
    history_cmd,
    reminders_group,
    release_cmd,
    bounces_group,
):
    cli.add_command(command)


def _fail(prefix: str, exc: object) -> None:
    click.echo(f"syncd: {prefix}: {redact(str(exc))}", err=True)


_VALUED_GLOBALS = ("--config", "--log-format", "--log-level")


def hoist_config(argv: list[str]) -> list[str]:
    """``syncd status --config PATH`` as ``syncd --config PATH status``: operators put the file
    after the verb as often as before it, and click only knows it as a global option. It moves
    to just before the verb (so it still wins over an earlier one); anything after ``--`` stays."""
    verb = 0
    while verb < len(argv) and argv[verb].startswith("-"):
        verb += 2 if argv[verb] in _VALUED_GLOBALS else 1
    if verb >= len(argv):
        return argv
    head, rest, moved = argv[:verb], [argv[verb]], []
    index = verb + 1
    while index < len(argv):
        arg = argv[index]
        if arg == "--":
            rest += argv[index:]
            break
        if arg == "--config" and index + 1 < len(argv):
            moved += argv[index:index + 2]
            index += 2
            continue
        (moved if arg.startswith("--config=") else rest).append(arg)
        index += 1
    return head + moved + rest


def run_cli(args: Sequence[str] | None = None) -> int:
    """Run the command line and return the exit code (``main`` exits with it)."""
    try:
        argv = hoist_config(list(args) if args is not None else sys.argv[1:])
        result = cli.main(args=argv, prog_name="syncd", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo(f"syncd: {msg('interrupted')}", err=True)
        return EXIT_FAILURE
    except click.ClickException as exc:  # usage errors: click's own message, exit 2
        exc.show()
        return exc.exit_code
    except AccessError as exc:  # a path the operator gave or set up: exit 2, one line with the fix
        _fail(msg("access_error"), exc)
        return EXIT_USAGE
    except ConfigError as exc:
        _fail(msg("config_error"), exc)
        return EXIT_USAGE
    except SyncdError as exc:
        _fail(msg("error"), exc)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        click.echo(f"syncd: {msg('interrupted')}", err=True)
        return 130
    except Exception as exc:
        # The traceback is logged (through the redaction chain), the terminal gets one line.
        log.error("unexpected error", exc_info=True)
        _fail(msg("internal_error"), f"{type(exc).__name__}: {exc}")
        return EXIT_FAILURE
    return result if isinstance(result, int) else EXIT_OK


def main(args: Sequence[str] | None = None) -> None:
    sys.exit(run_cli(args))

"""`syncd run`: the daemon in the foreground (what the service runs).

Order: configuration and secrets, then the start-up validation (ERP password fields, layouts:
a ConfigError exits 2 before anything is written, not even the pid file or the state store),
then the state store and the daemon loop (``syncd.shell.daemon``)."""

from __future__ import annotations

import click
import structlog

from syncd.config.loader import LoadedConfig, load_settings
from syncd.config.model import Settings
from syncd.config.secrets import Secrets, resolve_all
from syncd.core.errors import TransientError

from .common import CliState, pass_state

log = structlog.get_logger("syncd.cli.run")


def validate_at_start(loaded: LoadedConfig, secrets: Secrets) -> None:
    """I7 before any write. An ERP that does not answer is not a configuration fault: the
    daemon starts and its cycles retry (and record the failure), as for a shop that is down."""
    from syncd.shell.bootstrap import preflight

    try:
        preflight(loaded, secrets)
    except TransientError as exc:
        log.warning("ERP not reachable at start; validation happens when it answers", error=str(exc))


def run_daemon(loaded: LoadedConfig, secrets: Secrets, *, log_format: str | None) -> int:
    from syncd.shell import daemon
    from syncd.shell.bootstrap import flow_jobs, open_runtime, reconcile_job, sweep

    validate_at_start(loaded, secrets)
    runtime = open_runtime(loaded, secrets)

    def reload() -> Settings:
        # A refused reload (bad file, missing secret, wrong password field) raises: the daemon
        # logs it and keeps the running configuration.
        fresh = load_settings(loaded.path)
        fresh_secrets = resolve_all(fresh.settings, fresh.path)
        validate_at_start(fresh, fresh_secrets)
        runtime.reconfigure(fresh.settings, fresh_secrets)
        return fresh.settings

    try:
        return daemon.run_daemon(
            loaded.settings,
            build_context=runtime.context,
            jobs=flow_jobs(),
            sweep=sweep,
            reload=reload,
            reconcile=reconcile_job(),
            store=runtime.state,
        )
    finally:
        runtime.close()


@click.command(
    "run",
    help="Run the daemon in the foreground (what the systemd/Windows service starts). "
    "Stops gracefully on SIGTERM/SIGINT; sends systemd readiness and watchdog notifications "
    "when started by systemd. SIGHUP reloads the configuration and empties the cache.",
)
@pass_state
@click.pass_context
def run_cmd(ctx: click.Context, state: CliState) -> None:
    loaded = state.load()
    code = run_daemon(loaded, state.secrets(), log_format=state.log_format)
    ctx.exit(code)

"""`syncd sync`: one full cycle now.

Without ``--dry-run`` each platform/direction runs like a daemon cycle (``CycleRunner``): under
its lease (a running daemon's cycle is not run twice at once), after the platform's password
fields are settled (I2), recorded in ``cycles`` so `syncd status` shows it. ``--dry-run`` reads
only: the state store is opened without migrating (or, when it does not exist yet, replaced by
an empty in-memory one), connector metadata stays in memory, and the flows are asked what they
would do. ``--full`` runs the erp-to-shop direction as ``syncd.flows.reconcile.run_full`` (the
cycle, then the reconciliation) and prints the drift it found.

Exit codes: 0 when every cycle ran (records that failed are listed, they are not a failed
run), 1 when a cycle raised, could not run, or had work held back by a configuration fault (a
refused SMTP login, a mapping target missing in the shop: one line names it), 2 for
configuration errors.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from syncd.config.loader import LoadedConfig
from syncd.config.secrets import Secrets
from syncd.flows.context import CycleReport
from syncd.shell.status import locale_language

from .common import CliState, check_platform, pass_state, platform_option

DIRECTIONS = ("erp-to-shop", "shop-to-erp", "both")
# Report actions whose records the summary lists one by one, with their reasons.
LISTED = ("failed", "skipped", "deferred", "would-fail", "would-skip")
ITEM_LIMIT = 50

_TEXT = {
    "en": {
        "title": "syncd sync", "dry": "syncd sync --dry-run (nothing was written)", "platform": "Platform",
        "direction": "Direction", "result": "Result", "counts": "Records by action", "ok": "ok",
        "failed": "FAILED", "records": "Records not done", "record": "Record", "action": "Action",
        "reason": "Reason", "more": "… and {n} more", "nothing": "nothing to do",
        "standby": "not run: another syncd holds the lease {lease} (a running daemon?); try again later",
        "waiting": "not run: settling the password fields failed (see the log)",
        "stopped": "not run",
        "drift": "Reconciliation: drift found",
        "planned": "What would happen per record",
    },
    "de": {
        "title": "syncd sync", "dry": "syncd sync --dry-run (nichts wurde geschrieben)",
        "platform": "Plattform", "direction": "Richtung", "result": "Ergebnis",
        "counts": "Datensätze je Aktion", "ok": "ok", "failed": "FEHLER",
        "records": "Nicht erledigte Datensätze", "record": "Datensatz", "action": "Aktion",
        "reason": "Grund", "more": "… und {n} weitere", "nothing": "nichts zu tun",
        "standby": "nicht gelaufen: ein anderer syncd hält die Sperre {lease} (laufender Dienst?); "
        "später erneut versuchen",
        "waiting": "nicht gelaufen: Bereinigen der Passwortfelder fehlgeschlagen (siehe Log)",
        "stopped": "nicht gelaufen",
        "drift": "Abgleich: gefundene Abweichungen",
        "planned": "Was je Datensatz geschähe",
    },
}


@dataclass
class DirectionResult:
    """One row of the summary: what a platform's direction did (``report``) or why it did not
    run or failed (``error``)."""

    platform: str
    direction: str
    report: CycleReport | None
    error: str | None = None


def _directions(direction: str) -> list[str]:
    return ["erp-to-shop", "shop-to-erp"] if direction == "both" else [direction]


@contextmanager
def _progress(console: Console) -> Iterator[Callable[[str], Callable[[int, int | None], None]]]:
    """A rich progress bar per platform/direction on a terminal; silent otherwise."""
    if not console.is_terminal:
        yield lambda _label: (lambda _done, _total: None)
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=False) as bar:
        def make(label: str) -> Callable[[int, int | None], None]:
            task = bar.add_task(label, total=None)

            def update(done: int, total: int | None) -> None:
                bar.update(task, completed=done, total=total)

            return update

        yield make


def sync_once(
    loaded: LoadedConfig, secrets: Secrets, *, platform: str | None, direction: str, dry_run: bool,
    full: bool = False,
) -> int:
    from syncd.core.errors import ConfigError, TransientError
    from syncd.core.gcpause import gc_paused
    from syncd.core.redaction import error_text
    from syncd.shell.bootstrap import flow_jobs, open_runtime, preflight, reconcile_job, sweep
    from syncd.shell.scheduler import CycleOutcome, CycleRunner
    from syncd.state.leases import lease_name, make_holder

    lang = locale_language()
    t = _TEXT[lang]
    settings = loaded.settings
    platforms = [p for p in settings.platforms if platform is None or p.name == platform]
    try:
        preflight(loaded, secrets)
    except TransientError:
        pass  # the cycle itself meets the ERP and reports it as a failed cycle
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
    outcomes: list[DirectionResult] = []
    jobs = flow_jobs()
    if full:  # the erp-to-shop cycle followed by the reconciliation (syncd.flows.reconcile)
        jobs["erp-to-shop"] = reconcile_job()
    runtime = open_runtime(loaded, secrets, read_only=dry_run)
    runner = None
    try:
        if not dry_run:
            runner = CycleRunner(runtime.state, holder=make_holder(), lease_ttl=settings.daemon.lease_ttl,
                                 sweep=sweep)
        with _progress(console) as progress:
            for p in platforms:
                for d in _directions(direction):
                    try:
                        ctx = runtime.context(p)
                    except ConfigError:
                        raise
                    except Exception as exc:  # e.g. an unreachable shop: this platform fails, not all
                        outcomes.append(DirectionResult(p.name, d, None, error_text(exc)))
                        continue
                    ctx.progress = progress(f"{p.name} {d}")
                    if dry_run:
                        try:
                            # Outside a CycleRunner: the same GC pause as a cycle (syncd.core.gcpause).
                            with gc_paused():
                                report = jobs[d](ctx, dry_run=True)
                            outcomes.append(DirectionResult(p.name, d, report))
                        except Exception as exc:
                            outcomes.append(DirectionResult(p.name, d, None, error_text(exc)))
                        continue
                    assert runner is not None
                    result = runner.run(ctx, d, jobs[d])
                    if result.outcome == CycleOutcome.OK:
                        outcomes.append(DirectionResult(p.name, d, result.report))
                    elif result.outcome == CycleOutcome.FAILED:
                        error = result.error or t["failed"]
                        outcomes.append(DirectionResult(p.name, d, result.report, error))
                    elif result.outcome == CycleOutcome.STANDBY:
                        outcomes.append(DirectionResult(p.name, d, None,
                                                t["standby"].format(lease=lease_name(p.name, d))))
                    else:
                        outcomes.append(DirectionResult(p.name, d, None, t[str(result.outcome.value)]))
    except KeyboardInterrupt:
        if runner is not None:
            # Close the cycle record (status would show it running forever); password fields in
            # flight are settled by the next start's sweep.
            runner.abandon_inflight("interrupted (Ctrl-C): the next run settles its records")
        raise
    finally:
        if runner is not None:
            runner.release_all([p.name for p in platforms], _directions(direction))
        runtime.close()
    render_summary(outcomes, console, dry_run=dry_run, lang=lang)
    if dry_run:
        render_mail_forecast(outcomes, console)
    render_drift(outcomes, console, lang=lang)
    failed = [o for o in outcomes if o.error]
    for o in failed:
        click.echo(f"syncd: {o.platform} {o.direction}: {o.error}", err=True)
    return 1 if failed else 0


def render_summary(
    outcomes: list[DirectionResult], console: Console, *, dry_run: bool, lang: str = "en"
) -> None:
    t = _TEXT.get(lang, _TEXT["en"])
    summary = Table(title=t["dry"] if dry_run else t["title"])
    for key in ("platform", "direction", "result", "counts"):
        summary.add_column(t[key], overflow="fold")
    records = Table(title=t["planned"] if dry_run else t["records"])
    for key in ("platform", "record", "action", "reason"):
        records.add_column(t[key], overflow="fold")
    listed = 0
    for o in outcomes:
        counts = dict(o.report.counts) if o.report is not None else {}
        text = ", ".join(f"{action} {n}" for action, n in sorted(counts.items())) or t["nothing"]
        summary.add_row(escape(o.platform), o.direction, t["failed"] if o.error else t["ok"], escape(text))
        if o.report is None:
            continue
        # A dry run lists what would happen to each record (the customers an import would
        # create with their numbers, the accounts it would create, link or adopt), not only
        # the records that would not be done.
        items = [i for i in o.report.items
                 if i.action in LISTED or (dry_run and i.action.startswith("would-"))]
        for item in items[:ITEM_LIMIT]:
            records.add_row(escape(o.platform), escape(item.record), item.action, escape(item.detail))
        if len(items) > ITEM_LIMIT:
            records.add_row(o.platform, t["more"].format(n=len(items) - ITEM_LIMIT), "", "")
        listed += len(items)
    console.print(summary)
    if listed:
        console.print(records)


def render_mail_forecast(outcomes: list[DirectionResult], console: Console) -> None:
    """One line per platform: the credentials mails the next cycle would send (and hold back)."""
    for o in outcomes:
        if o.report is None or o.direction != "erp-to-shop":
            continue
        c = o.report.counts
        line = (f"{o.platform}: the next cycle would send {c.get('would-mail', 0)} credentials mail(s) / "
                f"der nächste Lauf würde {c.get('would-mail', 0)} Zugangsdaten-Mail(s) senden")
        held = c.get("would-hold", 0) + c.get("held", 0)
        if held:
            line += f"; held / zurückgehalten: {held}"
        if c.get("would-wait"):
            line += f"; over the mail budget / über dem Versandlimit: {c['would-wait']}"
        console.print(escape(line))


def render_drift(outcomes: list[DirectionResult], console: Console, *, lang: str = "en") -> None:
    """The drift a reconciliation counted (``sync --full``), one row per platform."""
    from syncd.state.drift import KEYS

    rows = [o for o in outcomes if o.report is not None and o.report.drift is not None]
    if not rows:
        return
    table = Table(title=_TEXT.get(lang, _TEXT["en"])["drift"])
    table.add_column(_TEXT.get(lang, _TEXT["en"])["platform"])
    for key in KEYS:
        table.add_column(key, justify="right")
    for o in rows:
        drift = o.report.drift or {}
        table.add_row(escape(o.platform), *(str(drift.get(k, 0)) for k in KEYS))
    console.print(table)


@click.command(
    "sync",
    help="Run one full synchronisation cycle now, with a progress bar on a terminal. "
    "--dry-run reports what would happen and writes nothing anywhere.",
)
@platform_option()
@click.option(
    "--direction",
    type=click.Choice(DIRECTIONS),
    default="both",
    show_default=True,
    help="erp-to-shop: push ERP addresses (and credential mails); shop-to-erp: import shop customers.",
)
@click.option("--dry-run", is_flag=True, help="Report what would be done; change nothing.")
@click.option(
    "--full", is_flag=True,
    help="Also reconcile: compare every ERP address, link and shop account, repair drift and report it "
    "(what the daemon does every [daemon] reconcile_interval).",
)
@pass_state
@click.pass_context
def sync_cmd(
    ctx: click.Context, state: CliState, platform: str | None, direction: str, dry_run: bool, full: bool
) -> None:
    loaded = state.load()
    check_platform(state, platform)
    code = sync_once(loaded, state.secrets(), platform=platform, direction=direction, dry_run=dry_run,
                     full=full)
    ctx.exit(code or 0)

"""Per-record verbs: ``syncd retry`` (evaluate records again now) and ``syncd history`` (what
happened to one address). The work is in ``syncd.flows.retry`` and ``syncd.state.history``."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from syncd.core.rules import account_label

from .common import AccountKey, CliState, check_platform, pass_state, platform_option
from .messages import LANG_OPTION, msg


@click.command(
    "retry",
    help="Evaluate records again now: re-read each ERP address and run it through the flow (push to "
    "the shop, credentials mail when one is owed), whatever the change scan thinks. ADDRESS... or "
    "--failed (every failed record). Exit 0 all done, 1 some record still failed or its mail waits, "
    "2 unknown address or platform (nothing done).",
)
@platform_option()
@click.option("--failed", "all_failed", is_flag=True, help="Every record `syncd status` lists as failed.")
@click.argument("addresses", nargs=-1, type=AccountKey(), metavar="ADDRESS...")
@pass_state
@click.pass_context
def retry_cmd(ctx: click.Context, state: CliState, platform: str | None, all_failed: bool,
              addresses: tuple[int, ...]) -> None:
    if bool(addresses) == all_failed:
        raise click.UsageError("name ADDRESS... or --failed (one of the two) / "
                               "ADDRESS... oder --failed angeben")
    check_platform(state, platform)
    ctx.exit(_retry(state, platform, addresses, all_failed))


def _retry(state: CliState, platform: str | None, addresses: tuple[int, ...], all_failed: bool) -> int:
    from syncd.flows.retry import UnknownAddresses, failed_records, retry_addresses
    from syncd.shell.bootstrap import open_runtime, preflight

    loaded, secrets = state.load(), state.secrets()
    preflight(loaded, secrets)  # a wrong password field is refused before any write (I7)
    chosen = [p for p in loaded.settings.platforms if platform is None or p.name == platform]
    pushing = [p.name for p in chosen if p.addresses.erp_to_shop]
    if not pushing:
        raise click.BadParameter("no chosen platform transfers ERP addresses to the shop (erp_to_shop = "
                                 "false)", param_hint="--platform")
    ok = True
    runtime = open_runtime(loaded, secrets)
    try:
        for name in pushing:
            pctx = runtime.context(name)
            if all_failed:
                numbers, imports = failed_records(pctx)
                if imports:
                    click.echo(f"{name}: {len(imports)} failed shop -> ERP import(s) are retried by every "
                               "import cycle (syncd sync --direction shop-to-erp)")
                if not numbers:
                    click.echo(f"{name}: no failed records / keine fehlgeschlagenen Datensätze")
                    continue
            else:
                numbers = list(addresses)
            try:
                outcomes = retry_addresses(pctx, numbers)
            except UnknownAddresses as exc:
                raise click.BadParameter(str(exc), param_hint="ADDRESS...") from None
            for o in outcomes:
                click.echo(f"{name} {o.address}: {'ok' if o.ok else 'FAILED'}: {o.detail}", err=not o.ok)
                ok = ok and o.ok
    finally:
        runtime.close()
    return 0 if ok else 1


@click.command(
    "history",
    help="Every event of one ERP address (and of its contact persons' accounts), oldest first: pushed, "
    "created, adopted, rejected, mail sent / deferred / failed, imported, deactivated, main contact, "
    "with time and reason (kept [daemon] history_days). ADDRESS: 10001, or 10001-2 for one contact.",
)
@platform_option()
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="table: for people; json: one stable object for scripts (see README).")
@LANG_OPTION
@click.argument("address", type=AccountKey())
@pass_state
def history_cmd(state: CliState, platform: str | None, fmt: str, lang: str | None, address: int) -> None:
    from syncd.shell.bootstrap import open_state_read_only
    from syncd.state.history import History

    check_platform(state, platform)
    settings = state.load().settings
    store = open_state_read_only(settings.daemon.state_url)
    try:
        events = History(store, lambda: datetime.now(UTC)).of_address(address, platform, contacts=True)
    finally:
        store.close()
    if fmt == "json":
        json.dump({"address": account_label(address), "events": [
            {"at": _iso(e.at), "platform": e.platform, "event": e.event, "reason": e.reason,
             "shop_id": e.shop_id, "account": account_label(e.erp_number)} for e in events]},
            sys.stdout, ensure_ascii=False)
        sys.stdout.write("\n")
        return
    if not events:
        click.echo(msg("history_none", lang, address=account_label(address),
                       days=settings.daemon.history_days))
        return
    table = Table(show_lines=False)
    accounts = any(e.erp_number != address for e in events)  # contact accounts in it: say whose
    columns = ("col_time", "col_platform", *(["col_account"] if accounts else []), "col_event", "col_reason")
    for key in columns:
        table.add_column(msg(key, lang), overflow="fold")
    for e in events:
        account = [account_label(e.erp_number)] if accounts else []
        table.add_row(_iso(e.at), escape(e.platform), *account,
                      msg("event_" + e.event, lang, default=e.event), escape(e.reason or ""))
    Console(highlight=False, width=None if sys.stdout.isatty() else 200).print(table)


def _iso(at: datetime) -> str:
    at = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

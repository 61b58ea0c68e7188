"""`syncd check`: validate configuration and secrets (and, once wired, connectivity, ERP table
and password field, layouts, shop metadata); print a table; exit 0 when all pass, else 2."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from syncd.config.contacts import contacts_used
from syncd.config.loader import LoadedConfig
from syncd.config.messaging import sms_possible
from syncd.config.model import PlatformSettings
from syncd.config.secrets import Secrets, resolve_secret
from syncd.core.domain import CheckItem
from syncd.core.errors import ConfigError
from syncd.core.redaction import redact
from syncd.state.db import probe_state

from .common import CliState, pass_state
from .messages import msg


def collect_checks(loaded: LoadedConfig, secrets: Secrets | None,
                   missing: Mapping[str, str] | None = None) -> list[CheckItem]:
    """Checks beyond config and secrets: ERP table, columns and password fields, layouts, mail
    transport, each shop, the shop -> ERP settings. ``missing``: secret key -> reference of the
    secrets that could not be resolved; every check that needs none of them still runs, the
    others are one "skipped: secret ..." row each. ``secrets`` None: only the layout checks.

    Writes nothing: connectors get an in-memory metadata cache, the state store is read without
    migrating (an absent one is not created), a SQLite ERP file that does not exist is reported
    rather than connected to (which would create it)."""
    from syncd.shell.bootstrap import erp_file_problem, open_shop_for

    settings = loaded.settings
    missing = dict(missing or {})
    items: list[CheckItem] = []
    items += _layout_checks(loaded)
    if secrets is None:
        return items
    if settings.sms.enabled:
        from syncd.shell.bootstrap import check_sms

        items += _guard("sms", "sms", lambda: check_sms(settings, secrets))
    problem = erp_file_problem(settings)
    erp = None
    if problem is not None:
        items.append(CheckItem("erp", "erp.url", False, f"{problem.message}: {problem.value}"))
    elif "erp.password" in missing:
        items.append(_skipped("erp", "connection", "erp.password", missing))
    else:
        erp = _erp_checks(loaded, secrets, items)
    items += mapping_checks(settings)
    if any(_mails(p) for p in settings.platforms):
        if "mail.password" in missing:
            items.append(_skipped("mail", "transport", "mail.password", missing))
        else:
            items += _guard("mail", "transport", lambda: _mail_check(loaded, secrets))
    for index, platform in enumerate(settings.platforms):
        secret_key = f"platforms[{index}].{platform.secret_key}"
        if secret_key in missing:
            items.append(_skipped(f"shop:{platform.name}", "connection", secret_key, missing))
            continue
        shop = None
        try:
            shop = open_shop_for(settings, platform, secrets, erp_columns=False)
            items += _guard(f"shop:{platform.name}", "connection", shop.check)
            items += _guard(f"shop:{platform.name}", "customer numbers",
                            lambda p=platform, s=shop: number_range_checks(settings, p, s))
            if erp is not None:
                items += _guard("config", f"platforms[{platform.name}].addresses",
                                lambda p=platform, s=shop: _import_checks(loaded, secrets, p, erp, s))
                if _mails(platform):
                    items += _guard("mail", f"platforms[{platform.name}] next cycle",
                                    lambda p=platform, s=shop: _mail_forecast(loaded, p, erp, s))
            elif "erp.password" in missing:
                items.append(_skipped("config", f"platforms[{platform.name}].addresses", "erp.password",
                                      missing))
        finally:
            if shop is not None:
                shop.close()
    if erp is not None:
        erp.close()
    return items


def _skipped(area: str, name: str, key: str, missing: Mapping[str, str]) -> CheckItem:
    detail = msg("check_skipped_secret", secret=key, ref=missing[key])
    return CheckItem(area, name, False, detail, skipped=True)


def mapping_checks(settings: Any) -> list[CheckItem]:
    """The mapping decisions an operator should see before the first push (issue 13)."""
    from syncd.config.profiles import business_rule, effective_deletion_mark, shop_flag_rule

    items = [CheckItem("erp", "private/business", True, business_rule(settings.erp))]
    for index, platform in enumerate(settings.platforms):
        a = platform.addresses
        items.append(CheckItem("erp", f"shop flag (platforms[{index}])", True,
                               shop_flag_rule(settings.erp, a.unflagged)))
        mark = effective_deletion_mark(settings.erp)
        if mark is not None:
            marked = f"{mark[0]} = {mark[1]!r}" if mark[1] is not None else f"{mark[0]} set"
            how = a.on_erp_delete or ("deactivate" if a.deactivate_blocked else "ignore")
            items.append(CheckItem("erp", f"deletion mark (platforms[{index}])", True,
                                   f"an address with {marked} is treated as deleted: on_erp_delete = {how}"))
        if platform.default_country:
            country = f"empty country -> {platform.default_country.upper()} (default_country)"
        else:
            country = "an address with an empty country fails with a reason (no default_country)"
        items.append(CheckItem("config", f"platforms[{index}].default_country", True, country))
        if a.shop_changes != "ignore":
            items.append(CheckItem("config", f"platforms[{index}].addresses.shop_changes", True,
                                   f"{a.shop_changes}: {', '.join(a.shop_change_fields)} "
                                   "(newer change wins, ties go to the ERP)"))
    # The blocked event is the notice of a deactivation: where no platform deactivates, a
    # configured table would never fire, and the operator would not find out from the logs.
    if any(t.event == "blocked" and t.enabled for t in settings.notifications) and not any(
            p.addresses.deactivate_blocked for p in settings.platforms):
        items.append(CheckItem("config", "notifications: event = \"blocked\"", True,
                               "never sent: no platform deactivates blocked addresses (deactivate_blocked = "
                               "false; WooCommerce cannot deactivate)", warning=True))
    return items


def number_range_checks(settings: Any, platform: PlatformSettings, shop: Any) -> list[CheckItem]:
    """The shop's customer number range against [erp] debtor_range: a storefront registration
    must never get a number syncd gives an ERP address (issue 13)."""
    area, lo_hi = f"shop:{platform.name}", tuple(settings.erp.debtor_range)
    prefix = platform.customer_number_prefix
    rng, problem = shop.customer_number_overlap(lo_hi, prefix)
    if rng is None:
        return [CheckItem(area, "customer number range", True, "the shop has no customer number range")]
    shown = f"pattern {rng.pattern!r}, next {rng.render(rng.next)}"
    if problem is None:
        ours = f"{prefix}<ERP number>" if prefix else "<ERP number>"
        return [CheckItem(area, "customer number range", True,
                          f"{shown}; no overlap with syncd's numbers {ours} for erp.debtor_range "
                          f"{lo_hi[0]}-{lo_hi[1]}")]
    fix = ('set platforms[].customer_number_prefix (e.g. "E") or move the shop\'s range above '
           "the debtor range")
    refuse = platform.number_range_overlap == "refuse"
    return [CheckItem(area, "customer number range", not refuse, f"overlap: {problem}; {fix}",
                      warning=not refuse)]


def _mails(platform: PlatformSettings) -> bool:
    a = platform.addresses
    return bool(a.erp_to_shop and a.send_credentials)


def _guard(area: str, name: str, fn: Callable[[], list[CheckItem]]) -> list[CheckItem]:
    """A check that raises is one failed line, never a crash of the whole table."""
    try:
        return list(fn())
    except Exception as exc:
        return [CheckItem(area, name, False, redact(f"{type(exc).__name__}: {exc}"))]


def _layout_checks(loaded: LoadedConfig) -> list[CheckItem]:
    from syncd.render.store import LayoutStore

    try:
        store = LayoutStore(loaded.settings.mail.layouts_dir)
    except ConfigError as exc:
        return [CheckItem("layout", "mail.layouts_dir", False, str(exc))]
    items = []
    for index, platform in enumerate(loaded.settings.platforms):
        if not _mails(platform):
            continue
        a = platform.addresses
        for layout_key, layout in a.layouts_in_use().items():
            key = f"platforms[{index}].addresses.{layout_key}"
            sms = credential_sms(loaded.settings, store, layout) if layout == a.email_layout else {}
            for item in store.check(layout, a.password_field, mode=a.credential_mode, **sms):
                items.append(CheckItem(item.area, f"{key} = {item.name!r}", item.ok, item.detail,
                                       warning=item.warning))
            stale = store.staleness(layout)
            if stale is not None:
                items.append(CheckItem("layout", f"{key} = {layout!r}", True, staleness_text(stale),
                                       warning=True))
    for index, reminder in enumerate(loaded.settings.reminders):
        key = f"reminders[{index}].layout"
        sms = reminder.channel in ("sms", "both") or (
            reminder.channel == "preferred" and sms_possible(loaded.settings))
        for item in store.check(reminder.layout, None, sms=sms and loaded.settings.sms.enabled):
            items.append(CheckItem(item.area, f"{key} = {item.name!r}", item.ok, item.detail))
    # Event mail layouts ([[notifications]]): found, complete, compile, known names only. They
    # never read a password column (no password travels in an event mail).
    for index, table in enumerate(loaded.settings.notifications):
        if not table.enabled:
            continue
        key = f"notifications[{index}].layout"
        for item in store.check(table.layout_name, None):
            items.append(CheckItem(item.area, f"{key} = {item.name!r}", item.ok, item.detail))
    return items


def staleness_text(stale: Any) -> str:
    """One line on a layout whose two bodies may disagree (``syncd.render.store.Staleness``)."""
    if stale.marks is not None:
        return msg("layout_stale_marks", origin=stale.origin, text=stale.marks[0] or "–",
                   html=stale.marks[1] or "–")
    return msg("layout_stale_time", origin=stale.origin, newer=stale.newer, older=stale.older,
               age=_age(stale.seconds or 0.0))


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{round(seconds / size)} {unit}"
    return f"{int(seconds)} s"


def credential_sms(settings: Any, store: Any, layout: str) -> dict[str, bool]:
    """A credentials layout with an SMS text goes by SMS to customers who choose it; such an
    SMS must not carry the password unless allowed (``[messages] allow_password_by_sms``)."""
    return {"sms": sms_possible(settings) and store.has_sms(layout),
            "allow_password_by_sms": settings.messages.allow_password_by_sms}


def _erp_checks(loaded: LoadedConfig, secrets: Secrets, items: list[CheckItem]) -> Any:
    from syncd.shell.bootstrap import open_erp_for

    settings = loaded.settings
    try:
        erp = open_erp_for(settings, secrets)
    except ConfigError as exc:
        items.append(CheckItem("erp", exc.key or "erp.url", False, str(exc)))
        return None
    # Link mode writes no ERP field: its platforms need the table and columns only.
    wanted = [(i, p) for i, p in enumerate(settings.platforms) if p.addresses.uses_password_field]
    runs = [
        (p.addresses.password_field, p.addresses.password_length, f"platforms[{i}].addresses.password_field")
        for i, p in wanted
    ] or [(None, None, None)]
    seen: set[tuple[str, str, bool, str]] = set()
    connected = True
    for field_name, length, key in runs:
        def one(f: Any = field_name, n: Any = length, k: Any = key) -> list[CheckItem]:
            return erp.check(f, n, password_key=k)

        for item in _guard("erp", "check", one):
            if item.name == "connection" and not item.ok:
                connected = False
            signature = (item.area, item.name, item.ok, item.detail)
            if signature not in seen:
                seen.add(signature)
                items.append(item)
    if not connected:
        erp.close()
        return None
    if contacts_used(settings):
        items += _guard("erp", "erp.contacts", erp.check_contacts)
    return erp


def _mail_check(loaded: LoadedConfig, secrets: Secrets) -> list[CheckItem]:
    from syncd.shell.bootstrap import check_mail

    # A per-platform sender the server refuses would fail every mail of that platform.
    platforms = loaded.settings.platforms
    senders = tuple(p.sender for p in platforms if p.sender and _mails(p) and not p.mail)
    items = check_mail(loaded.settings, secrets, senders)
    for p in platforms:  # each shop that mails from its own account: that server and sender too
        if p.mail and _mails(p):
            items += check_mail(loaded.settings, secrets, (p.sender,) if p.sender else (), platform=p)
    from syncd.shell.bounces import check_mailbox

    return items + check_mailbox(loaded.settings, file=str(loaded.path))


def _import_checks(loaded: LoadedConfig, secrets: Secrets, platform: PlatformSettings, erp: Any, shop: Any
                   ) -> list[CheckItem]:
    from syncd.flows.context import PlatformContext
    from syncd.flows.import_checks import check_import_settings
    from syncd.shell.bootstrap import open_state_read_only

    try:
        state = open_state_read_only(loaded.settings.daemon.state_url)
    except Exception:  # the state line above already says what is wrong with it
        state = open_state_read_only("sqlite://")
    try:
        ctx = PlatformContext(settings=loaded.settings, platform=platform, erp=erp, shop=shop, state=state)
        return check_import_settings(ctx)
    finally:
        state.close()


def _mail_forecast(loaded: LoadedConfig, platform: PlatformSettings, erp: Any, shop: Any) -> list[CheckItem]:
    """How many credentials mails the next cycle would send: the dry run's count (reads only)."""
    from syncd.flows.context import PlatformContext
    from syncd.flows.erp_to_shop import run_erp_to_shop
    from syncd.flows.erp_to_shop_dry import mails_next_cycle
    from syncd.shell.bootstrap import open_state_read_only

    state = open_state_read_only(loaded.settings.daemon.state_url)
    try:
        ctx = PlatformContext(settings=loaded.settings, platform=platform, erp=erp, shop=shop, state=state)
        report = run_erp_to_shop(ctx, dry_run=True)
    finally:
        state.close()
    n, held, waiting = mails_next_cycle(report), report.counts.get("would-hold", 0) + report.counts.get(
        "held", 0), report.counts.get("would-wait", 0)
    detail = f"{n} credentials mail(s) / Zugangsdaten-Mail(s)"
    if held:
        detail += f"; {held} held at go-live / beim Start zurückgehalten (send_credentials_since)"
    if waiting:
        detail += f"; {waiting} wait for the mail budget / warten auf das Versandlimit"
    return [CheckItem("mail", f"platforms[{platform.name}] next cycle", True, detail)]


def secret_checks(loaded: LoadedConfig) -> tuple[list[CheckItem], Secrets, dict[str, str]]:
    """Each secret resolved on its own, so one table shows every missing secret at once; returns
    the rows, the secrets that did resolve, and key -> reference of those that did not."""
    settings, file = loaded.settings, str(loaded.path)
    wanted: list[tuple[str, str | None]] = [
        ("erp.password", settings.erp.password),
        ("mail.password", settings.mail.password),
    ] + [(f"platforms[{i}].{p.secret_key}", p.secret_ref) for i, p in enumerate(settings.platforms)]
    items, values, missing = [], {}, {}
    for key, ref in wanted:
        if not ref:
            continue
        try:
            values[key] = resolve_secret(ref, file=file, key=key)
            items.append(CheckItem("secrets", key, True, _describe_ref(ref)))
        except ConfigError as exc:
            items.append(CheckItem("secrets", key, False, str(exc)))
            missing[key] = _describe_ref(ref)
    secrets = Secrets(
        erp_password=values.get("erp.password"),
        mail_password=values.get("mail.password"),
        client_secrets={
            p.name: values[f"platforms[{i}].{p.secret_key}"]
            for i, p in enumerate(settings.platforms) if f"platforms[{i}].{p.secret_key}" in values
        },
    )
    return items, secrets, missing


def _describe_ref(ref: str) -> str:
    scheme, sep, _ = ref.partition(":")
    if sep and scheme in ("keyring", "env", "credential"):
        return ref  # a reference names where the secret is, never the secret
    return "plain text in the configuration file (warning)"


def render_checks(items: list[CheckItem], console: Console) -> None:
    table = Table(show_lines=False)
    for key in ("col_area", "col_check", "col_result", "col_detail"):
        table.add_column(msg(key), overflow="fold")
    for item in items:
        result = f"[green]{msg('ok')}[/green]" if item.ok else f"[bold red]{msg('failed')}[/bold red]"
        if item.skipped:
            result = f"[yellow]{msg('skipped')}[/yellow]"
        elif item.warning:
            result = f"[yellow]{msg('warning')}[/yellow]"
        # Keys like platforms[shop] would otherwise be read as rich markup and vanish.
        table.add_row(escape(item.area), escape(item.name), result, escape(item.detail), end_section=False)
    console.print(table)


@click.command(
    "check",
    help="Validate the configuration, secrets, connectivity, ERP table and columns, password field "
    "type and length, layouts and shop metadata. Prints a table; exit 0 when everything passes, 2 otherwise.",
)
@pass_state
@click.pass_context
def check_cmd(ctx: click.Context, state: CliState) -> None:
    loaded = state.load()
    items = [CheckItem("config", str(loaded.path), True, "valid")]
    ok, detail = probe_state(loaded.settings.daemon.state_url)
    items.append(CheckItem("state", "daemon.state_url", ok, detail))
    found, secrets, missing = secret_checks(loaded)
    items += found
    items += collect_checks(loaded, secrets, missing)
    # Off a terminal (CI logs, pipes) rich would assume 80 columns and fold every detail.
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
    render_checks(items, console)
    failed = [i for i in items if not i.ok and not i.skipped]
    if failed or any(i.skipped for i in items):
        click.echo(msg("check_failed", n=len(failed)), err=True)
        ctx.exit(2)
    click.echo(msg("check_ok"))

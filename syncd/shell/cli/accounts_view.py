"""`syncd accounts list` / `export`: the accounts from the state store (with names from the ERP and
the password status refined from the shop), as a table, CSV or JSON (README "Output formats")."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from syncd.config.loader import LoadedConfig
from syncd.core.errors import AccessError, whoami
from syncd.core.redaction import redact

from .common import CliState
from .messages import msg


def _platforms(loaded: LoadedConfig, platform: str | None) -> list[str]:
    return [p.name for p in loaded.settings.platforms if platform is None or p.name == platform]


@dataclass(frozen=True)
class Filters:
    inactive: bool = False
    credentials_sent: bool | None = None
    changed_by_customer: bool = False
    never_mailed: bool = False  # held at go-live (send_credentials_since), never sent since


def _rows(state: CliState, platform: str | None, filters: Filters):  # noqa: ANN202 - a generator
    """The accounts, their password status refined from the shop when it can be reached (one
    search per 100 accounts); without it the status comes from the state store alone, said on
    stderr. ``--changed-by-customer`` needs the shop: then a failure is an error."""
    from syncd.core.errors import ConfigError, SyncdError
    from syncd.core.redaction import redact
    from syncd.flows.accounts import list_accounts, only_never_mailed
    from syncd.shell.bootstrap import open_shop_for, open_state_read_only

    loaded = state.load()
    names = _platforms(loaded, platform)
    shops: dict[str, Any] = {}

    def warn(name: str, exc: Exception) -> None:
        if filters.changed_by_customer:
            raise SyncdError(f"platform {name!r}: the shop is needed for --changed-by-customer: "
                             f"{redact(str(exc))}")
        click.echo(f"warning: platform {name!r}: shop not reachable, password status from the state store "
                   f"only / Shop nicht erreichbar: {redact(str(exc))}", err=True)

    try:
        secrets = state.secrets()
    except ConfigError as exc:
        secrets = None
        for name in names:
            warn(name, exc)
    store = open_state_read_only(loaded.settings.daemon.state_url)
    try:
        if secrets is not None:
            for p in loaded.settings.platforms:
                if p.name in names:
                    shops[p.name] = open_shop_for(loaded.settings, p, secrets, erp_columns=False)
        rows = list_accounts(store, names, inactive=filters.inactive,
                             credentials_sent=filters.credentials_sent,
                             changed_by_customer=filters.changed_by_customer, shops=shops,
                             on_shop_error=warn)
        yield from only_never_mailed(rows, store) if filters.never_mailed else rows
    finally:
        for shop in shops.values():
            shop.close()
        store.close()


LIST_FIELDS = ("address", "name", "email", "platform", "shop_id", "kind", "active", "credentials_sent_at",
               "password_status", "last_login_at", "bounced_at", "contact", "main_contact")


def _names(state: CliState, loaded: LoadedConfig, numbers: list[int]
           ) -> tuple[dict[int, tuple[str, bool | None]], str | None]:
    """ERP number (or contact account) -> (the address's name, company and/or person; whether a
    contact person is the main one), from the ERP; with a note instead when the ERP cannot be
    read (the list itself comes from the state store)."""
    from syncd.config.secrets import Secrets, resolve_secret
    from syncd.core.errors import SyncdError
    from syncd.shell.bootstrap import open_erp_for

    if not numbers:
        return {}, None
    try:
        # The ERP's own password only: a shop or mail secret missing here must not hide the names.
        erp_password = resolve_secret(loaded.settings.erp.password, file=str(loaded.path), key="erp.password")
        erp = open_erp_for(loaded.settings, Secrets(erp_password=erp_password))
    except SyncdError as exc:
        return {}, str(exc)
    try:
        names: dict[int, tuple[str, bool | None]] = {}
        for start in range(0, len(numbers), 500):
            for n, a in erp.get_addresses(numbers[start:start + 500]).items():
                person = " ".join(p for p in (a.first_name, a.last_name) if p)
                names[n] = ", ".join(p for p in (a.company, person) if p), a.main_contact
        return names, None
    except Exception as exc:  # a column of the report, never a reason to fail the whole list
        return {}, redact(f"{type(exc).__name__}: {exc}").splitlines()[0][:300]
    finally:
        erp.close()


def list_accounts(
    state: CliState, loaded: LoadedConfig, *, platform: str | None, filters: Filters, fmt: str,
    lang: str | None,
) -> None:
    """By ERP number; the table in one language (``--lang`` or the locale), CSV and JSON with the
    stable English field names and values of ``LIST_FIELDS``."""
    import csv
    import json

    from syncd.core.rules import account_label, account_parts
    from syncd.flows.accounts import iso

    # A contact person's account (accounts_per = "contact") beside its company's, by contact number.
    rows = sorted(_rows(state, platform, filters),
                  key=lambda r: (account_parts(r.address)[0], account_parts(r.address)[1] or 0, r.platform,
                                 r.shop_id))
    names, problem = _names(state, loaded, sorted({r.address for r in rows}))
    if problem is not None:
        click.echo(msg("names_unavailable", lang, problem=problem), err=True)
    records = [{"address": account_parts(r.address)[0], "name": names.get(r.address, (None, None))[0],
                "email": r.email, "platform": r.platform, "shop_id": r.shop_id, "kind": r.kind,
                "active": r.active, "credentials_sent_at": iso(r.credentials_sent_at) or None,
                "password_status": r.password_status, "last_login_at": iso(r.last_login_at) or None,
                "bounced_at": iso(r.bounced_at) or None,
                "contact": account_parts(r.address)[1], "main_contact": names.get(r.address, (None, None))[1],
                "_label": account_label(r.address)}
               for r in rows]
    if fmt in ("json", "csv"):
        for rec in records:
            del rec["_label"]
    if fmt == "json":
        json.dump({"accounts": records}, sys.stdout, ensure_ascii=False)
        sys.stdout.write("\n")
        return
    if fmt == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\r\n")
        writer.writerow(LIST_FIELDS)
        for rec in records:
            writer.writerow([_csv_value(rec[k]) for k in LIST_FIELDS])
        return
    table = Table(show_lines=False)
    # The contact columns only where contact accounts are (accounts_per = "contact").
    shown = LIST_FIELDS if any(r["contact"] is not None for r in records) else LIST_FIELDS[:-2]
    for name in shown:
        table.add_column(msg("acc_" + name, lang), overflow="fold")
    for rec in records:
        kind, status, main = rec["kind"], rec["password_status"], rec["main_contact"]
        cells = [rec["_label"], escape(rec["name"] or ""), escape(rec["email"] or ""),
                 escape(rec["platform"]), rec["shop_id"], msg("kind_" + kind, lang, default=kind),
                 msg("yes" if rec["active"] else "no", lang), rec["credentials_sent_at"] or "–",
                 msg("pw_" + status.replace(" ", "_"), lang, default=status), rec["last_login_at"] or "–",
                 rec["bounced_at"] or "–",
                 str(rec["contact"] or "–"), "–" if main is None else msg("yes" if main else "no", lang)]
        table.add_row(*cells[:len(shown)])
    Console(highlight=False, width=None if sys.stdout.isatty() else 200).print(table)
    click.echo(msg("accounts_count", lang, n=len(records)))


def _csv_value(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def export_accounts(state: CliState, *, platform: str | None, output: str, filters: Filters,
                    excel: bool = False) -> None:
    """The CSV of "Output formats"; ``excel``: semicolons and a UTF-8 byte-order mark."""
    import io

    from syncd.flows.accounts import write_csv

    if output == "-":
        if not excel:
            write_csv(_rows(state, platform, filters), sys.stdout)
            return
        # Whatever the console's encoding: the byte-order mark promises UTF-8.
        sys.stdout.flush()
        out = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", newline="", write_through=True)
        try:
            write_csv(_rows(state, platform, filters), out, excel=True)
        finally:
            out.detach()
        return
    target = Path(output).expanduser().absolute()
    # Written beside the target and renamed at the end: a failed export leaves no half file, and
    # an unusable path is found before the state store is read.
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    hint = (f"create the folder {target.parent} first, or choose another file with -o"
            if not target.parent.is_dir() else
            f"choose a file in a folder {whoami()} may write, with -o")
    try:
        fh = open(tmp, "w", encoding="utf-8", newline="")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise AccessError.from_os(target, "write the export", exc, hint) from None
    try:
        with fh:
            n = write_csv(_rows(state, platform, filters), fh, excel=excel)
        os.replace(tmp, target)
    except OSError as exc:
        raise AccessError.from_os(target, "write the export", exc, hint) from None
    finally:
        tmp.unlink(missing_ok=True)
    click.echo(f"{n} account(s) written to {target}", err=True)



"""Shop -> ERP: what a customer changed in a linked shop account (``shop_changes``, issue 13).

The shop -> ERP cycle already reads every customer changed since its cursor; for each one that
is linked to an ERP address (kinds ``erp``, ``email``, ``import``; never the collective
address) it compares the mapped, configured fields (``shop_change_fields``) with the ERP row:
one ERP read per changed customer, so the cost is O(changes).

Conflict rule: the newer change wins, ties go to the ERP. The shop's stamp is the customer's
``updatedAt`` (``createdAt`` while it was never written); the ERP's is the newest change stamp of
the address (``modified_at`` and, with a profile's joins, each joined table's stamp). Naive ERP
stamps are read as UTC, as the change scan stores them. Shopware moves ``updatedAt`` on every
storefront login too, so an ERP change not yet pushed can lose against a login that came after
it; the push runs every poll interval, which keeps that window short.

``import`` writes the shop's values into the ERP row (stamped as changed, so the next ERP ->
shop cycle confirms them to the shop) and logs every overwrite with its old and new value;
``report`` keeps them for ``syncd status`` (``syncd.state.shop_changes``) and writes nothing to
the ERP. Values syncd derived when it pushed (the ``-`` of a missing first name, the
company as last name, ``default_country``) are not edits; a company's salutation ("Firma") and
a private address's company column (büro+: the person's name line) are the ERP's and never
taken from the shop; where the company column is the name line, a person's new name is written
to it too ("Vorname Nachname").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from syncd.config.profiles import company_is_name_line, effective_columns
from syncd.core.domain import ErpAddress, ShopCustomer
from syncd.core.rules import HistoryEvent, account_label
from syncd.state.shop_changes import ReportedShopChanges

log = structlog.get_logger("syncd.flows.shop_changes")

NO_NAME = "-"  # what the shop mapping sends for a missing first name
_SALUTATIONS = {"herr": "Herr", "herrn": "Herr", "mr": "Herr", "mr.": "Herr",
                "frau": "Frau", "mrs": "Frau", "mrs.": "Frau", "ms": "Frau", "ms.": "Frau"}


@dataclass(frozen=True)
class FieldChange:
    field: str
    erp: Any
    shop: Any


def _clean(value: Any) -> str | None:
    if value is None:
        return None
    return " ".join(str(value).split()) or None


def differences(c: ShopCustomer, a: ErpAddress, fields: Sequence[str], columns: Mapping[str, str],
                default_country: str | None) -> list[FieldChange]:
    """The configured, mapped fields whose shop value is an edit of the customer (pure)."""
    business = a.business if a.business is not None else bool(_clean(a.company))
    out = []
    for name in fields:
        if not columns.get(name):
            continue
        erp, shop = _clean(getattr(a, name)), _clean(getattr(c, name))
        if name == "salutation":
            if business or shop is None:
                continue  # a company's salutation is the ERP's ("Firma"); the shop shows none for it
            erp = _SALUTATIONS.get((erp or "").casefold(), erp)
        elif name in ("first_name", "last_name"):
            if _clean(c.first_name) == NO_NAME:
                continue  # names syncd derived (no first name, or the company as last name)
        elif name == "company":
            if not business:
                continue  # a private address's company column is the ERP's (büro+: the name line)
        elif name == "country":
            erp, shop = (erp or "").upper() or None, (shop or "").upper() or None
            if erp is None and shop == (default_country or "").upper():
                continue  # the configured default syncd sent
        if erp != shop:
            out.append(FieldChange(name, erp, shop))
    return out


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def shop_is_newer(c: ShopCustomer, erp_stamp: datetime | None) -> bool:
    """The conflict rule: the newer change wins, a tie goes to the ERP."""
    shop = _utc(c.updated_at or c.created_at)
    if shop is None:
        return False
    erp = _utc(erp_stamp)
    return erp is None or shop > erp


def erp_values(changes: Sequence[FieldChange], a: ErpAddress, name_line: bool) -> dict[str, Any]:
    """What the ERP row gets, by logical name: the shop's values, and a person's name line."""
    values = {ch.field: ch.shop for ch in changes}
    business = a.business if a.business is not None else bool(_clean(a.company))
    if name_line and not business and ({"first_name", "last_name"} & values.keys()):
        first = values.get("first_name", a.first_name)
        last = values.get("last_name", a.last_name)
        values["company"] = " ".join(p for p in (_clean(first), _clean(last)) if p) or None
    return values


def _describe(changes: Sequence[FieldChange]) -> str:
    return "; ".join(f"{ch.field}: {ch.erp!r} -> {ch.shop!r}" for ch in changes)


class ShopChanges:
    """One import cycle's handling of shop edits; the caller owns the unit of work and commits."""

    def __init__(self, ctx: Any, report: Any, dry_run: bool) -> None:
        self.ctx = ctx
        self.report = report
        self.dry_run = dry_run
        self.platform = ctx.platform.name
        self.mode = ctx.platform.addresses.shop_changes
        self.fields = ctx.platform.addresses.shop_change_fields
        self.columns = effective_columns(ctx.settings.erp)
        self.name_line = company_is_name_line(ctx.settings.erp)
        self.default_country = ctx.platform.default_country

    @property
    def enabled(self) -> bool:
        return self.mode != "ignore"

    def handle(self, uow: Any, c: ShopCustomer, number: int) -> None:
        """Compare ``c`` with ERP address ``number`` and import or report the customer's edits."""
        erp = self.ctx.erp
        a = erp.get_address(number)
        if a is None:
            return  # the address is gone: the reconciliation reports the orphaned link
        reported = ReportedShopChanges(uow.cursors, self.platform)
        changes = differences(c, a, self.fields, self.columns, self.default_country)
        if not changes:
            self.report.counts["unchanged"] += 1
            if not self.dry_run:
                reported.drop(number)
            return
        stamp = erp.changed_at(a) if hasattr(erp, "changed_at") else a.modified_at
        bound = log.bind(platform=self.platform, address=number, shop_id=c.id, step="shop-change")
        if not shop_is_newer(c, stamp):
            # The ERP's change is newer (or as new): the next push overwrites the shop's values.
            self.report.counts["shop-change-superseded"] += 1
            bound.info("shop change superseded by a newer ERP change", fields=[ch.field for ch in changes])
            if not self.dry_run:
                reported.drop(number)
            return
        text = _describe(changes)
        if self.mode == "report":
            if self.dry_run:
                self.report.add(c.id, "would-report-change", f"ERP address {account_label(number)}: {text}")
                return
            seen = (_utc(c.updated_at or c.created_at) or datetime.now(UTC)).isoformat()
            if reported.put(number, c.id, seen, {ch.field: (ch.erp, ch.shop) for ch in changes}):
                uow.history.record(self.platform, number, HistoryEvent.SHOP_CHANGE_REPORTED, reason=text,
                                   shop_id=c.id)
            self.report.add(c.id, "reported-change", f"ERP address {account_label(number)}: {text}")
            bound.info("shop change reported", changes=text)
            return
        if self.dry_run:
            self.report.add(c.id, "would-import-change", f"ERP address {account_label(number)}: {text}")
            return
        values = erp_values(changes, a, self.name_line)
        erp.update_addresses({number: values})
        for ch in changes:  # every overwrite, with its old and new value
            bound.info("ERP field overwritten by a shop change", field=ch.field,
                       column=self.columns.get(ch.field), old=ch.erp, new=ch.shop)
        if "company" in values and all(ch.field != "company" for ch in changes):
            bound.info("ERP field overwritten by a shop change", field="company (name line)",
                       column=self.columns.get("company"), old=a.company, new=values["company"])
        reported.drop(number)
        uow.history.record(self.platform, number, HistoryEvent.SHOP_CHANGE_IMPORTED, reason=text,
                           shop_id=c.id)
        self.report.add(c.id, "imported-change", f"ERP address {account_label(number)}: {text}")

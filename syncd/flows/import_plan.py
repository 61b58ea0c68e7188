"""Shop -> ERP: the decisions of the import, without I/O (``import_customers`` does the calls).

What a new ERP address is built from (the shop customer's default billing address, the
template's ``copy_fields``), why a customer cannot become one, whether a link is done, and
which ERP row is the customer's own. Everything here takes values and returns values, so it is
tested without a shop, an ERP or a state store.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pycountry

from syncd.config.model import ErpSettings
from syncd.config.profiles import company_is_name_line, effective_shop_flag
from syncd.core.domain import ShopCustomer
from syncd.core.errors import PermanentError
from syncd.core.rules import SHOP_IMPORT_FIELDS, HistoryEvent, LinkKind, account_label
from syncd.flows.numbers import ImportBlocked
from syncd.state.links import Link


class WriteBackFailed(PermanentError):
    step = "write-back"


class LinkedMeanwhile(PermanentError):
    """The customer got linked by the ERP -> shop flow while this cycle was deciding."""

    def __init__(self, link: Link) -> None:
        number = account_label(link.erp_number)
        super().__init__(f"linked meanwhile to ERP address {number} (kind {link.kind})")
        self.link = link


class SettingMissing(ImportBlocked):
    step = "settings"


class InvalidAddress(PermanentError):
    step = "validate"


# --- the new address -------------------------------------------------------------------------


def address_problems(c: ShopCustomer) -> list[str]:
    """Why ``c`` cannot become an ERP address (empty list: it can)."""
    problems = []
    if not (c.email or "").strip():
        problems.append("e-mail address is missing")
    if not ((c.last_name or "").strip() or (c.company or "").strip()):
        problems.append("last name and company are both empty")
    if not (c.street or "").strip():
        problems.append("street is missing in the default billing address")
    if not (c.city or "").strip():
        problems.append("city is missing in the default billing address")
    if not (c.country or "").strip():
        problems.append("country is missing or has no ISO code in the shop")
    elif pycountry.countries.get(alpha_2=c.country.strip().upper()) is None:
        problems.append(f"unknown country {c.country!r} (not an ISO 3166 alpha-2 code)")
    return problems


@dataclass(frozen=True)
class Conventions:
    """How the ERP itself fills a new address (issue 13: imported rows look like rows the ERP
    creates). ``business_salutation``: the salutation of a company ("Firma"); ``name_line``: the
    company column is a shared name line (büro+ Na2: the company, or a person's "Vorname
    Nachname"); ``shop_flag``: the shop flag column and the value that marks an address for the
    shop (None: truthy)."""

    business_salutation: str | None = "Firma"
    name_line: bool = False
    shop_flag: tuple[str, str | None] | None = None

    @classmethod
    def of(cls, erp: ErpSettings) -> Conventions:
        salutation = erp.business_salutations[0] if erp.business_salutations else None
        return cls(salutation, company_is_name_line(erp), effective_shop_flag(erp))


def shop_values(c: ShopCustomer, conventions: Conventions = Conventions()) -> dict[str, Any]:
    """The address fields a new ERP address takes from the shop customer, by logical name, in
    the ERP's own conventions: a company gets the business salutation ("Firma") and its name in
    the company column; a person keeps the shop's salutation ("Herr"/"Frau") and, where the
    company column is a shared name line, gets "Vorname Nachname" there; the address is marked
    for the shop (it came from there) and, with a business flag column, flagged by its kind."""
    values = {f: getattr(c, f) for f in SHOP_IMPORT_FIELDS}
    company = (c.company or "").strip() or None
    if company:
        values["salutation"] = conventions.business_salutation or c.salutation
    elif conventions.name_line:
        names = ((c.first_name or "").strip(), (c.last_name or "").strip())
        values["company"] = " ".join(n for n in names if n) or None
    values["business_flag"] = bool(company)
    if conventions.shop_flag is not None:
        values["shop_flag"] = conventions.shop_flag[1] if conventions.shop_flag[1] is not None else True
    values["country"] = c.country.upper() if c.country else None  # the ERP stores codes upper case
    return values


def check_address(c: ShopCustomer) -> None:
    """Raise ``InvalidAddress`` naming every problem of ``c``; checked before the template is
    read, so a bad customer fails alone even while the template is missing."""
    problems = address_problems(c)
    if problems:
        raise InvalidAddress("; ".join(problems), code="invalid-address")


def new_address_values(
    c: ShopCustomer, columns: Mapping[str, str], template: Mapping[str, Any],
    conventions: Conventions = Conventions(),
) -> dict[str, Any]:
    """What ``ErpPort.create_address`` gets for ``c``: the template's values by column name, the
    shop's by logical name (only the mapped ones), and the shop id when its column is mapped.
    Raises ``InvalidAddress`` naming every problem of ``c``."""
    check_address(c)
    # The shop wins, even with an empty value; ``copy_columns`` keeps the two apart. ``shop_id``
    # by its logical name too: that is how the ERP connector recognises its own row when an
    # insert is retried after a lost reply, instead of reporting the number as taken.
    values: dict[str, Any] = dict(template)
    values.update({k: v for k, v in shop_values(c, conventions).items() if columns.get(k)})
    if columns.get("shop_id"):
        values["shop_id"] = c.id
    return values


def copy_columns(columns: Mapping[str, str], copy_fields: Iterable[str]) -> list[str]:
    """The ERP columns ``copy_fields`` names, without the fields the shop always supplies."""
    own = {columns[f] for f in (*SHOP_IMPORT_FIELDS, "number", "shop_id", "modified_at", "shop_flag",
                                "business_flag") if columns.get(f)}
    out: list[str] = []
    for name in copy_fields:
        column = columns.get(name, name)
        if column not in own and column not in out:
            out.append(column)
    return out


def shop_supplied_columns(columns: Mapping[str, str]) -> set[str]:
    """The ERP columns a new address always takes from the shop (a template value is not used)."""
    return {columns[f] for f in (*SHOP_IMPORT_FIELDS, "shop_flag", "business_flag") if columns.get(f)}


# --- links and owners --------------------------------------------------------------------------


def link_done(c: ShopCustomer, link: Link, prefix: str = "") -> bool:
    """Nothing left to do for a linked customer: the shop carries the linked number (with the
    platform's ``customer_number_prefix``), or the link belongs to the ERP -> shop flow (kinds
    ``erp``/``email``)."""
    own_kinds = (LinkKind.IMPORT, LinkKind.COLLECTIVE)
    return c.customer_number == prefix + str(link.erp_number) or link.kind not in own_kinds


def linked_by_someone_else(current: Link | None, ours: Iterable[int] = ()) -> bool:
    """Whether the link found now was made by someone else than this import (which may own an
    ``import`` link to one of the numbers it tried, ``ours``)."""
    return current is not None and not (current.kind == LinkKind.IMPORT and current.erp_number in set(ours))


def sole_candidate(candidates: Sequence[int] | set[int]) -> int | None:
    """The customer's own address among the ERP addresses with its e-mail: exactly one. Several
    (a shared family address?) are left to the operator, and the customer is imported as new."""
    found = set(candidates)
    return next(iter(found)) if len(found) == 1 else None


def email_variants(email: str | None) -> list[str]:
    """The values to look the e-mail up by in the ERP: as the shop has it, and lower case."""
    value = (email or "").strip()
    if not value:
        return []
    return [value] if value.lower() == value else [value, value.lower()]


def as_number(value: str | None, prefix: str = "") -> int | None:
    """A shop customer number that can name an ERP address (``prefix`` then digits), else None."""
    text = (value or "").strip()
    if prefix:
        if not text.startswith(prefix):
            return None
        text = text[len(prefix):]
    return int(text) if text.isdigit() else None


def same_email(a: Any, b: Any) -> bool:
    return isinstance(a, str) and isinstance(b, str) and a.strip().casefold() == b.strip().casefold()


def history_event(action: str, detail: str, c: ShopCustomer) -> tuple[HistoryEvent, str] | None:
    """The ``syncd history`` event of a customer's import outcome, for the ERP address it got.
    None for the collective address: it collects every such customer, no history of each."""
    who = c.email or c.id
    if action == "imported":
        return HistoryEvent.IMPORTED, f"created from shop customer {who}"
    if action == "linked" and not detail.startswith("collective"):
        return HistoryEvent.ADOPTED, f"shop customer {who} linked to this ERP address"
    return None

"""Domain types shared by connectors and flows: plain data, no I/O."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from syncd.core.rules import PushOutcome


class Direction(StrEnum):
    ERP_TO_SHOP = "erp-to-shop"
    SHOP_TO_ERP = "shop-to-erp"


@dataclass(frozen=True)
class ErpAddress:
    """One ERP address, normalised by the ERP connector.

    ``row`` is the raw row of the read source by *column name* (what a layout sees as ``erp``);
    the named attributes are the logical fields of ``[erp.columns]``. ``problems`` lists value
    problems found while normalising (over-long value, unknown country, ...): a record with
    problems is reported as failed, never silently truncated.
    """

    number: int
    email: str | None = None
    company: str | None = None
    salutation: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    street: str | None = None
    zip: str | None = None
    city: str | None = None
    country: str | None = None  # ISO 3166 alpha-2
    phone: str | None = None
    customer_group: str | None = None
    blocked: bool = False
    modified_at: datetime | None = None
    # A business address (company account) rather than a private one: decided by the ERP
    # connector from the address's own kind (business flag, business salutation, company column).
    # None: not decided (an address built by hand); then a company name makes it business.
    business: bool | None = None
    # Marked for the shop ([erp] shop_flag); None when no flag is configured (every address is).
    for_shop: bool | None = None
    # Marked for deletion in the ERP ([erp] deletion_mark); None when no mark is configured.
    marked_deleted: bool | None = None
    row: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    problems: tuple[str, ...] = ()
    # A contact person's account (``syncd.core.rules.contact_account``): whether it is the company's
    # main contact. None: an address's own account.
    main_contact: bool | None = None


@dataclass(frozen=True)
class ShopCustomer:
    """A shop customer account as the shop connector reads it."""

    id: str
    email: str
    customer_number: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    company: str | None = None
    salutation: str | None = None  # "Herr" / "Frau" / None (mapped back from shop keys)
    street: str | None = None
    zip: str | None = None
    city: str | None = None
    country: str | None = None  # ISO 3166 alpha-2
    phone: str | None = None
    active: bool = True
    guest: bool = False
    order_count: int = 0
    created_at: datetime | None = None
    updated_at: datetime | None = None
    last_login: datetime | None = None  # the storefront writes it at every login
    # The customer group the customer asked for at registration (Shopware ``requestedGroupId``),
    # by name when the shop's metadata knows it; None: no open request.
    requested_group: str | None = None




@dataclass(frozen=True)
class PushResult:
    number: int
    outcome: PushOutcome
    shop_id: str | None = None
    reason: str | None = None
    code: str | None = None  # the shop's error code when rejected
    field: str | None = None  # the field the shop (or the mapping) refused, when it named one
    # "existed_with_deterministic_id": UPDATED, but no link was known - the account was created by
    # an earlier push whose link was never stored (crash between shop write and link record).
    detail: str | None = None
    # Hash of the payload the shop now holds (None when nothing of ours was written); pass it back
    # as ``fingerprints`` to let an unchanged address come back UNCHANGED without a write.
    fingerprint: str | None = None


@dataclass(frozen=True)
class CheckItem:
    """One line of ``syncd check``: what was checked, whether it is fine, and the detail."""

    area: str  # "config", "erp", "shop:NAME", "mail", "layout"
    name: str
    ok: bool
    detail: str = ""
    # Not run: it needs something that already failed (a secret that could not be resolved).
    # Shown as skipped, not as one more failure; the failure it waits for decides the exit code.
    skipped: bool = False
    # Passed, with something the operator should look at (shown as a warning; exit code 0).
    warning: bool = False


@dataclass(frozen=True)
class OutgoingMail:
    """A rendered mail ready for a transport. ``key`` identifies the job it belongs to."""

    to_addr: str
    to_name: str | None
    sender: str
    subject: str
    text: str
    html: str | None = None
    key: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RenderedLayout:
    subject: str
    text: str
    html: str | None = None


@dataclass(frozen=True)
class ShopOrder:
    """An order as reminders need it: its three states (order, latest payment, first delivery;
    Shopware's technical names) and the customer's contact data as the order recorded it."""

    id: str
    number: str
    placed_at: datetime
    state: str = "open"
    payment_state: str = "open"
    payment_method: str | None = None  # technical name, e.g. "payment_prepayment"
    delivery_state: str = "open"
    shipped_at: datetime | None = None  # when the delivery was last changed into a shipped state
    customer_id: str | None = None
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    company: str | None = None
    amount: float | None = None


@dataclass(frozen=True)
class OrderChanges:
    """One incremental read of order changes: the changed orders (each once, current states), the
    newest stamps seen (``cursor``: "orders", "states"), and every change row listed (``seen``:
    "o:<order id>" / "h:<history id>" -> its stamp), so the next read can skip the rows its overlap
    window lists again. ``orders`` may be a stream: ``cursor`` and ``seen`` are complete once it
    is consumed."""

    orders: Iterable[ShopOrder]
    cursor: dict[str, Any]
    seen: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StorefrontLogin:
    """A one-time way into the storefront as a customer ("log in as customer"): the form the
    shop's own route takes (``action``, POSTed ``fields``), valid until ``valid_until``. The
    fields hold the shop's token: never logged, stored or printed (``repr`` hides them); the
    caller hands them to the staff member's browser and nowhere else."""

    action: str
    fields: Mapping[str, str] = field(repr=False)
    valid_until: datetime
    staff_user: str  # the shop's admin user the shop records as imitating the customer

    def __repr__(self) -> str:
        return (f"StorefrontLogin(action={self.action!r}, fields=<hidden>, valid_until={self.valid_until!r}, "
                f"staff_user={self.staff_user!r})")

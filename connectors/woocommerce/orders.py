"""Order changes from WooCommerce (``ShopPort.order_changes``, the reminders' source).

WooCommerce keeps one status per order where Shopware keeps three state machines, and any status
change moves the order's modified date. So one bookmark on ``date_modified_gmt`` covers new
orders and changes alike: ``GET /orders?modified_after=…&dates_are_gmt=true&orderby=modified``
(``reads``), O(changes) per poll. The status maps onto the three states the schedule reads
(``syncd.flows.reminders.schedule``, Shopware's technical names):

| status | order | payment | delivery |
|---|---|---|---|
| ``pending`` (awaiting payment), ``on-hold`` (awaiting a bank transfer) | open | open | open |
| ``processing`` (paid, not yet shipped) | in_progress | paid | open |
| ``completed`` (fulfilled; no shipments in core) | completed | paid | shipped (date_completed_gmt) |
| ``cancelled`` | cancelled | cancelled | cancelled |
| ``refunded`` | completed | refunded | returned |
| ``failed`` (payment failed) | open | failed | open |

``payment_method`` ``bacs`` (direct bank transfer) is prepayment. A status a plugin adds counts
as ``open`` everywhere but keeps a ``date_paid_gmt`` as paid.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from syncd.core.domain import OrderChanges, ShopOrder

from .http import WooHttp
from .reads import gmt, pages

PREPAYMENT = "payment_prepayment"  # the schedule's name for it (Shopware's technical name)
PREPAYMENT_METHODS = frozenset({"bacs"})
# status -> (order, payment, delivery)
STATES = {
    "pending": ("open", "open", "open"),
    "on-hold": ("open", "open", "open"),
    "processing": ("in_progress", "paid", "open"),
    "completed": ("completed", "paid", "shipped"),
    "cancelled": ("cancelled", "cancelled", "cancelled"),
    "refunded": ("completed", "refunded", "returned"),
    "failed": ("open", "failed", "open"),
}


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def to_order(raw: Mapping[str, Any]) -> ShopOrder:
    status = str(raw.get("status") or "pending")
    order, payment, delivery = STATES.get(status, ("open", "open", "open"))
    if payment == "open" and raw.get("date_paid_gmt"):
        payment = "paid"
    billing = raw.get("billing") or {}
    method = str(raw.get("payment_method") or "")
    customer = int(raw.get("customer_id") or 0)
    total = raw.get("total")
    try:
        amount = float(total) if total not in (None, "") else None
    except (TypeError, ValueError):
        amount = None
    placed = _time(raw.get("date_created_gmt")) or datetime.now(UTC)
    return ShopOrder(
        id=str(raw["id"]),
        number=str(raw.get("number") or raw["id"]),
        placed_at=placed,
        state=order,
        payment_state=payment,
        payment_method=PREPAYMENT if method in PREPAYMENT_METHODS else (method or None),
        delivery_state=delivery,
        shipped_at=(_time(raw.get("date_completed_gmt")) or _time(raw.get("date_modified_gmt")))
        if delivery == "shipped" else None,
        customer_id=str(customer) if customer else None,
        email=billing.get("email") or None,
        first_name=billing.get("first_name") or None,
        last_name=billing.get("last_name") or None,
        company=billing.get("company") or None,
        amount=amount,
    )


def order_changes(http: WooHttp, since: Mapping[str, datetime], skip: Collection[str] = ()) -> OrderChanges:
    """Orders created or changed at or after the earlier of ``since["orders"]`` and
    ``since["states"]`` (literal bounds: the caller subtracts its overlap). A change is keyed by
    order and modified date (``o:<id>@<stamp>``), so a row the overlap lists again is skipped
    while a later change of the same order is not. ``cursor`` and ``seen`` are complete once
    ``orders`` is consumed."""
    start = min(since["orders"], since["states"])
    newest = start
    cursor: dict[str, Any] = {"orders": start.isoformat(), "states": start.isoformat()}
    seen: dict[str, str] = {}
    query = {"orderby": "modified", "order": "asc", "dates_are_gmt": "true", "status": "any",
             "modified_after": gmt(start - timedelta(seconds=1))}  # strict: the bound is not

    def orders() -> Iterator[ShopOrder]:
        nonlocal newest
        for raw in pages(http, "/orders", query):
            stamp = _time(raw.get("date_modified_gmt")) or _time(raw.get("date_created_gmt")) or start
            newest = max(newest, stamp)
            cursor["orders"] = cursor["states"] = newest.isoformat()
            key = f"o:{raw['id']}@{stamp.isoformat()}"
            seen[key] = stamp.isoformat()
            if key not in skip:
                yield to_order(raw)

    return OrderChanges(orders(), cursor, seen)


__all__ = ["PREPAYMENT", "order_changes", "to_order"]

"""When a reminder is due for an order: pure rules, no I/O (each reminder kind once).

- ``shipping_confirmation``: once, ``delay`` after the delivery became shipped (fully or partially).
- ``review_request``: once, ``delay`` after shipping; with ``only_when_delivered`` only when the
  delivery is fully shipped (Shopware's delivery states end at "shipped": it has no separate
  "delivered"); dropped when the delivery is returned or cancelled before it is due.
- ``prepayment``: for an order paid by prepayment that is not paid yet: first ``delay`` after the
  order was placed, then every ``repeat``, at most ``max_messages``; stops as soon as the
  payment is paid (or authorised, refunded ...) or the order is cancelled, and resumes where it
  stopped when a payment is reopened.

A late poll never bursts: after an occurrence is queued the next is due ``repeat`` later at the
earliest, even when the schedule says it was due already.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from syncd.config.messaging import REPEATING_KINDS, ReminderSettings
from syncd.core.domain import ShopOrder

PREPAYMENT_METHODS = ("payment_prepayment",)
# Payment states in which a prepayment order still waits for the customer's money.
UNPAID = ("open", "reminded", "unconfirmed", "in_progress", "failed", "paid_partially")
SHIPPED = ("shipped", "shipped_partially")


@dataclass(frozen=True)
class Decision:
    """``active``: the reminder applies now (anchored at ``anchor``); otherwise ``reason`` says why
    not (None: the order never concerned this reminder, e.g. not shipped yet)."""

    active: bool
    anchor: datetime | None = None
    reason: str | None = None


def decide(order: ShopOrder, reminder: ReminderSettings) -> Decision:
    if order.state == "cancelled":
        return Decision(False, reason="order cancelled / Bestellung storniert")
    if reminder.kind in REPEATING_KINDS:  # prepayment
        if order.payment_method not in PREPAYMENT_METHODS:
            return Decision(False)
        if order.payment_state not in UNPAID:
            return Decision(False, reason=f"payment {order.payment_state} / Zahlung {order.payment_state}")
        return Decision(True, anchor=order.placed_at)
    if order.delivery_state not in SHIPPED or order.shipped_at is None:
        if order.delivery_state in ("returned", "returned_partially", "cancelled"):
            state = order.delivery_state
            return Decision(False, reason=f"delivery {state} / Lieferung {state}")
        return Decision(False)
    partial = order.delivery_state != "shipped"
    if reminder.only_when_delivered and partial:  # a review_request option
        return Decision(False)  # partially shipped: wait for the rest
    return Decision(True, anchor=order.shipped_at)


def due_at(reminder: ReminderSettings, anchor: datetime, occurrence: int,
           last_sent: datetime | None = None) -> datetime | None:
    """Due time of ``occurrence`` (0-based); None when the reminder has no more."""
    if occurrence >= reminder.max_messages:
        return None
    step = timedelta(seconds=reminder.repeat or 0)
    due = anchor + timedelta(seconds=reminder.delay) + occurrence * step
    if last_sent is not None and occurrence > 0:
        due = max(due, last_sent + step)
    return due


def lookback(reminders: tuple[ReminderSettings, ...]) -> timedelta:
    """How far back the first poll reads: the longest schedule of any reminder (anything older
    had every occurrence due before syncd knew of it), plus a day for late state changes."""
    longest = max((r.delay + (r.max_messages - 1) * (r.repeat or 0) for r in reminders), default=0.0)
    return timedelta(seconds=longest) + timedelta(days=1)

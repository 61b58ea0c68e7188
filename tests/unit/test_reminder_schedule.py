"""The reminder rules on their own: which orders each kind applies to, due times, the cap."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from syncd.config.messaging import ReminderSettings
from syncd.core.domain import ShopOrder
from syncd.flows.reminders.schedule import decide, due_at, lookback

T0 = datetime(2026, 1, 10, 9, 30, tzinfo=UTC)
PAY = ReminderSettings(name="p", kind="prepayment", delay="3d", repeat="7d", max_messages=3, layout="x")
SHIP = ReminderSettings(name="s", kind="shipping_confirmation", delay="2h", layout="x")
REVIEW = ReminderSettings(name="r", kind="review_request", delay="7d", layout="x", only_when_delivered=True)


def order(**kw) -> ShopOrder:
    base = dict(id="a" * 32, number="10001", placed_at=T0, payment_method="payment_prepayment")
    base.update(kw)
    return ShopOrder(**base)


@pytest.mark.parametrize("payment, active", [
    ("open", True), ("reminded", True), ("paid_partially", True), ("failed", True),
    ("paid", False), ("authorized", False), ("cancelled", False), ("refunded", False),
])
def test_prepayment_applies_while_unpaid(payment, active):
    assert decide(order(payment_state=payment), PAY).active is active


def test_prepayment_only_for_prepayment_orders_and_never_for_cancelled_ones():
    assert decide(order(payment_method="payment_invoice"), PAY) == decide(order(payment_method=None), PAY)
    assert not decide(order(payment_method="payment_invoice"), PAY).active
    cancelled = decide(order(state="cancelled"), PAY)
    assert not cancelled.active and "cancelled" in cancelled.reason


def test_prepayment_due_times_and_cap():
    assert [due_at(PAY, T0, k) for k in range(4)] == [T0 + timedelta(days=d) for d in (3, 10, 17)] + [None]


def test_a_late_send_pushes_the_next_one_repeat_later():
    late = T0 + timedelta(days=20)
    assert due_at(PAY, T0, 1, last_sent=late) == late + timedelta(days=7)


def test_shipping_needs_a_shipped_delivery():
    assert not decide(order(delivery_state="open"), SHIP).active
    shipped = decide(order(delivery_state="shipped_partially", shipped_at=T0), SHIP)
    assert shipped.active and shipped.anchor == T0
    assert due_at(SHIP, T0, 0) == T0 + timedelta(hours=2) and due_at(SHIP, T0, 1) is None


def test_review_waits_for_full_delivery_and_drops_returns():
    assert not decide(order(delivery_state="shipped_partially", shipped_at=T0), REVIEW).active
    assert decide(order(delivery_state="shipped", shipped_at=T0), REVIEW).active
    returned = decide(order(delivery_state="returned"), REVIEW)
    assert not returned.active and "returned" in returned.reason


def test_first_poll_reads_back_the_longest_schedule_plus_a_day():
    assert lookback((PAY, SHIP)) == timedelta(days=17 + 1)

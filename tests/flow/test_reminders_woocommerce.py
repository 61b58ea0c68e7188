"""Order reminders on WooCommerce orders, over the WooCommerce sandbox (orders read incrementally
by their modified date, statuses mapped onto the schedule's states: ``connectors/woocommerce/
orders.py``), the real state store, and the in-memory ERP, mail and SMS of test_reminders.py,
whose helpers these tests reuse with a WooCommerce platform."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from syncd.config.model import PlatformSettings
from syncd.connectors.woocommerce import open_shop
from syncd.connectors.woocommerce.sandbox import WooSandbox
from syncd.core.domain import ErpAddress
from syncd.flows import reminders
from syncd.flows.context import CycleReport
from syncd.flows.reminders.ops import list_reminders
from syncd.state.links import Link
from syncd.state.reminders import Reminders
from tests.flow.test_reminders import DAY, PLATFORM, T0, FakeErp, _cycle, _env, store  # noqa: F401


@pytest.fixture
def woo() -> Iterator[WooSandbox]:
    sb = WooSandbox().start()
    try:
        yield sb
    finally:
        sb.stop()


class _ShopwareShaped:
    """``_env`` builds its settings from a Shopware sandbox's url and client id."""

    def __init__(self, sb: WooSandbox) -> None:
        self.url, self.client_id, self.client_secret = sb.url, "unused", "unused"


def _woo_env(sb: WooSandbox, store, *names: str):  # noqa: F811
    ctx, clock = _env(_ShopwareShaped(sb), store, *names)
    platform = PlatformSettings(name=PLATFORM, kind="woocommerce", url=sb.url, consumer_key=sb.consumer_key,
                                consumer_secret="env:UNUSED")
    ctx.shop = open_shop(platform, consumer_secret=sb.consumer_secret)
    return ctx, clock


def _customer(sb: WooSandbox, ctx, number: int) -> str:
    email = f"kundin.{number}@beispiel.example"
    sid = str(sb.create_customer_as_shop_user(email, "geheim-passwort-1", first_name="Erika",
                                              last_name=f"Muster{number}",
                                              billing={"first_name": "Erika", "last_name": f"Muster{number}",
                                                       "email": email})["id"])
    ctx.erp.addresses[number] = ErpAddress(number=number, email=email, first_name="Erika",
                                           last_name=f"Muster{number}", salutation="Frau", country="DE",
                                           row={"AdrNr": number})
    with ctx.uow() as uow:
        uow.links.upsert(Link(platform=PLATFORM, shop_id=sid, erp_number=number, email=email))
        uow.commit()
    return sid


def test_bank_transfer_orders_are_reminded_until_paid_or_cancelled(woo, store) -> None:  # noqa: F811
    ctx, clock = _woo_env(woo, store, "pay")
    cid = _customer(woo, ctx, 61001)
    paid = woo.add_order(cid, status="on-hold", payment_method="bacs", total="119.00", at=T0)["id"]
    dropped = woo.add_order(cid, status="on-hold", payment_method="bacs", at=T0)["id"]
    woo.add_order(cid, status="on-hold", payment_method="cod", at=T0)  # cash on delivery: never
    sent = []
    for day in range(0, 40):
        clock.now = T0 + day * DAY + timedelta(minutes=1)
        if day == 11:
            woo.set_order_status(paid, "processing", at=clock.now)  # the transfer arrived
            woo.set_order_status(dropped, "cancelled", at=clock.now)
        before = len(ctx.mail.accepted)
        _cycle(ctx)
        sent += [day] * (len(ctx.mail.accepted) - before)
    assert sent == [3, 3, 10, 10]  # both at 3 and 10, none after the payment / cancellation
    assert all("Zahlungserinnerung" in m.subject for m in ctx.mail.accepted)
    assert any("119,00 EUR" in m.text for m in ctx.mail.accepted)
    lines = {line.order_id: line for line in list_reminders(store, [PLATFORM])}
    assert lines[str(paid)].state == "stopped" and "paid" in (lines[str(paid)].reason or "")
    assert lines[str(dropped)].state == "stopped" and "cancelled" in (lines[str(dropped)].reason or "")


def test_shipping_confirmation_when_the_order_is_completed(woo, store) -> None:  # noqa: F811
    ctx, clock = _woo_env(woo, store, "ship", "review")
    cid = _customer(woo, ctx, 61002)
    order = woo.add_order(cid, status="processing", payment_method="stripe", at=T0)["id"]
    _cycle(ctx)
    assert ctx.mail.accepted == []  # paid, not yet fulfilled
    clock.advance(DAY)
    woo.set_order_status(order, "completed", at=clock.now)
    clock.advance(timedelta(minutes=2))
    _cycle(ctx)
    _cycle(ctx)
    assert len(ctx.mail.accepted) == 1 and "61002" not in ctx.mail.accepted[0].subject
    clock.advance(8 * DAY)
    _cycle(ctx)
    assert len(ctx.mail.accepted) == 2  # the review request, 7 days after completion


def test_more_orders_than_a_page_with_identical_timestamps_and_an_idle_poll(woo, store) -> None:  # noqa: F811
    ctx, clock = _woo_env(woo, store, "pay")
    cid = _customer(woo, ctx, 61003)
    for _ in range(230):
        woo.add_order(cid, status="on-hold", payment_method="bacs", at=T0)
    _cycle(ctx)
    assert Reminders(store).counts(PLATFORM) == {"scheduled": 230}
    with ctx.uow() as uow:
        cursor = uow.cursors.get(PLATFORM, "reminders")
    clock.advance(timedelta(hours=1))
    before = len(woo.request_log)
    report = CycleReport(PLATFORM, "erp-to-shop")
    reminders.poll(ctx, report)
    assert report.counts.get("reminders", 0) == 0
    reads = [r for r in woo.request_log[before:] if r.path.endswith("/orders")]
    assert len(reads) == 3  # the overlap window's pages, listed and skipped
    with ctx.uow() as uow:
        assert uow.cursors.get(PLATFORM, "reminders") == cursor
    # one order moves on inside the overlap window: it alone is handed out again
    first = woo.data.orders[0]["id"]
    woo.set_order_status(first, "processing", at=T0 + timedelta(seconds=30))
    report = CycleReport(PLATFORM, "erp-to-shop")
    reminders.poll(ctx, report)
    assert report.items[-1].detail == "1 order change(s)"
    assert Reminders(store).counts(PLATFORM) == {"scheduled": 229, "stopped": 1}

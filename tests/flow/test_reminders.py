"""Order-driven reminders end to end over the shop sandbox (orders with payment and delivery state
machines, read incrementally over HTTP), the real state store, and in-memory ERP, mail and SMS,
with a controlled clock: due times, repeat, max, stop on payment, each channel choice, cancel,
and a crash in the middle of a send."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from syncd.config.messaging import MessagesSettings, ReminderSettings, SmsSettings
from syncd.config.model import (
    DaemonSettings,
    ErpColumns,
    ErpSettings,
    MailSettings,
    PlatformSettings,
    Settings,
)
from syncd.core.domain import ErpAddress
from syncd.core.errors import PermanentError
from syncd.flows import messages, reminders
from syncd.flows.context import CycleReport, PlatformContext
from syncd.flows.messages.sms import send_due_sms
from syncd.flows.reminders.ops import cancel, list_reminders
from syncd.render.store import LayoutStore
from syncd.state.links import Link
from syncd.state.messages import Messages
from tests.support.dbs import state_store
from tests.support.fakes.credentials import Crash, FakeMail
from tests.support.shop_fixtures import sandbox  # noqa: F401 - the fixture
from tests.support.shopware import make_shop

T0 = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)
DAY = timedelta(days=1)
PLATFORM = "shop"


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> datetime:
        self.now += delta
        return self.now


@dataclass
class FakeErp:
    """Addresses with the mobile number and the preferred channel in their rows."""

    addresses: dict[int, ErpAddress] = field(default_factory=dict)

    def get_addresses(self, numbers: Any) -> dict[int, ErpAddress]:
        return {n: self.addresses[n] for n in numbers if n in self.addresses}


@dataclass
class FakeSms:
    provider: str = "fake"
    sent: list[tuple[str, str]] = field(default_factory=list)
    crash_after: int | None = None
    refuse: set[str] = field(default_factory=set)

    def send(self, to: str, text: str, *, on_commit: Any = None) -> str:
        if to in self.refuse:
            raise PermanentError("seven: code 202: recipient number invalid")
        if on_commit is not None:
            on_commit()
        self.sent.append((to, text))
        if self.crash_after is not None and len(self.sent) == self.crash_after:
            raise Crash("killed after the provider accepted the SMS")
        return f"id-{len(self.sent)}"


REMINDERS = {
    "ship": ReminderSettings(name="ship", kind="shipping_confirmation", layout="shipping_confirmation"),
    "review": ReminderSettings(name="review", kind="review_request", delay="7d", layout="review_request",
                               only_when_delivered=True),
    "pay": ReminderSettings(name="pay", kind="prepayment", delay="3d", repeat="7d", max_messages=3,
                            layout="prepayment_reminder"),
}


@pytest.fixture(params=["sqlite"])
def store(request, tmp_path):
    with state_store(request.param, tmp_path) as s:
        yield s


def _env(sb, store, *names: str, default_channel: str = "email", sms: bool = True, fallback: bool = True):
    settings = Settings(
        daemon=DaemonSettings(state_url="sqlite://"),
        erp=ErpSettings(url="sqlite://", columns=ErpColumns(mobile="Mobil", preferred_channel="KontaktWeg")),
        mail=MailSettings(host="127.0.0.1", port=2525, security="none", sender="Laden <post@laden.example>"),
        platforms=(PlatformSettings(name=PLATFORM, url=sb.url, client_id=sb.client_id,
                                    client_secret="env:UNUSED"),),
        sms=SmsSettings(enabled=sms, provider="seven", password="env:UNUSED"),
        messages=MessagesSettings(default_channel=default_channel, fallback_to_email=fallback),
        reminders=tuple(REMINDERS[n] for n in names),
    )
    clock = Clock(T0 + timedelta(minutes=1))
    shop = make_shop(sb)
    ctx = PlatformContext(settings=settings, platform=settings.platforms[0], erp=FakeErp(), shop=shop,
                          state=store, mail=FakeMail(), layouts=LayoutStore(), clock=clock,
                          sms=FakeSms())  # type: ignore[arg-type]
    return ctx, clock


def _customer(sb, ctx, store, number: int, *, mobile: Any = None, channel: str | None = None,
              country: str = "DE", email: str | None = None) -> str:
    email = email or f"kundin.{number}@beispiel.example"
    customer = sb.create_customer_as_shop_user(email, "geheim-passwort-1", first_name="Erika",
                                               last_name=f"Muster{number}")
    row = {"AdrNr": number, "Mobil": mobile, "KontaktWeg": channel}
    ctx.erp.addresses[number] = ErpAddress(number=number, email=email, first_name="Erika",
                                           last_name=f"Muster{number}", salutation="Frau", country=country,
                                           row=row)
    with ctx.uow() as uow:
        uow.links.upsert(Link(platform=PLATFORM, shop_id=customer["id"], erp_number=number, email=email))
        uow.commit()
    return customer["id"]


def _cycle(ctx) -> CycleReport:
    report = CycleReport(PLATFORM, "erp-to-shop")
    reminders.poll(ctx, report)
    messages.send_due(ctx, report)
    send_due_sms(ctx, report)
    return report


def _mails(ctx, kind_word: str) -> list:
    return [m for m in ctx.mail.accepted if kind_word in m.subject]


# --- shipping confirmation ----------------------------------------------------------------------

def test_shipping_confirmation_once_when_the_delivery_ships(sandbox, store) -> None:  # noqa: F811
    ctx, clock = _env(sandbox, store, "ship")
    cid = _customer(sandbox, ctx, store, 50001)
    order = sandbox.add_order(cid, 49.9, at=T0)
    _cycle(ctx)
    assert ctx.mail.accepted == []  # placed, not shipped
    sandbox.transition("order_delivery", order, "ship", at=clock.advance(timedelta(hours=2)))
    clock.advance(timedelta(minutes=1))
    _cycle(ctx)
    [mail] = ctx.mail.accepted
    assert mail.to_addr == "kundin.50001@beispiel.example" and "unterwegs" in mail.subject
    assert "10000" in mail.subject or sandbox.order_states(order)  # the order number is in it
    for _ in range(3):  # later polls: nothing new, nothing resent
        clock.advance(DAY)
        _cycle(ctx)
    assert len(ctx.mail.accepted) == 1


def test_shipping_confirmation_waits_for_its_delay(sandbox, store) -> None:  # noqa: F811
    ctx, clock = _env(sandbox, store)
    ctx.settings = ctx.settings.model_copy(update={"reminders": (REMINDERS["ship"].model_copy(
        update={"delay": 7200.0}),)})
    cid = _customer(sandbox, ctx, store, 50002)
    order = sandbox.add_order(cid, at=T0)
    shipped = clock.advance(timedelta(hours=1))
    sandbox.transition("order_delivery", order, "ship_partially", at=shipped)
    clock.advance(timedelta(minutes=1))
    _cycle(ctx)
    [line] = list_reminders(store, [PLATFORM])
    assert line.next_due == shipped + timedelta(hours=2) and line.state == "scheduled"
    assert ctx.mail.accepted == []
    clock.now = shipped + timedelta(hours=2) - timedelta(seconds=1)
    _cycle(ctx)
    assert ctx.mail.accepted == []
    clock.now = shipped + timedelta(hours=2)
    _cycle(ctx)
    assert len(ctx.mail.accepted) == 1
    assert list_reminders(store, [PLATFORM])[0].state == "done"


# --- review request -------------------------------------------------------------------------------

def test_review_request_only_when_fully_shipped_and_dropped_on_return(sandbox, store) -> None:  # noqa: F811
    ctx, clock = _env(sandbox, store, "review")
    cid = _customer(sandbox, ctx, store, 50003)
    kept = sandbox.add_order(cid, at=T0)
    returned = sandbox.add_order(cid, at=T0)
    sandbox.transition("order_delivery", kept, "ship_partially", at=clock.advance(timedelta(hours=1)))
    sandbox.transition("order_delivery", returned, "ship", at=clock.now)
    clock.advance(timedelta(minutes=1))
    _cycle(ctx)
    scheduled = {line.order_id: line for line in list_reminders(store, [PLATFORM])}
    assert list(scheduled) == [returned]  # partially shipped: not yet
    fully = clock.advance(DAY)
    sandbox.transition("order_delivery", kept, "ship", at=fully)
    sandbox.transition("order_delivery", returned, "retour", at=fully)
    clock.advance(timedelta(minutes=1))
    _cycle(ctx)
    lines = {line.order_id: line for line in list_reminders(store, [PLATFORM])}
    assert lines[returned].state == "stopped" and "returned" in (lines[returned].reason or "")
    assert lines[kept].next_due == fully + 7 * DAY
    clock.now = fully + 7 * DAY
    _cycle(ctx)
    [mail] = ctx.mail.accepted
    assert "zufrieden" in mail.subject


# --- prepayment ---------------------------------------------------------------------------------

def test_prepayment_first_after_delay_then_every_repeat_at_most_max(sandbox, store) -> None:  # noqa: F811
    ctx, clock = _env(sandbox, store, "pay")
    cid = _customer(sandbox, ctx, store, 50004)
    sandbox.add_order(cid, 119.0, payment="payment_prepayment", at=T0)
    sandbox.add_order(cid, 80.0, payment="payment_invoice", at=T0)  # not prepayment: never reminded
    sent_at = []
    for day in range(0, 40):
        clock.now = T0 + day * DAY + timedelta(minutes=1)
        before = len(ctx.mail.accepted)
        _cycle(ctx)
        if len(ctx.mail.accepted) > before:
            sent_at.append(day)
    assert sent_at == [3, 10, 17]
    assert all("Zahlungserinnerung" in m.subject and "119,00 EUR" in m.text for m in ctx.mail.accepted)
    [line] = list_reminders(store, [PLATFORM])
    assert (line.state, line.sent) == ("done", 3)
    assert line.messages == "#1 email:sent, #2 email:sent, #3 email:sent"


def test_prepayment_stops_on_payment_and_on_cancellation(sandbox, store) -> None:  # noqa: F811
    ctx, clock = _env(sandbox, store, "pay")
    cid = _customer(sandbox, ctx, store, 50005)
    paid = sandbox.add_order(cid, payment="payment_prepayment", at=T0)
    cancelled = sandbox.add_order(cid, payment="payment_prepayment", at=T0)
    clock.now = T0 + 3 * DAY + timedelta(minutes=1)
    _cycle(ctx)
    assert len(ctx.mail.accepted) == 2
    sandbox.transition("order_transaction", paid, "paid", at=T0 + 4 * DAY)
    sandbox.transition("order", cancelled, "cancel", at=T0 + 4 * DAY)
    for day in range(4, 30):
        clock.now = T0 + day * DAY + timedelta(minutes=1)
        _cycle(ctx)
    assert len(ctx.mail.accepted) == 2
    lines = {line.order_id: line for line in list_reminders(store, [PLATFORM])}
    assert lines[paid].state == "stopped" and "paid" in (lines[paid].reason or "")
    assert lines[cancelled].state == "stopped" and "cancelled" in (lines[cancelled].reason or "")


def test_prepayment_after_a_long_outage_does_not_burst(sandbox, store) -> None:  # noqa: F811
    ctx, clock = _env(sandbox, store, "pay")
    cid = _customer(sandbox, ctx, store, 50006)
    sandbox.add_order(cid, payment="payment_prepayment", at=T0)
    clock.now = T0 + timedelta(minutes=1)
    _cycle(ctx)
    clock.now = T0 + 20 * DAY  # down for 20 days: occurrences 1 and 2 are overdue
    _cycle(ctx)
    _cycle(ctx)
    assert len(ctx.mail.accepted) == 1  # one now, the next a repeat later
    clock.now = T0 + 27 * DAY
    _cycle(ctx)
    assert len(ctx.mail.accepted) == 2


# --- channels -------------------------------------------------------------------------------------

@pytest.mark.parametrize("channel, mobile, expect_mail, expect_sms", [
    ("E-Mail", "0170 1234567", 1, 0),
    ("SMS", "0170 1234567", 0, 1),
    ("beide", "0170 1234567", 1, 1),
    ("keine", "0170 1234567", 0, 0),
    (None, "0170 1234567", 1, 0),  # empty: [messages] default_channel
])
def test_each_channel_choice(sandbox, store, channel, mobile, expect_mail, expect_sms) -> None:  # noqa: F811
    ctx, clock = _env(sandbox, store, "ship")
    cid = _customer(sandbox, ctx, store, 50010, mobile=mobile, channel=channel)
    order = sandbox.add_order(cid, at=T0)
    sandbox.transition("order_delivery", order, "ship", at=clock.advance(timedelta(minutes=5)))
    clock.advance(timedelta(minutes=1))
    _cycle(ctx)
    assert len(ctx.mail.accepted) == expect_mail
    assert len(ctx.sms.sent) == expect_sms
    if expect_sms:
        to, text = ctx.sms.sent[0]
        assert to == "+491701234567" and "versandt" in text and len(text) <= 160


def test_default_channel_sms_and_fallback_to_email_on_unusable_number(sandbox, store) -> None:  # noqa: F811
    ctx, clock = _env(sandbox, store, "ship", default_channel="sms")
    good = _customer(sandbox, ctx, store, 50011, mobile="+43 664 1234567", country="AT")
    landline = _customer(sandbox, ctx, store, 50012, mobile="0721 123456")
    for cid in (good, landline):
        order = sandbox.add_order(cid, at=T0)
        sandbox.transition("order_delivery", order, "ship", at=clock.now)
    clock.advance(timedelta(minutes=1))
    _cycle(ctx)
    assert [to for to, _ in ctx.sms.sent] == ["+436641234567"]
    [fallback] = ctx.mail.accepted
    assert fallback.to_addr == "kundin.50012@beispiel.example"
    failed = [m for m in Messages(store).failed(PLATFORM)]
    assert len(failed) == 1 and failed[0].channel == "sms" and "not a mobile number" in failed[0].last_error


def test_no_fallback_when_off_fails_the_message_with_the_reason(sandbox, store) -> None:  # noqa: F811
    ctx, clock = _env(sandbox, store, "ship", default_channel="sms", fallback=False)
    cid = _customer(sandbox, ctx, store, 50013, mobile="")
    order = sandbox.add_order(cid, at=T0)
    sandbox.transition("order_delivery", order, "ship", at=clock.now)
    clock.advance(timedelta(minutes=1))
    _cycle(ctx)
    assert ctx.mail.accepted == [] and ctx.sms.sent == []
    [failed] = Messages(store).failed(PLATFORM)
    assert "no mobile number" in failed.last_error


def test_a_provider_refusal_fails_that_sms_only(sandbox, store) -> None:  # noqa: F811
    ctx, clock = _env(sandbox, store, "ship", default_channel="sms")
    bad = _customer(sandbox, ctx, store, 50014, mobile="0170 7654321")
    good = _customer(sandbox, ctx, store, 50015, mobile="0170 1234567")
    ctx.sms.refuse = {"+491707654321"}
    for cid in (bad, good):
        sandbox.transition("order_delivery", sandbox.add_order(cid, at=T0), "ship", at=clock.now)
    clock.advance(timedelta(minutes=1))
    _cycle(ctx)
    assert [to for to, _ in ctx.sms.sent] == ["+491701234567"]
    [failed] = Messages(store).failed(PLATFORM)
    assert "202" in failed.last_error


# --- operator -------------------------------------------------------------------------------------

def test_cancel_stops_the_reminders_of_one_order(sandbox, store) -> None:  # noqa: F811
    ctx, clock = _env(sandbox, store, "pay")
    cid = _customer(sandbox, ctx, store, 50020)
    order = sandbox.add_order(cid, payment="payment_prepayment", at=T0)
    other = sandbox.add_order(cid, payment="payment_prepayment", at=T0)
    _cycle(ctx)
    number = next(line.order for line in list_reminders(store, [PLATFORM]) if line.order_id == order)
    assert cancel(store, PLATFORM, number, clock()) == 1
    clock.now = T0 + 30 * DAY
    for _ in range(4):
        _cycle(ctx)
        clock.advance(7 * DAY)
    lines = {line.order_id: line for line in list_reminders(store, [PLATFORM])}
    assert lines[order].state == "cancelled" and lines[order].sent == 0
    assert lines[other].sent == 3
    # a later state change never revives a cancelled reminder
    sandbox.transition("order_transaction", order, "remind", at=clock.now)
    _cycle(ctx)
    assert list_reminders(store, [PLATFORM], order=number)[0].state == "cancelled"


def test_an_idle_poll_asks_the_shop_two_searches_and_writes_nothing(sandbox, store) -> None:  # noqa: F811
    ctx, clock = _env(sandbox, store, "ship", "pay")
    cid = _customer(sandbox, ctx, store, 50030)
    for _ in range(30):
        sandbox.add_order(cid, payment="payment_prepayment", at=T0)
    _cycle(ctx)
    with ctx.uow() as uow:
        cursor = uow.cursors.get(PLATFORM, "reminders")
    before = len(sandbox.request_log)
    clock.advance(timedelta(hours=1))
    reminders.poll(ctx, CycleReport(PLATFORM, "erp-to-shop"))
    searches = [r.path for r in sandbox.request_log[before:] if "/search/" in r.path]
    assert searches == ["/api/search/state-machine-history", "/api/search/order"]
    with ctx.uow() as uow:
        assert uow.cursors.get(PLATFORM, "reminders") == cursor


# --- crash ----------------------------------------------------------------------------------------

def test_crash_after_the_provider_accepted_an_sms_resends_at_most_that_one(sandbox, store) -> None:  # noqa: F811
    ctx, clock = _env(sandbox, store, "ship", default_channel="sms")
    for n in range(5):
        cid = _customer(sandbox, ctx, store, 50040 + n, mobile=f"0170 123456{n}")
        sandbox.transition("order_delivery", sandbox.add_order(cid, at=T0), "ship", at=clock.now)
    clock.advance(timedelta(minutes=1))
    ctx.sms.crash_after = 3
    with pytest.raises(Crash):
        _cycle(ctx)
    ctx.sms.crash_after = None
    _cycle(ctx)
    numbers = [to for to, _ in ctx.sms.sent]
    assert sorted(set(numbers)) == [f"+49170123456{n}" for n in range(5)]  # none lost
    assert len(numbers) <= 6  # the one whose outcome the crash left unknown, at most once more
    assert Messages(store).counts(PLATFORM) == {"sent": 5}


def test_more_orders_than_a_page_with_identical_timestamps(sandbox, store) -> None:  # noqa: F811
    """600 orders stamped the same millisecond span two search pages (the sandbox's 6.6 page is
    500 rows): every one is scheduled once; the next polls re-list them inside the overlap
    window but neither fetch nor write anything."""
    from syncd.state.reminders import Reminders

    ctx, clock = _env(sandbox, store, "pay")
    cid = _customer(sandbox, ctx, store, 50050)
    for _ in range(600):
        sandbox.add_order(cid, 12.5, payment="payment_prepayment", at=T0)
    _cycle(ctx)
    assert Reminders(store).counts(PLATFORM) == {"scheduled": 600}
    with ctx.uow() as uow:
        cursor = uow.cursors.get(PLATFORM, "reminders")
    assert len(cursor["seen"]) == 600
    clock.advance(timedelta(hours=1))
    report = CycleReport(PLATFORM, "erp-to-shop")
    reminders.poll(ctx, report)
    assert report.counts.get("reminders", 0) == 0
    with ctx.uow() as uow:
        assert uow.cursors.get(PLATFORM, "reminders") == cursor


def test_a_shop_outage_defers_the_read_but_due_reminders_still_go(sandbox, store, monkeypatch) -> None:  # noqa: F811
    from syncd.core.errors import TransientError

    ctx, clock = _env(sandbox, store, "pay")
    cid = _customer(sandbox, ctx, store, 50060)
    sandbox.add_order(cid, payment="payment_prepayment", at=T0)
    _cycle(ctx)
    with ctx.uow() as uow:
        cursor = uow.cursors.get(PLATFORM, "reminders")

    def down(*args, **kwargs):
        raise TransientError("shop 503 after retries")

    monkeypatch.setattr(ctx.shop, "order_changes", down)
    clock.now = T0 + 3 * DAY + timedelta(minutes=1)
    report = _cycle(ctx)
    assert any(i.action == "deferred" and "503" in i.detail for i in report.items)
    assert len(ctx.mail.accepted) == 1  # what was already scheduled went out
    with ctx.uow() as uow:
        assert uow.cursors.get(PLATFORM, "reminders") == cursor  # the bookmark did not move

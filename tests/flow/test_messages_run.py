"""The durable message machinery (``syncd.state.messages`` + ``syncd.flows.messages``) with
in-memory ERP/shop/mail ports and the real state store (SQLite and PostgreSQL).

What must hold: an occurrence mails once (dedup key), a crash after the server accepted a mail
resends at most that one mail (I5: one per open SMTP session), a crash before the commit point
resends nothing twice, transient faults defer, permanent ones fail with the reason, and every
outcome lands in the history.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from syncd.config.messaging import NotificationSettings
from syncd.core.errors import PermanentError, TransientError
from syncd.flows import messages
from syncd.flows.context import CycleReport
from syncd.flows.messages import Occurrence
from syncd.state import messages as steps
from syncd.state.history import History
from syncd.state.messages import Messages
from tests.support.dbs import state_store
from tests.support.fakes.credentials import PLATFORM, Crash, FakeErp, FakeMail, FakeShop, address, context

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
NUMBERS = list(range(40001, 40031))


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    with state_store(request.param, tmp_path) as s:
        yield s


def _ctx(store, mail, *, batch_size=7, notifications=None, erp=None):
    ctx = context(store, erp or FakeErp(address(n) for n in NUMBERS), FakeShop(), mail, batch_size=batch_size)
    tables = notifications if notifications is not None else (
        NotificationSettings(event="blocked", internal_to=("innendienst@laden.example",)),
        NotificationSettings(group="VIP", event="blocked", layout="blocked_en",
                             sender="VIP <vip@laden.example>"),
    )
    settings = ctx.settings.model_copy(update={"notifications": tables})
    ctx.settings = settings
    ctx.clock = lambda: NOW
    return ctx


def _blocked(n: int, group: str | None = None) -> Occurrence:
    return Occurrence(event="blocked", key=f"{n}:1", erp_number=n, group=group, email=address(n).email)


def test_an_occurrence_is_queued_once_per_recipient_and_the_table_for_the_group_wins(store) -> None:
    ctx = _ctx(store, FakeMail())
    assert len(messages.notify(ctx, _blocked(40001))) == 2  # customer + internal
    assert messages.notify(ctx, _blocked(40001)) == []  # the same occurrence again: nothing new
    vip = messages.notify(ctx, _blocked(40002, group="VIP"))
    assert len(vip) == 1  # the VIP table has no internal_to and wins over "*"
    mail = FakeMail()
    ctx.mail = mail
    report = CycleReport(PLATFORM, "erp-to-shop")
    messages.send_due(ctx, report)
    assert sorted(m.to_addr for m in mail.accepted) == sorted(
        [address(40001).email, "innendienst@laden.example", address(40002).email])
    [vip_mail] = mail.to(address(40002).email)
    assert vip_mail.sender == "VIP <vip@laden.example>" and "blocked" in vip_mail.subject
    [de] = mail.to(address(40001).email)
    assert "gesperrt" in de.subject and de.sender == "Laden <post@laden.example>"
    assert Messages(store).counts(PLATFORM) == {"sent": 3}
    events = [e.event for e in History(store, lambda: NOW).of_address(40001)]
    assert events.count("message_queued") == 2 and events.count("message_sent") == 2
    messages.send_due(ctx, CycleReport(PLATFORM, "erp-to-shop"))  # nothing due: nothing resent
    assert len(mail.accepted) == 3


def test_a_disabled_group_table_silences_the_event_for_that_group(store) -> None:
    tables = (NotificationSettings(event="blocked"),
              NotificationSettings(group="B", event="blocked", enabled=False))
    ctx = _ctx(store, FakeMail(), notifications=tables)
    assert messages.notify(ctx, _blocked(40001, group="B")) == []
    assert len(messages.notify(ctx, _blocked(40002, group="A"))) == 1


@pytest.mark.parametrize("k", [1, 5, 8, 30])
def test_a_crash_after_an_acceptance_resends_at_most_that_mail(store, k: int) -> None:
    ctx = _ctx(store, FakeMail(), notifications=(NotificationSettings(event="blocked"),))
    for n in NUMBERS:
        messages.notify(ctx, _blocked(n))
    first = FakeMail(crash_after=k)
    ctx.mail = first
    with pytest.raises(Crash):
        messages.send_due(ctx, CycleReport(PLATFORM, "erp-to-shop"))
    repo = Messages(store)
    assert [m.erp_number for m in repo.of(PLATFORM) if m.step == steps.SENDING] == [NUMBERS[k - 1]]
    again = FakeMail()
    ctx.mail = again
    messages.send_due(ctx, CycleReport(PLATFORM, "erp-to-shop"))
    sent = [m.to_addr for m in first.accepted + again.accepted]
    assert sorted(set(sent)) == sorted(address(n).email for n in NUMBERS)  # nothing lost
    extra = len(sent) - len(NUMBERS)
    assert extra <= 1 and (extra == 0 or sent.count(address(NUMBERS[k - 1]).email) == 2)
    assert repo.counts(PLATFORM) == {"sent": len(NUMBERS)}


def test_a_crash_before_the_commit_point_costs_no_send_and_a_second_unknown_outcome_fails(store) -> None:
    ctx = _ctx(store, FakeMail(), notifications=(NotificationSettings(event="blocked"),))
    messages.notify(ctx, _blocked(40001))
    ctx.mail = FakeMail(crash_in_data=1)
    with pytest.raises(Crash):
        messages.send_due(ctx, CycleReport(PLATFORM, "erp-to-shop"))
    [m] = Messages(store).of(PLATFORM)
    assert m.step == steps.PENDING and m.send_attempts == 0
    # accepted, then killed twice before it was recorded: sent twice, then given up
    for _ in range(2):
        ctx.mail = FakeMail(crash_after=1)
        with pytest.raises(Crash):
            messages.send_due(ctx, CycleReport(PLATFORM, "erp-to-shop"))
    ctx.mail = last = FakeMail()
    report = CycleReport(PLATFORM, "erp-to-shop")
    messages.send_due(ctx, report)
    assert last.accepted == []
    [m] = Messages(store).of(PLATFORM)
    assert m.step == steps.FAILED and "delivery unknown" in (m.last_error or "")
    assert "message_failed" in [e.event for e in History(store, lambda: NOW).of_address(40001)]


class _RefusingMail(FakeMail):
    def __init__(self, error: Exception, victim: str) -> None:
        super().__init__()
        self.error, self.victim = error, victim

    def session(self):  # noqa: ANN201
        outer = super().session()
        transport = self

        class _Wrap:
            def __enter__(self):  # noqa: ANN204
                self.inner = outer.__enter__()
                return self

            def __exit__(self, *exc):  # noqa: ANN204
                return outer.__exit__(*exc)

            def open(self) -> None:
                pass

            def send(self, mail, on_commit=None):  # noqa: ANN001, ANN202
                if mail.to_addr == transport.victim:
                    raise transport.error
                return self.inner.send(mail, on_commit)

        return _Wrap()


@pytest.mark.parametrize("error, step", [(TransientError("451 try later"), steps.DEFERRED),
                                         (PermanentError("550 no such user"), steps.FAILED)])
def test_smtp_faults_defer_or_fail_one_message_and_the_others_go_out(store, error, step) -> None:
    ctx = _ctx(store, FakeMail(), notifications=(NotificationSettings(event="blocked"),))
    for n in NUMBERS[:5]:
        messages.notify(ctx, _blocked(n))
    victim = address(NUMBERS[2]).email
    ctx.mail = mail = _RefusingMail(error, victim)
    messages.send_due(ctx, CycleReport(PLATFORM, "erp-to-shop"))
    assert len(mail.accepted) == 4
    by_number = {m.erp_number: m for m in Messages(store).of(PLATFORM)}
    assert by_number[NUMBERS[2]].step == step and by_number[NUMBERS[2]].send_attempts == 0
    assert str(error) in (by_number[NUMBERS[2]].last_error or "")
    if step == steps.DEFERRED:  # due again after the backoff, then sent
        ctx.mail = later = FakeMail()
        ctx.clock = lambda: NOW + timedelta(hours=2)
        messages.send_due(ctx, CycleReport(PLATFORM, "erp-to-shop"))
        assert [m.to_addr for m in later.accepted] == [victim]


def test_a_broken_layout_fails_its_message_only(store) -> None:
    tables = (NotificationSettings(event="blocked"), NotificationSettings(group="X", event="blocked",
                                                                           layout="no_such_layout"))
    ctx = _ctx(store, FakeMail(), notifications=tables)
    messages.notify(ctx, _blocked(40001, group="X"))
    messages.notify(ctx, _blocked(40002))
    ctx.mail = mail = FakeMail()
    messages.send_due(ctx, CycleReport(PLATFORM, "erp-to-shop"))
    assert [m.to_addr for m in mail.accepted] == [address(40002).email]
    failed = Messages(store).failed(PLATFORM)
    assert [m.erp_number for m in failed] == [40001] and "no_such_layout" in (failed[0].last_error or "")


def test_a_shop_customer_without_an_erp_row_is_mailed_from_the_stored_values(store) -> None:
    ctx = _ctx(store, FakeMail(), notifications=(NotificationSettings(event="rejected"),))
    erp = FakeErp([])
    ctx.erp = erp
    messages.notify(ctx, Occurrence(event="rejected", key="shop-1:1", email="neu@kunde.example",
                                    values={"reason": "keine Gewerbeanmeldung", "last_name": "Neumann",
                                            "salutation": "Frau"}))
    ctx.mail = mail = FakeMail()
    messages.send_due(ctx, CycleReport(PLATFORM, "erp-to-shop"))
    [m] = mail.accepted
    assert "Sehr geehrte Frau Neumann" in m.text and "keine Gewerbeanmeldung" in m.text
    assert replace(m).to_addr == "neu@kunde.example"

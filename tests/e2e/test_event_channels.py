"""Event messages by the customer's channel (issue 16 applied to issue 15's events): the ERP
table with the mobile number and the channel in free selection fields, the Shopware sandbox, a
real SMTP server, the seven.io fake on loopback, SQLite and PostgreSQL state stores.

The customer's message goes by e-mail, SMS, both or not at all, as they chose; internal
recipients (``internal_to``) always get their e-mail; ``forgot_username`` always answers by
e-mail; a number that cannot be used falls back to e-mail with the SMS on record as failed."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from syncd.core.rules import HistoryEvent
from syncd.flows.account_events import forgot_username
from syncd.state.history import History
from syncd.state.messages import Messages
from tests.support.dbs import pg_schema_url, unique_name
from tests.support.fakes.sms_providers import FakeSeven
from tests.support.flow_harness import PLATFORM, Harness
from tests.support.mailserver import smtp_server, smtp_server_factory, smtp_tls_files  # noqa: F401
from tests.support.shop_fixtures import sandbox, store_login  # noqa: F401

INTERNAL = "innendienst@haendler.example"
TABLES = ({"event": "blocked", "internal_to": [INTERNAL]}, {"event": "forgot_username"})


def person(n: int, channel: str | None, mobile: str | None = "0170 1234567") -> dict:
    return {"number": n, "email": f"kunde{n}@example.com", "last_name": f"Größer-{n}", "first_name": "Jörg",
            "salutation": "Herr", "street": "Ufer 9", "zip": "01067", "city": "Dresden", "country": "DE",
            "Sel7": mobile, "Sel8": channel}


@pytest.fixture
def seven() -> Iterator[FakeSeven]:
    with FakeSeven() as fake:
        yield fake


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.realdb)])
def harness(request, tmp_path: Path, sandbox, smtp_server, seven) -> Iterator[Harness]:  # noqa: F811
    with ExitStack() as stack:
        state_url = "" if request.param == "sqlite" else stack.enter_context(pg_schema_url("syncd_evch"))
        h = Harness(tmp_path, f"sqlite:///{tmp_path / 'erp.db'}", unique_name("adr"), sandbox, smtp_server,
                    state_url=state_url, notifications=TABLES, addresses={"send_credentials": False},
                    erp_columns={"mobile": "Sel7", "preferred_channel": "Sel8"},
                    sms={"enabled": True, "provider": "seven", "url": seven.url, "password": "env:UNUSED"},
                    sms_key=seven.api_key)
        stack.callback(h.close)
        yield h


def _block(h: Harness, numbers: list[int]) -> None:
    h.run()
    for n in numbers:
        h.update(n, blocked="J")
    h.run()


def test_the_blocked_event_goes_by_each_customers_channel(harness: Harness, seven: FakeSeven) -> None:
    h = harness
    h.insert([person(63001, None), person(63002, "SMS", "0171 2345678"),
              person(63003, "both", "0172 3456789"), person(63004, "keine"),
              person(63005, "sms", mobile="12")])
    seven.throttle_next(1, retry_after=0)  # the first SMS is throttled once: retried, sent once
    _block(h, [63001, 63002, 63003, 63004, 63005])
    by_number = {s.to: s.text for s in seven.sent}
    assert sorted(by_number) == ["+491712345678", "+491723456789"] and len(seven.sent) == 2
    assert len(seven.requests) == 3  # the throttled request was repeated by the retry policy, once
    assert all("gesperrt" in text for text in by_number.values())
    assert len(h.mails_to("kunde63001@example.com")) == 1  # no choice: the default, e-mail
    assert h.mails_to("kunde63002@example.com") == []  # SMS only
    assert len(h.mails_to("kunde63003@example.com")) == 1  # both
    assert h.mails_to("kunde63004@example.com") == []  # none
    assert len(h.mails_to("kunde63005@example.com")) == 1  # no usable number: e-mail instead
    assert len(h.mails_to(INTERNAL)) == 5  # staff always by e-mail, whatever the customer chose
    failed = Messages(h.state).failed(PLATFORM)
    assert [(m.erp_number, m.channel) for m in failed] == [(63005, "sms")]
    assert "unusable mobile number '12'" in (failed[0].last_error or "")
    events = [e.event for e in History(h.state, lambda: None).of_address(63004, PLATFORM)]
    assert HistoryEvent.NOT_SENT in events
    h.smtp.clear()
    h.run()  # the occurrences are on record: nothing again
    assert h.smtp.messages == [] and len(seven.sent) == 2


def _sms_message(h: Harness):
    [m] = [m for m in Messages(h.state).of(PLATFORM, kind="blocked") if m.channel == "sms"]
    return m


def test_a_refused_event_sms_waits_or_fails_with_the_providers_reason(harness: Harness,
                                                                      seven: FakeSeven) -> None:
    h = harness
    h.insert([person(63101, "sms")])
    seven.credit = 0  # the provider refuses the account: the SMS waits for the operator
    _block(h, [63101])
    m = _sms_message(h)
    assert m.step == "deferred" and "credit" in (m.last_error or "").lower() and seven.sent == []
    seven.credit = 10
    seven.fail_next(1, status=400)  # then this SMS itself is refused
    h.run()
    m = _sms_message(h)
    assert m.step == "failed" and "HTTP 400" in (m.last_error or "") and seven.sent == []


def test_forgot_username_answers_by_e_mail_even_for_an_sms_customer(harness: Harness,
                                                                     seven: FakeSeven) -> None:
    h = harness
    h.insert([person(63201, "sms")])
    h.run()
    forgot_username(h.context(), "63201")
    assert len(h.mails_to("kunde63201@example.com")) == 1 and seven.sent == []

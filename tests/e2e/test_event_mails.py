"""Event mails per customer group and approval states (issue 15), in process with the real ERP
table, the Shopware sandbox, a real SMTP server and SQLite / PostgreSQL state stores.

Each test would fail without the feature: the mails, their dedup, the shop's group request
being accepted or declined, and the history rows are what is asserted."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from syncd.flows import accounts
from syncd.flows.account_events import ForgotUsernameError, forgot_username
from syncd.flows.approvals import UnknownAccounts, decide
from syncd.shell.status import collect_status, render_status_table
from syncd.state.approvals import Approvals
from syncd.state.history import History
from syncd.state.messages import Messages
from tests.support.dbs import pg_schema_url
from tests.support.flow_harness import PLATFORM, Harness, password_of
from tests.support.mailserver import smtp_server, smtp_server_factory, smtp_tls_files  # noqa: F401
from tests.support.shop_fixtures import store_login
from tests.support.shops import shop  # noqa: F401 - the fixture
from tests.support.wired_env import shopware_only

INTERNAL = "innendienst@haendler.example"
TABLES = (
    {"event": "blocked", "internal_to": [INTERNAL]},
    {"group": "Gastro", "event": "blocked", "layout": "blocked_en",
     "sender": "Gastro-Team <gastro@shop.example>"},
    {"event": "password_reset"},
    {"event": "forgot_username"},
    {"event": "access_requested", "internal_to": [INTERNAL]},
    {"event": "approved"},
    {"event": "rejected"},
)

NO_APPROVAL = ('approval = "manual" / group requests are refused by check for WooCommerce (no customer '
               "groups) / WooCommerce kennt keine Kundengruppen-Anfragen")

# The blocked event is the notice of the deactivation (syncd.flows.deactivation.blocked_event).
NO_BLOCKING = ("the blocked mail tells of the account's deactivation, and deactivate_blocked is refused by "
               "check for WooCommerce (no active flag) / WooCommerce-Konten lassen sich nicht sperren")


def _person(n: int, **extra) -> dict:
    # Numbers above 60000, umlauts, a group value the shop does not know (falls back to the default)
    return {"number": n, "email": f"einkauf-{n}@kunde.example", "last_name": f"Größer-{n}",
            "first_name": "Jörg", "salutation": "Herr", "street": "Ufer 9", "zip": "01067", "city": "Dresden",
            "country": "DE", **extra}


@pytest.fixture(params=["sqlite", "postgresql"])
def harness(request, tmp_path: Path, shop, smtp_server) -> Iterator[Harness]:  # noqa: F811
    """Each case for each platform kind (``shop``) and state store."""
    with ExitStack() as stack:
        state_url = "" if request.param == "sqlite" else stack.enter_context(pg_schema_url())
        h = Harness(tmp_path, f"sqlite:///{tmp_path / 'erp.db'}", "adressen", shop, smtp_server,
                    state_url=state_url, notifications=TABLES)
        try:
            yield h
        finally:
            h.close()


def _text(message) -> str:
    body = message.get_body(("plain",))
    return body.get_content() if body is not None else message.get_content()


def _events(h: Harness, n: int) -> list[str]:
    return [e.event for e in History(h.state, lambda: None).of_address(n)]


@shopware_only(NO_BLOCKING)
def test_blocked_mails_customer_and_internal_once_with_the_group_table(harness: Harness) -> None:
    h = harness
    h.insert([_person(61001), _person(61002, customer_group="Gastro")])
    h.run()
    h.smtp.clear()
    h.update(61001, blocked="J")
    h.update(61002, blocked="J")
    h.run()
    [de] = h.mails_to("einkauf-61001@kunde.example")
    assert "gesperrt" in de["Subject"] and "Sehr geehrter Herr Größer-61001" in _text(de)
    assert "shop@example.com" in de["From"]
    [internal] = h.mails_to(INTERNAL)  # the Gastro table has no internal_to and wins for 61002
    assert "61001" in _text(internal)
    [en] = h.mails_to("einkauf-61002@kunde.example")
    assert "blocked" in en["Subject"] and "gastro@shop.example" in en["From"]
    assert all(not a.active for a in h.kit.accounts())
    h.smtp.clear()
    h.run()  # nothing new: the occurrence is on record
    h.update(61001, city="Leipzig")  # still blocked, changed: no second occurrence
    h.run()
    assert h.smtp.messages == []
    assert Messages(h.state).counts(PLATFORM) == {"sent": 3}
    assert {"blocked", "message_queued", "message_sent"} <= set(_events(h, 61001))
    full = collect_status(h.state, h.settings)
    status = full["platforms"][0]
    assert status["messages"]["sent"] == 3
    assert "sent 3" in render_status_table(full, lang="en")


def test_password_reset_mails_the_notice_and_the_credentials_without_the_password_in_the_notice(
        harness: Harness) -> None:
    h = harness
    h.insert([_person(61010)])
    h.run()
    h.smtp.clear()
    [action] = [accounts.reset_password(h.context(), 61010)]
    assert action.action == "mailed", action
    mails = h.mails_to("einkauf-61010@kunde.example")
    assert len(mails) == 2
    credentials = next(m for m in mails if "neues Passwort" in m["Subject"])  # layouts/password_reset
    notice = next(m for m in mails if "zurückgesetzt" in m["Subject"])  # layouts/password_reset_notice
    assert password_of(credentials) not in _text(notice)
    assert "password_reset" in _events(h, 61010)


def test_forgot_username_answers_with_the_login_never_a_password(harness: Harness) -> None:
    h = harness
    h.insert([_person(61020)])
    h.run()
    password = password_of(h.mails_to("einkauf-61020@kunde.example")[0])
    h.smtp.clear()
    report = forgot_username(h.context(), "EINKAUF-61020@kunde.example")
    assert [i.action for i in report.items] == ["mailed"]
    [mail] = h.mails_to("einkauf-61020@kunde.example")
    assert "Benutzername (Anmeldung): einkauf-61020@kunde.example" in _text(mail)
    assert password not in mail.as_string()
    forgot_username(h.context(), "61020")  # by number too; a new occurrence each time it is asked
    assert len(h.mails_to("einkauf-61020@kunde.example")) == 2
    with pytest.raises(ForgotUsernameError, match="no shop account"):
        forgot_username(h.context(), "nobody@kunde.example")


@shopware_only(NO_APPROVAL)
def test_manual_approval_each_transition_mails_and_is_applied_in_the_shop(harness: Harness) -> None:
    h = harness
    h.addresses = {"approval": "manual"}
    sw = h.sandbox
    customer = sw.create_customer_as_shop_user("neu@laden-kunde.example", "geheim-12345",
                                                 last_name="Neumann", requested_group="Händler")
    dealer = sw.ids.customer_groups["Händler"]
    h.run()
    [approval] = Approvals(h.state).of_state(PLATFORM)
    assert (approval.shop_id, approval.state, approval.requested_group) == (customer["id"], "in-progress",
                                                                            "Händler")
    assert len(h.mails_to(INTERNAL)) == 1 and len(h.mails_to("neu@laden-kunde.example")) == 1
    h.run()  # still open in the shop: no second access_requested mail
    assert len(h.smtp.messages) == 2
    h.smtp.clear()

    [d] = decide(h.context(), [customer["id"]], approve=True)
    assert d.action == "approved"
    c = sw.customer(customer["id"])
    assert c["groupId"] == dealer and c["requestedGroupId"] is None and c["active"]
    [mail] = h.mails_to("neu@laden-kunde.example")
    assert "freigeschaltet" in mail["Subject"] and "Frau Neumann" in _text(mail)
    [again] = decide(h.context(), [customer["id"]], approve=True)  # no change: no second mail
    assert (again.action, again.ok) == ("unchanged", True)
    assert len(h.mails_to("neu@laden-kunde.example")) == 1

    [d] = decide(h.context(), [customer["id"]], approve=False, reason="Kein Gewerbenachweis")
    assert d.action == "rejected"
    assert not sw.customer(customer["id"])["active"]
    rejected = h.mails_to("neu@laden-kunde.example")[-1]
    assert "Begründung: Kein Gewerbenachweis" in _text(rejected)
    assert not store_login(sw, "neu@laden-kunde.example", "geheim-12345")
    assert Approvals(h.state).counts(PLATFORM) == {"rejected": 1}
    assert collect_status(h.state, h.settings)["platforms"][0]["approvals"]["rejected"] == 1
    assert not [m for m in sw.flow_mails if m["event"].startswith("customer.group")]  # the shop's own mail
    with pytest.raises(UnknownAccounts):
        decide(h.context(), ["99999"], approve=True)


@shopware_only(NO_APPROVAL)
def test_a_declined_request_in_manual_mode_and_auto_approval(harness: Harness) -> None:
    h = harness
    sw = h.sandbox
    a = sw.create_customer_as_shop_user("auto@laden-kunde.example", "geheim-12345",
                                          requested_group="Händler")
    h.addresses = {"approval": "auto"}
    h.run()
    c = sw.customer(a["id"])
    assert c["groupId"] == sw.ids.customer_groups["Händler"] and c["requestedGroupId"] is None
    assert Approvals(h.state).get(PLATFORM, a["id"]).state == "approved"
    subjects = [m["Subject"] for m in h.mails_to("auto@laden-kunde.example")]
    assert len(subjects) == 2 and any("freigeschaltet" in s for s in subjects)

    h.addresses = {"approval": "manual"}
    b = sw.create_customer_as_shop_user("nein@laden-kunde.example", "geheim-12345",
                                          requested_group="Händler")
    h.run()
    [d] = decide(h.context(), [b["id"]], approve=False)
    assert d.action == "rejected"
    c = sw.customer(b["id"])
    assert c["requestedGroupId"] is None and c["groupId"] != sw.ids.customer_groups["Händler"]
    assert not c["active"]
    text = _text(h.mails_to("nein@laden-kunde.example")[-1])
    assert "nicht freischalten" in text and "Begründung" not in text
    assert re.search(r"in-progress|approved|rejected", str(Approvals(h.state).counts(PLATFORM)))


def test_validated_is_mailed_once_when_a_shop_customer_becomes_an_erp_customer(harness: Harness) -> None:
    from syncd.flows.import_customers import run_shop_to_erp

    h = harness
    h.notifications = (*TABLES, {"event": "validated", "internal_to": [INTERNAL]})
    h.addresses = {"shop_to_erp": True, "only_with_orders": False, "next_address_number": 63001,
                   "send_credentials": False}
    shop_id = h.kit.register("registriert@laden-kunde.example", "geheim-12345", first_name="Rita",
                             last_name="Reger", street="Ufer 9", zip="01067", city="Dresden", country="DE",
                             salutation="mr")
    report = run_shop_to_erp(h.context())
    assert report.counts["imported"] == 1
    h.run()  # the erp-to-shop cycle owns the message run
    [mail] = h.mails_to("registriert@laden-kunde.example")
    assert "bestätigt" in mail["Subject"] and "Kundennummer: 63001" in _text(mail)
    # WooCommerce customers have no salutation: the layout greets them by name
    greeting = "Sehr geehrter Herr Reger" if h.kit.kind == "shopware6" else "Guten Tag Rita Reger"
    assert greeting in _text(mail)
    assert len(h.mails_to(INTERNAL)) == 1
    run_shop_to_erp(h.context())
    h.run()
    assert len(h.smtp.messages) == 2
    assert "validated" in _events(h, 63001)
    assert [a.number for a in h.kit.accounts() if a.id == shop_id] == ["63001"]


@shopware_only(NO_APPROVAL)
def test_manual_approval_holds_self_registered_accounts_until_approved(harness: Harness) -> None:
    h = harness
    h.addresses = {"approval": "manual"}
    sw = h.sandbox
    h.insert([_person(61050)])
    old = sw.create_customer_as_shop_user("vorher@laden-kunde.example", "geheim-12345")
    h.run()  # the first look only notes the time: existing accounts stay as they are
    assert sw.customer(old["id"])["active"]
    h.smtp.clear()
    new = sw.create_customer_as_shop_user("selbst@laden-kunde.example", "geheim-12345", last_name="Selbst")
    h.run()
    assert not sw.customer(new["id"])["active"]
    assert not store_login(sw, "selbst@laden-kunde.example", "geheim-12345")
    assert Approvals(h.state).get(PLATFORM, new["id"]).state == "in-progress"
    assert sw.customer(old["id"])["active"]
    syncd_made = [c for c in h.customers() if c["email"] == "einkauf-61050@kunde.example"]
    assert syncd_made and syncd_made[0]["active"]  # the account syncd created is not held
    assert len(h.mails_to(INTERNAL)) == 1
    h.run()
    assert len(h.mails_to(INTERNAL)) == 1  # once per account
    [d] = decide(h.context(), [new["id"]], approve=True)
    assert d.action == "approved"
    assert store_login(sw, "selbst@laden-kunde.example", "geheim-12345")


def _raise_events(h: Harness, numbers: list[int]) -> str:
    """An event for each of ``numbers`` that the next cycle mails, the kind's own: ``blocked``
    where the shop deactivates, else (WooCommerce) ``validated`` for shop customers imported as
    ``numbers``. Returns the event."""
    from syncd.flows.import_customers import run_shop_to_erp

    if h.kit.deactivates:
        h.insert([_person(n) for n in numbers])
        h.run()
        for n in numbers:
            h.update(n, blocked="J")
        return "blocked"
    h.notifications = (*TABLES, {"event": "validated"})
    for n in numbers:
        person = {k: _person(n)[k] for k in ("first_name", "last_name", "street", "zip", "city")}
        h.kit.register(f"einkauf-{n}@kunde.example", "geheim-12345", country="DE", **person)
    h.addresses = {"shop_to_erp": True, "only_with_orders": False, "next_address_number": numbers[0],
                   "send_credentials": False}
    assert run_shop_to_erp(h.context()).counts["imported"] == len(numbers)
    return "validated"


def test_smtp_faults_on_event_mails_defer_or_fail_one_and_the_rest_go_out(harness: Harness) -> None:
    """Real SMTP: a 550 for one recipient fails that message only (reason in status); a 451 that
    outlasts the retries defers one, which goes out after the backoff once the server takes it."""
    from datetime import timedelta

    from syncd.core.clock import utcnow
    from syncd.flows import messages
    from syncd.flows.context import CycleReport
    from syncd.state import messages as steps

    h = harness
    numbers = [61100 + i for i in range(6)]
    event = _raise_events(h, numbers)
    h.smtp.clear()
    h.smtp.reject_recipient("einkauf-61101@kunde.example", 550, "no such mailbox")
    h.smtp.reject_recipient("einkauf-61100@kunde.example", 451, "greylisted")
    h.run()
    by_number: dict[int, list] = {}
    for m in Messages(h.state).of(PLATFORM, kind=event):
        by_number.setdefault(m.erp_number, []).append(m)
    customer = {n: next(m for m in ms if m.recipient.startswith("einkauf")) for n, ms in by_number.items()}
    assert customer[61101].step == steps.FAILED and "550" in customer[61101].last_error
    assert customer[61100].step == steps.DEFERRED and "451" in customer[61100].last_error
    assert all(customer[n].step == steps.SENT for n in numbers[2:])
    assert len(h.mails_to("einkauf-61100@kunde.example")) == 0
    status = collect_status(h.state, h.settings)["platforms"][0]["messages"]
    assert (status["failed"], status["deferred"]) == (1, 1)
    h.smtp.accept_recipient("einkauf-61100@kunde.example")
    now = h.context()
    messages.send_due(now, CycleReport(PLATFORM, "erp-to-shop"))  # the backoff has not passed
    assert len(h.mails_to("einkauf-61100@kunde.example")) == 0
    later = h.context()
    later.clock = lambda: utcnow() + timedelta(hours=2)
    messages.send_due(later, CycleReport(PLATFORM, "erp-to-shop"))
    assert len(h.mails_to("einkauf-61100@kunde.example")) == 1
    assert len(h.mails_to("einkauf-61101@kunde.example")) == 0
    assert "message_failed" in _events(h, 61101)


@shopware_only(NO_APPROVAL)
def test_a_rejected_erp_account_stays_inactive_when_its_address_changes(harness: Harness) -> None:
    h = harness
    h.insert([_person(61200)])
    h.run()
    [account] = [c for c in h.customers() if c["email"] == "einkauf-61200@kunde.example"]
    [d] = decide(h.context(), ["61200"], approve=False, reason="Zahlungsverzug")
    assert d.action == "rejected" and not h.sandbox.customer(account["id"])["active"]
    h.update(61200, city="Chemnitz")
    report = h.run()
    assert not h.sandbox.customer(account["id"])["active"]  # the change was pushed, not the activation
    assert any(i.action == "skipped" and "not approved" in i.detail for i in report.items)
    [d] = decide(h.context(), ["61200"], approve=True)
    assert d.action == "approved" and h.sandbox.customer(account["id"])["active"]
    subjects = [m["Subject"] for m in h.mails_to("einkauf-61200@kunde.example")]
    assert sum("Ihre Zugangsanfrage" in s for s in subjects) == 1  # the rejection
    assert sum("freigeschaltet" in s for s in subjects) == 1

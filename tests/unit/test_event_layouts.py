"""The shipped event layouts (issue 15): one German and one English per event, each renders for
the customer and for internal recipients, reads what its event carries, and never a password
column."""

from __future__ import annotations

import pytest

from syncd.config.messaging import EVENT_LAYOUTS, NotificationEvent
from syncd.core.domain import ErpAddress
from syncd.render.context import build_context
from syncd.render.store import LayoutStore

EVENTS = NotificationEvent.__args__  # type: ignore[attr-defined]
ADDRESS = ErpAddress(number=70001, email="kauf@firma.example", company="Firma Süd GmbH", last_name="Ähnlich",
                     first_name="Jana", salutation="Frau", row={"AdrNr": 70001, "Kennwort": "GEHEIM-PW"})


def _render(name: str, **event):
    ctx = build_context(ADDRESS, platform={"name": "laden", "url": "https://laden.example"},
                        sender="Laden <post@laden.example>")
    ctx["event"] = {"name": name.removesuffix("_en").removesuffix("_notice"), **event}
    return LayoutStore().render(name, ctx)


@pytest.mark.parametrize("event", EVENTS)
@pytest.mark.parametrize("suffix", ["", "_en"])
@pytest.mark.parametrize("role", ["customer", "internal"])
def test_every_event_ships_in_both_languages_and_renders_for_both_roles(event, suffix, role):
    store = LayoutStore()
    name = EVENT_LAYOUTS.get(event, event) + suffix
    assert name in store.names()
    r = _render(name, role=role, login="kauf@firma.example", reason="Grund 42")
    assert r.subject.strip() and "Laden" in r.subject
    assert "GEHEIM-PW" not in r.text + r.subject
    greeting = ("Sehr geehrte Frau Ähnlich" if not suffix else "Dear Jana Ähnlich")
    if role == "internal":
        assert greeting not in r.text and "kauf@firma.example" in r.text  # names the customer
    else:
        assert greeting in r.text
    if event == "forgot_username":
        assert "kauf@firma.example" in r.text
    if event == "rejected":
        assert "Grund 42" in r.text


def test_check_accepts_every_shipped_event_layout():
    store = LayoutStore()
    for event in EVENTS:
        base = EVENT_LAYOUTS.get(event, event)
        for name in (base, f"{base}_en"):
            assert all(i.ok for i in store.check(name, None)), name


def test_a_rejection_without_reason_has_no_reason_line():
    assert "Begründung" not in _render("rejected", role="customer").text

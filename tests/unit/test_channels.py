"""The channel rule: a customer's preferred channel, E.164 numbers, and the e-mail fallback."""

from __future__ import annotations

import pytest

from syncd.core.channels import ChannelProblem, Delivery, e164, parse_channel, plan_channels

MAIL = "kunde@example.com"


@pytest.mark.parametrize("raw, country, expected", [
    ("0170 1234567", "DE", "+491701234567"),
    ("0170/123 45 67", "DE", "+491701234567"),
    ("+43 664 1234567", "DE", "+436641234567"),      # an explicit country code wins over the address
    ("0664 1234567", "AT", "+436641234567"),          # the address's country is the region
    ("0041 79 123 45 67", "DE", "+41791234567"),
    (1701234567, "DE", "+491701234567"),               # a number stored as a number
])
def test_e164(raw, country, expected):
    assert e164(raw, country) == expected


def test_e164_falls_back_to_the_default_region():
    assert e164("0170 1234567", None, "DE") == "+491701234567"


@pytest.mark.parametrize("raw, reason", [
    ("", "no mobile number"),
    (None, "no mobile number"),
    ("0751 123456", "not a mobile number"),  # a landline cannot receive SMS
    ("abc", "unusable mobile number 'abc'"),
    ("0170 12", "not a valid number"),
])
def test_unusable_numbers_say_why(raw, reason):
    with pytest.raises(ValueError, match=reason):
        e164(raw, "DE")


@pytest.mark.parametrize("raw, expected", [
    ("E-Mail", "email"), ("email", "email"), (" SMS ", "sms"), ("beide", "both"), ("Both", "both"),
    ("keine", "none"), ("", None), (None, None),
])
def test_parse_channel(raw, expected):
    assert parse_channel(raw) == expected


def test_unknown_channel_is_a_clear_problem():
    with pytest.raises(ChannelProblem, match="'Brieftaube'"):
        parse_channel("Brieftaube")


def test_email_only():
    plan = plan_channels(wanted="email", email=MAIL, mobile="0170 1234567", country="DE")
    assert plan.deliveries == (Delivery("email", MAIL),)


def test_sms_only():
    plan = plan_channels(wanted="sms", email=MAIL, mobile="0170 1234567", country="DE")
    assert plan.deliveries == (Delivery("sms", "+491701234567"),) and not plan.problems


def test_both():
    plan = plan_channels(wanted="both", email=MAIL, mobile="0170 1234567", country="DE")
    assert [d.channel for d in plan.deliveries] == ["email", "sms"]


def test_none_sends_nothing_and_says_so():
    plan = plan_channels(wanted="none", email=MAIL, mobile="0170 1234567", country="DE")
    assert plan.deliveries == () and "no messages" in plan.reason


def test_unusable_number_falls_back_to_email():
    plan = plan_channels(wanted="sms", email=MAIL, mobile="0751 123456", country="DE")
    assert plan.deliveries == (Delivery("email", MAIL, fallback=True),)
    assert "not a mobile number" in plan.reason


def test_no_fallback_when_not_configured():
    plan = plan_channels(wanted="sms", email=MAIL, mobile="", country="DE", fallback_to_email=False)
    assert plan.deliveries == () and "no mobile number" in plan.reason


def test_sms_channel_off_falls_back():
    plan = plan_channels(wanted="sms", email=MAIL, mobile="0170 1234567", country="DE", sms_enabled=False)
    assert plan.deliveries == (Delivery("email", MAIL, fallback=True),)
    assert "SMS channel is off" in plan.reason


def test_both_with_bad_number_sends_the_one_email_only():
    plan = plan_channels(wanted="both", email=MAIL, mobile="kaputt", country="DE")
    assert plan.deliveries == (Delivery("email", MAIL),)
    assert "sms:" in plan.reason


def test_fallback_without_usable_email_fails_with_both_reasons():
    plan = plan_channels(wanted="sms", email="kein-at-zeichen", mobile="", country="DE")
    assert plan.deliveries == ()
    assert "no mobile number" in plan.reason and "invalid e-mail" in plan.reason

"""The SMS transport against loopback fakes of seven.io and LOX24 (tests/support/fakes/sms_providers.py):
success, the provider's rejections, throttling, faults, and the secret never in logs or errors."""

from __future__ import annotations

import json
import time

import pytest

from syncd.config.messaging import SmsSettings
from syncd.connectors.sms import SmsTransport
from syncd.core.errors import ConfigurationFault, DeliveryUnknown, PermanentError, TransientError
from tests.support.fakes.sms_providers import FakeLox24, FakeSeven

SEVEN_KEY = "seven-test-key-123"
LOX_ID, LOX_KEY = "1234567", "lox24-test-key-abc"


@pytest.fixture
def seven():
    with FakeSeven(SEVEN_KEY) as fake:
        yield fake


@pytest.fixture
def lox24():
    with FakeLox24(LOX_ID, LOX_KEY) as fake:
        yield fake


def seven_transport(fake: FakeSeven, key: str = SEVEN_KEY, **kw) -> SmsTransport:
    settings = SmsSettings(enabled=True, provider="seven", url=fake.url, password="env:X", timeout="2s", **kw)
    return SmsTransport(settings, password=key)


def lox_transport(fake: FakeLox24, key: str = LOX_KEY, **kw) -> SmsTransport:
    settings = SmsSettings(enabled=True, provider="lox24", url=fake.url, username=LOX_ID, password="env:X",
                           timeout="2s", **kw)
    return SmsTransport(settings, password=key)


# --- seven.io -----------------------------------------------------------------------------------

def test_seven_success_sends_key_in_header_and_returns_the_id(seven):
    t = seven_transport(seven, sender_id="MeinShop")
    message_id = t.send("+491701234567", "Ihre Bestellung 10001 ist versandt.")
    assert message_id == seven.sent[0].id
    assert seven.sent[0].to == "+491701234567" and seven.sent[0].sender == "MeinShop"
    request = seven.requests[0]
    assert request["headers"]["x-api-key"] == SEVEN_KEY
    assert json.loads(request["body"])["text"] == "Ihre Bestellung 10001 ist versandt."


def test_seven_bad_recipient_is_permanent(seven):
    with pytest.raises(PermanentError, match="202"):
        seven_transport(seven).send("+49-abc", "x")
    assert seven.sent == []


def test_seven_bad_key_is_a_configuration_fault_and_never_shows_the_key(seven, captured_logs):
    wrong = "wrong-seven-key-999"
    with pytest.raises(ConfigurationFault, match="900") as info:
        seven_transport(seven, key=wrong).send("+491701234567", "x")
    assert info.value.key == "sms.password"
    assert wrong not in str(info.value) and wrong not in captured_logs.text
    assert len(seven.requests) == 1  # a refused login is not retried in place


def test_seven_no_credit_and_ip_allow_list_are_configuration_faults(seven):
    seven.credit = 0
    with pytest.raises(ConfigurationFault, match="credit"):
        seven_transport(seven).send("+491701234567", "a")
    seven.credit = 5
    seven.allowed_ips = {"10.0.0.1"}
    with pytest.raises(ConfigurationFault, match="903") as info:
        seven_transport(seven).send("+491701234567", "b")
    assert info.value.key == "sms.public_ip"


def test_seven_throttling_is_retried_and_then_sent(seven):
    seven.throttle_next(2, retry_after=0.05)
    start = time.monotonic()
    seven_transport(seven).send("+491701234567", "after the throttle")
    assert time.monotonic() - start >= 0.1  # Retry-After honoured twice
    assert len(seven.sent) == 1 and len(seven.requests) == 3


def test_seven_throttled_beyond_the_budget_stays_transient(seven):
    seven.throttle_next(50, retry_after=0.0)
    with pytest.raises(TransientError, match="429"):
        seven_transport(seven).send("+491701234567", "x")
    assert seven.sent == []


def test_seven_daily_limit_per_number_is_transient(seven):
    seven.daily_limit["+491701234567"] = 0
    with pytest.raises(TransientError, match="403"):
        seven_transport(seven).send("+491701234567", "x")


def test_seven_reload_lock_counts_as_sent(seven):
    """A resend of the very same SMS within 180 s is refused by seven (code 402): the first one
    went out, so it is a success, not a failure and not a second SMS."""
    t = seven_transport(seven)
    first = t.send("+491701234567", "same text")
    assert t.send("+491701234567", "same text") == "duplicate-of-recent"
    assert first and len(seven.sent) == 1


def test_seven_lost_answer_is_delivery_unknown_and_not_repeated(seven):
    seven.drop_next(1)
    with pytest.raises(DeliveryUnknown):
        seven_transport(seven).send("+491701234567", "maybe sent")
    assert len(seven.requests) == 1 and len(seven.sent) == 1


def test_seven_server_errors_are_retried(seven):
    seven.fail_next(2, status=503)
    seven_transport(seven).send("+491701234567", "x")
    assert len(seven.sent) == 1


# --- LOX24 --------------------------------------------------------------------------------------

def test_lox24_success_uses_id_colon_key_token(lox24, captured_logs):
    t = lox_transport(lox24, sender_id="Shop")
    message_id = t.send("+4369912345678", "Zahlungserinnerung für Bestellung 10002 – bitte überweisen")
    assert message_id == lox24.sent[0].id
    request = lox24.requests[0]
    assert request["headers"]["x-lox24-auth-token"] == f"{LOX_ID}:{LOX_KEY}"
    body = json.loads(request["body"])
    assert body["phone"] == "+4369912345678" and body["service_code"] == "direct"
    assert body["is_unicode"] is True  # the en dash is not GSM 03.38
    assert LOX_KEY not in captured_logs.text


def test_lox24_validation_error_is_permanent_with_the_violation(lox24):
    with pytest.raises(PermanentError, match="phone: This value is not a valid phone number"):
        lox_transport(lox24).send("0170123", "x")


def test_lox24_no_credit_is_configuration_fault(lox24):
    lox24.credit = 0
    with pytest.raises(ConfigurationFault, match="credit"):
        lox_transport(lox24).send("+491701234567", "x")


def test_lox24_unauthorised_then_ip_block(lox24):
    for _ in range(4):
        with pytest.raises(ConfigurationFault, match="unauthorised"):
            lox_transport(lox24, key="bad-key-0000").send("+491701234567", "x")
    # The fourth failure within a minute blocked the IP for ten minutes: now even the right key is throttled.
    with pytest.raises(TransientError, match="429") as info:
        lox_transport(lox24).send("+491701234567", "x")
    assert not isinstance(info.value, ConfigurationFault)
    assert lox24.sent == []


def test_lox24_throttling_then_success(lox24):
    lox24.throttle_next(1, retry_after=0.01)
    lox_transport(lox24).send("+491701234567", "x")
    assert len(lox24.sent) == 1 and len(lox24.requests) == 2


def test_lox24_blocked_account_is_configuration_fault(lox24):
    lox24.blocked = True
    with pytest.raises(ConfigurationFault, match="forbidden"):
        lox_transport(lox24).send("+491701234567", "x")


# --- generic http ---------------------------------------------------------------------------------

def test_http_provider_posts_the_rendered_template(seven):
    settings = SmsSettings(
        enabled=True, provider="http", url=seven.url, password="env:X", sender_id="Shop",
        body_template='{"to": {{ to|tojson }}, "text": {{ text|tojson }}, "from": {{ sender_id|tojson }}}',
        headers={"X-Api-Key": "{{ password }}"},
    )
    SmsTransport(settings, password=SEVEN_KEY).send("+491701234567", 'Text mit "Anführungszeichen"')
    assert seven.sent[0].text == 'Text mit "Anführungszeichen"'


def test_http_provider_rejection_is_permanent(lox24):
    settings = SmsSettings(enabled=True, provider="http", url=lox24.url, password="env:X",
                           body_template='{"phone": {{ to|tojson }}}',
                           headers={"X-LOX24-AUTH-TOKEN": LOX_ID + ":{{ password }}"})
    with pytest.raises(PermanentError, match="HTTP 400"):
        SmsTransport(settings, password=LOX_KEY).send("+491701234567", "x")


def test_connection_refused_is_transient():
    settings = SmsSettings(enabled=True, provider="seven", url="http://127.0.0.1:9/api/sms", password="env:X",
                           timeout="1s")
    with pytest.raises(TransientError) as info:
        SmsTransport(settings, password=SEVEN_KEY).send("+491701234567", "x")
    assert not isinstance(info.value, DeliveryUnknown)

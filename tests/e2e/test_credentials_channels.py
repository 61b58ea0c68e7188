"""Credentials by the customer's channel (issue 16): e-mail, SMS, both, none, and the fallbacks,
in password and link mode. Real components: an ERP table whose mobile number and channel sit in
free selection fields (``Sel7`` / ``Sel8``, numbers written as people write them), the Shopware
sandbox over HTTP, a real SMTP server (aiosmtpd), the loopback fakes of seven.io and LOX24, and
SQLite and PostgreSQL state stores.

Each test checks what reached the customer (mails at the SMTP server, SMS at the provider), that
the password that arrived logs in, that the ERP field is empty afterwards (I2), and that neither
the password nor the SMS text reached the state store or the logs (I3).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from syncd.core.rules import HistoryEvent
from syncd.flows import accounts
from syncd.shell.status import collect_status, render_status_table
from syncd.state.jobs import CredentialJobs
from syncd.state.schema import credential_jobs
from tests.support.dbs import pg_schema_url, unique_name
from tests.support.fakes.sms_providers import FakeLox24, FakeSeven
from tests.support.flow_harness import PLATFORM, Harness, link_of, password_of
from tests.support.mailserver import smtp_server, smtp_server_factory, smtp_tls_files  # noqa: F401
from tests.support.shop_fixtures import sandbox, store_login  # noqa: F401

COLUMNS = {"mobile": "Sel7", "preferred_channel": "Sel8"}
SMS_PASSWORD = re.compile(r"(?:Passwort|Password): (\S+)")
SMS_LINK = re.compile(r"https?://\S+/account/recover/password\?hash=([A-Za-z0-9]+)")


def person(n: int, *, mobile: str | None = "0170 1234567", channel: str | None = None, **kw) -> dict:
    row = {"number": n, "email": f"kunde{n}@example.com", "salutation": "Herr", "first_name": "Jörg",
           "last_name": f"Kühn-{n}", "street": "Weg 1", "zip": "01067", "city": "Dresden", "country": "DE",
           "Sel7": mobile, "Sel8": channel}
    row.update(kw)
    return row


@pytest.fixture
def seven() -> Iterator[FakeSeven]:
    with FakeSeven() as fake:
        fake.reload_lock = 0  # the provider's own dedup would hide a duplicate: off
        yield fake


def make(tmp_path: Path, shop, smtp, fake, *, state_url: str = "", messages: dict | None = None,
         sms: dict | None = None, **addresses) -> Harness:
    provider = "lox24" if isinstance(fake, FakeLox24) else "seven"
    key = fake.token.split(":", 1)[1] if provider == "lox24" else fake.api_key
    settings = {"enabled": True, "provider": provider, "url": fake.url, "password": "env:SMS_KEY_UNUSED",
                "sender_id": "Testshop"}
    if provider == "lox24":
        settings["username"] = fake.token.split(":")[0]
    settings.update(sms or {})
    return Harness(tmp_path, f"sqlite:///{tmp_path / 'erp.db'}", unique_name("adr"), shop, smtp,
                   addresses=addresses, state_url=state_url, sms=settings, sms_key=key,
                   messages={"allow_password_by_sms": True, **(messages or {})}, erp_columns=COLUMNS)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.realdb)])
def state_url(request) -> Iterator[str]:
    if request.param == "sqlite":
        yield ""
        return
    with pg_schema_url("syncd_chan") as url:
        yield url


@pytest.fixture
def new(tmp_path: Path, sandbox, smtp_server, seven) -> Iterator:  # noqa: F811
    """new(fake=seven, **harness keys) -> a Harness in a folder of its own."""
    made: list[Harness] = []

    def build(fake=seven, **kw) -> Harness:
        folder = tmp_path / f"h{len(made)}"
        folder.mkdir()
        h = make(folder, sandbox, smtp_server, fake, **kw)
        made.append(h)
        return h

    yield build
    for h in made:
        h.close()


def sms_to(fake, number: str) -> list[str]:
    return [s.text for s in fake.sent if s.to == number]


def channels(h: Harness) -> dict[int, str | None]:
    with h.state.engine.connect() as c:
        t = credential_jobs
        return {int(n): ch for n, ch in c.execute(sa.select(t.c.erp_number, t.c.channel))}


def history(h: Harness, number: int) -> list[tuple[str, str]]:
    from syncd.state.history import History

    return [(e.event, e.reason or "") for e in History(h.state, lambda: None).of_address(number, PLATFORM)]


def no_secret_at_rest(h: Harness, logs: str, *secrets: str) -> None:
    state = b"".join(p.read_bytes() for p in h.tmp.glob("state.db*"))
    if not h.state_url.startswith("sqlite"):
        with h.state.engine.connect() as c:
            state = repr([tuple(r) for r in c.execute(sa.select(credential_jobs))]).encode()
    for secret in secrets:
        assert secret and secret.encode() not in state
        assert secret not in logs


# --------------------------------------------------------------------------------- password mode
def test_each_channel_choice_in_password_mode(new, seven, state_url, captured_logs):
    h = new(seven, state_url=state_url)
    h.insert([person(71001), person(71002, channel="SMS", mobile="0049 171 2345678"),
              person(71003, channel="beide", mobile="+49 (0)172 3456789"), person(71004, channel="keine")])
    report = h.run()
    assert h.password_fields() == {}  # I2, also for "none"
    # e-mail (no value: the default): a mail, no SMS
    assert len(h.mails_to("kunde71001@example.com")) == 1 and not sms_to(seven, "+491701234567")
    # SMS: no mail; the SMS carries a password that logs in
    assert h.mails_to("kunde71002@example.com") == []
    [text] = sms_to(seven, "+491712345678")
    sms_password = SMS_PASSWORD.search(text).group(1)
    assert h.kit.login("kunde71002@example.com", sms_password)
    # both: one of each, the same password
    [both_text] = sms_to(seven, "+491723456789")
    [mail] = h.mails_to("kunde71003@example.com")
    assert SMS_PASSWORD.search(both_text).group(1) == password_of(mail)
    assert h.kit.login("kunde71003@example.com", password_of(mail))
    # none: nothing at all, said in the history and counted by channel
    assert h.mails_to("kunde71004@example.com") == [] and len(seven.sent) == 2
    assert (HistoryEvent.NOT_SENT, "the customer chose no messages / keine Nachrichten gewünscht") in history(
        h, 71004)
    assert channels(h) == {71001: "email", 71002: "sms", 71003: "both", 71004: "none"}
    assert ("mail_sent", "first credentials mail by SMS") in history(h, 71002)
    # "credentials sent" (export filter, activation reminders) means a message reached them
    sent = {r.address for r in accounts.list_accounts(h.state, [PLATFORM], credentials_sent=True)}
    assert sent == {71001, 71002, 71003}
    assert ("mail_sent", "first credentials mail to kunde71003@example.com and by SMS") in history(h, 71003)
    status = collect_status(h.state, h.settings)
    assert status["platforms"][0]["credential_channels"] == {"email": 1, "sms": 1, "both": 1, "none": 1}
    assert "nicht versandt (Kunde wünscht keine Nachrichten) 1" in render_status_table(status, lang="de")
    assert set(CredentialJobs(h.state).counts(PLATFORM)) == {"done"}
    assert report.counts["not-sent"] == 1 and report.counts["sms"] == 2
    assert "credentials SMS sent" in captured_logs.text  # the capture sees the run's log lines
    no_secret_at_rest(h, captured_logs.text, sms_password, password_of(mail), text, both_text)


def test_a_password_sms_without_permission_falls_back_to_mail_or_fails(new, seven):
    h = new(seven, messages={"allow_password_by_sms": False})
    h.insert([person(72001, channel="sms")])
    h.run()
    assert seven.sent == [] and seven.requests == []  # never sent, not even tried
    [mail] = h.mails_to("kunde72001@example.com")
    assert h.kit.login("kunde72001@example.com", password_of(mail))
    assert any(e == HistoryEvent.SMS_FAILED and "allow_password_by_sms" in r for e, r in history(h, 72001))

    strict = new(seven, messages={"allow_password_by_sms": False, "fallback_to_email": False})
    strict.insert([person(72002, channel="sms")])
    strict.run()
    assert seven.requests == [] and strict.mails_to("kunde72002@example.com") == []
    [job] = [j for j in CredentialJobs(strict.state).failed(PLATFORM)]
    assert "allow_password_by_sms" in (job.last_error or "")
    assert strict.password_fields() == {}


@pytest.mark.parametrize("mobile, sms", [(None, {}), ("12", {}), ("030 1234567", {}),
                                         ("0170 1234567", {"enabled": False})])
def test_an_unusable_number_or_a_channel_off_falls_back_to_mail(new, seven, mobile, sms):
    h = new(seven, sms=sms)
    h.insert([person(73001, channel="SMS", mobile=mobile)])
    h.run()
    assert seven.requests == []
    [mail] = h.mails_to("kunde73001@example.com")
    assert h.kit.login("kunde73001@example.com", password_of(mail))
    assert channels(h) == {73001: "email"}
    assert any(e == HistoryEvent.SMS_FAILED for e, _ in history(h, 73001))


def test_a_refused_sms_goes_by_mail_instead(new, seven):
    h = new(seven)
    h.insert([person(74001, channel="sms")])
    seven.fail_next(1, status=400)  # the provider refuses this SMS (a permanent answer)
    h.run()
    assert seven.sent == []
    [mail] = h.mails_to("kunde74001@example.com")
    assert h.kit.login("kunde74001@example.com", password_of(mail))
    assert [j.sms_step for j in CredentialJobs(h.state).active(PLATFORM)] == []
    assert any(e == HistoryEvent.SMS_FAILED and "instead" in r for e, r in history(h, 74001))
    assert h.password_fields() == {}


def test_a_throttled_sms_is_retried_by_the_retry_policy_and_sent_once(new, seven):
    h = new(seven)
    h.insert([person(75001, channel="sms")])
    seven.throttle_next(2, retry_after=0)
    h.run()
    assert len(seven.requests) == 3 and len(seven.sent) == 1  # two 429s, then the one SMS
    with h.state.engine.connect() as c:
        [attempts] = c.execute(sa.select(credential_jobs.c.sms_attempts)).scalars()
    assert attempts == 1  # a throttled request was never accepted: one counted send
    assert h.kit.login("kunde75001@example.com", SMS_PASSWORD.search(seven.sent[0].text).group(1))


def test_an_sms_the_provider_cannot_take_now_defers_the_whole_job(new, seven):
    h = new(seven)
    h.insert([person(76001, channel="both")])
    seven.fail_next(20, status=503)  # beyond the retry budget
    h.run()
    assert seven.sent == [] and h.mails_to("kunde76001@example.com") == []  # nothing half-sent
    [job] = CredentialJobs(h.state).active(PLATFORM)
    assert job.step == "pending" and job.sms_step is None and "SMS provider" in (job.last_error or "")
    assert h.password_fields() == {}


def test_lox24_carries_the_credentials_sms(new):
    with FakeLox24() as lox:
        h = new(lox)
        h.insert([person(77001, channel="sms", mobile="0664 1234567", country="AT")])
        h.run()
        [sms] = lox.sent
        assert sms.to == "+436641234567"
        assert h.kit.login("kunde77001@example.com", SMS_PASSWORD.search(sms.text).group(1))


# --------------------------------------------------------------------------------- link mode
def test_each_channel_choice_in_link_mode(new, seven, state_url, captured_logs):
    from tests.e2e.test_link_mode import confirm

    h = new(seven, state_url=state_url, credential_mode="link",
                messages={"allow_password_by_sms": False})  # a link is no password: allowed anyway
    h.insert([person(78001, channel="sms"), person(78002, channel="both", mobile="0171 2345678"),
              person(78003, channel="none"), person(78004, channel="sms", mobile=None)])
    h.run()
    assert h.mails_to("kunde78001@example.com") == []
    [text] = sms_to(seven, "+491701234567")
    link_hash = SMS_LINK.search(text).group(1)
    assert confirm(h.sandbox, link_hash, "eigenes-78001").status_code == 200
    assert store_login(h.sandbox, "kunde78001@example.com", "eigenes-78001")
    [both_text] = sms_to(seven, "+491712345678")
    [mail] = h.mails_to("kunde78002@example.com")
    assert SMS_LINK.search(both_text).group(1) == link_of(mail)[1]
    assert h.mails_to("kunde78003@example.com") == []
    assert len(h.mails_to("kunde78004@example.com")) == 1  # no mobile: the link by e-mail
    assert channels(h) == {78001: "sms", 78002: "both", 78003: "none", 78004: "email"}
    assert set(CredentialJobs(h.state).counts(PLATFORM)) == {"done"}
    assert "credentials SMS sent" in captured_logs.text
    no_secret_at_rest(h, captured_logs.text, link_hash, text)

"""Issue 18, bounces: each mail's envelope sender carries a VERP tag, a maildir of real bounce
formats is read, a hard bounce marks the mail bounced and blocks the address until its ERP e-mail
changes, then the mail is sent once more. Real ERP table (SQLite), the sandbox of each platform kind, a real
SMTP server (aiosmtpd), SQLite and PostgreSQL state stores."""

from __future__ import annotations

import mailbox
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from syncd.core.returnpath import envelope_sender, make_tag
from syncd.flows import accounts
from syncd.flows.credentials import queue_credentials
from syncd.shell.bounces import check_bounces
from syncd.shell.status import collect_status, render_status_table
from syncd.state.bounces import Bounces
from syncd.state.history import History
from syncd.state.jobs import CredentialJobs
from syncd.state.messages import Messages
from tests.support import bounce_samples as samples
from tests.support.flow_harness import PLATFORM, STATE_STORES, Harness, harness_on
from tests.support.mailserver import smtp_server, smtp_server_factory, smtp_tls_files  # noqa: F401
from tests.support.shops import shop  # noqa: F401 - the fixture

TAGGED = re.compile(r"^bounces\+c(\d+)-[a-z2-7]{12}@example\.com$")


def _person(n: int, **kw) -> dict:
    row = {"number": n, "email": f"kunde{n}@example.com", "first_name": "Jörg", "last_name": f"Kühn-{n}",
           "street": "Weg 1", "zip": "01067", "city": "Dresden", "country": "DE"}
    row.update(kw)
    return row


@pytest.fixture(params=STATE_STORES)
def harness(request, tmp_path: Path, shop, smtp_server) -> Iterator[Harness]:  # noqa: F811
    """Each case for each platform kind (``shop``) and state store."""
    with harness_on(request.param, tmp_path, shop, smtp_server) as h:
        mailbox.Maildir(str(tmp_path / "bounces"), create=True).close()
        h.mail = {"bounces": {"enabled": True, "return_path": "bounces@example.com",
                              "maildir": str(tmp_path / "bounces")}}
        yield h


def _check(h: Harness):
    ctx = h.context()
    return check_bounces(h.settings, h.state, lambda name: ctx if name == PLATFORM else None)


def _sender_of(h: Harness, email: str) -> str:
    [mail] = h.mails_to(email)
    return mail.mail_from


def test_envelope_sender_carries_the_tag_from_stays(harness: Harness) -> None:
    harness.insert([_person(10001), _person(10002)])
    harness.run()
    senders = {_sender_of(harness, f"kunde{n}@example.com") for n in (10001, 10002)}
    assert all(TAGGED.match(s) for s in senders) and len(senders) == 2
    for n in (10001, 10002):
        [mail] = harness.mails_to(f"kunde{n}@example.com")
        assert mail["From"] == "Shop <shop@example.com>"
        assert "kunde" not in mail.mail_from  # no address (and no password) in the tag
        job = CredentialJobs(harness.state).get(int(TAGGED.match(mail.mail_from).group(1)))
        assert job is not None and job.erp_number == n  # the tag names this address's job


def test_hard_bounce_blocks_until_the_erp_email_changes_then_one_retry(harness: Harness,
                                                                       captured_logs) -> None:
    harness.insert([_person(10001), _person(10002)])
    harness.run()
    bounced = _sender_of(harness, "kunde10001@example.com")
    other = _sender_of(harness, "kunde10002@example.com")
    forged = envelope_sender("bounces@example.com", make_tag(b"x" * 32, "c", 1, "kunde10001@example.com"))
    folder = Path(harness.settings.mail.bounces.maildir or "")
    samples.deliver(folder,
                    samples.postfix_dsn(bounced, "kunde10001@example.com"),
                    b"\xff\xfe not a mail at all \x00" * 3,
                    samples.unrelated(),
                    samples.auto_reply(other),
                    samples.postfix_dsn(forged, "kunde10001@example.com", message_id="<forged@x>"),
                    samples.postfix_dsn(other, "kunde10002@example.com", status="4.2.2", action="delayed",
                                        message_id="<soft@x>", diagnostic="smtp; 452 4.2.2 Mailbox full"))
    report = _check(harness)
    assert report.counts["hard"] == 1 and report.counts["soft"] == 1
    assert report.counts["unknown-tag"] == 1 and report.counts["no-bounce"] == 1
    assert report.counts["not-ours"] == 2 and report.counts["error"] == 0

    events = [e.event for e in History(harness.state, lambda: None).of_address(10001)]
    assert "mail_bounced" in events
    [b] = Bounces(harness.state).open(PLATFORM)
    assert (b.erp_number, b.email, b.status) == (10001, "kunde10001@example.com", "5.1.1")
    assert "User unknown" in (b.diagnostic or "")
    assert "mail_soft_bounced" in [e.event for e in History(harness.state, lambda: None).of_address(10002)]
    assert Bounces(harness.state).blocked_numbers(PLATFORM) == {10001}  # soft: not blocked
    status = collect_status(harness.state, harness.settings)["platforms"][0]["bounces"]
    assert status["bounced"] == 1 and status["soft"] == 1
    table = render_status_table(collect_status(harness.state, harness.settings), lang="de", width=300)
    assert "1 Adresse(n) unzustellbar" in table and "kunde10001@example.com" in table
    listed = {r.address: r.bounced_at for r in accounts.list_accounts(harness.state, [PLATFORM])}
    assert listed[10001] is not None and listed[10002] is None
    # processed bounces moved away, the rest marked seen and left
    box = mailbox.Maildir(str(folder), create=False)
    assert len(box.get_folder("syncd-processed")) == 2
    assert all("S" in box.get_message(k).get_flags() for k in box.iterkeys())
    # a second read finds nothing new
    assert _check(harness).counts["read"] == 0

    # staff ask for new credentials: the address is not mailed while its bounce is open
    harness.smtp.clear()
    asked = queue_credentials(harness.context(), [10001, 10002])
    waits = [(str(i.record), i.action) for i in asked.items if "bounced" in i.detail]
    assert waits == [("10001", "deferred")]
    harness.run()
    assert harness.mails_to("kunde10001@example.com") == []
    assert len(harness.mails_to("kunde10002@example.com")) == 1
    assert _check(harness).counts["cleared"] == 0  # the e-mail did not change: still blocked
    harness.run()
    assert harness.mails_to("kunde10001@example.com") == []

    harness.update(10001, email="neu10001@example.com")
    harness.run()  # pushes the new e-mail; the mail still waits for the bounce check
    report = _check(harness)
    assert report.counts["cleared"] == 1
    assert "bounce_cleared" in [e.event for e in History(harness.state, lambda: None).of_address(10001)]
    harness.run()
    harness.run()
    assert len(harness.mails_to("neu10001@example.com")) == 1  # the pending mail, once
    assert harness.mails_to("kunde10001@example.com") == []
    assert Bounces(harness.state).open(PLATFORM) == []
    assert _check(harness).counts["cleared"] == 0
    key = Bounces(harness.state).tag_key(datetime.now(UTC), create=False)
    assert key is not None and key.hex() not in captured_logs.text


def test_bounced_mail_is_retried_once_after_the_change(harness: Harness) -> None:
    harness.insert([_person(10001)])
    harness.run()
    sender = _sender_of(harness, "kunde10001@example.com")
    samples.deliver(Path(harness.settings.mail.bounces.maildir or ""),
                    samples.exim_bounce(sender, "kunde10001@example.com"))
    report = _check(harness)
    assert report.counts["hard"] == 1
    harness.smtp.clear()
    harness.run()
    assert harness.smtp.messages == []  # nothing pending, nothing sent
    harness.update(10001, email="Neu10001@Example.com")
    harness.run()
    report = _check(harness)
    assert report.counts["cleared"] == 1 and report.counts["retried"] == 1
    harness.run()
    harness.run()
    assert len(harness.mails_to("neu10001@example.com")) == 1
    # the new address bounces too: blocked again, and one more retry only after another change
    sender = _sender_of(harness, "neu10001@example.com")
    samples.deliver(Path(harness.settings.mail.bounces.maildir or ""),
                    samples.postfix_dsn(sender, "neu10001@example.com", message_id="<second@x>"))
    assert _check(harness).counts["hard"] == 1
    assert Bounces(harness.state).blocked_numbers(PLATFORM) == {10001}


def test_event_mail_bounce_holds_later_messages_and_moves_them_to_the_new_email(harness: Harness) -> None:
    from syncd.flows.account_events import forgot_username

    h = harness
    # The kind's own event mail: blocked where the shop deactivates, else (WooCommerce) the
    # forgot-username answer.
    event = "blocked" if h.kit.deactivates else "forgot_username"
    h.notifications = ({"event": event},)
    h.insert([_person(10001)])
    h.run()
    h.smtp.clear()
    if h.kit.deactivates:
        h.update(10001, blocked="J")
        h.run()
    else:
        forgot_username(h.context(), "kunde10001@example.com")
    [blocked] = h.mails_to("kunde10001@example.com")
    assert re.match(r"^bounces\+m\d+-[a-z2-7]{12}@example\.com$", blocked.mail_from)
    samples.deliver(Path(h.settings.mail.bounces.maildir or ""),
                    samples.postfix_dsn(blocked.mail_from, "kunde10001@example.com"))
    assert _check(h).counts["hard"] == 1
    # a later event mail to the bounced address waits
    Messages(h.state).enqueue(platform=PLATFORM, kind="blocked", occurrence="later", layout="blocked",
                              recipient="kunde10001@example.com", erp_number=10001, now=datetime.now(UTC))
    h.smtp.clear()
    h.run()
    assert h.smtp.messages == []
    h.update(10001, email="neu10001@example.com")
    report = _check(h)
    assert report.counts["cleared"] == 1 and report.counts["retried"] == 1 and report.counts["moved"] == 1
    h.run()
    h.run()
    assert len(h.mails_to("neu10001@example.com")) == 2  # the bounced one again, and the one that waited
    assert h.mails_to("kunde10001@example.com") == []


def test_one_bad_message_never_stops_the_batch_and_is_read_again(harness: Harness, monkeypatch) -> None:
    import syncd.shell.bounces as wiring

    h = harness
    h.insert([_person(10001), _person(10002)])
    h.run()
    folder = Path(h.settings.mail.bounces.maildir or "")
    samples.deliver(folder,
                    samples.postfix_dsn(_sender_of(h, "kunde10001@example.com"), "kunde10001@example.com",
                                        message_id="<bad@x>"),
                    samples.postfix_dsn(_sender_of(h, "kunde10002@example.com"), "kunde10002@example.com",
                                        message_id="<good@x>"))
    real = wiring.read_bounce

    def flaky(raw: bytes, return_path: str, ref: str):
        if b"<bad@x>" in raw:
            raise RuntimeError("parser tripped")
        return real(raw, return_path, ref)

    monkeypatch.setattr(wiring, "read_bounce", flaky)
    report = _check(h)
    assert report.counts["error"] == 1 and report.counts["hard"] == 1
    assert Bounces(h.state).blocked_numbers(PLATFORM) == {10002}
    monkeypatch.setattr(wiring, "read_bounce", real)
    report = _check(h)  # the bad one was left unseen: read again, now fine
    assert report.counts["read"] == 1 and report.counts["hard"] == 1
    assert Bounces(h.state).blocked_numbers(PLATFORM) == {10001, 10002}


def test_a_crash_between_recording_and_moving_records_the_bounce_once(harness: Harness, monkeypatch) -> None:
    from syncd.connectors.mail.bounces import MaildirSource

    h = harness
    h.insert([_person(10001)])
    h.run()
    folder = Path(h.settings.mail.bounces.maildir or "")
    sender = _sender_of(h, "kunde10001@example.com")
    samples.deliver(folder, samples.postfix_dsn(sender, "kunde10001@example.com"))
    real = MaildirSource.done

    def dies(self, ref, *, processed):
        raise OSError("killed before the move")

    monkeypatch.setattr(MaildirSource, "done", dies)
    assert _check(h).counts["hard"] == 1
    monkeypatch.setattr(MaildirSource, "done", real)
    report = _check(h)  # read again: the same bounce, recorded once
    assert report.counts["duplicate"] == 1 and report.counts["hard"] == 0
    events = [e.event for e in History(h.state, lambda: None).of_address(10001)]
    assert events.count("mail_bounced") == 1
    assert len(mailbox.Maildir(str(folder), create=False).get_folder("syncd-processed")) == 1

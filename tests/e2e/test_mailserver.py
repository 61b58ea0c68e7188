"""The test SMTP server itself: other engineers' tests rely on its switches doing what they say."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage

import pytest

pytest_plugins = ["tests.support.mailserver"]


def _msg(to: str = "kunde@example.com") -> EmailMessage:
    m = EmailMessage()
    m["From"] = "shop@example.com"
    m["To"] = to
    m["Subject"] = "Grüße aus Köln"
    m.set_content("Größe: €5")
    return m


def test_records_parsed_messages_with_envelope(smtp_server):
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=5) as c:
        c.send_message(_msg(), to_addrs=["kunde@example.com", "cc@example.com"])
    (m,) = smtp_server.wait_for(1)
    assert m["Subject"] == "Grüße aus Köln"
    assert m.get_content().strip() == "Größe: €5"
    assert m.mail_from == "shop@example.com"
    assert m.rcpt_tos == ["kunde@example.com", "cc@example.com"]
    assert smtp_server.connections == 1


def test_fault_switches_apply_to_the_next_transactions_only(smtp_server):
    smtp_server.fail_next(1, code=451)
    smtp_server.reject_recipient("bad@example.com", code=550)
    with smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=5) as c:
        with pytest.raises(smtplib.SMTPDataError) as e:
            c.send_message(_msg())
        assert e.value.smtp_code == 451
        with pytest.raises(smtplib.SMTPRecipientsRefused) as r:
            c.send_message(_msg("bad@example.com"))
        assert r.value.recipients["bad@example.com"][0] == 550
        c.send_message(_msg())
    assert len(smtp_server.messages) == 1


def test_drop_and_disconnect(smtp_server):
    c = smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=5)
    smtp_server.drop_next(1, stage="mail")
    with pytest.raises(smtplib.SMTPServerDisconnected):
        c.send_message(_msg())
    c = smtplib.SMTP(smtp_server.host, smtp_server.port, timeout=5)
    c.send_message(_msg())
    smtp_server.disconnect_all()
    assert smtp_server.open_connections == 0
    with pytest.raises(smtplib.SMTPServerDisconnected):
        c.send_message(_msg())
    assert smtp_server.connections == 2
    assert len(smtp_server.messages) == 1


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_tls_and_auth(smtp_server_factory, security):
    server = smtp_server_factory(security, users={"shop": "s3cret!"})
    ctx = ssl.create_default_context(cafile=server.ca_file)
    if security == "ssl":
        c = smtplib.SMTP_SSL(server.host, server.port, context=ctx, timeout=5)
    else:
        c = smtplib.SMTP(server.host, server.port, timeout=5)
        c.starttls(context=ctx)
    with c:
        with pytest.raises(smtplib.SMTPAuthenticationError):
            c.login("shop", "wrong")
        c.login("shop", "s3cret!")
        c.send_message(_msg())
    assert server.auth_failures >= 1
    assert len(server.wait_for(1)) == 1


def test_starttls_required_and_unknown_ca_refused(smtp_server_factory):
    server = smtp_server_factory("starttls")
    with smtplib.SMTP(server.host, server.port, timeout=5) as c:
        with pytest.raises(smtplib.SMTPSenderRefused):
            c.send_message(_msg())
    with smtplib.SMTP(server.host, server.port, timeout=5) as c:
        with pytest.raises(ssl.SSLCertVerificationError):
            c.starttls(context=ssl.create_default_context())


def test_plain_class_start_stop():
    from tests.support.mailserver import MailServer

    server = MailServer().start()
    try:
        with smtplib.SMTP(server.host, server.port, timeout=5) as c:
            c.send_message(_msg())
        assert server.accepted == 1
    finally:
        server.stop()
    with pytest.raises(OSError):
        smtplib.SMTP(server.host, server.port, timeout=2)


def test_runs_as_its_own_process():
    import json
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "tests.support.mailserver"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        info = json.loads(proc.stdout.readline())
        with smtplib.SMTP(info["host"], info["port"], timeout=5) as c:
            c.send_message(_msg())
            c.send_message(_msg())
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    assert json.loads(err.strip().splitlines()[-1]) == {"accepted": 2, "connections": 1}
    assert proc.returncode == 0

"""Bounce messages as mail servers really write them, for the bounce reader's tests. Each takes
the envelope sender the bounced mail went out with (``return_to``: where the bounce is delivered)
and the recipient that failed. The texts follow real Postfix (RFC 3464 multipart/report), Exim
(plain text with X-Failed-Recipients) and qmail output; only names and ids are changed."""

from __future__ import annotations

import mailbox
from pathlib import Path


def postfix_dsn(return_to: str, recipient: str, *, status: str = "5.1.1", action: str = "failed",
                message_id: str = "<20261203101500.4F1A2C0123@mx.example.net>",
                diagnostic: str | None = None) -> bytes:
    diagnostic = diagnostic or (f"smtp; 550 {status} <{recipient}>: Recipient address rejected: "
                                "User unknown in virtual mailbox table")
    return f"""\
Return-Path: <>
Delivered-To: {return_to}
Received: by mx.example.net (Postfix)
\tid 4F1A2C0123; Thu,  3 Dec 2026 10:15:00 +0100 (CET)
Date: Thu,  3 Dec 2026 10:15:00 +0100 (CET)
From: MAILER-DAEMON@mx.example.net (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: {return_to}
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="4F1A2C0123.1764753300/mx.example.net"
Content-Transfer-Encoding: 8bit
Message-Id: {message_id}

This is a MIME-encapsulated message.

--4F1A2C0123.1764753300/mx.example.net
Content-Description: Notification
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

This is the mail system at host mx.example.net.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients. It's attached below.

                   The mail system

<{recipient}>: host mail.example.org[192.0.2.25] said: 550 {status}
    <{recipient}>: Recipient address rejected: User unknown in virtual mailbox
    table (in reply to RCPT TO command)

--4F1A2C0123.1764753300/mx.example.net
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net
X-Postfix-Queue-ID: 4F1A2C0123
X-Postfix-Sender: rfc822; {return_to}
Arrival-Date: Thu,  3 Dec 2026 10:14:58 +0100 (CET)

Final-Recipient: rfc822; {recipient}
Original-Recipient: rfc822;{recipient}
Action: {action}
Status: {status}
Remote-MTA: dns; mail.example.org
Diagnostic-Code: {diagnostic}

--4F1A2C0123.1764753300/mx.example.net
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers
Content-Transfer-Encoding: 8bit

Return-Path: <{return_to}>
From: Shop <shop@example.com>
To: {recipient}
Subject: Ihre Zugangsdaten

--4F1A2C0123.1764753300/mx.example.net--
""".replace("\n", "\r\n").encode()


def exim_bounce(return_to: str, recipient: str, *, message_id: str = "<E1vQx2a-000AbC-1x@relay.example.net>"
                ) -> bytes:
    return f"""\
Return-path: <>
Envelope-to: {return_to}
Delivery-date: Thu, 03 Dec 2026 10:20:01 +0100
Received: from mail by relay.example.net with local (Exim 4.96)
\tid 1vQx2a-000AbC-1x
\tfor {return_to};
\tThu, 03 Dec 2026 10:20:01 +0100
X-Failed-Recipients: {recipient}
Auto-Submitted: auto-replied
From: Mail Delivery System <Mailer-Daemon@relay.example.net>
To: {return_to}
Content-Type: text/plain; charset=us-ascii
Subject: Mail delivery failed: returning message to sender
Message-Id: {message_id}
Date: Thu, 03 Dec 2026 10:20:01 +0100

This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  {recipient}
    host mx.example.org [198.51.100.7]
    SMTP error from remote mail server after RCPT TO:<{recipient}>:
    550 5.1.1 <{recipient}>: mailbox unavailable

------ This is a copy of the message, including all the headers. ------

Return-path: <{return_to}>
From: Shop <shop@example.com>
To: {recipient}
Subject: Ihre Zugangsdaten

Guten Tag,
""".replace("\n", "\r\n").encode()


def auto_reply(return_to: str, *, message_id: str = "<ooo-1@example.org>") -> bytes:
    """An out-of-office reply that went to the envelope sender: addressed to us, but no bounce."""
    return f"""\
Delivered-To: {return_to}
From: Kunde <kunde@example.org>
To: {return_to}
Subject: Abwesenheitsnotiz: Ihre Zugangsdaten
Auto-Submitted: auto-replied
Message-Id: {message_id}
Content-Type: text/plain; charset=utf-8

Ich bin bis zum 10.12. nicht im Büro.
""".replace("\n", "\r\n").encode()


def unrelated(message_id: str = "<newsletter-7@example.org>") -> bytes:
    return f"""\
From: news@example.org
To: bounces@example.com
Subject: Newsletter
Message-Id: {message_id}

Hallo.
""".replace("\n", "\r\n").encode()


def deliver(maildir: Path, *messages: bytes) -> list[str]:
    """Put messages into ``maildir``'s new/ as a delivery agent would; their keys."""
    box = mailbox.Maildir(str(maildir), create=True)
    try:
        return [box.add(mailbox.MaildirMessage(m)) for m in messages]
    finally:
        box.close()

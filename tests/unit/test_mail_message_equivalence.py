"""encode_message against the standard library: the same mail built with ``EmailMessage`` parses
to the same headers and bodies; the Date header (worked out once a second) stays correct; and
the render/encode benchmark finds the pre-speed-up code and the current one in agreement."""

from __future__ import annotations

import importlib.util
from datetime import datetime, timedelta
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import pytest

from syncd.connectors.mail import message as message_module
from syncd.connectors.mail.message import clean_text, encode_message, normalize_address, parse_sender
from syncd.core.domain import OutgoingMail

GERMAN = "Guten Tag Herr Müller,\nIhr Passwort: äöüß€ Qz7<b>&Kx9\n\nMit freundlichen Grüßen\n"
LONG_LINE = "Sehr geehrte Kundin, sehr geehrter Kunde, " * 6 + "\n" + "ü" * 120 + "\n"
HTML = '<p style="font-size: 15px">Grüße, <b>Jürgen</b> &amp; „Söhne“</p>\n' + "<p>" + "x" * 200 + "</p>"

CASES = {
    "umlauts, text and html": dict(html=HTML),
    "text only": dict(html=None),
    "long lines": dict(text=LONG_LINE, html=LONG_LINE.replace("\n", "<br>\n")),
    "crlf in name and subject": dict(to_name="Eve\r\nBcc: victim@evil.example",
                                     subject="Hallo\r\nBcc: victim@evil.example"),
    "non-ascii long subject": dict(subject="Ihre Zugangsdaten für Möbelhaus Süd – bitte ändern " * 3),
    "ascii sender name with specials": dict(sender='"Shop, GmbH" <shop@example.com>', to_name=None),
    "crlf bodies, trailing whitespace, dots": dict(text="a=b\r\nline2\rline3\n.\nend \t", html=None),
    "extra header": dict(headers={"X-Syncd-Job": "shop/10001"}, html=HTML),
}


def _mail(**kw) -> OutgoingMail:
    base = dict(to_addr="juergen@example.com", to_name="Jürgen Müller-Lüdenscheidt",
                sender="Möbelhaus Süd <shop@moebel.example>",
                subject="Ihre Zugangsdaten für Möbelhaus Süd", text=GERMAN)
    base.update(kw)
    return OutgoingMail(**base)


def _stdlib(mail: OutgoingMail, reply_to: str | None) -> bytes:
    """The same mail through ``EmailMessage``; names and subject cleaned first, as the module
    documents (stdlib refuses CR/LF where encode_message folds it to a space)."""
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = parse_sender(mail.sender)
    msg["To"] = Address(clean_text(mail.to_name), addr_spec=normalize_address(mail.to_addr))
    if reply_to:
        msg["Reply-To"] = parse_sender(reply_to)
    msg["Subject"] = clean_text(mail.subject)
    for name, value in mail.headers.items():
        msg[name] = value
    msg.set_content(mail.text.replace("\r\n", "\n").replace("\r", "\n"))
    if mail.html:
        msg.add_alternative(mail.html, subtype="html")
    return msg.as_bytes()


def _meaning(raw: bytes) -> dict[str, object]:
    msg = BytesParser(policy=policy.default).parsebytes(raw)
    out: dict[str, object] = {"defects": [d for p in msg.walk() for d in p.defects]}
    for name in ("From", "To", "Reply-To"):
        header = msg[name]
        # Whitespace inside display names: stdlib keeps folds between encoded words as spaces.
        out[name] = header and [(" ".join(a.display_name.split()), a.addr_spec) for a in header.addresses]
    for name in ("Subject", "MIME-Version", "X-Syncd-Job", "Bcc"):
        out[name] = msg[name]
    out["type"] = msg.get_content_type()
    parts = list(msg.iter_parts()) if msg.is_multipart() else [msg]
    out["parts"] = [(p.get_content_type(), p.get_content_charset(),
                     p.get_content().replace("\r\n", "\n").rstrip("\n")) for p in parts]
    return out


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("reply_to", [None, "Service <service@moebel.example>"])
def test_same_meaning_as_the_stdlib_message(case, reply_to):
    mail = _mail(**CASES[case])
    ours = encode_message(mail, reply_to=reply_to).data
    assert _meaning(ours) == _meaning(_stdlib(mail, reply_to))
    head = ours.split(b"\r\n\r\n", 1)[0]
    assert head.isascii() and max(len(line) for line in ours.split(b"\r\n")) <= 78
    msg = BytesParser(policy=policy.default).parsebytes(ours)
    assert msg["Message-ID"].endswith(f"@{parse_sender(mail.sender).domain}>")
    parts = list(msg.iter_parts()) if msg.is_multipart() else [msg]
    assert {p["Content-Transfer-Encoding"] for p in parts} == {"quoted-printable"}


def test_date_is_local_time_now():
    before = datetime.now().astimezone().replace(microsecond=0)
    raw = encode_message(_mail()).data
    after = datetime.now().astimezone()
    date = BytesParser(policy=policy.default).parsebytes(raw)["Date"].datetime
    assert before <= date <= after
    assert date.utcoffset() == before.utcoffset()


def test_date_follows_the_clock_across_seconds(monkeypatch):
    now = [1_750_000_000.2]
    monkeypatch.setattr("time.time", lambda: now[0])
    monkeypatch.setattr(message_module, "_date_cache", (-1, ""))

    def date_of() -> datetime:
        raw = encode_message(_mail()).data
        return BytesParser(policy=policy.default).parsebytes(raw)["Date"].datetime

    first = date_of()
    assert first.timestamp() == 1_750_000_000
    now[0] += 0.7  # the same second: the same header
    assert date_of() == first
    now[0] += 0.2  # the next one
    assert date_of() == first + timedelta(seconds=1)
    now[0] += 3600
    assert date_of() == first + timedelta(seconds=3601)


def test_render_encode_benchmark_old_and_new_agree(capsys):
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "render_encode.py"
    spec = importlib.util.spec_from_file_location("render_encode_benchmark", path)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)

    assert bench.main(["--mails", "40", "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    assert "ms per mail" in out
    if "no reference" not in out:  # a checkout without the old commit times the new code only
        assert "identical rendered mails, semantically identical messages" in out

"""Message building: headers, encodings, structure, and no header injection."""

from __future__ import annotations

from email import message_from_bytes, policy
from email.header import decode_header, make_header

import pytest

from syncd.connectors.mail.message import build_message, encode_message, normalize_address, parse_sender
from syncd.core.domain import OutgoingMail
from syncd.core.errors import PermanentError


def _mail(**kw) -> OutgoingMail:
    base = dict(
        to_addr="juergen@example.com",
        to_name="Jürgen Müller-Lüdenscheidt",
        sender="Möbelhaus Süd <shop@moebel.example>",
        subject="Ihre Zugangsdaten für Möbelhaus Süd",
        text="Guten Tag Herr Müller,\nIhr Passwort: äöüß€\n",
    )
    base.update(kw)
    return OutgoingMail(**base)


def _wire(mail: OutgoingMail, **kw):
    raw = encode_message(mail, **kw).data  # the bytes that go on the wire, not a re-serialisation
    return raw, message_from_bytes(raw, policy=policy.default)


def test_headers_are_complete_and_names_rfc2047_encoded():
    raw, msg = _wire(_mail())
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert head.isascii()  # nothing 8-bit in the header block: names went through RFC 2047
    assert b"=?utf-8?" in head
    assert msg["To"].addresses[0].display_name == "Jürgen Müller-Lüdenscheidt"
    assert msg["To"].addresses[0].addr_spec == "juergen@example.com"
    assert msg["From"].addresses[0].display_name == "Möbelhaus Süd"
    assert msg["Subject"] == "Ihre Zugangsdaten für Möbelhaus Süd"
    assert str(make_header(decode_header(msg["Subject"]))) == "Ihre Zugangsdaten für Möbelhaus Süd"
    assert msg["Date"].datetime is not None
    assert msg["Message-ID"].endswith("@moebel.example>")
    assert msg["MIME-Version"] == "1.0"


def test_message_ids_are_unique():
    ids = {build_message(_mail())["Message-ID"] for _ in range(200)}
    assert len(ids) == 200


def test_text_only_is_single_part_utf8():
    raw, msg = _wire(_mail())
    assert raw.isascii()  # quoted-printable: no 8BITMIME needed
    assert not msg.is_multipart()
    assert msg.get_content_type() == "text/plain"
    assert msg.get_content_charset() == "utf-8"
    assert "Ihr Passwort: äöüß€" in msg.get_content()
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")


def test_html_makes_multipart_alternative():
    _, msg = _wire(_mail(html="<p>Grüße, <b>Jürgen</b></p>"))
    assert msg.get_content_type() == "multipart/alternative"
    parts = [p.get_content_type() for p in msg.iter_parts()]
    assert parts == ["text/plain", "text/html"]
    assert "Grüße, <b>Jürgen</b>" in msg.get_body(("html",)).get_content()
    assert "äöüß€" in msg.get_body(("plain",)).get_content()


def test_reply_to_from_settings_and_from_mail_headers():
    _, msg = _wire(_mail(), reply_to="Service <service@moebel.example>")
    assert msg["Reply-To"].addresses[0].addr_spec == "service@moebel.example"
    _, msg = _wire(_mail(headers={"Reply-To": "other@moebel.example"}), reply_to="service@moebel.example")
    assert msg["Reply-To"].addresses[0].addr_spec == "other@moebel.example"


@pytest.mark.parametrize(
    "field,value",
    [
        ("to_name", "Eve\r\nBcc: victim@evil.example"),
        ("to_name", "Eve\nBcc: victim@evil.example"),
        ("subject", "Hallo\r\nBcc: victim@evil.example"),
    ],
)
def test_crlf_in_names_and_subject_is_folded_not_injected(field, value):
    raw, msg = _wire(_mail(**{field: value}))
    assert msg["Bcc"] is None
    assert b"\r\nBcc:" not in raw
    if field == "to_name":
        assert msg["To"].addresses[0].display_name == "Eve Bcc: victim@evil.example"
        assert len(msg["To"].addresses) == 1
    else:
        assert msg["Subject"] == "Hallo Bcc: victim@evil.example"


@pytest.mark.parametrize(
    "addr",
    [
        "eve@example.com\r\nBcc: victim@evil.example",
        "eve@example.com\nBcc: victim@evil.example",
        "eve@exa\rmple.com",
        "eve@example.com, victim@evil.example",
        "Eve <eve@example.com>",
        "eve",
        "",
        "eve@localhost",
        "e ve@example.com",
        "eve@-bad-.example",
    ],
)
def test_bad_recipient_addresses_are_refused(addr):
    with pytest.raises(PermanentError) as err:
        build_message(_mail(to_addr=addr))
    assert err.value.code == "invalid-address"
    assert "recipient address" in str(err.value)


def test_crlf_in_sender_or_extra_header_refused():
    with pytest.raises(PermanentError):
        build_message(_mail(sender="Shop <shop@example.com>\r\nBcc: x@evil.example"))
    with pytest.raises(PermanentError):
        build_message(_mail(headers={"X-Job": "1\r\nBcc: x@evil.example"}))
    with pytest.raises(PermanentError):
        build_message(_mail(headers={"Bcc": "x@evil.example"}))
    with pytest.raises(PermanentError):
        build_message(_mail(headers={"Bad Name": "x"}))


def test_extra_headers_are_kept():
    _, msg = _wire(_mail(headers={"X-Syncd-Job": "shop/10001"}))
    assert msg["X-Syncd-Job"] == "shop/10001"


def test_umlaut_domain_is_idna_encoded_and_whitespace_trimmed():
    assert normalize_address(" kunde@müller.de ") == "kunde@xn--mller-kva.de"
    _, msg = _wire(_mail(to_addr="kunde@müller.de"))
    assert msg["To"].addresses[0].addr_spec == "kunde@xn--mller-kva.de"


def test_parse_sender_forms():
    assert parse_sender("shop@example.com").addr_spec == "shop@example.com"
    a = parse_sender('"Shop, GmbH" <shop@example.com>')
    assert (a.display_name, a.addr_spec) == ("Shop, GmbH", "shop@example.com")
    with pytest.raises(PermanentError):
        parse_sender("not an address")


def test_long_headers_are_folded_and_decode_back():
    subject = "Ihre Zugangsdaten für den Möbelhaus-Süd-Onlineshop – bitte ändern Sie Ihr Passwort bald " * 3
    name = "Jürgen-Müller Lüdenscheidt Schäfer Größe Überall Weiß Straße Bäcker Öztürk Çelik Ñandú"
    raw, msg = _wire(_mail(subject=subject, to_name=name))
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert max(len(line) for line in head.split(b"\r\n")) <= 78
    assert msg["Subject"] == subject.strip()
    # stdlib's parser keeps folds between encoded words as spaces in display names (RFC 2047
    # says to drop them); breaking after spaces keeps the words themselves whole.
    assert msg["To"].addresses[0].display_name.split() == name.split()


def test_long_ascii_subject_is_folded_at_spaces():
    subject = "Your login details for the shop of Moebelhaus Sued GmbH und Co KG " * 4
    raw, msg = _wire(_mail(subject=subject))
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert max(len(line) for line in head.split(b"\r\n")) <= 78
    assert b"=?" not in head.split(b"Subject:")[1].split(b"\r\n", 1)[0]  # still plain text
    assert msg["Subject"] == subject.strip()


def test_ascii_that_looks_like_an_encoded_word_is_not_decoded():
    _, msg = _wire(_mail(subject="=?utf-8?b?SGFjaw==?= literally", to_name="=?utf-8?b?SGFjaw==?="))
    assert msg["Subject"] == "=?utf-8?b?SGFjaw==?= literally"
    assert msg["To"].addresses[0].display_name == "=?utf-8?b?SGFjaw==?="


def test_bodies_survive_quoted_printable_and_the_boundary():
    text = "a=b\r\nline2\rline3\n.\n..dots\nFrom here\n" + "x" * 300 + "\ttab end \n=_syncd_ fake boundary"
    html = "<p style=\"a=b\">" + "ü" * 200 + "</p>\n--=_syncd_abc\n"
    raw, msg = _wire(_mail(text=text, html=html))
    assert max(len(line) for line in raw.split(b"\r\n")) <= 78
    plain = msg.get_body(("plain",)).get_content().replace("\r\n", "\n")  # the parser keeps wire CRLFs
    expected = "a=b\nline2\nline3\n.\n..dots\nFrom here\n" + "x" * 300
    expected += "\ttab end \n=_syncd_ fake boundary\n"
    assert plain == expected
    assert msg.get_body(("html",)).get_content().replace("\r\n", "\n") == html
    assert len(list(msg.iter_parts())) == 2


def test_build_message_and_encode_message_agree():
    mail = _mail(html="<b>x</b>")
    encoded = encode_message(mail)
    assert encoded.envelope_from == "shop@moebel.example" and encoded.envelope_to == "juergen@example.com"
    msg = message_from_bytes(encoded.data, policy=policy.default)
    assert msg["Message-ID"] == encoded.message_id
    assert msg.defects == [] and all(p.defects == [] for p in msg.walk())

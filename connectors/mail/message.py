"""OutgoingMail -> RFC 5322 message.

Names may come straight from ERP data, so anything that would let a value break out of its
header is handled here, once: CR/LF in a display name or subject is folded to a space (a stray
line break in a customer's name must not cost them their mail), CR/LF or other junk in an
*address* is refused with ``PermanentError`` (that address cannot be mailed, whatever we do).
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email import policy as email_policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import formataddr, formatdate, make_msgid, parseaddr
from functools import lru_cache

from syncd.core.domain import OutgoingMail
from syncd.core.errors import PermanentError

# 39 bytes -> 52 base64 characters -> a 64-character encoded word: fits "Reply-To: " + word.
_WORD_BYTES = 39
_TOKENS = re.compile(r"\S+\s*|\s+")

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
# Pragmatic mailbox syntax: one dot-atom local part, a dotted domain. Stricter than RFC 5322
# on purpose (no quoted local parts, no comments): these are customer addresses from an ERP.
_LOCAL = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_HEADER_NAME = re.compile(r"^[!-9;-~]+$")
# Headers build_message owns; a caller's ``headers`` may not replace them.
_RESERVED = {
    "from", "to", "cc", "bcc", "subject", "date", "message-id", "mime-version",
    "content-type", "content-transfer-encoding", "sender", "return-path",
}


def clean_text(value: str | None) -> str:
    """One header line: control characters (CR, LF, TAB, NUL, ...) become single spaces."""
    if not value:
        return ""
    return _CONTROL.sub(" ", value).strip()


def normalize_address(value: str | None, *, what: str = "recipient") -> str:
    """The address as it goes on the envelope: trimmed, domain IDNA-encoded.

    Raises ``PermanentError`` naming ``what`` and the value when it is not one plain mailbox.
    """
    raw = value or ""
    if not raw.strip():
        raise PermanentError(f"{what} address is empty", code="invalid-address")
    addr = raw.strip()
    if _CONTROL.search(addr):
        raise _invalid(what, addr, "contains control characters (CR/LF?)")
    local, sep, domain = addr.rpartition("@")
    if not sep or not local or not domain:
        raise _invalid(what, addr, "is not of the form name@domain")
    if not _LOCAL.match(local) or len(local) > 64:
        raise _invalid(what, addr, f"invalid local part {local!r}")
    try:
        ascii_domain = domain.encode("idna").decode("ascii") if not domain.isascii() else domain
    except UnicodeError:
        raise _invalid(what, addr, f"invalid domain {domain!r}") from None
    labels = ascii_domain.rstrip(".").split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels) or len(ascii_domain) > 253:
        raise _invalid(what, addr, f"invalid domain {domain!r}")
    return f"{local}@{ascii_domain.rstrip('.')}"


def _invalid(what: str, addr: str, why: str) -> PermanentError:
    return PermanentError(f"{what} address {addr!r}: {why}", code="invalid-address")


@lru_cache(maxsize=64)  # a batch sends from one or two senders: parse each once
def parse_sender(sender: str) -> Address:
    """``"Shop <shop@example.com>"`` or a bare address -> Address; PermanentError when unusable."""
    if sender is None or _CONTROL.search(sender):
        raise PermanentError(f"sender {sender!r} contains control characters", code="invalid-sender")
    name, addr = parseaddr(sender, strict=True) if _parseaddr_has_strict else parseaddr(sender)
    if not addr:
        raise PermanentError(f"sender {sender!r} is not an e-mail address", code="invalid-sender")
    return Address(clean_text(name), addr_spec=normalize_address(addr, what="sender"))


def _parseaddr_supports_strict() -> bool:
    try:
        parseaddr("a@b.de", strict=True)  # type: ignore[call-arg]
    except TypeError:
        return False
    return True


_parseaddr_has_strict = _parseaddr_supports_strict()


@dataclass(frozen=True)
class EncodedMail:
    """A mail ready for the wire: envelope and the message bytes (CRLF line ends, 7-bit)."""

    envelope_from: str
    envelope_to: str
    data: bytes
    message_id: str


def encode_message(
    mail: OutgoingMail,
    *,
    reply_to: str | None = None,
    sender: Address | None = None,
) -> EncodedMail:
    """Serialise ``mail``: Date, Message-ID in the sender's domain, From/To/Reply-To with
    RFC 2047 encoded names, UTF-8 quoted-printable text, ``multipart/alternative`` when there
    is HTML.

    Written directly rather than through ``EmailMessage``: the header-registry round trip
    costs about 2 ms a mail, several times the SMTP exchange itself on a local relay, and a
    batch of credential mails should be bound by the server, not by formatting. The output
    is checked by parsing it back with the standard ``email`` package in the tests.
    """
    from_addr = sender or parse_sender(mail.sender)
    to_addr = normalize_address(mail.to_addr)
    extra = _checked_headers(mail.headers)
    reply = extra.pop("Reply-To", None) or reply_to
    message_id = make_msgid(domain=from_addr.domain)
    head = [
        f"Date: {_date_now()}",
        f"Message-ID: {message_id}",
        f"From: {_sender_mailbox(from_addr.display_name, from_addr.addr_spec)}",
        f"To: {_mailbox(clean_text(mail.to_name), to_addr)}",
    ]
    if reply:
        reply_addr = parse_sender(reply)
        head.append(f"Reply-To: {_sender_mailbox(reply_addr.display_name, reply_addr.addr_spec)}")
    head.append(_header("Subject", clean_text(mail.subject)))
    head.extend(_header(name, value) for name, value in extra.items())
    head.append("MIME-Version: 1.0")
    text = _text_part("plain", mail.text)
    if mail.html:
        boundary = "=_syncd_" + secrets.token_hex(12)  # "=_" never occurs in quoted-printable
        head.append(f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"')
        # The CRLF before a delimiter belongs to the delimiter (RFC 2046): each part keeps its own.
        delimiter = f"\r\n--{boundary}\r\n".encode("ascii")
        closing = f"\r\n--{boundary}--\r\n".encode("ascii")
        body = b"".join((delimiter, text, delimiter, _text_part("html", mail.html), closing))
    else:
        body = text
    data = ("\r\n".join(head)).encode("ascii") + b"\r\n" + body
    return EncodedMail(from_addr.addr_spec, to_addr, data, message_id)


def build_message(
    mail: OutgoingMail,
    *,
    reply_to: str | None = None,
    sender: Address | None = None,
) -> EmailMessage:
    """``encode_message`` as an ``EmailMessage`` (for inspection; transports send the bytes)."""
    encoded = encode_message(mail, reply_to=reply_to, sender=sender)
    return BytesParser(policy=email_policy.default).parsebytes(encoded.data)  # type: ignore[return-value]



def _mailbox(name: str, addr_spec: str) -> str:
    if not name:
        return addr_spec
    if name.isascii() and "=?" not in name:
        return formataddr((name, addr_spec))  # quotes names with specials ("Shop, GmbH")
    return f"{encoded_words(name)} <{addr_spec}>"


# From and Reply-To are the same one or two senders for a whole batch: encode each once.
_sender_mailbox = lru_cache(maxsize=64)(_mailbox)

_date_cache: tuple[int, str] = (-1, "")


def _date_now() -> str:
    """``formatdate(localtime=True)``, worked out once a second: the header has no finer
    resolution, and the local-time conversion and formatting cost a tenth of a mail's encoding."""
    global _date_cache
    now = int(time.time())
    second, text = _date_cache
    if second != now:
        text = formatdate(now, localtime=True)
        _date_cache = (now, text)
    return text


def _header(name: str, value: str) -> str:
    return f"{name}: {encoded_words(value)}"


def encoded_words(text: str) -> str:
    """RFC 2047: ``text`` as UTF-8 base64 encoded words, folded, each word short enough for
    a 78-character line (``email.header.Header`` does the same at ten times the cost).

    ASCII text stays readable (folded at spaces when long), unless it looks like an encoded
    word itself."""
    if text.isascii() and "=?" not in text:
        return _fold_ascii(text)
    chunks: list[bytes] = []
    current = b""
    # Break after a space where possible: stdlib's own parser (and a few mail clients) wrongly
    # keep the fold between two encoded words as a space in display names.
    for token in _TOKENS.findall(text):
        raw = token.encode("utf-8", "replace")
        if len(current) + len(raw) <= _WORD_BYTES:
            current += raw
            continue
        if current:
            chunks.append(current)
            current = b""
        for char in token if len(raw) > _WORD_BYTES else (token,):
            piece = char.encode("utf-8", "replace")
            if len(current) + len(piece) > _WORD_BYTES:
                chunks.append(current)
                current = b""
            current += piece
    if current:
        chunks.append(current)
    return "\r\n ".join(f"=?utf-8?b?{base64.b64encode(c).decode('ascii')}?=" for c in chunks)


def _fold_ascii(text: str, width: int = 66) -> str:
    """Fold long ASCII header text at spaces (RFC 5322 2.2.3); a fold is CRLF before a space,
    so unfolding gives the text back. ``width`` leaves room for the longest header name."""
    if len(text) <= width:
        return text
    lines: list[str] = []
    current = ""
    for token in _TOKENS.findall(text):
        if current.strip() and len(current) + len(token.rstrip()) > width:
            kept = current.rstrip()
            lines.append(kept)
            current = current[len(kept):]  # the whitespace goes behind the CRLF
        current += token
    lines.append(current)
    return "\r\n".join(lines)


def _text_part(subtype: str, body: str) -> bytes:
    # Quoted-printable keeps the message 7-bit (no 8BITMIME needed on the server) and a German
    # text readable in the raw source.
    normalised = body.replace("\r\n", "\n").replace("\r", "\n")
    if not normalised.endswith("\n"):
        normalised += "\n"
    encoded = binascii.b2a_qp(normalised.replace("\n", "\r\n").encode("utf-8", "replace"), istext=True)
    return (
        f'Content-Type: text/{subtype}; charset="utf-8"\r\n'
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
    ).encode("ascii") + encoded


def _checked_headers(headers: Mapping[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in headers.items():
        if not _HEADER_NAME.match(name or ""):
            raise PermanentError(f"invalid mail header name {name!r}", code="invalid-header")
        if name.lower() in _RESERVED:
            raise PermanentError(f"mail header {name!r} is set by syncd and cannot be overridden",
                                 code="invalid-header")
        if _CONTROL.search(str(value)):
            raise PermanentError(f"mail header {name!r} contains control characters (CR/LF?)",
                                 code="invalid-header")
        canonical = "Reply-To" if name.lower() == "reply-to" else name
        out[canonical] = str(value)
    return out

"""OutgoingMail -> RFC 5322 message.

Names may come straight from ERP data, so anything that would let a value break out of its
header is handled here, once: CR/LF in a display name or subject is folded to a space (a stray
line break in a customer's name must not cost them their mail), CR/LF or other junk in an
*address* is refused with ``PermanentError`` (that address cannot be mailed, whatever we do).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from email import policy as email_policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr

from syncd.domain import OutgoingMail
from syncd.errors import PermanentError

# CRLF line ends on the wire, as SMTP DATA wants them; 7-bit bodies (see _set_bodies).
WIRE_POLICY = email_policy.SMTP

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


def build_message(
    mail: OutgoingMail,
    *,
    reply_to: str | None = None,
    sender: Address | None = None,
) -> EmailMessage:
    """The message for ``mail``: Date, Message-ID in the sender's domain, From/To/Reply-To
    with RFC 2047 encoded names, UTF-8 text, ``multipart/alternative`` when there is HTML.

    ``sender`` may be passed pre-parsed (a transport sends many mails from one sender).
    """
    from_addr = sender or parse_sender(mail.sender)
    to_addr = normalize_address(mail.to_addr)
    msg = EmailMessage(policy=email_policy.default)
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = make_msgid(domain=from_addr.domain)
    msg["From"] = from_addr
    msg["To"] = Address(clean_text(mail.to_name), addr_spec=to_addr)
    extra = dict(_checked_headers(mail.headers))
    reply = extra.pop("Reply-To", None) or reply_to
    if reply:
        msg["Reply-To"] = parse_sender(reply)
    msg["Subject"] = clean_text(mail.subject)
    for name, value in extra.items():
        msg[name] = value
    _set_bodies(msg, mail.text, mail.html)
    return msg


def message_bytes(msg: EmailMessage) -> bytes:
    """The message as it goes into SMTP DATA or an .eml file (CRLF line ends)."""
    return msg.as_bytes(policy=WIRE_POLICY)


def _checked_headers(headers: Mapping[str, str]) -> list[tuple[str, str]]:
    out = []
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
        out.append((canonical, str(value)))
    return out


def _set_bodies(msg: EmailMessage, text: str, html: str | None) -> None:
    # Quoted-printable keeps the message 7-bit: no 8BITMIME needed on the server, and a
    # German text stays readable in the raw source.
    msg.set_content(_normalise_newlines(text), charset="utf-8", cte="quoted-printable")
    if html:
        msg.add_alternative(_normalise_newlines(html), subtype="html", charset="utf-8",
                            cte="quoted-printable")


def _normalise_newlines(body: str) -> str:
    body = body.replace("\r\n", "\n").replace("\r", "\n")
    return body if body.endswith("\n") else body + "\n"

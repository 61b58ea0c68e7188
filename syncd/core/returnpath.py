"""VERP return paths: which mail a bounce is about, told by the address it comes back to.

Each mail goes out with the envelope sender ``<local>+<tag>@<domain>`` (``[mail.bounces]
return_path`` = ``<local>@<domain>``); a bounce is addressed to exactly that, so the tag tells
the reader which mail bounced without parsing the bounce's quoted content.

The tag is ``<kind><id>-<mac>``: ``kind`` ``c`` (a credential job) or ``m`` (a message job), the
row's id, and 12 base32 characters (60 bits) of an HMAC-SHA256 over kind, id and the recipient,
under a key the state store keeps (``syncd.state.bounces``). It holds no e-mail address and no
password; a bounce with a forged or stale tag (another store's ids, a recipient since changed)
fails the check and marks nobody. Lower case only: some servers lower-case local parts.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass, field

CREDENTIALS = "c"
MESSAGE = "m"
_MAC_CHARS = 12
_TAG = re.compile(r"([cm])([0-9]{1,18})-([a-z2-7]{12})", re.IGNORECASE)


@dataclass(frozen=True)
class Tag:
    kind: str  # CREDENTIALS or MESSAGE
    id: int
    mac: str

    def __str__(self) -> str:
        return f"{self.kind}{self.id}-{self.mac}"


@dataclass(frozen=True)
class ReadBounce:
    """What one message says: the tags it was addressed to, the addresses that failed for good
    (``permanent``) or for now (``temporary``), the DSN status and diagnostic (None if none)."""

    source_id: str
    tags: list[Tag]
    permanent: frozenset[str] = field(default_factory=frozenset)
    temporary: frozenset[str] = field(default_factory=frozenset)
    status: str | None = None
    diagnostic: str | None = None

    @property
    def severity(self) -> str | None:
        """"hard", "soft", or None when the message is no bounce at all."""
        if self.permanent or (self.status or "").startswith("5"):
            return "hard"
        if self.temporary or (self.status or "").startswith("4"):
            return "soft"
        return None


def _mac(key: bytes, kind: str, ident: int, recipient: str) -> str:
    digest = hmac.new(key, f"{kind}:{ident}:{recipient.strip().lower()}".encode(), hashlib.sha256).digest()
    return base64.b32encode(digest).decode("ascii")[:_MAC_CHARS].lower()


def make_tag(key: bytes, kind: str, ident: int, recipient: str) -> Tag:
    return Tag(kind, int(ident), _mac(key, kind, ident, recipient))


def verify(key: bytes, tag: Tag, recipient: str) -> bool:
    """True when ``tag`` was made for ``recipient`` under ``key``."""
    return hmac.compare_digest(_mac(key, tag.kind, tag.id, recipient), tag.mac.lower())


def envelope_sender(return_path: str, tag: Tag) -> str:
    local, _, domain = return_path.rpartition("@")
    return f"{local}+{tag}@{domain}"


def tag_of_key(key: str) -> tuple[str, int] | None:
    """(kind, id) of a mail's ``OutgoingMail.key``: ``<platform>:<erp number>:<job id>`` (credentials)
    or ``<platform>:message:<id>``; None for any other key (no tag: the plain return path)."""
    parts = key.rsplit(":", 2)
    if len(parts) != 3 or not parts[2].isdigit():
        return None
    return (MESSAGE if parts[1] == "message" else CREDENTIALS), int(parts[2])


def find_tags(return_path: str, text: str) -> list[Tag]:
    """Every tag of an address ``<local>+<tag>@<domain>`` of ``return_path`` in ``text`` (a bounce's
    recipient headers, or its whole text), first found first, each once."""
    local, _, domain = return_path.rpartition("@")
    pattern = re.compile(re.escape(local) + r"\+" + _TAG.pattern + "@" + re.escape(domain), re.IGNORECASE)
    seen: list[Tag] = []
    for m in pattern.finditer(text):
        tag = Tag(m.group(1).lower(), int(m.group(2)), m.group(3).lower())
        if tag not in seen:
            seen.append(tag)
    return seen


class ReturnPaths:
    """The envelope sender of each mail (what a transport asks for): ``return_path`` tagged for
    the mail's job when its key names one, else ``return_path`` as it is."""

    def __init__(self, return_path: str, key: bytes) -> None:
        self.return_path = return_path
        self._key = key

    def __repr__(self) -> str:  # never the key
        return f"ReturnPaths({self.return_path!r})"

    def envelope_sender(self, mail_key: str, recipient: str) -> str:
        found = tag_of_key(mail_key)
        if found is None:
            return self.return_path
        return envelope_sender(self.return_path, make_tag(self._key, found[0], found[1], recipient))

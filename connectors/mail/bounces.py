"""The bounce mailbox of ``[mail.bounces]``: reading it (a maildir folder, stdlib ``mailbox``, or
an IMAP folder, ``imapclient``) and telling what a message says (``flufl.bounce``).

A message is read without changing it; ``done`` then marks it: a bounce of syncd is moved,
deleted or flagged as ``processed`` says, anything else is only marked seen (so it is not read
again, and nothing a person may still want is moved or deleted). A message whose handling failed
is not marked, so the next check reads it again.
"""

from __future__ import annotations

import logging
import mailbox
import re
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from email import message_from_bytes
from email import policy as email_policy
from email.message import Message

import structlog
from flufl.bounce import all_failures

from syncd.config.bounces import BounceSettings
from syncd.core.errors import ConfigError, ConfigurationFault, TransientError
from syncd.core.ports import BounceSource
from syncd.core.returnpath import ReadBounce, find_tags

log = structlog.get_logger("syncd.mail.bounces")
# Its detectors log every step at INFO.
logging.getLogger("flufl.bounce").setLevel(logging.WARNING)

# An RFC 3463 enhanced status code, in a text bounce that carries no delivery-status part.
_STATUS = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
# The headers a mail server writes the envelope recipient into on delivery.
_RECIPIENT_HEADERS = ("delivered-to", "x-original-to", "envelope-to", "x-envelope-to", "to")


def read_bounce(raw: bytes, return_path: str, ref: str) -> ReadBounce:
    msg = message_from_bytes(raw, policy=email_policy.compat32)
    source_id = (msg.get("message-id") or "").strip() or f"no-message-id:{ref}"
    headers = "\n".join(str(v) for h in _RECIPIENT_HEADERS for v in msg.get_all(h, []))
    # The envelope recipient first; else anywhere (Postfix's X-Postfix-Sender, the returned headers).
    tags = find_tags(return_path, headers) or find_tags(return_path, raw.decode("utf-8", "replace"))
    if not tags:  # not about a mail of syncd: nothing more to read
        return ReadBounce(source_id, [])
    try:
        temporary, permanent = all_failures(msg)
    except Exception as exc:  # a detector tripping over an odd message: the DSN fields still count
        log.warning("bounce detectors failed on a message; using its status code only", message=ref,
                    error=f"{type(exc).__name__}: {exc}")
        temporary, permanent = frozenset(), frozenset()
    status, diagnostic = _dsn_fields(msg)
    if status is None:
        status, diagnostic = _text_status(msg)
    return ReadBounce(source_id, tags, _decoded(permanent), _decoded(temporary), status, diagnostic)


def _decoded(addresses: frozenset[bytes]) -> frozenset[str]:
    return frozenset(a.decode("ascii", "replace").strip().lower() for a in addresses if a)


def _dsn_fields(msg: Message) -> tuple[str | None, str | None]:
    """Status and Diagnostic-Code of the first recipient block of an RFC 3464 report; the
    ``email`` package parses a message/delivery-status part into its header blocks."""
    for part in msg.walk():
        if part.get_content_type() != "message/delivery-status" or not part.is_multipart():
            continue
        for block in part.get_payload():
            status = (block.get("status") or "").strip()
            if status:
                found = _STATUS.search(status)
                diagnostic = " ".join(str(block.get("diagnostic-code") or "").split()) or None
                if diagnostic and ";" in diagnostic.split(" ", 1)[0]:
                    diagnostic = diagnostic.split(";", 1)[1].strip()  # drop the type ("smtp;")
                return (found.group(0) if found else status[:16]), diagnostic
    return None, None


def _text_status(msg: Message) -> tuple[str | None, str | None]:
    """A non-standard bounce (Exim, qmail, ...): the first enhanced status code in its text and the
    line it stands on."""
    for part in msg.walk():
        if part.get_content_type() != "text/plain":
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            continue
        text = payload.decode(part.get_content_charset() or "utf-8", "replace")
        for line in text.splitlines():
            found = _STATUS.search(line)
            if found and found.group(1) != "2":
                return found.group(0), " ".join(line.split())
        break  # the first text part is the explanation; later ones are the returned mail
    return None, None


class MaildirSource:
    """A maildir folder: unseen messages (no ``S`` flag) are read; ``move`` puts a processed one
    into the Maildir++ sub-folder ``move_to`` (added first, then removed here: a crash between
    leaves a copy, and the bounce's Message-ID keeps it recorded once)."""

    def __init__(self, path: str, *, processed: str, move_to: str) -> None:
        self._box = mailbox.Maildir(path, factory=None, create=False)
        self._processed = processed
        self._move_to = move_to

    def fetch(self, limit: int) -> list[tuple[str, bytes]]:
        out: list[tuple[str, bytes]] = []
        for key in sorted(self._box.iterkeys()):
            if len(out) >= limit:
                break
            try:
                if "S" in self._box.get_message(key).get_flags():
                    continue
                out.append((key, self._box.get_bytes(key)))
            except (KeyError, FileNotFoundError):  # gone meanwhile (another reader)
                continue
        return out

    def done(self, ref: str, *, processed: bool) -> None:
        msg = self._box.get_message(ref)
        msg.add_flag("S")
        msg.set_subdir("cur")
        if processed and self._processed == "delete":
            self._box.discard(ref)
        elif processed and self._processed == "move":
            folder = (self._box.get_folder(self._move_to) if self._move_to in self._box.list_folders()
                      else self._box.add_folder(self._move_to))
            folder.add(msg)
            self._box.discard(ref)
        else:
            self._box[ref] = msg

    def close(self) -> None:
        self._box.close()


class ImapSource:
    """An IMAP folder over ``imapclient``: unseen messages, read with BODY.PEEK (so reading marks
    nothing); ``move`` uses MOVE where offered, else COPY and delete."""

    def __init__(self, settings: BounceSettings, password: str | None) -> None:
        from imapclient import IMAPClient

        s = settings.imap
        self._settings = settings
        where = f"{s.host}:{s.port}"
        try:
            context = ssl.create_default_context(cafile=s.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot load the CA file: {exc}", key="mail.bounces.imap.ca_file",
                              value=s.ca_file) from None
        if not s.verify_tls:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        try:
            self._client = IMAPClient(s.host, port=s.port, ssl=s.security == "ssl",
                                      ssl_context=context, timeout=s.timeout)
            if s.security == "starttls":
                if not self._client.has_capability("STARTTLS"):
                    raise ConfigurationFault(f"IMAP server {where} does not offer STARTTLS (security = "
                                             '"starttls"); refusing to log in in clear text',
                                             key="mail.bounces.imap.security")
                self._client.starttls(context)
        except ConfigurationFault:
            self.close()
            raise
        except ssl.SSLCertVerificationError as exc:
            self.close()
            raise _untrusted(where, exc) from None
        except Exception as exc:  # refused, timed out, a TLS handshake that failed otherwise
            self.close()
            raise TransientError(f"cannot connect to IMAP server {where} (security = {s.security!r}): "
                                 f"{type(exc).__name__}: {exc}") from None
        try:
            user, secret = s.username or "", password or ""
            if (user + secret).isascii():
                self._client.login(user, secret)
            else:  # LOGIN is ASCII only in imaplib; AUTHENTICATE PLAIN carries UTF-8 (RFC 4616)
                self._client.plain_login(user, secret)
        except Exception as exc:  # imapclient raises LoginError, IMAP4.error, ssl errors ...
            self.close()
            raise ConfigurationFault(f"IMAP login as {s.username!r} at {where} failed: {type(exc).__name__}: "
                                     f"{exc}", key="mail.bounces.imap.password") from None
        try:
            self._client.select_folder(s.folder)
        except Exception as exc:
            self.close()
            raise ConfigurationFault(f"IMAP folder {s.folder!r} at {where}: {exc}",
                                     key="mail.bounces.imap.folder") from None
        self._deleted = False

    def fetch(self, limit: int) -> list[tuple[str, bytes]]:
        uids = sorted(self._client.search(["UNSEEN"]))[:limit]
        if not uids:
            return []
        data = self._client.fetch(uids, ["BODY.PEEK[]"])
        return [(str(uid), data[uid][b"BODY[]"]) for uid in uids if uid in data and b"BODY[]" in data[uid]]

    def done(self, ref: str, *, processed: bool) -> None:
        from imapclient import DELETED, SEEN

        uid = int(ref)
        action = self._settings.processed if processed else "flag"
        if action == "move":
            target = self._settings.move_to
            if not self._client.folder_exists(target):
                self._client.create_folder(target)
            if self._client.has_capability("MOVE"):
                self._client.add_flags([uid], [SEEN])
                self._client.move([uid], target)
                return
            self._client.add_flags([uid], [SEEN])
            self._client.copy([uid], target)
            action = "delete"
        if action == "delete":
            self._client.add_flags([uid], [DELETED, SEEN])
            self._deleted = True
            return
        self._client.add_flags([uid], [SEEN])

    def close(self) -> None:
        client = getattr(self, "_client", None)
        if client is None:
            return
        try:
            if getattr(self, "_deleted", False):
                client.expunge()
            client.logout()
        except Exception:  # noqa: S110 - closing a connection that may already be gone
            pass


def _untrusted(where: str, exc: ssl.SSLCertVerificationError) -> ConfigurationFault:
    """The same words and key as the SMTP side's untrusted certificate (``smtp.py``)."""
    return ConfigurationFault(f"TLS certificate of IMAP server {where} not trusted: "
                              f"{exc.verify_message or exc} (set [mail.bounces.imap] ca_file to the "
                              "server's CA)", key="mail.bounces.imap.ca_file")


@contextmanager
def open_source(settings: BounceSettings, *, password: str | None = None) -> Iterator[BounceSource]:
    """The configured bounce mailbox, closed on exit. ``password``: the resolved IMAP secret."""
    source: BounceSource
    if settings.source == "maildir":
        if not settings.maildir:
            raise ConfigError('is required when source = "maildir"', key="mail.bounces.maildir")
        try:
            source = MaildirSource(settings.maildir, processed=settings.processed, move_to=settings.move_to)
        except (FileNotFoundError, NotADirectoryError, mailbox.NoSuchMailboxError) as exc:
            raise ConfigError(f"is not a maildir folder: {exc}", key="mail.bounces.maildir",
                              value=settings.maildir) from None
    else:
        source = ImapSource(settings, password)
    try:
        yield source
    finally:
        source.close()

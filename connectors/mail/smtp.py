"""SMTP transport: one connection per batch, TLS verified by default, errors classified.

Classification (what the flow's retry policy sees):
- 4xx anywhere, a refused/lost/timed-out connection -> ``TransientError``: nothing about the
  recipient is wrong, the job waits until the server is back;
- a refused login (5xx to AUTH, 530/534/535/538 to MAIL FROM), an untrusted certificate, a
  server without STARTTLS or AUTH where the settings need them -> ``ConfigurationFault`` (a
  ``TransientError``: the job waits too, but the cycle is reported as failed with the key to fix);
- 5xx to RCPT TO or DATA (and to MAIL FROM, except "authenticate/TLS first") ->
  ``PermanentError(code="550")`` for that one mail; the connection stays usable.

The transport does not loop: the only repetition is re-opening a connection that was dropped
while idle (found out at MAIL FROM / RCPT TO, before any content went out, so nothing can be
delivered twice). A drop inside DATA before the end-of-data terminator is a plain
``TransientError`` (the server never saw the end of the mail, so it cannot deliver it); a drop
once the terminator went out is a ``TransientError`` whose outcome is unknown
(``DeliveryUnknown``): the caller decides (I5 bounds it). ``send(mail, on_commit)`` runs
``on_commit`` right before that terminator, so a caller can record "this mail may now be
delivered" exactly when it becomes true.
"""

from __future__ import annotations

import base64
import re
import smtplib
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email.headerregistry import Address

import structlog

from syncd.config.model import MailSettings
from syncd.connectors.mail.message import encode_message, parse_sender
from syncd.core.domain import CheckItem, OutgoingMail
from syncd.core.errors import ConfigurationFault, DeliveryUnknown, PermanentError, TransientError
from syncd.core.returnpath import ReturnPaths

log = structlog.get_logger("syncd.mail")

# 5xx answers to MAIL FROM that mean "this connection is not allowed to send yet": a server
# or settings problem, not a problem of the mail, so retrying after the fix must work.
# The key an operator fixes for each: 530 authentication required, 534 mechanism too weak,
# 535 credentials invalid, 538 encryption required.
_SESSION_REFUSALS = {530: "mail.username", 534: "mail.security", 535: "mail.password", 538: "mail.security"}


# Pause after a refused login before the server is asked again: doubling, at most an hour.
REFUSED_PAUSE = 60.0
REFUSED_PAUSE_MAX = 3600.0


class _Dropped(Exception):
    """The connection was found dead before any content went out."""


def _text(resp: bytes | str) -> str:
    return resp.decode("utf-8", "replace") if isinstance(resp, bytes) else str(resp)


class SmtpTransport:
    """``MailTransport`` over SMTP. ``password`` is the resolved secret (never the reference)."""

    def __init__(self, settings: MailSettings, *, password: str | None = None,
                 return_paths: ReturnPaths | None = None) -> None:
        self.settings = settings
        self._password = password
        # [mail.bounces]: each mail's envelope sender carries its tag (VERP); From: is unchanged.
        self.return_paths = return_paths
        self._local_hostname = socket.gethostname() or "localhost"
        self._sender: Address | None = None
        self._warned_unverified = False
        self._warned_cleartext = False
        # A refused login is not tried again before this (monotonic) time: a daemon polling
        # every minute with a wrong password would otherwise get the account locked by the
        # server. A reload builds a new transport, so a fix is tried at once.
        self._refused: ConfigurationFault | None = None
        self._refused_until = 0.0
        self._refusals = 0

    @property
    def where(self) -> str:
        return f"{self.settings.host}:{self.settings.port}"

    def sender(self, override: str | None = None) -> Address:
        if override and override != self.settings.sender:
            return parse_sender(override)
        if self._sender is None:
            self._sender = parse_sender(self.settings.sender)
        return self._sender

    # -- connection

    def tls_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.settings.ca_file)
        if not self.settings.verify_tls:
            if not self._warned_unverified:
                self._warned_unverified = True
                log.warning("smtp.tls_unverified", host=self.settings.host,
                            hint="[mail] verify_tls = false: anyone on the path can read the mails")
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def connect(self) -> smtplib.SMTP:
        """A ready connection: greeted, TLS as configured, authenticated. TransientError
        (ConfigurationFault for a setup the operator must fix) if not."""
        if self._refused is not None and time.monotonic() < self._refused_until:
            raise self._refused
        try:
            conn = self._connect()
        except ConfigurationFault as exc:
            self._refusals += 1
            self._refused = exc
            pause = min(REFUSED_PAUSE_MAX, REFUSED_PAUSE * 2 ** min(self._refusals - 1, 10))
            self._refused_until = time.monotonic() + pause
            raise
        self._refused, self._refusals = None, 0
        _no_delay(conn)
        return conn

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        conn: smtplib.SMTP | None = None
        try:
            if s.security == "ssl":
                conn = smtplib.SMTP_SSL(s.host, s.port, local_hostname=self._local_hostname,
                                        timeout=s.timeout, context=self.tls_context())
            else:
                conn = smtplib.SMTP(s.host, s.port, local_hostname=self._local_hostname, timeout=s.timeout)
            conn.ehlo()
            if s.security == "starttls":
                if not conn.has_extn("starttls"):
                    raise ConfigurationFault(f"SMTP server {self.where} does not offer STARTTLS "
                                             '(security = "starttls"); refusing to send in clear text',
                                             key="mail.security")
                conn.starttls(context=self.tls_context())
                conn.ehlo()
            if s.username:
                if self._password is None:
                    raise ConfigurationFault(f"SMTP username {s.username!r} is set but no password was "
                                             "resolved", key="mail.password")
                if not conn.has_extn("auth"):
                    raise ConfigurationFault(f"SMTP server {self.where} does not offer AUTH",
                                             key="mail.username")
                if s.security == "none" and not self._warned_cleartext:
                    self._warned_cleartext = True
                    log.warning("smtp.auth_cleartext", host=s.host,
                                hint='security = "none": the SMTP password crosses the network unencrypted')
                _login(conn, s.username, self._password)
            return conn
        except TransientError:
            _close(conn)
            raise
        except smtplib.SMTPAuthenticationError as exc:
            _close(conn)
            text = f"SMTP authentication as {s.username!r} at {self.where} failed: " \
                   f"{exc.smtp_code} {_text(exc.smtp_error)}"
            if 400 <= exc.smtp_code < 500:  # e.g. 454: the server's auth backend is down
                raise TransientError(text) from None
            raise ConfigurationFault(text, key="mail.password") from None
        except ssl.SSLCertVerificationError as exc:
            _close(conn)
            raise ConfigurationFault(
                f"TLS certificate of {self.where} not trusted: {exc.verify_message or exc}"
                " (set [mail] ca_file to the server's CA)", key="mail.ca_file"
            ) from None
        except smtplib.SMTPResponseException as exc:
            _close(conn)
            raise TransientError(f"SMTP server {self.where} refused the session: "
                                 f"{exc.smtp_code} {_text(exc.smtp_error)}") from None
        except (smtplib.SMTPException, OSError) as exc:
            _close(conn)
            reason = str(exc) or type(exc).__name__
            raise TransientError(f"cannot connect to SMTP server {self.where}: {reason}") from None

    @contextmanager
    def session(self) -> Iterator[SmtpSession]:
        session = SmtpSession(self)
        try:
            yield session
        finally:
            session.close()

    def send(self, mail: OutgoingMail, on_commit: Callable[[], None] | None = None) -> str:
        """One mail on its own connection (for single sends; batches use ``session()``)."""
        with self.session() as session:
            return session.send(mail, on_commit)

    def check(self, senders: tuple[str, ...] = ()) -> list[CheckItem]:
        """Connect, greet, TLS, AUTH as configured, then offer each sender in MAIL FROM and
        reset: a server that will refuse the sender says so now. No mail is sent.

        ``senders``: further sender addresses to probe (per-platform ``sender``)."""
        items: list[CheckItem] = []
        probes: list[Address] = []
        for label, value in (("[mail] sender", self.settings.sender),
                             *((f"sender {v!r}", v) for v in senders)):
            try:
                address = parse_sender(value)
            except PermanentError as exc:
                items.append(CheckItem("mail", "sender", False, f"{label}: {exc}"))
                continue
            if address.addr_spec not in {p.addr_spec for p in probes}:
                probes.append(address)
        s = self.settings
        what = f"{s.security} to {self.where}" + ("" if s.verify_tls else " (certificate NOT verified)")
        if s.username:
            what += f", AUTH as {s.username}"
        try:
            conn = self.connect()
        except TransientError as exc:
            items.append(CheckItem("mail", "smtp", False, str(exc)))
            return items
        items.append(CheckItem("mail", "smtp", True, what))
        try:
            for address in probes:
                code, resp = conn.mail(address.addr_spec)
                conn.rset()
                ok = code == 250
                refused = f"server refuses sender {address}: {code} {_text(resp)}"
                items.append(CheckItem("mail", "sender", ok, f"{address} accepted" if ok else refused))
            conn.quit()
        except (smtplib.SMTPException, OSError) as exc:
            dropped = f"SMTP server {self.where} dropped the check: {exc}"
            items.append(CheckItem("mail", "smtp", False, dropped))
        finally:
            _close(conn)
        return items


class SmtpSession:
    """One batch: the connection is opened at the first ``send`` and reused for the rest."""

    def __init__(self, transport: SmtpTransport) -> None:
        self._transport = transport
        self._conn: smtplib.SMTP | None = None
        self.sent = 0
        self.connections = 0

    def send(self, mail: OutgoingMail, on_commit: Callable[[], None] | None = None) -> str:
        """Send ``mail``; returns its Message-ID. Raises as the module docstring says.

        ``on_commit``: called right before the end-of-data terminator goes out, i.e. before the
        server can accept the mail (again on each attempt that gets that far); if it raises, the
        connection is dropped and the mail is not delivered."""
        t = self._transport
        sender = t.sender(mail.sender)
        encoded = encode_message(mail, reply_to=t.settings.reply_to, sender=sender)
        data, from_addr, to_addr = encoded.data, encoded.envelope_from, encoded.envelope_to
        if t.return_paths is not None:
            from_addr = t.return_paths.envelope_sender(mail.key, to_addr)
        reused = self._conn is not None
        conn = self._connection()
        try:
            self._transact(conn, from_addr, to_addr, data, on_commit)
        except _Dropped as first:
            self._discard()
            if not reused:
                raise TransientError(f"SMTP server {t.where} closed the connection: {first}") from None
            # An idle connection the server has since closed: open a fresh one, once.
            log.info("smtp.reconnect", host=t.settings.host, port=t.settings.port, reason=str(first))
            conn = self._connection()
            try:
                self._transact(conn, from_addr, to_addr, data, on_commit)
            except _Dropped as second:
                self._discard()
                raise TransientError(f"SMTP server {t.where} closed the connection again: {second}") from None
        self.sent += 1
        return encoded.message_id

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.quit()
            except (smtplib.SMTPException, OSError):
                pass
            _close(conn)

    def open(self) -> None:
        self._connection()

    # -- internals

    def _connection(self) -> smtplib.SMTP:
        if self._conn is None:
            self._conn = self._transport.connect()
            self.connections += 1
        return self._conn

    def _discard(self) -> None:
        conn, self._conn = self._conn, None
        _close(conn)

    def _transact(self, conn: smtplib.SMTP, from_addr: str, to_addr: str, data: bytes,
                  before_commit: Callable[[], None] | None) -> None:
        """MAIL, RCPT, DATA by hand (what ``smtplib.SMTP.data`` does) so that ``before_commit`` runs
        after the content and right before the end-of-data terminator: the one step from which
        the server may deliver the mail."""
        where = self._transport.where
        try:
            code, resp = conn.mail(from_addr)
        except (smtplib.SMTPServerDisconnected, ConnectionError) as exc:
            raise _Dropped(str(exc) or type(exc).__name__) from None
        except OSError as exc:  # timeout and the like: the connection is unusable
            self._discard()
            raise TransientError(f"SMTP MAIL FROM at {where} failed: {exc or type(exc).__name__}") from None
        if code != 250:
            self._reset(conn)
            if code in _SESSION_REFUSALS:
                raise ConfigurationFault(
                    f"SMTP server {where} refused MAIL FROM:<{from_addr}>: {code} {_text(resp)}",
                    key=_SESSION_REFUSALS[code],
                )
            raise _classify(code, resp, f"MAIL FROM:<{from_addr}>", to_addr)
        try:
            code, resp = conn.rcpt(to_addr)
        except (smtplib.SMTPServerDisconnected, ConnectionError) as exc:
            raise _Dropped(str(exc) or type(exc).__name__) from None
        except OSError as exc:
            self._discard()
            raise TransientError(f"SMTP RCPT TO at {where} failed: {exc or type(exc).__name__}") from None
        if code not in (250, 251):
            self._reset(conn)
            raise _classify(code, resp, f"RCPT TO:<{to_addr}>", to_addr)
        try:
            conn.putcmd("data")
            code, resp = conn.getreply()
        except (smtplib.SMTPException, OSError) as exc:
            self._discard()
            raise self._undelivered(to_addr, exc) from None
        if code != 354:  # refused before the content went out
            self._reset(conn)
            raise _classify(code, resp, "DATA", to_addr)
        try:
            conn.send(_dot_stuffed(data))
        except (smtplib.SMTPException, OSError) as exc:
            self._discard()
            raise self._undelivered(to_addr, exc) from None
        if before_commit is not None:
            try:
                before_commit()
            except BaseException:
                # The content is out but not its terminator: dropping the connection makes the
                # server discard the transaction, so nothing is delivered.
                self._discard()
                raise
        # From the terminator on, the server may hold the mail whatever happens next.
        try:
            conn.send(b".\r\n")
            code, resp = conn.getreply()
        except (smtplib.SMTPException, OSError) as exc:
            # The content may or may not have been accepted: never resend it here.
            self._discard()
            raise DeliveryUnknown(
                f"SMTP connection to {where} lost while sending to <{to_addr}>; delivery unknown: "
                f"{exc or type(exc).__name__}"
            ) from None
        if code != 250:
            raise _classify(code, resp, "end of DATA", to_addr)

    def _undelivered(self, to_addr: str, exc: BaseException) -> TransientError:
        """A connection lost inside DATA before the terminator: the server cannot deliver a
        mail whose end it never saw."""
        return TransientError(f"SMTP connection to {self._transport.where} lost before the end of the mail "
                              f"to <{to_addr}>; not delivered: {exc or type(exc).__name__}")

    def _reset(self, conn: smtplib.SMTP) -> None:
        try:
            conn.rset()
        except (smtplib.SMTPException, OSError):
            self._discard()


_LEADING_DOT = re.compile(rb"(?m)^\.")


def _dot_stuffed(data: bytes) -> bytes:
    """The content as ``smtplib.SMTP.data`` puts bytes on the wire, without the terminator: a
    leading dot doubled, ending in CRLF (``encode_message`` already writes CRLF line ends)."""
    q = _LEADING_DOT.sub(b"..", data)
    return q if q.endswith(b"\r\n") else q + b"\r\n"


def _classify(code: int, resp: bytes | str, stage: str, to_addr: str) -> Exception:
    text = f"SMTP {code} {_text(resp)} (at {stage}, mail to <{to_addr}>)"
    if 400 <= code < 500:
        return TransientError(text)
    if code >= 500:
        return PermanentError(text, code=str(code))
    return TransientError(f"unexpected SMTP answer: {text}")


def _login(conn: smtplib.SMTP, username: str, password: str) -> None:
    """AUTH; smtplib encodes credentials as ASCII only, so a password with an umlaut would
    fail with a UnicodeEncodeError carrying the password. RFC 4616/4954 say UTF-8."""
    if username.isascii() and password.isascii():
        conn.login(username, password)
        return
    mechanisms = conn.esmtp_features.get("auth", "").upper().split()
    if "PLAIN" in mechanisms:
        token = base64.b64encode(b"\0" + username.encode() + b"\0" + password.encode()).decode("ascii")
        code, resp = conn.docmd("AUTH", "PLAIN " + token)
    elif "LOGIN" in mechanisms:
        code, resp = conn.docmd("AUTH", "LOGIN " + base64.b64encode(username.encode()).decode("ascii"))
        if code == 334:
            code, resp = conn.docmd(base64.b64encode(password.encode()).decode("ascii"))
    else:
        raise smtplib.SMTPException("no AUTH mechanism for non-ASCII credentials (need PLAIN or LOGIN)")
    if code not in (235, 503):
        raise smtplib.SMTPAuthenticationError(code, resp)


def _no_delay(conn: smtplib.SMTP) -> None:
    """The end-of-data terminator is written on its own, right after the content, with no reply
    in between: under Nagle's algorithm it would wait for the server's delayed ACK of the content
    (40 ms on Linux) on every mail. Send it at once."""
    try:
        if conn.sock is not None:
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:  # not a TCP socket (or an exotic stack): slower, still correct
        pass


def _close(conn: smtplib.SMTP | None) -> None:
    if conn is None:
        return
    try:
        conn.close()
    except OSError:
        pass

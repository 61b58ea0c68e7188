"""A real SMTP server for tests and benchmarks: aiosmtpd on 127.0.0.1, in a thread.

Use the pytest fixtures (``smtp_server``, ``smtp_starttls_server``, ``smtp_ssl_server``,
``smtp_server_factory``, ``smtp_tls_files``) or, outside pytest (benchmarks, subprocess tests),
the plain class::

    with MailServer() as server:          # or server.start() / server.stop()
        ... send to server.host, server.port ...
        server.wait_for(10)
        server.messages[0]["Subject"], server.messages[0].rcpt_tos

Fault switches (thread-safe, effective for the next transactions):
``fail_next(n, code=451)``, ``reject_recipient(addr, code=550)``, ``drop_next(n)``
(close the connection in the middle of a transaction) and ``disconnect_all()`` (the server
closes every open connection, as an idle timeout would).
``connections`` counts client connections, so tests can assert that a batch reused one.

To use the fixtures, put ``pytest_plugins = ["tests.support.mailserver"]`` in the test module (or in the
root ``tests/conftest.py``); importing names from it directly works too.

PYTEST_DONT_REWRITE: no plain asserts here, so it may be imported before pytest loads it as a plugin.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import socket
import ssl
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any, Literal

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

Security = Literal["none", "starttls", "ssl"]

# aiosmtpd logs every connection at INFO and a deprecation notice per AUTH at WARNING.
logging.getLogger("mail.log").setLevel(logging.ERROR)

_REASONS = {
    421: "Service not available, closing transmission channel",
    450: "Mailbox unavailable, try again later",
    451: "Requested action aborted: local error in processing",
    452: "Insufficient system storage",
    550: "Mailbox unavailable",
    552: "Exceeded storage allocation",
    553: "Mailbox name not allowed",
    554: "Transaction failed",
}


def _reply(code: int, text: str | None = None) -> str:
    return f"{code} {text or _REASONS.get(code, 'Test server says no')}"


class ReceivedMessage(EmailMessage):
    """A parsed message as the server received it, with its SMTP envelope."""

    mail_from: str = ""
    rcpt_tos: list[str]
    raw: bytes = b""


# --------------------------------------------------------------------------- TLS material


@dataclass(frozen=True)
class TlsFiles:
    """A throw-away CA and a server certificate it signed (for ``localhost`` and 127.0.0.1)."""

    ca_file: str  # what a client verifies against
    cert_file: str
    key_file: str

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.cert_file, self.key_file)
        return ctx


def make_tls_files(directory: str | Path) -> TlsFiles:
    """Generate the CA and server certificate into ``directory``.

    A separate CA (not a self-signed leaf) keeps strict X.509 verification in newer Python
    versions happy and is what an operator's private CA looks like.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "syncd test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    ca_file, cert_file, key_file = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    ca_file.write_bytes(ca_cert.public_bytes(pem))
    cert_file.write_bytes(cert.public_bytes(pem))
    key_file.write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return TlsFiles(str(ca_file), str(cert_file), str(key_file))


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- server


class _Handler:
    def __init__(self, server: MailServer) -> None:
        self._server = server

    async def handle_MAIL(self, server, session, envelope, address, mail_options):  # noqa: N802
        verdict = self._server._take_fault("mail", server)
        if verdict:
            return verdict
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        verdict = self._server._recipient_verdict(address) or self._server._take_fault("rcpt", server)
        if verdict:
            return verdict
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        verdict = self._server._take_fault("data", server)
        if verdict:
            return verdict
        self._server._store(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content)
        return "250 Message accepted for delivery"


class _CountingSMTP(SMTP):
    """Counts client connections (a STARTTLS upgrade is the same connection) and keeps the
    open ones so the server can drop them on purpose."""

    def __init__(self, owner: MailServer, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._owner = owner

    def connection_made(self, transport):
        upgrade = self.transport is not None
        super().connection_made(transport)
        if not upgrade:
            self._owner._opened(self)

    def connection_lost(self, error):
        self._owner._closed(self)
        super().connection_lost(error)

    async def smtp_DATA(self, arg: str) -> None:  # noqa: N802
        # Stage "content": the DATA command itself, before the 354 that lets the content come.
        verdict = self._owner._take_fault("content", self)
        if verdict is not None:
            if self.transport is not None and not self.transport.is_closing():
                await self.push(verdict)
            return
        await super().smtp_DATA(arg)


class _Controller(Controller):
    def __init__(self, owner: MailServer, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._owner = owner

    def factory(self):
        with warnings.catch_warnings():
            # AUTH over implicit TLS trips aiosmtpd's "AUTH without TLS" warning: it is TLS.
            warnings.simplefilter("ignore", UserWarning)
            return _CountingSMTP(self._owner, self.handler, **self.SMTP_kwargs)


class MailServer:
    """aiosmtpd on 127.0.0.1 and a free port, recording every accepted message.

    ``security``: "none", "starttls" (STARTTLS required before MAIL) or "ssl" (implicit TLS).
    ``users``: username -> password; when given, AUTH is required before MAIL.
    ``tls_files``: the CA/certificate to use; generated into a temporary folder when omitted.
    ``auth_mechanisms``: offer only these (e.g. ``("LOGIN",)``); default: aiosmtpd's PLAIN and LOGIN.
    """

    def __init__(
        self,
        *,
        security: Security = "none",
        users: dict[str, str] | None = None,
        tls_files: TlsFiles | None = None,
        host: str = "127.0.0.1",
        keep_messages: bool = True,
        auth_mechanisms: tuple[str, ...] | None = None,
    ) -> None:
        self.security = security
        self.users = dict(users or {})
        self.host = host
        self.port = 0
        self.keep_messages = keep_messages
        self.auth_mechanisms = auth_mechanisms
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if security != "none" and tls_files is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="syncd-smtp-tls-")
            tls_files = make_tls_files(self._tmp.name)
        self.tls_files = tls_files
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._raw: list[tuple[str, list[str], bytes]] = []
        self._parsed: list[ReceivedMessage] = []
        self._accepted = 0
        self._faults: list[tuple[str, str | None]] = []  # (stage, reply or None = drop)
        self._rejected: dict[str, str] = {}
        self._live: set[_CountingSMTP] = set()
        self._connections = 0
        self._auth_failures = 0
        self._controller: _Controller | None = None

    # -- life cycle

    @property
    def ca_file(self) -> str | None:
        return self.tls_files.ca_file if self.tls_files else None

    def start(self) -> MailServer:
        kwargs: dict[str, Any] = {"hostname": self.host, "server_hostname": "localhost"}
        if self.security == "starttls":
            kwargs.update(tls_context=self.tls_files.server_context(), require_starttls=True)
        elif self.security == "ssl":
            kwargs["ssl_context"] = self.tls_files.server_context()
        if self.users:
            kwargs.update(
                authenticator=self._authenticate,
                auth_required=True,
                # Implicit TLS is TLS too, but aiosmtpd only counts STARTTLS as such.
                auth_require_tls=self.security == "starttls",
            )
            if self.auth_mechanisms is not None:
                offered = {m.upper() for m in self.auth_mechanisms}
                kwargs["auth_exclude_mechanism"] = [m for m in ("PLAIN", "LOGIN") if m not in offered]
        last: Exception | None = None
        # Another test process may grab the port between picking and binding it: try again.
        for _ in range(20):
            port = free_port(self.host)
            controller = _Controller(self, _Handler(self), port=port, **kwargs)
            try:
                controller.start()
            except Exception as exc:  # bind race or start-up failure
                last = exc
                try:
                    controller.stop(no_assert=True)
                except Exception:
                    pass
                continue
            self.port = port
            self._controller = controller
            with self._lock:
                # The controller's own readiness probe is not a client connection.
                self._connections = 0
            return self
        raise RuntimeError(f"could not start the test SMTP server on {self.host}: {last}")

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop(no_assert=True)
            self._controller = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> MailServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what arrived

    @property
    def messages(self) -> list[ReceivedMessage]:
        """Every accepted message so far, parsed (a snapshot; parsing happens lazily here so
        that receiving stays cheap in benchmarks)."""
        with self._lock:
            pending = self._raw[len(self._parsed):]
            for mail_from, rcpt_tos, raw in pending:
                msg = BytesParser(_class=ReceivedMessage, policy=policy.default).parsebytes(raw)
                msg.mail_from, msg.rcpt_tos, msg.raw = mail_from, rcpt_tos, raw
                self._parsed.append(msg)
            return list(self._parsed)

    @property
    def accepted(self) -> int:
        """How many messages were accepted (also counted when ``keep_messages`` is off)."""
        with self._lock:
            return self._accepted

    @property
    def connections(self) -> int:
        """How many client connections were opened so far."""
        with self._lock:
            return self._connections

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._live)

    @property
    def auth_failures(self) -> int:
        with self._lock:
            return self._auth_failures

    def wait_for(self, count: int, timeout: float = 10.0) -> list[ReceivedMessage]:
        """Block until at least ``count`` messages were accepted; AssertionError on timeout."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while self._accepted < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"expected {count} messages, got {self._accepted} in {timeout}s")
                self._arrived.wait(remaining)
        return self.messages

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until no client connection is open (a QUIT is processed asynchronously)."""
        deadline = time.monotonic() + timeout
        while self.open_connections and time.monotonic() < deadline:
            time.sleep(0.005)
        return self.open_connections == 0

    def clear(self) -> None:
        with self._lock:
            self._raw.clear()
            self._parsed.clear()
            self._accepted = 0

    # -- fault switches

    def fail_next(self, n: int = 1, code: int = 451, *, stage: str = "data", text: str | None = None) -> None:
        """The next ``n`` transactions are answered with ``code`` at ``stage``
        ("mail", "rcpt", "content": the DATA command, before any content, or "data": after the
        content and its terminator)."""
        self._check_stage(stage)
        with self._lock:
            self._faults.extend([(stage, _reply(code, text))] * n)

    def drop_next(self, n: int = 1, *, stage: str = "data") -> None:
        """The next ``n`` transactions lose their connection at ``stage`` without an answer."""
        self._check_stage(stage)
        with self._lock:
            self._faults.extend([(stage, None)] * n)

    def reject_recipient(self, address: str, code: int = 550, text: str | None = None) -> None:
        """Answer RCPT TO:<address> with ``code`` from now on (case-insensitive)."""
        with self._lock:
            self._rejected[address.lower()] = _reply(code, text)

    def accept_recipient(self, address: str) -> None:
        with self._lock:
            self._rejected.pop(address.lower(), None)

    def reset_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._rejected.clear()

    def disconnect_all(self) -> None:
        """Close every open client connection from the server side (like an idle timeout)."""
        controller = self._controller
        if controller is None:
            return
        with self._lock:
            live = list(self._live)
        done = threading.Event()

        def close() -> None:
            for smtp in live:
                if smtp.transport is not None:
                    smtp.transport.close()
            done.set()

        controller.loop.call_soon_threadsafe(close)
        done.wait(5)
        self.wait_idle()

    # -- called from the server thread

    @staticmethod
    def _check_stage(stage: str) -> None:
        if stage not in ("mail", "rcpt", "content", "data"):
            raise ValueError(f"stage must be mail, rcpt, content or data, not {stage!r}")

    def _take_fault(self, stage: str, smtp: SMTP) -> str | None:
        with self._lock:
            if not self._faults or self._faults[0][0] != stage:
                return None
            _, verdict = self._faults.pop(0)
        if verdict is None:
            smtp.transport.close()
            return "421 Connection dropped by test server"  # never reaches the client
        return verdict

    def _recipient_verdict(self, address: str) -> str | None:
        with self._lock:
            return self._rejected.get(address.lower())

    def _store(self, mail_from: str, rcpt_tos: list[str], raw: bytes) -> None:
        with self._arrived:
            self._accepted += 1
            if self.keep_messages:
                self._raw.append((mail_from, rcpt_tos, raw))
            self._arrived.notify_all()

    def _opened(self, smtp: _CountingSMTP) -> None:
        with self._lock:
            self._connections += 1
            self._live.add(smtp)

    def _closed(self, smtp: _CountingSMTP) -> None:
        with self._lock:
            self._live.discard(smtp)

    def _authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            user = auth_data.login.decode("utf-8", "replace")
            password = auth_data.password.decode("utf-8", "replace")
            if user in self.users and self.users[user] == password:
                return AuthResult(success=True, auth_data=user)
        with self._lock:
            self._auth_failures += 1
        # handled=False makes aiosmtpd answer 535; handled=True would leave the client hanging.
        return AuthResult(success=False, handled=False)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def smtp_tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A test CA and a server certificate for localhost/127.0.0.1 (``.ca_file`` for clients)."""
    return make_tls_files(tmp_path_factory.mktemp("smtp-tls"))


@pytest.fixture
def smtp_server_factory(smtp_tls_files: TlsFiles) -> Iterator[Any]:
    """``make(security="none", users=None) -> MailServer``, started; all stopped at teardown."""
    servers: list[MailServer] = []

    def make(security: Security = "none", users: dict[str, str] | None = None, **kwargs: Any) -> MailServer:
        kwargs.setdefault("tls_files", smtp_tls_files)
        server = MailServer(security=security, users=users, **kwargs).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def smtp_server(smtp_server_factory: Any) -> MailServer:
    """Plain SMTP (no TLS, no AUTH) on 127.0.0.1."""
    return smtp_server_factory()


@pytest.fixture
def smtp_starttls_server(smtp_server_factory: Any) -> MailServer:
    """STARTTLS required; the certificate is signed by ``server.ca_file``."""
    return smtp_server_factory("starttls")


@pytest.fixture
def smtp_ssl_server(smtp_server_factory: Any) -> MailServer:
    """Implicit TLS (SMTPS); the certificate is signed by ``server.ca_file``."""
    return smtp_server_factory("ssl")


# --------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    """``python -m tests.support.mailserver``: serve in the foreground (own process, so a benchmark's
    client does not share the GIL with the server). Prints one JSON line with host, port and
    ca_file when ready; on SIGTERM/SIGINT prints the number of accepted messages and exits."""
    import argparse
    import json
    import signal
    import sys

    parser = argparse.ArgumentParser(prog="python -m tests.support.mailserver")
    parser.add_argument("--security", choices=["none", "starttls", "ssl"], default="none")
    parser.add_argument("--user", action="append", default=[], metavar="NAME:PASSWORD")
    parser.add_argument("--keep", action="store_true", help="keep (parse) messages; default: count only")
    args = parser.parse_args(argv)
    users = dict(u.split(":", 1) for u in args.user)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with MailServer(security=args.security, users=users, keep_messages=args.keep) as server:
        print(json.dumps({"host": server.host, "port": server.port, "ca_file": server.ca_file}), flush=True)
        stop.wait()
        print(json.dumps({"accepted": server.accepted, "connections": server.connections}),
              file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""A loopback IMAP server for the bounce reader's tests: pymap (a maintained pure-Python IMAP
server) over its maildir backend, run as a child process on a free port, one user.

    with imap_server(tmp_path) as imap:
        imap.append(raw_bytes)          # a bounce arrives
        ... BounceSettings(source="imap", imap={"host": imap.host, "port": imap.port, ...})

``security``: "none"; "starttls" (pymap's own STARTTLS with the test certificate: it offers no
login before the handshake); "ssl" (implicit TLS, port 993 style: pymap has no implicit TLS, so a
TLS terminator in this process listens on ``port`` and relays to a plain pymap behind it).
"""

from __future__ import annotations

import select
import socket
import socketserver
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from imapclient import IMAPClient
from pysasl.hashing import BuiltinHash

from tests.support.mailserver import TlsFiles, free_port

USER = "bounces"
PASSWORD = "Imap-Pässwort-1"  # non-ASCII on purpose: LOGIN must carry it intact


@dataclass
class ImapServer:
    host: str
    port: int
    base: Path
    security: Literal["none", "starttls", "ssl"] = "none"
    ca_file: str | None = None

    def client(self) -> IMAPClient:
        context = ssl.create_default_context(cafile=self.ca_file) if self.ca_file else None
        c = IMAPClient(self.host, port=self.port, ssl=self.security == "ssl", ssl_context=context, timeout=10)
        if self.security == "starttls":
            c.starttls(context)
        c.plain_login(USER, PASSWORD)
        return c

    def handshakes(self) -> int:
        """TLS handshakes the server completed so far (pymap's debug log, the relay's log)."""
        logs = [self.base / "pymap.log", self.base / "tls.log"]
        return sum(f.read_text(errors="replace").count("<TLS handshake>") for f in logs if f.exists())

    def append(self, *messages: bytes, folder: str = "INBOX") -> None:
        c = self.client()
        try:
            for m in messages:
                c.append(folder, m)
        finally:
            c.logout()

    def folder(self, name: str) -> list[tuple[int, tuple[bytes, ...]]]:
        """(uid, flags) of every message in ``name``; [] when it does not exist."""
        c = self.client()
        try:
            if not c.folder_exists(name):
                return []
            c.select_folder(name, readonly=True)
            uids = c.search(["ALL"])
            flags = c.get_flags(uids) if uids else {}
            return [(uid, tuple(flags.get(uid, ()))) for uid in sorted(uids)]
        finally:
            c.logout()


class _TlsRelay(socketserver.ThreadingTCPServer):
    """Implicit TLS on its port, the plain bytes relayed to ``backend`` (one thread a connection)."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, backend: int, context: ssl.SSLContext, log: Path) -> None:
        self.backend, self.context, self.log = backend, context, log
        super().__init__(("127.0.0.1", port), _Relay)


class _Relay(socketserver.BaseRequestHandler):
    server: _TlsRelay

    def handle(self) -> None:
        try:
            front = self.server.context.wrap_socket(self.request, server_side=True)
        except (ssl.SSLError, OSError):  # the client refused our certificate: what a test wants to see
            return
        with open(self.server.log, "a") as log:
            log.write("<TLS handshake>\n")
        with front, socket.create_connection(("127.0.0.1", self.server.backend)) as back:
            while True:
                ready = [front] if front.pending() else select.select([front, back], [], [], 60)[0]
                if not ready:
                    return
                for sock in ready:
                    try:
                        data = sock.recv(65536)
                    except (ssl.SSLError, OSError):
                        return
                    if not data:
                        return
                    (back if sock is front else front).sendall(data)


@contextmanager
def imap_server(base: Path, security: Literal["none", "starttls", "ssl"] = "none",
                tls_files: TlsFiles | None = None) -> Iterator[ImapServer]:
    base.mkdir(parents=True, exist_ok=True)
    (base / "pymap-etc-passwd").write_text(f"{USER}:::::mail:\n")
    (base / "pymap-etc-shadow").write_text(f"{USER}:{BuiltinHash(rounds=1000).hash(PASSWORD)}:::::::\n")
    for name in ("pymap-etc-group", "pymap-tokens"):
        (base / name).touch()
    port = free_port()
    exe = Path(sys.executable).parent / "pymap"
    log = open(base / "pymap.log", "wb")  # noqa: SIM115 - closed below
    # --debug: pymap logs "<TLS handshake>" (LOGIN works without STARTTLS too, so only that shows it)
    tls = ["--debug", "--cert", tls_files.cert_file, "--key", tls_files.key_file] \
        if security == "starttls" and tls_files else ["--no-tls"]
    proc = subprocess.Popen([str(exe), "--host", "127.0.0.1", "--port", str(port), *tls,
                             "maildir", str(base)], stdout=log, stderr=subprocess.STDOUT)
    relay: _TlsRelay | None = None
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"pymap did not start: {(base / 'pymap.log').read_text()}") from None
                time.sleep(0.1)
        if security == "ssl":
            assert tls_files is not None
            relay = _TlsRelay(free_port(), port, tls_files.server_context(), base / "tls.log")
            threading.Thread(target=relay.serve_forever, daemon=True).start()
            port = relay.server_address[1]
        yield ImapServer("127.0.0.1", port, base, security, tls_files.ca_file if tls_files else None)
    finally:
        if relay is not None:
            relay.shutdown()
            relay.server_close()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()

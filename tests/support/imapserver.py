"""A loopback IMAP server for the bounce reader's tests: pymap (a maintained pure-Python IMAP
server) over its maildir backend, run as a child process on a free port, one user, no TLS.

    with imap_server(tmp_path) as imap:
        imap.append(raw_bytes)          # a bounce arrives
        ... BounceSettings(source="imap", imap={"host": imap.host, "port": imap.port, ...})
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from imapclient import IMAPClient
from pysasl.hashing import BuiltinHash

from tests.support.mailserver import free_port

USER = "bounces"
PASSWORD = "Imap-Pässwort-1"  # non-ASCII on purpose: LOGIN must carry it intact


@dataclass
class ImapServer:
    host: str
    port: int
    base: Path

    def client(self) -> IMAPClient:
        c = IMAPClient(self.host, port=self.port, ssl=False, timeout=10)
        c.plain_login(USER, PASSWORD)
        return c

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


@contextmanager
def imap_server(base: Path) -> Iterator[ImapServer]:
    base.mkdir(parents=True, exist_ok=True)
    (base / "pymap-etc-passwd").write_text(f"{USER}:::::mail:\n")
    (base / "pymap-etc-shadow").write_text(f"{USER}:{BuiltinHash(rounds=1000).hash(PASSWORD)}:::::::\n")
    for name in ("pymap-etc-group", "pymap-tokens"):
        (base / name).touch()
    port = free_port()
    exe = Path(sys.executable).parent / "pymap"
    log = open(base / "pymap.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([str(exe), "--host", "127.0.0.1", "--port", str(port), "--no-tls",
                             "maildir", str(base)], stdout=log, stderr=subprocess.STDOUT)
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
        yield ImapServer("127.0.0.1", port, base)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()

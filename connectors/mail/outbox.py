"""Outbox transport: each mail becomes one ``.eml`` file in a folder (demo, tests, or a pickup
directory another MTA drains).

A file appears complete or not at all: it is written under a hidden temporary name, flushed to
disk, then renamed into place, so a reader that picks up ``*.eml`` never sees half a mail,
even when the process is killed mid-write. The rename is the commit point: ``send``'s
``on_commit`` runs right before it.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from syncd.connectors.mail.message import encode_message, parse_sender
from syncd.core.domain import CheckItem, OutgoingMail
from syncd.core.errors import PermanentError, TransientError

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


class OutboxTransport:
    """``MailTransport`` writing ``YYYYmmddTHHMMSSffffffZ-<key>.eml`` files into ``outbox_dir``."""

    def __init__(self, outbox_dir: str | os.PathLike[str], *, sender: str | None = None,
                 reply_to: str | None = None) -> None:
        self.outbox_dir = Path(outbox_dir)
        self.default_sender = sender
        self.reply_to = reply_to

    @contextmanager
    def session(self) -> Iterator[OutboxTransport]:
        self._ensure_dir()
        yield self

    def open(self) -> None:
        self._ensure_dir()

    def send(self, mail: OutgoingMail, on_commit: Callable[[], None] | None = None) -> Path:
        """Write ``mail``; returns the file's path. ``on_commit`` runs once the content is on disk,
        right before the rename that makes the mail visible (the outbox's commit point); if it
        raises, the temporary file is removed and no mail appears."""
        data = encode_message(mail, reply_to=self.reply_to).data
        self._ensure_dir()
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        key = _UNSAFE.sub("_", mail.key).strip("._")[:100] or "mail"
        tmp = self.outbox_dir / f".{stamp}-{key}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
            if on_commit is not None:
                try:
                    on_commit()
                except BaseException:
                    tmp.unlink(missing_ok=True)
                    raise
            final = self._free_name(stamp, key)
            os.replace(tmp, final)
            _fsync_dir(self.outbox_dir)
        except OSError as exc:
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass
            raise TransientError(f"cannot write mail to outbox {self.outbox_dir}: {exc}") from None
        return final

    def check(self) -> list[CheckItem]:
        items = []
        if self.default_sender is not None:
            try:
                items.append(CheckItem("mail", "sender", True, str(parse_sender(self.default_sender))))
            except PermanentError as exc:
                items.append(CheckItem("mail", "sender", False, f"[mail] sender: {exc}"))
        try:
            self._ensure_dir()
            probe = self.outbox_dir / f".check-{secrets.token_hex(4)}.tmp"
            probe.write_bytes(b"")
            probe.unlink()
        except (OSError, TransientError) as exc:
            detail = f"[mail] outbox_dir {str(self.outbox_dir)!r}: {exc}"
            items.append(CheckItem("mail", "outbox", False, detail))
        else:
            items.append(CheckItem("mail", "outbox", True, f"writable: {self.outbox_dir}"))
        return items

    def _ensure_dir(self) -> None:
        try:
            # The mails carry passwords: a new outbox is for the service user only.
            self.outbox_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise TransientError(f"cannot create outbox {self.outbox_dir}: {exc}") from None

    def _free_name(self, stamp: str, key: str) -> Path:
        final = self.outbox_dir / f"{stamp}-{key}.eml"
        n = 1
        while final.exists():  # the same key twice within a microsecond: keep both
            final = self.outbox_dir / f"{stamp}-{key}-{n}.eml"
            n += 1
        return final


def _fsync_dir(path: Path) -> None:
    """Make the rename itself durable (POSIX; directories cannot be opened on Windows)."""
    if os.name != "posix":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

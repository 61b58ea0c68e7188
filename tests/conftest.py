"""Fixtures every test gets: a fast retry policy, an in-memory keyring, and log capture."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import keyring
import pytest
import structlog
from keyring.backend import KeyringBackend
from keyring.errors import PasswordDeleteError

from syncd.core import redaction, retry
from syncd.shell.logs import configure_logging, reset_logging


def pytest_sessionstart(session: pytest.Session) -> None:
    """syncd.connectors and syncd.layouts come from the editable install's package-dir mapping:
    in a second checkout (a git worktree) an install made elsewhere would silently test the other
    checkout's connectors."""
    from pathlib import Path

    import syncd
    import syncd.connectors
    import syncd.layouts

    root = Path(syncd.__file__).resolve().parents[1]
    for module in (syncd.connectors, syncd.layouts):
        where = Path(module.__file__ or "").resolve().parents[1]
        if where != root:
            pytest.exit(f"{module.__name__} is imported from {where}, syncd from {root}: "
                        f"run `pip install -e .` in {root}", returncode=4)


class MemoryKeyring(KeyringBackend):
    """A keyring that lives and dies with one test: no file, no D-Bus, no plaintext on disk."""

    priority = 1  # type: ignore[assignment]  # only ever selected explicitly

    def __init__(self) -> None:
        super().__init__()
        self.store: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.store.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.store[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self.store.pop((service, username), None) is None:
            raise PasswordDeleteError(f"{service}/{username} not set")


@pytest.fixture(autouse=True)
def fast_retry() -> Iterator[retry.RetryPolicy]:
    policy = retry.RetryPolicy(attempts=4, max_total=2.0, initial=0.001, maximum=0.01, multiplier=2.0)
    previous = retry.set_policy(policy)
    try:
        yield policy
    finally:
        retry.set_policy(previous)


@pytest.fixture(autouse=True)
def memory_keyring() -> Iterator[MemoryKeyring]:
    previous = keyring.core._keyring_backend  # no get_keyring(): that would probe real backends
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    try:
        yield backend
    finally:
        keyring.core._keyring_backend = previous


@pytest.fixture(autouse=True)
def isolated_logging_and_redaction() -> Iterator[None]:
    """Undo what a test did to process-wide state: logging set up by a CLI run (its handler
    would write to a closed capture stream later) and values registered as sensitive (a
    resolved test secret such as "test" would mask that word in every later test's logs)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    structlog_config = structlog.get_config()
    with redaction._lock:
        registered = redaction._values.copy()
    try:
        yield
    finally:
        for handler in [h for h in root.handlers if h not in handlers]:
            root.removeHandler(handler)
        root.setLevel(level)
        structlog.configure(**structlog_config)
        with redaction._lock:
            redaction._values.clear()
            redaction._values.update(registered)
            redaction._rebuild()


class CapturedLogs:
    """Everything logged during a test (structlog and stdlib), rendered as JSON lines by the
    production chain, so a grep for a password sees exactly what an operator would."""

    def __init__(self, buffer: io.StringIO) -> None:
        self._buffer = buffer

    @property
    def text(self) -> str:
        for handler in logging.getLogger().handlers:
            handler.flush()
        return self._buffer.getvalue()

    def lines(self) -> list[str]:
        return [line for line in self.text.splitlines() if line.strip()]

    def events(self) -> list[dict]:
        import json

        return [json.loads(line) for line in self.lines()]

    def __contains__(self, needle: str) -> bool:
        return needle in self.text

    def __str__(self) -> str:
        return self.text


@pytest.fixture
def captured_logs() -> Iterator[CapturedLogs]:
    buffer = io.StringIO()
    configure_logging("json", "debug", stream=buffer)
    try:
        yield CapturedLogs(buffer)
    finally:
        reset_logging()

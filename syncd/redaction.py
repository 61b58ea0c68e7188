"""The one redaction point.

Every string that leaves the process through logs, exceptions shown to the operator, CLI
output or the state store passes ``redact``. Values are *registered* while they are
sensitive: resolved secrets for the life of the process, a generated password for the
life of its credential job (``with sensitive(pw): ...``).
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

MASK = "[REDACTED]"

# Keys whose value is never shown, whatever it is (logged dicts, config dumps, HTTP bodies).
_SENSITIVE_KEY = re.compile(
    r"(pass(word|wd)?|secret|token|authorization|api[_-]?key|credential)", re.IGNORECASE
)

_lock = threading.Lock()
_values: Counter[str] = Counter()  # refcounted: two jobs may briefly hold the same value
_pattern: re.Pattern[str] | None = None


def _rebuild() -> None:
    global _pattern
    if not _values:
        _pattern = None
        return
    # Longest first so that a value containing another is masked whole.
    alternatives = sorted(_values, key=len, reverse=True)
    _pattern = re.compile("|".join(re.escape(v) for v in alternatives))


def register(value: str | None) -> None:
    """Mark ``value`` as sensitive until ``unregister``. Very short values are ignored:
    masking every 'a' would destroy the log without protecting anything."""
    if not value or len(value) < 4:
        return
    with _lock:
        _values[value] += 1
        if _values[value] == 1:
            _rebuild()


def unregister(value: str | None) -> None:
    if not value or len(value) < 4:
        return
    with _lock:
        if _values[value] <= 1:
            _values.pop(value, None)
            _rebuild()
        else:
            _values[value] -= 1


@contextmanager
def sensitive(*values: str | None) -> Iterator[None]:
    for v in values:
        register(v)
    try:
        yield
    finally:
        for v in values:
            unregister(v)


def redact(text: str) -> str:
    pattern = _pattern
    if pattern is None or not text:
        return text
    return pattern.sub(MASK, text)


def is_sensitive_key(key: str) -> bool:
    return bool(_SENSITIVE_KEY.search(key))


def redact_value(value: Any, key: str | None = None) -> Any:
    """Redact a value of any shape: strings are scanned, mappings by key, sequences item-wise,
    exceptions turned into their (redacted) text."""
    if key is not None and is_sensitive_key(key) and value not in (None, "", False):
        return MASK
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {k: redact_value(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return type(value)(redact_value(v) for v in value) if not isinstance(value, set) else {
            redact_value(v) for v in value
        }
    if isinstance(value, BaseException):
        return redact(f"{type(value).__name__}: {value}")
    return value


def structlog_processor(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """Last processor in the chain (see ``syncd.logs``): nothing is rendered unredacted."""
    return {k: redact_value(v, k if k != "event" else None) for k, v in event_dict.items()}

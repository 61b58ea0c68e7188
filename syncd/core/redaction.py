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

from syncd.core.text import clip

MASK = "[REDACTED]"

# Keys whose value is never shown, whatever it is (logged dicts, config dumps, HTTP bodies).
_SENSITIVE_KEY = re.compile(
    r"(pass(word|wd)?|secret|token|authorization|api[_-]?key|credential)", re.IGNORECASE
)

_lock = threading.Lock()
_values: Counter[str] = Counter()  # refcounted: two jobs may briefly hold the same value
_pattern: re.Pattern[str] | None = None
_dirty = False  # _values changed since _pattern was built; redact() rebuilds it


def _rebuild() -> None:
    global _pattern, _dirty
    _dirty = False
    if not _values:
        _pattern = None
        return
    # Longest first so that a value containing another is masked whole.
    alternatives = sorted(_values, key=len, reverse=True)
    _pattern = re.compile("|".join(_alternative(v) for v in alternatives))


def _is_weak(value: str) -> bool:
    """A value that also occurs as (part of) ordinary words: short, or a word ("test",
    "connection", "Sommer", a user name: letters in one case, or capitalised). Masking it inside
    longer words turned "connection failed" into "[REDACTED] failed" without protecting
    anything; it is masked where it stands as a word. A generated password (mixed case and
    digits) is never weak: it is masked wherever it appears, even glued to other text."""
    return len(value) < 8 or (value.isalpha() and (value.islower() or value.isupper() or value.istitle()))


def _alternative(value: str) -> str:
    text = re.escape(value)
    if not _is_weak(value):
        return text  # random-looking: masked wherever it appears, even glued to other text
    head = r"(?<!\w)" if re.match(r"\w", value[0]) else ""
    tail = r"(?!\w)" if re.match(r"\w", value[-1]) else ""
    return head + text + tail


def _worth_masking(value: str | None) -> bool:
    # Very short values are ignored: masking every 'a' would destroy the log without
    # protecting anything.
    return bool(value) and len(value) >= 4  # type: ignore[arg-type]


def register(*values: str | None) -> None:
    """Mark ``values`` as sensitive until ``unregister``.

    The pattern is rebuilt lazily on the next ``redact``: a credential batch registers a
    hundred passwords at once, and recompiling per value made that quadratic.
    """
    global _dirty
    with _lock:
        for value in values:
            if _worth_masking(value):
                _values[value] += 1  # type: ignore[index]
                _dirty = _dirty or _values[value] == 1  # type: ignore[index]


def unregister(*values: str | None) -> None:
    global _dirty
    with _lock:
        for value in values:
            if not _worth_masking(value) or value not in _values:
                continue
            if _values[value] <= 1:  # type: ignore[index]
                _values.pop(value, None)  # type: ignore[arg-type]
                _dirty = True
            else:
                _values[value] -= 1  # type: ignore[index]


@contextmanager
def sensitive(*values: str | None) -> Iterator[None]:
    register(*values)
    try:
        yield
    finally:
        unregister(*values)


def redact(text: str) -> str:
    if _dirty:
        with _lock:
            if _dirty:
                _rebuild()
    pattern = _pattern
    if pattern is None or not text:
        return text
    return pattern.sub(MASK, text)


def is_sensitive_key(key: str) -> bool:
    return bool(_SENSITIVE_KEY.search(key))


# The words a secret key is named with, and their common misspellings' neighbourhood: a typo of
# one ("pasword", "client_secert", "tokn") still holds the secret the operator meant to write.
_SECRET_WORDS = ("password", "passwort", "passwd", "pwd", "secret", "token", "key", "credential",
                 "credentials", "auth", "authorization", "apikey", "kennwort")


def resembles_sensitive_key(key: str) -> bool:
    """True for a key named like a secret key, or a misspelling of one (edit distance, or one
    holding / held by a secret word). Used where an unknown key's value would be shown."""
    import difflib

    name = key.lower()
    if is_sensitive_key(name):
        return True
    parts = [p for p in re.split(r"[^a-z0-9]+", name) if p] + [re.sub(r"[^a-z0-9]", "", name)]
    for part in parts:
        if part in ("pw", "pin"):
            return True
        for word in _SECRET_WORDS:
            if word in part or (len(part) >= 3 and part in word):
                return True
            if len(part) >= 4 and difflib.SequenceMatcher(None, part, word).ratio() >= 0.7:
                return True
    return False


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
    """Last processor in the chain (see ``syncd.shell.logs``): nothing is rendered unredacted."""
    return {k: redact_value(v, k if k != "event" else None) for k, v in event_dict.items()}


MAX_ERROR_TEXT = 2000

def error_text(exc: BaseException) -> str:
    """What an operator reads in `syncd status` and the log: type, message and cause chain,
    redacted and bounded."""
    parts = [f"{type(exc).__name__}: {exc}"]
    cause = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    depth = 0
    while cause is not None and depth < 3:
        parts.append(f"caused by {type(cause).__name__}: {cause}")
        cause = cause.__cause__ or (None if cause.__suppress_context__ else cause.__context__)
        depth += 1
    return clip(redact_value("; ".join(parts)), MAX_ERROR_TEXT)

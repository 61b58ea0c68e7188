"""Shortening text for operators: error reasons in the state store, `check` rows, log events.

A reason cut at a fixed index ended mid-word ("Failed to establish a new)"); ``clip`` cuts at
the last word boundary before the limit and says that it did. No syncd imports: every layer may
use it.
"""

from __future__ import annotations

import re

ELLIPSIS = "…"
# What a requests/urllib3 connection error says that an operator can act on, innermost first.
_CONNECTION_REASONS = (
    re.compile(r"Failed to establish a new connection: (\[Errno -?\d+\] [^'\")]+)"),
    re.compile(r"(\[Errno -?\d+\] [^'\")]+)"),
    re.compile(r"(Name or service not known|Temporary failure in name resolution|Connection refused|"
               r"Connection reset by peer|Remote end closed connection without response|"
               r"Connection aborted|Read timed out|timed out)"),
)


def clip(text: str, limit: int) -> str:
    """``text`` of at most ``limit`` characters, cut at a word boundary (never mid-word) and
    ended with an ellipsis when it was cut. A single word longer than the limit is cut hard."""
    text = " ".join(str(text).split())
    if len(text) <= limit:
        return text
    room = max(1, limit - len(ELLIPSIS))
    head = text[:room + 1]
    cut = max(head.rfind(" "), head.rfind(", "), head.rfind("; "))
    head = head[:cut] if cut > 0 else text[:room]
    return head.rstrip(" ,;:(") + ELLIPSIS


def connection_reason(text: str) -> str:
    """The part of a connection error that says what happened (``[Errno 111] Connection
    refused``), without the pool's object reprs around it; the clipped text when none is found."""
    for pattern in _CONNECTION_REASONS:
        m = pattern.search(text)
        if m:
            return m.group(1).strip()
    return clip(text, 200)

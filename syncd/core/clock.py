"""The one source of "now": aware UTC datetimes.

Every timestamp syncd stores or compares is UTC. Code that needs the time takes a ``Clock``
(``ctx.clock``, a repository's ``clock=``) instead of calling ``datetime.now`` itself, so a test
can stop or advance time without patching modules.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    """Now as an aware UTC datetime (naive datetimes compare wrongly with stored ones)."""
    return datetime.now(UTC)

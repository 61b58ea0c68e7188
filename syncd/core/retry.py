"""The one retry policy of the project.

Everything that talks to the outside (shop HTTP, ERP database, SMTP) wraps its call in
``call_with_retry``: ``TransientError`` is retried with exponential backoff and full jitter,
bounded in attempts *and* total time; a peer's ``retry_after`` is honoured (capped by the
remaining budget). Any other exception, including ``PermanentError``, passes straight through.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TypeVar

import structlog
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    retry_if_not_exception_type,
    stop_after_attempt,
    stop_after_delay,
)

from syncd.core.errors import ConfigurationFault, DeliveryUnknown, TransientError

T = TypeVar("T")
log = structlog.get_logger("syncd.retry")


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6
    max_total: float = 120.0  # seconds, across all attempts
    initial: float = 0.5
    maximum: float = 30.0
    multiplier: float = 2.0

    def wait_for(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        backoff = min(self.maximum, self.initial * self.multiplier ** (state.attempt_number - 1))
        delay = random.uniform(0, backoff)  # full jitter: retries of many workers spread out
        if isinstance(exc, TransientError) and exc.retry_after is not None:
            delay = max(delay, float(exc.retry_after))
        remaining = self.max_total - (time.monotonic() - state.start_time)
        return max(0.0, min(delay, remaining))


DEFAULT_POLICY = RetryPolicy()
# Tests swap this for a fast policy; production code never changes it.
_current: RetryPolicy = DEFAULT_POLICY


def set_policy(policy: RetryPolicy) -> RetryPolicy:
    global _current
    previous, _current = _current, policy
    return previous


def current_policy() -> RetryPolicy:
    return _current


def call_with_retry(
    fn: Callable[[], T],
    *,
    what: str,
    policy: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``fn`` and retry it on ``TransientError`` under ``policy``; ``what`` names the
    operation in the log line of each retry."""
    p = policy or _current

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning(
            "retrying",
            what=what,
            attempt=state.attempt_number,
            wait=round(state.next_action.sleep, 2) if state.next_action else None,
            error=str(exc),
        )

    retrying = Retrying(
        # A send whose outcome is unknown is never repeated blindly: a second delivery is a
        # duplicate mail, which the credential flow bounds itself (I5). A configuration fault
        # (a refused login) does not heal within the retry budget.
        retry=retry_if_exception_type(TransientError)
        & retry_if_not_exception_type((DeliveryUnknown, ConfigurationFault)),
        stop=stop_after_attempt(p.attempts) | stop_after_delay(p.max_total),
        wait=p.wait_for,
        sleep=sleep,
        reraise=True,
        before_sleep=before_sleep,
    )
    return retrying(fn)


def retry_after_seconds(value: str | None) -> float | None:
    """An HTTP ``Retry-After`` header (seconds or an HTTP date) as seconds from now; None when
    absent or unreadable. Every connector hands it to the one policy as ``retry_after``."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None

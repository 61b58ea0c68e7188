"""Fault switches for tests: latency, 5xx, 429 with Retry-After, token throttling, hangs.

All switches are plain attributes or small methods guarded by one lock; random faults draw from a
``random.Random(seed)`` so a seeded run fails the same requests every time. Faults apply to the
Admin API (``/api/...``); the Store API stays clean so tests can always check a login.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class Injected:
    status: int
    code: str
    detail: str
    retry_after: int | None = None


class Faults:
    def __init__(self, seed: int = 0):
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self.latency: float = 0.0  # seconds added to every Admin API request
        self.error_rate_5xx: float = 0.0  # 0..1, share of Admin API requests answered with 5xx
        self.error_status: int = 503  # status used by error_rate_5xx
        self.rate_limit: int = 0  # the next N Admin API requests get 429 + Retry-After
        self.rate_limit_per_second: float | None = None  # sustained limit; requests above it get 429
        self.retry_after: int = 1  # Retry-After header value (seconds) on injected 429s
        self.hang: float = 0.0  # seconds a request hangs before it is processed
        self.hang_after_write: float = 0.0  # seconds a request hangs AFTER it was processed (write done)
        self._fail_next: deque[int] = deque()
        self._fail_after_write: deque[int] = deque()
        self._drop = 0
        self._throttled_until = 0.0
        self._window: deque[float] = deque()

    # --- switches --------------------------------------------------------------------------
    def fail_next(self, n: int = 1, status: int = 500, *, after_write: bool = False) -> None:
        """The next ``n`` Admin API requests (token endpoint included) answer ``status``.

        ``after_write=True``: the request is processed first (its write stands) and only the answer
        is replaced, like a proxy's 502/504 after the shop did the work."""
        with self._lock:
            (self._fail_after_write if after_write else self._fail_next).extend([status] * n)

    def drop_next(self, n: int = 1) -> None:
        """The next ``n`` Admin API requests are not processed: the connection is closed unanswered
        (the client sees a connection reset / remote disconnect)."""
        with self._lock:
            self._drop += n

    def take_drop(self) -> bool:
        with self._lock:
            if self._drop > 0:
                self._drop -= 1
                return True
        return False

    @property
    def token_throttle(self) -> float:
        """Seconds the token endpoint still answers 429 FRAMEWORK__AUTH_THROTTLED."""
        return max(0.0, self._throttled_until - time.monotonic())

    @token_throttle.setter
    def token_throttle(self, seconds: float) -> None:
        with self._lock:
            self._throttled_until = time.monotonic() + max(0.0, seconds)

    def reset(self) -> None:
        with self._lock:
            self.latency = self.error_rate_5xx = self.hang = self.hang_after_write = 0.0
            self.rate_limit = 0
            self.rate_limit_per_second = None
            self._fail_next.clear()
            self._fail_after_write.clear()
            self._drop = 0
            self._throttled_until = 0.0
            self._window.clear()

    # --- used by the server ----------------------------------------------------------------
    def token_wait(self) -> int | None:
        remaining = self.token_throttle
        return math.ceil(remaining) if remaining > 0 else None

    def after_write(self) -> Injected | None:
        with self._lock:
            if self._fail_after_write:
                status = self._fail_after_write.popleft()
                return Injected(
                    status, "0", f"sandbox fault: injected {status} after the request was processed"
                )
        return None

    def decide(self) -> Injected | None:
        """What to inject into this Admin API request, if anything (delays are the caller's)."""
        with self._lock:
            if self._fail_next:
                status = self._fail_next.popleft()
                return Injected(status, "0", f"sandbox fault: injected {status}")
            if self.rate_limit > 0:
                self.rate_limit -= 1
                return Injected(429, "FRAMEWORK__RATE_LIMIT_EXCEEDED", "Too many requests.", self.retry_after)
            if self.rate_limit_per_second:
                now = time.monotonic()
                while self._window and now - self._window[0] >= 1.0:
                    self._window.popleft()
                if len(self._window) >= self.rate_limit_per_second:
                    wait = max(1, math.ceil(1.0 - (now - self._window[0])))
                    return Injected(429, "FRAMEWORK__RATE_LIMIT_EXCEEDED", "Too many requests.", wait)
                self._window.append(now)
            if self.error_rate_5xx and self._rng.random() < self.error_rate_5xx:
                return Injected(self.error_status, "0", f"sandbox fault: injected {self.error_status}")
        return None


class TokenLimiter:
    """Shopware's ``oauth`` limiter (policy time_backoff: 10/10 s, 15/30 s, 20/60 s).

    Every attempt counts, a successful one resets the key, so only repeated failures throttle.
    """

    STEPS = ((20, 60), (15, 30), (10, 10))

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._attempts: dict[str, tuple[int, float]] = {}

    def attempt(self, key: str) -> int | None:
        """Count an attempt; return the seconds to wait if the key is throttled."""
        now = time.monotonic()
        with self._lock:
            count, last = self._attempts.get(key, (0, 0.0))
            interval = next((wait for limit, wait in self.STEPS if count >= limit), 0)
            remaining = last + interval - now
            if remaining > 0:
                return math.ceil(remaining)
            self._attempts[key] = (count + 1, now)
            return None

    def success(self, key: str) -> None:
        with self._lock:
            self._attempts.pop(key, None)

"""The Admin API transport: one ``requests.Session`` per platform, OAuth2 client credentials,
error mapping onto syncd's transient/permanent split, retries through ``syncd.core.retry``.

Token rules (shopware-notes §1): the token is kept until shortly before ``expires_in`` runs
out; a 401 invalidates it and the request is re-sent once with a fresh one; a throttled token
endpoint (429 ``FRAMEWORK__AUTH_THROTTLED``, wait in ``meta.parameters.seconds``, no
``Retry-After``) blocks every token request until the wait is over, so no caller can spin.
The token and the client secret are registered with ``syncd.core.redaction`` while held.
"""

from __future__ import annotations

import json as jsonlib
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import requests
import structlog

from syncd.connectors import shop_http
from syncd.connectors.shop_http import HttpResult
from syncd.core import redaction
from syncd.core.errors import PermanentError, TransientError
from syncd.core.retry import call_with_retry, retry_after_seconds
from syncd.core.text import clip

log = structlog.get_logger("syncd.shopware6")

AUTH_THROTTLED = "FRAMEWORK__AUTH_THROTTLED"
USER_AGENT = "syncd-shopware6/1"
# Compact separators: a sync body of 250 customers is ~10% smaller to build, send and parse.
# Bodies are syncd's own plain dicts and lists, never circular: the check would only cost time.
encode_json = jsonlib.JSONEncoder(separators=(",", ":"), check_circular=False).encode


class RawJson(str):
    """A request body already encoded with ``encode_json`` (ASCII JSON text): sent as it is, so
    the encoding can be done ahead, off the thread that talks to the shop."""

    __slots__ = ()


def errors_of(body: Any) -> list[dict[str, Any]]:
    if isinstance(body, dict) and isinstance(body.get("errors"), list):
        return [e for e in body["errors"] if isinstance(e, dict)]
    return []


def describe_errors(body: Any, limit: int = 3) -> tuple[str, str | None]:
    """(human text, first code) of a Shopware error body, redacted and kept short."""
    errors = errors_of(body)
    if not errors:
        text = body if isinstance(body, str) else jsonlib.dumps(body) if body is not None else ""
        return clip(redaction.redact(str(text)), 300), None
    parts = []
    for err in errors[:limit]:
        detail = err.get("detail") or err.get("title") or ""
        pointer = (err.get("source") or {}).get("pointer")
        parts.append(f"{err.get('code')}: {detail}" + (f" at {pointer}" if pointer else ""))
    if len(errors) > limit:
        parts.append(f"... {len(errors) - limit} more")
    code = errors[0].get("code")
    return redaction.redact("; ".join(parts)), (str(code) if code is not None else None)


class ShopwareHttp:
    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        *,
        timeout: float = 30.0,
        connect_timeout: float = 10.0,
        verify: bool = True,
        pool_size: int = 10,
        platform: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id
        self._secret = client_secret
        redaction.register(client_secret)
        self.timeout = (min(connect_timeout, timeout), timeout)
        self.platform = platform
        self._clock = clock
        self.session = shop_http.new_session(verify=verify, pool_size=pool_size, user_agent=USER_AGENT)
        self._lock = threading.Lock()
        self._token: str | None = None
        self._token_valid_until = 0.0
        self._throttled_until = 0.0
        self.requests_sent = 0  # every HTTP request, token requests included (benchmarks read it)
        self.token_requests = 0

    # --- token -----------------------------------------------------------------------------
    def _store_token(self, token: str | None, valid_for: float) -> None:
        old, self._token = self._token, token
        if token:
            redaction.register(token)
        if old and old != token:
            redaction.unregister(old)
        self._token_valid_until = self._clock() + valid_for if token else 0.0

    def _fetch_token(self) -> str:
        now = self._clock()
        if now < self._throttled_until:
            wait = self._throttled_until - now
            raise TransientError(f"shop token endpoint throttled us; {wait:.0f}s left", retry_after=wait)
        body = {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self._secret,
        }
        self.token_requests += 1
        resp = self._send("POST", "/api/oauth/token", body, None, token=None)
        data = self._decode(resp)
        if resp.status_code == 200 and isinstance(data, dict) and data.get("access_token"):
            expires_in = float(data.get("expires_in") or 600)
            margin = min(60.0, expires_in * 0.1)
            self._store_token(str(data["access_token"]), max(0.0, expires_in - margin))
            log.debug("shop token obtained", platform=self.platform, expires_in=expires_in)
            return self._token  # type: ignore[return-value]
        text, code = describe_errors(data)
        if resp.status_code == 429:
            seconds = None
            for err in errors_of(data):
                if err.get("code") == AUTH_THROTTLED:
                    seconds = ((err.get("meta") or {}).get("parameters") or {}).get("seconds")
            wait = (
                float(seconds)
                if seconds is not None
                else (retry_after_seconds(resp.headers.get("Retry-After")) or 1.0)
            )
            self._throttled_until = self._clock() + wait
            raise TransientError(f"shop token endpoint throttled us for {wait:.0f}s", retry_after=wait)
        if resp.status_code >= 500:
            raise TransientError(f"shop token endpoint answered {resp.status_code}: {text}")
        raise PermanentError(
            f"the shop refused the integration credentials (client_id {self.client_id!r}, HTTP "
            f"{resp.status_code}): {text}",
            code=code,
        )

    def token(self) -> str:
        with self._lock:
            if self._token and self._clock() < self._token_valid_until:
                return self._token
            return self._fetch_token()

    def _invalidate(self, token: str) -> None:
        with self._lock:
            if self._token == token:
                self._store_token(None, 0)

    # --- requests --------------------------------------------------------------------------
    def _send(
        self, method: str, path: str, body: Any, headers: Mapping[str, str] | None, token: str | None
    ) -> requests.Response:
        hdrs = dict(headers or {})
        if token:
            hdrs["Authorization"] = f"Bearer {token}"
        if body is None:
            data = None
        else:  # ASCII: cheapest to encode
            data = (body if isinstance(body, RawJson) else encode_json(body)).encode("ascii")
        self.requests_sent += 1
        return shop_http.send(self.session, method, self.base_url + path, path, data=data, headers=hdrs,
                              timeout=self.timeout, log=log, platform=self.platform)

    _decode = staticmethod(shop_http.decode)

    def _attempt(
        self,
        method: str,
        path: str,
        body: Any,
        headers: Mapping[str, str] | None,
        pass_statuses: frozenset[int],
        auth: bool = True,
    ) -> HttpResult:
        token = self.token() if auth else None
        resp = self._send(method, path, body, headers, token)
        if resp.status_code == 401 and token is not None:
            # Expired early, revoked, or the shop restarted with new keys: one fresh token, once.
            self._invalidate(token)
            token = self.token()
            resp = self._send(method, path, body, headers, token)
            if resp.status_code == 401:
                text, code = describe_errors(self._decode(resp))
                raise PermanentError(
                    f"the shop rejected a fresh access token on {method} {path}: {text}", code=code
                )
        data = self._decode(resp)
        status = resp.status_code
        if 200 <= status < 300 or status in pass_statuses:
            return HttpResult(status, data, resp.headers)
        shop_http.fail(method, path, resp, *describe_errors(data))

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: Mapping[str, str] | None = None,
        pass_statuses: frozenset[int] = frozenset(),
        auth: bool = True,
    ) -> HttpResult:
        """One logical request: retried on transient faults, 4xx raised as ``PermanentError``
        unless listed in ``pass_statuses`` (then returned for the caller to read)."""
        return call_with_retry(
            lambda: self._attempt(method, path, body, headers, pass_statuses, auth),
            what=f"shopware {self.platform} {method} {path}",
        )

    def close(self) -> None:
        self.session.close()
        with self._lock:
            self._store_token(None, 0)
        redaction.unregister(self._secret)

"""The WooCommerce REST API v3 transport: one ``requests.Session`` per platform, consumer key and
secret, error mapping onto syncd's transient/permanent split, retries through ``syncd.core.retry``.

Authentication (shopware-notes §7): over HTTPS, HTTP Basic with the consumer key and secret;
over plain HTTP WooCommerce accepts only OAuth 1.0a "one-legged" (signed query parameters,
HMAC-SHA256), so that is what an ``http://`` URL gets - the secret never travels in clear
there. TLS verification is on unless the platform turns it off. The secret is registered with
``syncd.core.redaction`` while held.

Errors come as ``{"code", "message", "data": {"status"}}`` (no ``errors`` array): 429, 408
and 5xx are transient, timeouts and dropped connections too; other 4xx are permanent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json as jsonlib
import secrets
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import structlog

from syncd.connectors import shop_http
from syncd.connectors.shop_http import HttpResult
from syncd.core import redaction
from syncd.core.errors import PermanentError
from syncd.core.retry import call_with_retry

log = structlog.get_logger("syncd.woocommerce")

API_PREFIX = "/wp-json/wc/v3"
USER_AGENT = "syncd-woocommerce/1"
encode_json = jsonlib.JSONEncoder(separators=(",", ":"), check_circular=False).encode


def describe_error(body: Any) -> tuple[str, str | None]:
    """(human text, code) of a WordPress REST error body, redacted and kept short."""
    if isinstance(body, dict) and "code" in body:
        text = f"{body.get('code')}: {body.get('message') or ''}".strip()
        return redaction.redact(text[:300]), str(body.get("code"))
    text = body if isinstance(body, str) else jsonlib.dumps(body)[:300] if body is not None else ""
    return redaction.redact(str(text)[:300]), None


def _pct(value: str) -> str:
    return quote(value, safe="~-._")


def oauth1_params(
    method: str,
    url: str,
    query: Mapping[str, str],
    key: str,
    secret: str,
    *,
    nonce: str | None = None,
    timestamp: str | None = None,
) -> dict[str, str]:
    """The OAuth 1.0a one-legged parameters WooCommerce checks over plain HTTP (RFC 5849 §3.4:
    base string of method, URL without query, sorted percent-encoded parameters; the key is the
    consumer secret plus "&", there is no token secret)."""
    params = dict(query)
    params.update(
        {
            "oauth_consumer_key": key,
            "oauth_nonce": nonce or secrets.token_hex(16),
            "oauth_signature_method": "HMAC-SHA256",
            "oauth_timestamp": timestamp or str(int(time.time())),
        }
    )
    params["oauth_signature"] = oauth1_signature(method, url, params, secret)
    return params


def oauth1_signature(method: str, url: str, params: Mapping[str, str], secret: str) -> str:
    parts = urlsplit(url)
    base_url = f"{parts.scheme}://{parts.netloc}{parts.path}"
    pairs = sorted((_pct(k), _pct(str(v))) for k, v in params.items() if k != "oauth_signature")
    normalised = "&".join(f"{k}={v}" for k, v in pairs)
    base = "&".join((method.upper(), _pct(base_url), _pct(normalised)))
    digest = hmac.new(f"{secret}&".encode(), base.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


class WooHttp:
    def __init__(
        self,
        base_url: str,
        consumer_key: str,
        consumer_secret: str,
        *,
        timeout: float = 30.0,
        connect_timeout: float = 10.0,
        verify: bool = True,
        pool_size: int = 10,
        platform: str = "",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.consumer_key = consumer_key
        self._secret = consumer_secret
        redaction.register(consumer_secret)
        self.timeout = (min(connect_timeout, timeout), timeout)
        self.platform = platform
        self.https = self.base_url.startswith("https://")
        self.session = shop_http.new_session(verify=verify, pool_size=pool_size, user_agent=USER_AGENT)
        if self.https:
            self.session.auth = (consumer_key, consumer_secret)
        self.requests_sent = 0

    def _url_and_query(self, method: str, path: str, query: Mapping[str, Any] | None) -> tuple[str, str]:
        url = self.base_url + API_PREFIX + path
        q = {k: str(v) for k, v in (query or {}).items() if v is not None}
        if not self.https:
            q = oauth1_params(method, url, q, self.consumer_key, self._secret)
        return url, urlencode(q, quote_via=quote)

    def _attempt(
        self,
        method: str,
        path: str,
        body: Any,
        query: Mapping[str, Any] | None,
        pass_statuses: frozenset[int],
    ) -> HttpResult:
        url, qs = self._url_and_query(method, path, query)
        data = None if body is None else encode_json(body).encode("ascii")
        self.requests_sent += 1
        resp = shop_http.send(self.session, method, url + (f"?{qs}" if qs else ""), path, data=data,
                              timeout=self.timeout, log=log, platform=self.platform)
        payload = shop_http.decode(resp)
        status = resp.status_code
        if 200 <= status < 300 or status in pass_statuses:
            return HttpResult(status, payload, resp.headers)
        text, code = describe_error(payload)
        if status == 401:
            raise PermanentError(
                f"the shop refused the REST API key (consumer_key {self.consumer_key!r}, HTTP 401): {text}",
                code=code,
            )
        shop_http.fail(method, path, resp, text, code)

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: Mapping[str, Any] | None = None,
        pass_statuses: frozenset[int] = frozenset(),
        tries: list[float] | None = None,
    ) -> HttpResult:
        """One logical request under the one retry policy; 4xx raised as ``PermanentError``
        unless listed in ``pass_statuses``. ``path`` is below ``/wp-json/wc/v3``. ``tries``, when
        given, receives the wall-clock time of each attempt (the push tells a create that may have
        reached the shop on an earlier attempt by it)."""

        def attempt() -> HttpResult:
            if tries is not None:
                tries.append(time.time())
            return self._attempt(method, path, body, query, pass_statuses)

        return call_with_retry(attempt, what=f"woocommerce {self.platform} {method} {path}")

    def close(self) -> None:
        self.session.close()
        redaction.unregister(self._secret)

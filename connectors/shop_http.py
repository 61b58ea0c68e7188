"""What the shop connectors' HTTP transports share (Shopware 6 Admin API, WooCommerce REST API):
the result of one request, sending it with the network faults mapped onto syncd's
transient/permanent split, reading the body, and the status codes every shop API treats alike
(408/429 and 5xx transient, honouring ``Retry-After``; other 4xx permanent).

What differs stays in each connector: authentication (OAuth2 tokens, consumer key/secret) and
how an error body reads (``describe`` passed in)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

import requests
from requests.adapters import HTTPAdapter

from syncd.core import redaction
from syncd.core.errors import PermanentError, TransientError
from syncd.core.retry import retry_after_seconds
from syncd.core.text import clip, connection_reason


@dataclass(frozen=True)
class HttpResult:
    status: int
    body: Any
    headers: Mapping[str, str]


def new_session(*, verify: bool, pool_size: int, user_agent: str) -> requests.Session:
    """A JSON API session: one pool of ``pool_size`` connections, TLS verification as configured,
    no retries of its own (the one retry policy, ``syncd.core.retry``, decides)."""
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=2, pool_maxsize=pool_size, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.verify = verify
    session.headers.update(
        {"Accept": "application/json", "Content-Type": "application/json", "User-Agent": user_agent}
    )
    return session


def send(session: requests.Session, method: str, url: str, path: str, *, data: bytes | None,
         headers: Mapping[str, str] | None = None, timeout: float, log: Any,
         platform: str) -> requests.Response:
    """One HTTP request. ``path`` names it in errors and in the debug log (never the query,
    which may carry a signature). TLS failures are permanent (a certificate the shop does not
    pass today will not pass on retry either); timeouts and dropped connections transient."""
    started = time.perf_counter()
    try:
        resp = session.request(method, url, data=data, headers=headers, timeout=timeout)
    except requests.exceptions.SSLError as exc:
        raise PermanentError(
            f"shop {method} {path}: TLS verification failed ({clip(redaction.redact(str(exc)), 200)})",
            code="SYNCD__TLS",
        ) from None
    except requests.Timeout as exc:
        raise TransientError(f"shop {method} {path} timed out ({type(exc).__name__})") from None
    except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
        raise TransientError(
            f"shop {method} {path}: connection failed ({connection_reason(redaction.redact(str(exc)))})"
        ) from None
    log.debug("shop request", platform=platform, method=method, path=path, status=resp.status_code,
              ms=round((time.perf_counter() - started) * 1000, 1))
    return resp


def decode(resp: requests.Response) -> Any:
    """The JSON body, the start of a body that is not JSON, or None for an empty one."""
    if not resp.content:
        return None
    try:
        return resp.json()
    except ValueError:
        return clip(resp.text, 500)


def fail(method: str, path: str, resp: requests.Response, text: str, code: str | None) -> NoReturn:
    """Raise for an answer the caller does not accept: ``text``/``code`` are its error body as
    the connector reads it."""
    status = resp.status_code
    wait = retry_after_seconds(resp.headers.get("Retry-After"))
    if status in (408, 429):
        raise TransientError(f"shop {method} {path} answered {status} (rate limited): {text}",
                             retry_after=wait)
    if status >= 500:
        raise TransientError(f"shop {method} {path} answered {status}: {text}", retry_after=wait)
    raise PermanentError(f"shop {method} {path} answered {status}: {text}", code=code)

"""What each SMS provider's HTTP API wants and what its answers mean (sources in README.md).

A provider here is two pure functions: ``request`` (to, text -> method, URL, headers, body) and
``outcome`` (HTTP status, headers, body -> the provider's message id, or one of syncd's errors).
``connectors.sms.transport`` does the I/O around them, so the mapping is tested on its own and
the loopback fakes in ``tests/support/fakes/sms_providers.py`` answer what these expect.

Error mapping, the same for every provider:
- the provider refused our account or setup (key, sender, IP allow-list, no credit):
  ``ConfigurationFault`` naming the ``[sms]`` key; every message waits until the operator fixes it;
- the provider refused this message (bad number, text too long): ``PermanentError``;
- throttling (HTTP 429, seven's per-number daily limit) and server faults: ``TransientError``,
  with the peer's ``Retry-After`` when it sent one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from syncd.config.messaging import SmsSettings
from syncd.core import redaction
from syncd.core.errors import ConfigurationFault, PermanentError, TransientError
from syncd.core.retry import retry_after_seconds

SEVEN_URL = "https://gateway.seven.io/api/sms"
LOX24_URL = "https://api.lox24.eu/sms"


@dataclass(frozen=True)
class SmsRequest:
    url: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Mapping[str, str]
    text: str

    def json(self) -> Any:
        try:
            return json.loads(self.text)
        except ValueError:
            return None


def retry_after(headers: Mapping[str, str]) -> float | None:
    return retry_after_seconds(next((v for k, v in headers.items() if k.lower() == "retry-after"), None))


def _short(text: str) -> str:
    return redaction.redact(" ".join(text.split())[:200])


def _http_common(reply: Reply, provider: str) -> None:
    """The HTTP-level answers every provider shares."""
    if reply.status == 429:
        raise TransientError(f"{provider}: throttled (HTTP 429) / gedrosselt",
                             retry_after=retry_after(reply.headers))
    if reply.status >= 500:
        raise TransientError(f"{provider}: server error HTTP {reply.status}: {_short(reply.text)}",
                             retry_after=retry_after(reply.headers))


# --- seven.io (formerly sms77) ----------------------------------------------------------------

# The API's return codes (docs.seven.io, "Return codes" of POST /api/sms): 100 is success.
SEVEN_CONFIG = {
    201: ("sms.sender_id", "sender ID invalid"),
    500: ("sms.password", "too little credit on the account / Guthaben zu gering"),
    900: ("sms.password", "authentication failed (API key) / Anmeldung fehlgeschlagen"),
    901: ("sms.password", "signature verification failed"),
    902: ("sms.password", "the API key has no access to this endpoint"),
    903: ("sms.public_ip", "the server's IP is not on the account's allow-list"),
}
SEVEN_PERMANENT = {
    202: "recipient number invalid / Empfängernummer ungültig",
    301: "recipient missing",
    305: "text invalid",
    401: "text too long",
}
SEVEN_TRANSIENT = {
    403: "daily limit for this recipient reached",
    600: "carrier delivery failed",
    700: "unknown error at the provider",
}
SEVEN_DUPLICATE = 402  # "reload lock": the same SMS to the same number within 180 s was not sent again


def seven_request(settings: SmsSettings, password: str, to: str, text: str) -> SmsRequest:
    body = {"to": to, "text": text, "from": settings.sender_id}
    return SmsRequest(
        url=settings.url or SEVEN_URL,
        headers={"X-Api-Key": password, "Accept": "application/json", "Content-Type": "application/json"},
        body=json.dumps(body).encode(),
    )


def seven_outcome(reply: Reply) -> str:
    _http_common(reply, "seven")
    if reply.status in (401, 403):
        raise ConfigurationFault(f"seven: HTTP {reply.status}: {_short(reply.text)}", key="sms.password")
    if reply.status >= 400:
        raise PermanentError(f"seven: HTTP {reply.status}: {_short(reply.text)}")
    data = reply.json()
    raw = data.get("success") if isinstance(data, dict) else reply.text.strip().split("\n", 1)[0]
    try:
        code = int(str(raw).strip())
    except ValueError:
        raise TransientError(f"seven: unreadable answer: {_short(reply.text)}") from None
    if code in (100, 101):
        message = (data.get("messages") or [{}])[0] if isinstance(data, dict) else {}
        if code == 101 and not message.get("success", False):
            reason = message.get("error_text") or message.get("error") or "not sent"
            raise PermanentError(f"seven: code 101: {_short(str(reason))}")
        return str(message.get("id") or "")
    if code == SEVEN_DUPLICATE:
        # The provider's own deduplication: this very text went to this number moments ago
        # (our send whose answer was lost). Counted as sent: a second SMS is what it prevented.
        return "duplicate-of-recent"
    if code in SEVEN_CONFIG:
        key, what = SEVEN_CONFIG[code]
        raise ConfigurationFault(f"seven: code {code}: {what}", key=key)
    if code in SEVEN_PERMANENT:
        raise PermanentError(f"seven: code {code}: {SEVEN_PERMANENT[code]}")
    what = SEVEN_TRANSIENT.get(code, "unexpected return code")
    raise TransientError(f"seven: code {code}: {what}")


# --- LOX24 ------------------------------------------------------------------------------------


def lox24_token(settings: SmsSettings, password: str) -> str:
    return f"{settings.username}:{password}"


def lox24_request(settings: SmsSettings, password: str, to: str, text: str) -> SmsRequest:
    token = lox24_token(settings, password)
    redaction.register(token)  # "id:key" is a string of its own; the key alone is registered already
    body = {"sender_id": settings.sender_id, "phone": to, "text": text, "service_code": "direct",
            "is_unicode": not _gsm7(text)}
    return SmsRequest(
        url=settings.url or LOX24_URL,
        headers={"X-LOX24-AUTH-TOKEN": token, "Accept": "application/json",
                 "Content-Type": "application/json"},
        body=json.dumps(body).encode(),
    )


def _lox24_reason(reply: Reply) -> str:
    data = reply.json()
    if isinstance(data, dict):
        violations = data.get("violations")
        if isinstance(violations, list) and violations:
            return "; ".join(f"{v.get('propertyPath')}: {v.get('message')}" for v in violations[:3]
                             if isinstance(v, dict))
        for key in ("hydra:description", "detail", "message", "title", "hydra:title"):
            if data.get(key):
                return _short(str(data[key]))
    return _short(reply.text)


def lox24_outcome(reply: Reply) -> str:
    if reply.status == 429:
        # LOX24 blocks an IP for ten minutes after more than three failed logins in a minute;
        # any 429 is waited for (Retry-After when sent, else the documented ten minutes).
        raise TransientError("lox24: throttled (HTTP 429) / gedrosselt",
                             retry_after=retry_after(reply.headers) or 600.0)
    _http_common(reply, "lox24")
    if reply.status in (200, 201):
        data = reply.json()
        return str(data.get("uuid") or data.get("id") or "") if isinstance(data, dict) else ""
    reason = _lox24_reason(reply)
    if reply.status == 401:
        raise ConfigurationFault(f"lox24: unauthorised: {reason}", key="sms.password")
    if reply.status == 402:
        raise ConfigurationFault(f"lox24: not enough credit / Guthaben zu gering: {reason}",
                                 key="sms.password")
    if reply.status == 403:
        raise ConfigurationFault(f"lox24: forbidden: {reason}", key="sms.username")
    raise PermanentError(f"lox24: HTTP {reply.status}: {reason}")


_GSM7 = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    "ÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà^{}\\[~]|€"
)


def _gsm7(text: str) -> bool:
    return all(ch in _GSM7 for ch in text)


# --- generic templated POST -------------------------------------------------------------------

_env = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)


def http_request(settings: SmsSettings, password: str | None, to: str, text: str) -> SmsRequest:
    values = {"to": to, "text": text, "sender_id": settings.sender_id, "username": settings.username,
              "password": password, "public_ip": settings.public_ip}
    try:
        body = _env.from_string(settings.body_template or "").render(values)
        headers = {k: _env.from_string(v).render(values) for k, v in settings.headers.items()}
    except jinja2.TemplateError as exc:
        raise ConfigurationFault(f"http: the template cannot be rendered: {exc}",
                                 key="sms.body_template") from None
    headers.setdefault("Content-Type", settings.content_type)
    return SmsRequest(url=settings.url or "", headers=headers, body=body.encode())


def http_outcome(reply: Reply) -> str:
    _http_common(reply, "http")
    if 200 <= reply.status < 300:
        data = reply.json()
        return str(data.get("id") or "") if isinstance(data, dict) else ""
    if reply.status in (401, 403):
        raise ConfigurationFault(f"http: HTTP {reply.status}: {_short(reply.text)}", key="sms.password")
    raise PermanentError(f"http: HTTP {reply.status}: {_short(reply.text)}")


PROVIDERS = {
    "seven": (seven_request, seven_outcome),
    "lox24": (lox24_request, lox24_outcome),
    "http": (http_request, http_outcome),
}

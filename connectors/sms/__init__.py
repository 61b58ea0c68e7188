"""The SMS channel: one HTTP POST per message to the provider ``[sms] provider`` names.

``SmsTransport.send`` runs through the one retry policy (``syncd.core.retry``). A request whose
answer is lost after it was sent (a read timeout, a dropped connection) is ``DeliveryUnknown``:
the provider may have sent the SMS, so it is never repeated in place; the caller's durable send
record decides (at most one repeat). The API key is registered with ``syncd.core.redaction``.
"""

from __future__ import annotations

from collections.abc import Callable

import requests
import structlog

from syncd.config.messaging import SmsSettings
from syncd.core import redaction
from syncd.core.domain import CheckItem
from syncd.core.errors import ConfigError, DeliveryUnknown, TransientError
from syncd.core.retry import call_with_retry

from .providers import PROVIDERS, Reply

log = structlog.get_logger("syncd.sms")
USER_AGENT = "syncd-sms/1"

__all__ = ["SmsTransport", "open_sms"]


class SmsTransport:
    def __init__(self, settings: SmsSettings, *, password: str | None,
                 session: requests.Session | None = None) -> None:
        if settings.provider not in PROVIDERS:
            raise ConfigError("unknown SMS provider", key="sms.provider", value=settings.provider,
                              allowed=", ".join(PROVIDERS))
        self.settings = settings
        self._password = password or ""
        redaction.register(password)
        self._build, self._outcome = PROVIDERS[settings.provider]
        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        self.sent = 0

    @property
    def provider(self) -> str:
        return self.settings.provider

    def send(self, to: str, text: str, *, on_commit: Callable[[], None] | None = None) -> str:
        """Send ``text`` to ``to`` (E.164); the provider's message id. ``on_commit`` runs right
        before each request leaves, the point from which the SMS may be sent."""

        def attempt() -> str:
            request = self._build(self.settings, self._password, to, text)
            if on_commit is not None:
                on_commit()
            try:
                response = self.session.post(
                    request.url, data=request.body, headers=request.headers,
                    timeout=(min(5.0, self.settings.timeout), self.settings.timeout),
                )
            except requests.ConnectionError as exc:  # ConnectTimeout included: nothing was sent
                if _after_send(exc):
                    raise DeliveryUnknown(f"sms {self.provider}: no answer after sending: "
                                          f"{type(exc).__name__}") from None
                raise TransientError(f"sms {self.provider}: cannot connect: {type(exc).__name__}") from None
            except requests.ReadTimeout:
                raise DeliveryUnknown(
                    f"sms {self.provider}: no answer within {self.settings.timeout}s") from None
            reply = Reply(response.status_code, dict(response.headers), response.text)
            return self._outcome(reply)

        message_id = call_with_retry(attempt, what=f"sms {self.provider}")
        self.sent += 1
        log.info("sms sent", provider=self.provider, message_id=message_id)
        return message_id

    def check(self) -> list[CheckItem]:
        """Static: the configuration is complete (nothing is sent, a test SMS costs money)."""
        s = self.settings
        detail = f"provider {s.provider}, sender {s.sender_id!r}" + (f", {s.url}" if s.url else "")
        return [CheckItem("sms", s.provider, True, detail)]

    def close(self) -> None:
        self.session.close()


def _after_send(exc: Exception) -> bool:
    """A connection error that happened once the request was out (reset, or the peer closed
    without answering): the provider may have acted on it."""
    text = str(exc)
    return any(s in text for s in ("RemoteDisconnected", "Connection aborted", "ConnectionResetError"))


def open_sms(settings: SmsSettings, password: str | None) -> SmsTransport | None:
    """The transport of ``[sms]``, or None when the channel is off."""
    return SmsTransport(settings, password=password) if settings.enabled else None

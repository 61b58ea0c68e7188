"""Settings of the messages beside the credentials mail: the SMS channel, channel choice, order
reminders (``[[reminders]]``) and event mails per customer group (``[[notifications]]``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from syncd.config.base import SECRET, Duration, FieldProblem, _Model

Channel = Literal["email", "sms", "both", "none"]


class SmsSettings(_Model):
    enabled: bool = False
    # seven: seven.io (sms77) REST API; lox24: LOX24 REST API; http: a templated POST to any provider.
    provider: Literal["seven", "lox24", "http"] = "seven"
    url: str | None = None  # default: the provider's documented endpoint; required for "http"
    username: str | None = None  # LOX24: the client id; http: available as {{ username }}
    password: str | None = Field(default=None, json_schema_extra=SECRET)  # the provider's API key / token
    sender_id: str = Field(default="Shop", pattern=r"^(\+?[1-9][0-9]{0,14}|[A-Za-z0-9 ]{1,11})$")
    public_ip: str | None = None  # for providers that want the client's public IP in each request
    timeout: Duration = 15.0
    # provider = "http": the request body (Jinja2, rendered with to, text, sender_id, username,
    # password, public_ip) and its content type; a 2xx answer is success.
    body_template: str | None = None
    content_type: str = "application/json"
    headers: dict[str, str] = {}

    @model_validator(mode="after")
    def _provider_needs(self) -> SmsSettings:
        if not self.enabled:
            return self
        if self.provider == "http" and not (self.url and self.body_template):
            raise FieldProblem("url" if not self.url else "body_template",
                               'provider = "http" needs url and body_template')
        if self.provider in ("seven", "lox24") and not self.password:
            raise FieldProblem("password", f"provider = {self.provider!r} needs password (the API key)")
        if self.provider == "lox24" and not self.username:
            raise FieldProblem("username", 'provider = "lox24" needs username (the LOX24 client id)')
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise FieldProblem("url", "must be an http:// or https:// URL", self.url)
        return self


class MessagesSettings(_Model):
    default_channel: Channel = "email"  # for customers whose preferred_channel is empty
    fallback_to_email: bool = True  # an SMS that cannot go out (no/unusable number) goes by e-mail
    # Phone region when the address has no usable country.
    default_region: str = Field(default="DE", pattern=r"^[A-Z]{2}$")
    allow_password_by_sms: bool = False  # a password goes by SMS only when true (`check` and the run)


ReminderKind = Literal["shipping_confirmation", "review_request", "prepayment"]
REPEATING_KINDS = ("prepayment",)  # the only kind with more than one message per order


class ReminderSettings(_Model):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    kind: ReminderKind
    platform: str | None = None  # default: every platform
    delay: Duration = Field(default=0.0, ge=0)  # after the trigger (shipped / order placed)
    repeat: Duration | None = Field(default=None, gt=0)  # prepayment: then every `repeat`
    max_messages: int = Field(default=1, ge=1, le=100)
    layout: str
    channel: Channel | Literal["preferred"] = "preferred"
    only_when_delivered: bool = False  # shipping-based kinds: only when fully shipped, not partially

    @model_validator(mode="after")
    def _kind_rules(self) -> ReminderSettings:
        if self.max_messages > 1 and self.repeat is None:
            raise FieldProblem("repeat", "max_messages > 1 needs repeat (the interval between messages)",
                               self.max_messages)
        if self.kind not in REPEATING_KINDS and self.max_messages > 1:
            raise FieldProblem("max_messages", f"{self.kind} is sent once per order", self.max_messages)
        return self


NotificationEvent = Literal[
    "access_requested", "approved", "rejected", "validated", "blocked", "password_reset",
    "new_main_contact", "former_main_contact", "forgot_username",
]
# Shipped event layouts whose folder is not the event's name: "password_reset" is the layout of
# the credentials mail a staff reset sends (with the new password); the event's notice is apart.
EVENT_LAYOUTS = {"password_reset": "password_reset_notice"}


class NotificationSettings(_Model):
    """One ``[[notifications]]`` table: which layout mails an event for a customer group."""

    group: str = "*"  # an ERP customer group value, or "*" for every group
    event: NotificationEvent
    layout: str | None = None  # default: the event's name (layouts/<event>/, <event>_en/ ship; EVENT_LAYOUTS)
    sender: str | None = None  # overrides the platform's and [mail] sender for this group
    internal_to: tuple[str, ...] = ()  # internal recipients, mailed for every occurrence
    to_customer: bool = True  # also mail the customer (the address's e-mail)
    enabled: bool = True

    @property
    def layout_name(self) -> str:
        return self.layout or EVENT_LAYOUTS.get(self.event, self.event)


def sms_possible(settings: Any) -> bool:  # a syncd.config.model.Settings
    """Can any customer be messaged by SMS: the channel is on, and either the default channel
    includes SMS or customers choose their own (``[erp.columns] preferred_channel``)."""
    return settings.sms.enabled and (
        settings.messages.default_channel in ("sms", "both") or bool(settings.erp.columns.preferred_channel)
    )

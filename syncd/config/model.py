"""Typed settings: the TOML file of spec §2, validated.

Every model forbids unknown keys (a typo must not be ignored). Secret-bearing keys hold a
*reference* (``keyring:SERVICE/NAME``, ``env:VAR``, ``credential:NAME``) or, with a warning,
a plain value; ``syncd.config.secrets`` resolves them. Defaults here are the documented
defaults of ``config.example.toml``.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from syncd.config.durations import parse_duration

Duration = Annotated[float, BeforeValidator(parse_duration)]

# No look-alikes (0/O, 1/l/I) so a customer can type the password from a printout.
DEFAULT_ALPHABET = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def default_state_url() -> str:
    if sys.platform == "win32":
        base = os.environ.get("PROGRAMDATA", r"C:\ProgramData")
        return "sqlite:///" + os.path.join(base, "syncd", "state.db").replace("\\", "/")
    return "sqlite:////var/lib/syncd/state.db"


class FieldProblem(ValueError):
    """A cross-field check failed; ``path`` names the key at fault relative to the model that
    raised it, so the loader reports ``platforms[0].addresses.password_field`` rather than
    just the enclosing table."""

    def __init__(self, path: str | tuple[str | int, ...], message: str, value: Any = None) -> None:
        super().__init__(message)
        self.path = (path,) if isinstance(path, str) else tuple(path)
        self.value = value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DaemonSettings(_Model):
    state_url: str = Field(default_factory=default_state_url)
    poll_interval: Duration = 60.0
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    metrics_host: str = "127.0.0.1"
    pid_file: str | None = None  # default: next to the state DB, or /run/syncd/syncd.pid
    lease_ttl: Duration = 300.0
    shutdown_timeout: Duration = 30.0
    cache_ttl: Duration | None = None  # None: kept until `syncd clear-cache`
    # How often the daemon reconciles ERP, links and shop in full (`syncd sync --full`); "0s": never.
    reconcile_interval: Duration = Field(default=86400.0, ge=0)


class ErpColumns(_Model):
    number: str | None = None
    company: str | None = None
    salutation: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    street: str | None = None
    zip: str | None = None
    city: str | None = None
    country: str | None = None
    email: str | None = None
    phone: str | None = None
    customer_group: str | None = None
    blocked: str | None = None
    modified_at: str | None = None
    shop_id: str | None = None  # optional column where imported rows keep the shop customer id
    mobile: str | None = None  # mobile number for SMS (normalised to E.164, the address's country as region)
    preferred_channel: str | None = None  # optional per-customer choice: e-mail / SMS / both / none


class ErpSettings(_Model):
    url: str
    password: str | None = None
    profile: Literal["generic", "bueroplus"] = "generic"
    address_table: str | None = None  # table holding the password field; receives new addresses
    read_source: str | None = None  # table or view to read addresses from (default: address_table)
    schema_: str | None = Field(default=None, alias="schema")
    debtor_range: tuple[int, int] = (10000, 69999)
    batch_size: int = Field(default=500, ge=1, le=50_000)
    overlap: Duration = 300.0  # change-detection overlap window
    pool_size: int = Field(default=5, ge=1, le=100)
    connect_timeout: Duration = 15.0
    columns: ErpColumns = ErpColumns()

    @model_validator(mode="after")
    def _range(self) -> ErpSettings:
        lo, hi = self.debtor_range
        if lo > hi:
            raise FieldProblem(
                "debtor_range", f"lower bound {lo} is above upper bound {hi}", list(self.debtor_range)
            )
        return self


class MailAccount(_Model):
    """A named SMTP account (``[mail.accounts.NAME]``) a platform mails from (``platforms[].mail``),
    so each shop sends from its own server and sender."""

    host: str
    port: int = Field(default=587, ge=1, le=65535)
    security: Literal["starttls", "ssl", "none"] = "starttls"
    username: str | None = None
    password: str | None = None
    verify_tls: bool = True
    ca_file: str | None = None
    timeout: Duration = 30.0
    sender: str
    reply_to: str | None = None


class MailSettings(_Model):
    transport: Literal["smtp", "outbox"] = "smtp"
    host: str = "localhost"
    port: int = Field(default=587, ge=1, le=65535)
    security: Literal["starttls", "ssl", "none"] = "starttls"
    username: str | None = None
    password: str | None = None
    verify_tls: bool = True
    ca_file: str | None = None
    timeout: Duration = 30.0
    sender: str = "Shop <shop@example.com>"
    reply_to: str | None = None
    layouts_dir: str | None = None
    outbox_dir: str | None = None  # required when transport = "outbox"
    batch_size: int = Field(default=100, ge=1, le=10_000)
    accounts: dict[str, MailAccount] = {}

    @model_validator(mode="after")
    def _outbox(self) -> MailSettings:
        if self.transport == "outbox" and not self.outbox_dir:
            raise FieldProblem("outbox_dir", 'outbox_dir is required when transport = "outbox"')
        return self


Channel = Literal["email", "sms", "both", "none"]


class SmsSettings(_Model):
    enabled: bool = False
    # seven: seven.io (sms77) REST API; lox24: LOX24 REST API; http: a templated POST to any provider.
    provider: Literal["seven", "lox24", "http"] = "seven"
    url: str | None = None  # default: the provider's documented endpoint; required for "http"
    username: str | None = None  # LOX24: the client id; http: available as {{ username }}
    password: str | None = None  # secret reference: the provider's API key / token
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
    allow_password_by_sms: bool = False  # credential SMS carrying a password: refused by `check` unless true


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


class AddressSettings(_Model):
    erp_to_shop: bool = True
    send_credentials: bool = False  # needs password_field; off until the operator opts in
    credential_mode: Literal["password", "link"] = "password"
    email_layout: str = "credentials"
    password_field: str | None = None
    password_length: int = Field(default=12, ge=8, le=128)
    password_alphabet: str = Field(default=DEFAULT_ALPHABET, min_length=10)
    skip_blocked: bool = True
    deactivate_blocked: bool = True
    shop_to_erp: bool = True
    next_address_number: int | None = None
    only_with_orders: bool = True
    allow_numbers_outside_debtor_range: bool = False
    template_address: int | None = None
    copy_fields: tuple[str, ...] = ()
    collective_address: int | None = None
    # "auto": a customer's own registration / group request is approved at once; "manual": it
    # waits "in progress" for `syncd accounts approve|reject`.
    approval: Literal["auto", "manual"] = "auto"

    @model_validator(mode="after")
    def _credentials_need_field(self) -> AddressSettings:
        if self.send_credentials and self.credential_mode == "link":
            # Refused rather than accepted and ignored: the flow would silently mail nobody.
            raise FieldProblem(
                "credential_mode",
                'set-password link mails are not available in this release; use credential_mode = "password"',
                self.credential_mode,
            )
        if self.erp_to_shop and self.send_credentials and self.credential_mode == "password":
            if not self.password_field:
                raise FieldProblem(
                    "password_field",
                    "password_field is required when send_credentials = true and "
                    'credential_mode = "password"',
                )
        if len(set(self.password_alphabet)) < 10:
            raise FieldProblem(
                "password_alphabet", "needs at least 10 distinct characters", self.password_alphabet
            )
        return self


class PlatformSettings(_Model):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    kind: Literal["shopware6"] = "shopware6"
    url: str
    client_id: str
    client_secret: str
    sales_channel: str = "Storefront"
    customer_group: str | None = None  # default group name; None: the sales channel's default
    customer_group_map: dict[str, str] = {}  # ERP group value -> shop group name
    login_url: str | None = None  # default: url + "/account/login"
    sender: str | None = None  # overrides [mail] sender for this platform
    mail: str | None = None  # name of a [mail.accounts.NAME] this platform mails from
    poll_interval: Duration | None = None
    timeout: Duration = 30.0
    batch_size: int = Field(default=250, ge=1, le=500)
    verify_tls: bool = True
    addresses: AddressSettings = AddressSettings()

    @model_validator(mode="before")
    @classmethod
    def _default_login_url(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("login_url") and isinstance(data.get("url"), str):
            data = {**data, "login_url": data["url"].rstrip("/") + "/account/login"}
        return data

    @model_validator(mode="after")
    def _urls(self) -> PlatformSettings:
        for name in ("url", "login_url"):
            value = getattr(self, name)
            if value is not None and not value.startswith(("http://", "https://")):
                raise FieldProblem(name, "must be an http:// or https:// URL", value)
        return self


def platform_mail(settings: Settings, platform: PlatformSettings) -> MailSettings:
    """The ``[mail]`` a platform sends with: its own account (``platforms[].mail``) as an SMTP
    transport with that account's server and sender, layouts and batch size from ``[mail]``;
    without one, ``[mail]`` itself."""
    if platform.mail is None:
        return settings.mail
    account = settings.mail.accounts[platform.mail]
    # A copy of validated values (no re-validation: durations are numbers already).
    return settings.mail.model_copy(update={
        "transport": "smtp", "host": account.host, "port": account.port, "security": account.security,
        "username": account.username, "password": account.password, "verify_tls": account.verify_tls,
        "ca_file": account.ca_file, "timeout": account.timeout, "sender": account.sender,
        "reply_to": account.reply_to, "outbox_dir": None, "accounts": {},
    })


def platform_sender(settings: Settings, platform: PlatformSettings) -> str:
    """From: of a platform's mails: its own ``sender``, else its account's, else ``[mail]``'s."""
    return platform.sender or platform_mail(settings, platform).sender

NotificationEvent = Literal[
    "access_requested", "approved", "rejected", "validated", "blocked", "password_reset",
    "new_main_contact", "former_main_contact", "forgot_username",
]
# Events that need an ERP main-contact column, which no supported ERP profile exposes yet.
MAIN_CONTACT_EVENTS = ("new_main_contact", "former_main_contact")


class NotificationSettings(_Model):
    """One ``[[notifications]]`` table: which layout mails an event for a customer group."""

    group: str = "*"  # an ERP customer group value, or "*" for every group
    event: NotificationEvent
    layout: str | None = None  # default: the event's name (layouts/<event>/, <event>_en/ ship)
    sender: str | None = None  # overrides the platform's and [mail] sender for this group
    internal_to: tuple[str, ...] = ()  # internal recipients, mailed for every occurrence
    to_customer: bool = True  # also mail the customer (the address's e-mail)
    enabled: bool = True

    @property
    def layout_name(self) -> str:
        return self.layout or self.event


class Settings(_Model):
    daemon: DaemonSettings = DaemonSettings()
    erp: ErpSettings
    mail: MailSettings = MailSettings()
    platforms: tuple[PlatformSettings, ...] = Field(min_length=1)
    sms: SmsSettings = SmsSettings()
    messages: MessagesSettings = MessagesSettings()
    reminders: tuple[ReminderSettings, ...] = ()

    notifications: tuple[NotificationSettings, ...] = ()

    @model_validator(mode="after")
    def _cross_checks(self) -> Settings:
        seen: dict[str, int] = {}
        for index, platform in enumerate(self.platforms):
            if platform.name in seen:
                raise FieldProblem(
                    ("platforms", index, "name"),
                    f"duplicate platform name (already used by platforms[{seen[platform.name]}])",
                    platform.name,
                )
            seen[platform.name] = index
            if platform.mail is not None and platform.mail not in self.mail.accounts:
                known = ", ".join(sorted(self.mail.accounts)) or "none defined"
                raise FieldProblem(
                    ("platforms", index, "mail"),
                    f"no mail account {platform.mail!r} in [mail.accounts] (defined: {known})",
                    platform.mail,
                )
        names: dict[str, int] = {}
        for index, reminder in enumerate(self.reminders):
            if reminder.name in names:
                first = names[reminder.name]
                raise FieldProblem(("reminders", index, "name"),
                                   f"duplicate reminder name (already used by reminders[{first}])",
                                   reminder.name)
            names[reminder.name] = index
            if reminder.platform is not None and reminder.platform not in seen:
                raise FieldProblem(("reminders", index, "platform"), "no platform of that name",
                                   reminder.platform)

        tables: dict[tuple[str, str], int] = {}
        for index, n in enumerate(self.notifications):
            if (n.group, n.event) in tables:
                raise FieldProblem(
                    ("notifications", index, "group"),
                    f"a second table for group {n.group!r} and event {n.event!r} "
                    f"(already notifications[{tables[(n.group, n.event)]}]): which one should win?",
                    n.group,
                )
            tables[(n.group, n.event)] = index
            if n.event in MAIN_CONTACT_EVENTS and n.enabled:
                # Refused rather than accepted and never fired (documented in the README).
                raise FieldProblem(
                    ("notifications", index, "event"),
                    "needs the ERP's main contact person per company address ([erp.columns] main_contact), "
                    "which no supported ERP profile exposes yet; set enabled = false or remove the table",
                    n.event,
                )
        return self


def sms_possible(settings: Settings) -> bool:
    """Can any customer be messaged by SMS: the channel is on, and either the default channel
    includes SMS or customers choose their own (``[erp.columns] preferred_channel``)."""
    return settings.sms.enabled and (
        settings.messages.default_channel in ("sms", "both") or bool(settings.erp.columns.preferred_channel)
    )

"""Typed settings: the TOML file of spec §2, validated.

Every model forbids unknown keys (a typo must not be ignored). Secret-bearing keys hold a
*reference* (``keyring:SERVICE/NAME``, ``env:VAR``, ``credential:NAME``) or, with a warning,
a plain value; ``syncd.config.secrets`` resolves them. Defaults here are the documented
defaults of ``config.example.toml``.
"""

from __future__ import annotations

import os
import sys
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from syncd.config.durations import parse_duration

Duration = Annotated[float, BeforeValidator(parse_duration)]


def _since(value: Any) -> Any:
    # A TOML date (2026-01-31) or the same as a string ("2026-01-31"); "first-run" passes as is.
    if isinstance(value, str) and value != "first-run":
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise ValueError('a date such as 2026-01-31, or "first-run"') from None
    return value


Since = Annotated[date | Literal["first-run"] | None, BeforeValidator(_since)]

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
    # Written by syncd for office staff (issue 18): when the last credentials mail went out, and
    # the account's state (created | mail held | mailed | active | deactivated).
    credentials_sent_at: str | None = None
    account_state: str | None = None


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
    # Provider send limits (Microsoft 365: about 30 a minute); mails over them wait, queued in order.
    max_per_minute: int | None = Field(default=None, ge=1)
    max_per_hour: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _outbox(self) -> MailSettings:
        if self.transport == "outbox" and not self.outbox_dir:
            raise FieldProblem("outbox_dir", 'outbox_dir is required when transport = "outbox"')
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
    # Go-live: accounts created for ERP rows last changed before this date (UTC midnight), or
    # before the platform's first cycle ("first-run"), get no mail; `accounts list --never-mailed`.
    send_credentials_since: Since = None
    # Canary: the first N mails of a new mail configuration go out, the rest wait for `syncd release`.
    canary: int | None = Field(default=None, ge=1)
    # Activation reminders: accounts mailed but never logged in get new credentials this long after
    # the last mail, at most activation_reminder_max times. None: no reminders.
    activation_reminder: Duration | None = Field(default=None, gt=0)
    activation_reminder_max: int = Field(default=2, ge=1, le=10)
    # What an ERP address deleted (gone from the ERP, found by the reconciliation) does to its shop
    # account; None: deactivate when deactivate_blocked is on (the behaviour before the key).
    on_erp_delete: Literal["deactivate", "delete", "ignore"] | None = None

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


class Settings(_Model):
    daemon: DaemonSettings = DaemonSettings()
    erp: ErpSettings
    mail: MailSettings = MailSettings()
    platforms: tuple[PlatformSettings, ...] = Field(min_length=1)

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
        return self

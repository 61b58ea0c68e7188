"""Typed settings: the TOML file of spec §2, validated.

Every model forbids unknown keys (a typo must not be ignored). Secret-bearing keys hold a
*reference* (``keyring:SERVICE/NAME``, ``env:VAR``, ``credential:NAME``) or, with a warning,
a plain value; ``syncd.config.secrets`` resolves them. Defaults here are the documented
defaults of ``config.example.toml``.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Literal

from pydantic import Field, model_validator

from syncd.config.base import SECRET, Duration, FieldProblem, Since, _Model
from syncd.config.bounces import BounceSettings
from syncd.config.contacts import ContactSettings, contact_problems
from syncd.config.messaging import (
    MessagesSettings,
    NotificationSettings,
    ReminderSettings,
    SmsSettings,
)

# No look-alikes (0/O, 1/l/I) so a customer can type the password from a printout.
DEFAULT_ALPHABET = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
# Credential job reasons whose mail says "your password was reset" (syncd.flows.accounts).
RESET_REASONS = frozenset({"resend", "reset"})


def default_state_url() -> str:
    if sys.platform == "win32":
        base = os.environ.get("PROGRAMDATA", r"C:\ProgramData")
        return "sqlite:///" + os.path.join(base, "syncd", "state.db").replace("\\", "/")
    return "sqlite:////var/lib/syncd/state.db"


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
    # `syncd history` keeps each address's events this many days; the daemon prunes older ones.
    history_days: int = Field(default=90, ge=1, le=36500)


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
    # optional column whose truthy value marks a business address (an "address type" flag)
    business_flag: str | None = None
    # Written by syncd for office staff (issue 18): when the last credentials mail went out, and
    # the account's state (created | mail held | mailed | active | deactivated).
    credentials_sent_at: str | None = None
    account_state: str | None = None
    # Written on a hard bounce ([mail.bounces] erp_text and the date), cleared when the e-mail changes.
    email_undeliverable: str | None = None


class ErpSettings(_Model):
    url: str
    password: str | None = Field(default=None, json_schema_extra=SECRET)
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
    # Only addresses marked for the shop are pushed: "COLUMN" (truthy = marked) or
    # "COLUMN=VALUE" (marked when the column holds VALUE). None: the profile's default
    # (bueroplus: WShopAdrKz); "": every address (no flag).
    shop_flag: str | None = None
    # An address marked for deletion: "COLUMN" (truthy = marked) or "COLUMN=VALUE"; treated as
    # deleted (platforms[].addresses.on_erp_delete). None: no mark (no profile names one).
    deletion_mark: str | None = None
    # Salutation values that mark a business address ("Firma"), compared case-insensitively.
    business_salutations: tuple[str, ...] = ("Firma",)
    shop_id_platform: str | None = None  # the one platform whose ids go into [erp.columns] shop_id
    contacts: ContactSettings = ContactSettings()  # contact persons (syncd.config.contacts)

    @model_validator(mode="after")
    def _flags(self) -> ErpSettings:
        for key in ("shop_flag", "deletion_mark"):
            column, sep, value = (getattr(self, key) or "").partition("=")
            if getattr(self, key) and (not column.strip() or (sep and not value.strip())):
                raise FieldProblem(key, 'expected "COLUMN" or "COLUMN=VALUE"', getattr(self, key))
        return self

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
    password: str | None = Field(default=None, json_schema_extra=SECRET)
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
    password: str | None = Field(default=None, json_schema_extra=SECRET)
    verify_tls: bool = True
    ca_file: str | None = None
    timeout: Duration = 30.0
    sender: str = "Shop <shop@example.com>"
    reply_to: str | None = None
    layouts_dir: str | None = None
    outbox_dir: str | None = None  # required when transport = "outbox"
    batch_size: int = Field(default=100, ge=1, le=10_000)
    accounts: dict[str, MailAccount] = {}
    # Provider send limits (Microsoft 365: about 30 a minute); mails over them wait, queued in order.
    max_per_minute: int | None = Field(default=None, ge=1)
    max_per_hour: int | None = Field(default=None, ge=1)
    bounces: BounceSettings = BounceSettings()  # the return path and bounce reader (issue 18)

    @model_validator(mode="after")
    def _outbox(self) -> MailSettings:
        if self.transport == "outbox" and not self.outbox_dir:
            raise FieldProblem("outbox_dir", 'outbox_dir is required when transport = "outbox"')
        return self


class AddressSettings(_Model):
    erp_to_shop: bool = True
    send_credentials: bool = False  # needs password_field; off until the operator opts in
    credential_mode: Literal["password", "link"] = "password"
    # Default: "credentials" in password mode, "set_password_link" in link mode (filled in below).
    email_layout: str = "credentials"
    # Link mode: how long the mail says the set-password link is valid. Shopware honours a
    # recovery hash for 2 h (ResetPasswordRoute), so a longer promise would be a lie.
    link_valid_for: Duration = Field(default=7200.0, gt=0, le=7200)
    # Credentials staff sent again (accounts send-credentials / reset-password): their own wording
    # ("your password was reset"). None: in password mode "password_reset", "password_reset_en"
    # when email_layout ends in "_en"; in link mode email_layout (its link says "set a password").
    reset_layout: str | None = None
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
    # "contact": each contact person (with an e-mail) of a business address gets its own account too.
    accounts_per: Literal["address", "contact"] = "address"
    # An address whose shop flag ([erp] shop_flag) is cleared after it was pushed: "deactivate"
    # its shop account (like a blocked one) or "ignore" it (the account stays as it is).
    unflagged: Literal["deactivate", "ignore"] = "deactivate"
    # Changes a customer makes in the shop to a linked account: "ignore" them (the next ERP change
    # overwrites them), "import" them into the ERP row (newer change wins, ties go to the ERP) or
    # "report" them in `syncd status`.
    shop_changes: Literal["ignore", "import", "report"] = "ignore"
    # The logical fields shop_changes compares and imports (each must be mapped in [erp.columns]).
    shop_change_fields: tuple[
        Literal["salutation", "company", "first_name", "last_name", "street", "zip", "city", "country",
                "phone"], ...
    ] = ("salutation", "company", "first_name", "last_name", "street", "zip", "city", "country", "phone")
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

    @model_validator(mode="before")
    @classmethod
    def _default_layout(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("credential_mode") == "link" and "email_layout" not in data:
            data = {**data, "email_layout": "set_password_link"}
        return data

    @property
    def uses_password_field(self) -> bool:
        """Credential mails carry a password through the ERP field (link mode never touches it)."""
        return bool(self.erp_to_shop and self.send_credentials and self.credential_mode == "password")

    def layout_for(self, reason: str) -> str:
        """The layout of a credentials mail by its purpose (the job's reason): ``created`` is
        the first mail of a new account (``email_layout``); ``resend`` and ``reset`` are new
        credentials staff sent (``reset_layout``)."""
        if reason in RESET_REASONS:
            if self.reset_layout:
                return self.reset_layout
            if self.credential_mode == "link":
                return self.email_layout
            return "password_reset_en" if self.email_layout.endswith("_en") else "password_reset"
        return self.email_layout

    def layouts_in_use(self) -> dict[str, str]:
        """key -> layout name of every purpose, for the checks."""
        found = {"email_layout": self.email_layout}
        if self.layout_for("reset") != self.email_layout:  # link mode: one layout for both
            found["reset_layout"] = self.layout_for("reset")
        return found

    @model_validator(mode="after")
    def _credentials_need_field(self) -> AddressSettings:
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


# Per kind: the login page a credentials mail links to, and the most records one write request
# may carry (WooCommerce refuses batches above 100 items: ``woocommerce_rest_batch_items_limit``).
LOGIN_PATHS = {"shopware6": "/account/login", "woocommerce": "/my-account/"}
BATCH_LIMITS = {"shopware6": 500, "woocommerce": 100}
DEFAULT_BATCH = {"shopware6": 250, "woocommerce": 100}
# The credential keys of each kind: (key id, secret reference key). The other kind's keys are refused.
CREDENTIAL_KEYS = {"shopware6": ("client_id", "client_secret"),
                   "woocommerce": ("consumer_key", "consumer_secret")}


class PlatformSettings(_Model):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    kind: Literal["shopware6", "woocommerce"] = "shopware6"
    url: str
    # Shopware 6: the integration's access key id and secret (a secret reference).
    client_id: str | None = None
    client_secret: str | None = Field(default=None, json_schema_extra=SECRET)
    # WooCommerce: the REST API key (ck_...) and its secret (cs_..., a secret reference).
    consumer_key: str | None = None
    consumer_secret: str | None = Field(default=None, json_schema_extra=SECRET)
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
    # Country (ISO 3166 alpha-2) for an address whose country is empty; None: such a record fails.
    default_country: str | None = Field(default=None, pattern=r"^[A-Za-z]{2}$")
    # Put before every customer number syncd writes to the shop ("E" -> "E10002"), so the shop's
    # own number range (storefront registrations) can never hand out the same number.
    customer_number_prefix: str = Field(default="", pattern=r"^[^\s]{0,16}$")
    # The shop's own customer number range overlaps [erp] debtor_range and no prefix is set:
    # "warn" (`syncd check` shows it as a warning) or "refuse" (`syncd check` fails and the
    # erp-to-shop cycle pushes nothing until a prefix is set or the ranges are moved apart).
    number_range_overlap: Literal["warn", "refuse"] = "warn"
    # `syncd accounts login-as` (Shopware 6.6.5.0+): an Administration user with permission
    # "api_proxy_imitate-customer" and its password (secret reference); None: login-as refused.
    login_as_user: str | None = None
    login_as_password: str | None = Field(default=None, json_schema_extra=SECRET)

    @model_validator(mode="before")
    @classmethod
    def _kind_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        chosen = data.get("kind", "shopware6")
        if chosen not in LOGIN_PATHS:
            return data  # the Literal names the allowed kinds
        if not data.get("login_url") and isinstance(data.get("url"), str):
            data = {**data, "login_url": data["url"].rstrip("/") + LOGIN_PATHS[chosen]}
        if "batch_size" not in data:
            data = {**data, "batch_size": DEFAULT_BATCH[chosen]}
        return data

    @property
    def secret_ref(self) -> str | None:
        """The secret reference of this platform's API credentials (client or consumer secret)."""
        return getattr(self, CREDENTIAL_KEYS[self.kind][1])

    @property
    def secret_key(self) -> str:
        return CREDENTIAL_KEYS[self.kind][1]

    @model_validator(mode="after")
    def _credentials(self) -> PlatformSettings:
        own = CREDENTIAL_KEYS[self.kind]
        for other, keys in CREDENTIAL_KEYS.items():
            if other == self.kind:
                continue
            for key in keys:
                if getattr(self, key) is not None:
                    raise FieldProblem(key, f'{key} belongs to kind = "{other}"; kind = "{self.kind}" '
                                       f"uses {' and '.join(own)}", getattr(self, key))
        for key in own:
            if not getattr(self, key):
                raise FieldProblem(key, f'{key} is required for kind = "{self.kind}"')
        limit = BATCH_LIMITS[self.kind]
        if self.batch_size > limit:
            raise FieldProblem("batch_size", f'kind = "{self.kind}" accepts at most {limit} records per '
                               "write request", self.batch_size)
        return self

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
                raise FieldProblem(("platforms", index, "name"), "duplicate platform name (already used by "
                                   f"platforms[{seen[platform.name]}])", platform.name)
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
        problem = contact_problems(self)
        if problem is not None:
            raise problem
        return self

"""A whole ERP -> shop installation for flow tests, built from real components: an ERP address
table (SQLite file or PostgreSQL, ``tests.support.erp_fixtures``), the Shopware sandbox over HTTP, a
real SMTP server (aiosmtpd, ``tests.support.mailserver``), the shipped layouts and a SQLite state store.

``Harness.context()`` builds fresh adapters each time, as a restarted process would;
``Harness.config_file()`` writes the JSON that ``tests/support/kill_runner.py`` builds the same ports from.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from syncd.config.messaging import MessagesSettings, NotificationSettings, SmsSettings
from syncd.config.model import (
    AddressSettings,
    DaemonSettings,
    ErpSettings,
    MailSettings,
    PlatformSettings,
    Settings,
)
from syncd.config.secrets import Secrets
from syncd.connectors.erp import open_erp
from syncd.connectors.mail import open_transport
from syncd.connectors.sms import open_sms
from syncd.flows.context import CycleReport, PlatformContext
from syncd.flows.erp_to_shop import run_erp_to_shop, settle_password_fields
from syncd.render.store import LayoutStore
from syncd.shell.bootstrap import open_shop_for
from syncd.shell.bounces import return_paths
from syncd.state.db import StateStore, open_state
from tests.support import erp_fixtures
from tests.support.mailserver import MailServer
from tests.support.shops import ShopKit, kit_for

PASSWORD_FIELD = "Sel5"
PLATFORM = "shop"
_PASSWORD_LINE = re.compile(r"^\s*(?:Passwort|Password):\s*(\S+)\s*$", re.MULTILINE)
_LINK = re.compile(r"https?://\S+/account/recover/password\?hash=([A-Za-z0-9]+)")


SECRET_REF = "env:SYNCD_TEST_SHOP_SECRET"


def build_settings(erp: Any, shop_url: str, client_id: str | dict[str, Any], smtp_host: str, smtp_port: int,
                   state_url: str, *, mail_batch_size: int = 100, notifications: Any = (),
                   mail: dict[str, Any] | None = None, sms: dict[str, Any] | None = None,
                   messages: dict[str, Any] | None = None,
                   **addresses: Any) -> Settings:
    """``client_id``: a Shopware client id, or the kind's ``[[platforms]]`` keys
    (``ShopKit.platform_fields``)."""
    values: dict[str, Any] = dict(send_credentials=True, password_field=PASSWORD_FIELD, shop_to_erp=False)
    fields = (client_id if isinstance(client_id, dict)
              else {"client_id": client_id, "client_secret": SECRET_REF})
    if fields.get("kind") == "woocommerce":
        values.setdefault("deactivate_blocked", False)  # WooCommerce has no active flag (check refuses it)
    values.update(addresses)
    return Settings(
        daemon=DaemonSettings(state_url=state_url),
        erp=erp,
        mail=MailSettings(host=smtp_host, port=smtp_port, security="none", sender="Shop <shop@example.com>",
                          timeout="10s", batch_size=mail_batch_size, **(mail or {})),
        platforms=(PlatformSettings(
            name=PLATFORM, url=shop_url, **fields, timeout="10s", addresses=AddressSettings(**values)),),
        notifications=tuple(NotificationSettings.model_validate(n) if isinstance(n, dict) else n
                            for n in notifications),
        sms=SmsSettings.model_validate(sms or {}),
        messages=MessagesSettings.model_validate(messages or {}),
    )


def build_context(settings: Settings, client_secret: str, state: StateStore, sms_key: str | None = None
                  ) -> PlatformContext:
    """The ports of the one platform, as ``syncd.shell.bootstrap`` would wire them."""
    platform = settings.platforms[0]
    a = platform.addresses
    erp = open_erp(settings.erp, password_field=a.password_field if a.uses_password_field else None,
                   password_length=a.password_length)
    shop = open_shop_for(settings, platform, Secrets(client_secrets={platform.name: client_secret}),
                         erp_columns=False)
    return PlatformContext(
        settings=settings, platform=platform, erp=erp, shop=shop, state=state,
        mail=open_transport(settings.mail, return_paths=return_paths(settings, state)),
        layouts=LayoutStore(settings.mail.layouts_dir),
        sms=open_sms(settings.sms, sms_key),
    )


def password_of(message: EmailMessage) -> str:
    """The password a credentials mail carries (shipped layouts: 'Passwort:' / 'Password:')."""
    body = message.get_body(("plain",))
    text = body.get_content() if body is not None else message.get_content()
    found = _PASSWORD_LINE.findall(text)
    assert len(found) == 1, f"expected one password line in:\n{text}"
    return found[0]


def link_of(message: EmailMessage) -> tuple[str, str]:
    """(URL, hash) of the one set-password link a link-mode mail carries (text part; the HTML
    part must carry the same one)."""
    body = message.get_body(("plain",))
    text = body.get_content() if body is not None else message.get_content()
    found = set(_LINK.findall(text))
    assert len(found) == 1, f"expected one set-password link in:\n{text}"
    [url] = {m.group(0) for m in _LINK.finditer(text)}
    html = message.get_body(("html",))
    if html is not None:
        assert url in html.get_content().replace("&amp;", "&")
    return url, found.pop()


@dataclass
class Harness:
    tmp: Path
    erp_url: str
    table: str
    sandbox: Any  # a sandbox of any kind, or its ShopKit; ``kit`` is the kit, ``sandbox`` the sandbox
    smtp: MailServer
    addresses: dict[str, Any] = field(default_factory=dict)
    state_url: str = ""
    mail_batch_size: int = 100
    notifications: tuple[dict[str, Any], ...] = ()  # [[notifications]] tables
    mail: dict[str, Any] = field(default_factory=dict)  # more [mail] keys (max_per_minute ...)
    sms: dict[str, Any] = field(default_factory=dict)  # [sms] keys (a provider fake's url ...)
    sms_key: str | None = None  # the SMS provider's API key (the secret [sms] password names)
    messages: dict[str, Any] = field(default_factory=dict)  # [messages] keys
    erp_columns: dict[str, str] = field(default_factory=dict)  # more [erp.columns] (mobile ...)
    _state: StateStore | None = None
    _contexts: list[PlatformContext] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.kit: ShopKit = kit_for(self.sandbox)
        self.sandbox = self.kit.sandbox
        self.erp_settings = erp_fixtures.create_address_table(self.erp_url, self.table,
                                                              password_field=PASSWORD_FIELD)
        if self.erp_columns:
            columns = self.erp_settings.columns.model_copy(update=self.erp_columns)
            self.erp_settings = self.erp_settings.model_copy(update={"columns": columns})
        self.state_url = self.state_url or f"sqlite:///{self.tmp / 'state.db'}"

    # --- building ---------------------------------------------------------------------------
    @property
    def settings(self) -> Settings:
        return build_settings(self.erp_settings, self.kit.url, self.kit.platform_fields(SECRET_REF),
                              self.smtp.host, self.smtp.port, self.state_url,
                              mail_batch_size=self.mail_batch_size, notifications=self.notifications,
                              mail=self.mail, sms=self.sms, messages=self.messages,
                              **self.addresses)

    @property
    def state(self) -> StateStore:
        if self._state is None:
            self._state = open_state(self.state_url)
        return self._state

    def context(self) -> PlatformContext:
        ctx = build_context(self.settings, self.kit.secret, self.state, self.sms_key)
        self._contexts.append(ctx)
        return ctx

    def run(self, *, dry_run: bool = False, settle: bool = True) -> CycleReport:
        ctx = self.context()
        if settle and not dry_run:
            settle_password_fields(ctx)
        return run_erp_to_shop(ctx, dry_run=dry_run)

    def config_file(self) -> Path:
        """The JSON the kill runner reads (settings plus the resolved shop secret)."""
        path = self.tmp / "runner.json"
        erp = self.erp_settings
        path.write_text(json.dumps({
            "erp": {"url": erp.url, "profile": erp.profile, "address_table": erp.address_table,
                    "columns": erp.columns.model_dump(exclude_none=True)},
            "shop_url": self.kit.url, "platform": self.kit.platform_fields(SECRET_REF),
            "client_secret": self.kit.secret,
            "smtp_host": self.smtp.host, "smtp_port": self.smtp.port,
            "state_url": self.state_url, "addresses": self.addresses,
            "mail_batch_size": self.mail_batch_size, "notifications": list(self.notifications),
            "mail": self.mail, "sms": self.sms, "sms_key": self.sms_key, "messages": self.messages,
        }))
        return path


    def close(self) -> None:
        for ctx in self._contexts:
            for port in (ctx.erp, ctx.shop):
                closer = getattr(port, "close", None)
                if closer is not None:
                    closer()
        self._contexts.clear()
        if self._state is not None:
            self._state.close()
            self._state = None

    # --- the ERP ----------------------------------------------------------------------------
    def insert(self, rows: list[dict[str, Any]]) -> None:
        erp_fixtures.insert_addresses(self.erp_url, self.table, rows)

    def update(self, number: int, **values: Any) -> None:
        erp_fixtures.update_address(self.erp_url, self.table, number, values)

    def password_fields(self) -> dict[int, str]:
        """Every non-empty password field, straight from the table."""
        engine = sa.create_engine(self.erp_url, poolclass=sa.pool.NullPool)
        try:
            t = sa.Table(self.table, sa.MetaData(), autoload_with=engine)
            with engine.connect() as conn:
                rows = conn.execute(sa.select(t.c.AdrNr, t.c[PASSWORD_FIELD]))
                return {int(n): v for n, v in rows if v not in (None, "") and str(v).strip()}
        finally:
            engine.dispose()

    def drop(self) -> None:
        erp_fixtures.drop_table(self.erp_url, self.table)

    # --- the shop and the mails -------------------------------------------------------------
    def customers(self) -> list[dict[str, Any]]:
        return self.sandbox.customers()

    def customers_by_number(self) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for c in self.customers():
            out.setdefault(str(c.get("customerNumber")), []).append(c)
        return out

    def accounts_by_number(self) -> dict[str, list[Any]]:
        """ERP number -> the shop's accounts carrying it, kind-neutral (``tests.support.shops.Account``)."""
        return self.kit.accounts_by_number()

    def mails_to(self, email: str) -> list[EmailMessage]:
        wanted = email.lower()
        return [m for m in self.smtp.messages if wanted in [r.lower() for r in m.rcpt_tos]]

    def mail_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for m in self.smtp.messages:
            for r in m.rcpt_tos:
                counts[r.lower()] = counts.get(r.lower(), 0) + 1
        return counts


def settings_from_config(config: dict[str, Any]) -> Settings:
    """The inverse of ``Harness.config_file`` (for the kill runner)."""
    return build_settings(
        ErpSettings.model_validate(config["erp"]), config["shop_url"], config["platform"],
        config["smtp_host"], config["smtp_port"], config["state_url"],
        mail_batch_size=config.get("mail_batch_size", 100), notifications=config.get("notifications", ()),
        mail=config.get("mail"), sms=config.get("sms"), messages=config.get("messages"),
        **config["addresses"],
    )


# The state stores a flow test runs on: SQLite, and PostgreSQL (a fresh schema) where the test
# environment has it (``pytest.mark.realdb``).
STATE_STORES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.realdb)]


@contextlib.contextmanager
def harness_on(state: str, tmp_path: Path, shop: Any, smtp_server: MailServer, **options: Any
               ) -> Iterator[Harness]:
    """A Harness over a SQLite ERP table ``adressen`` and the state store ``state`` (one of
    ``STATE_STORES``), closed afterwards."""
    from tests.support.dbs import pg_schema_url

    with contextlib.ExitStack() as stack:
        state_url = stack.enter_context(pg_schema_url()) if state == "postgresql" else ""
        h = Harness(tmp_path, f"sqlite:///{tmp_path / 'erp.db'}", "adressen", shop, smtp_server,
                    state_url=state_url, **options)
        stack.callback(h.close)
        yield h

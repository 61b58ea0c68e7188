"""Shared set-up for the wired-CLI tests (no tests here): a SQLite ERP with sample addresses,
the Shopware sandbox, an outbox folder and a config file pointing at all three.

    from tests.support.wired_env import Env, env, sandbox  # noqa: F401 - fixtures

``kind_env`` is ``env`` for each platform kind (the ``shop`` fixture's ``KINDS``); a module binds
it as ``env = wired.kind_env`` (with ``shop = wired.shop``), and a case that cannot apply to
WooCommerce says why with ``@shopware_only(reason)`` - reported as a skip with that reason.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from syncd.shell.cli import run_cli
from syncd.shell.demo import erp_section
from syncd.shell.logs import reset_logging
from tests.support import erp_fixtures
from tests.support.shop_fixtures import sandbox  # noqa: F401 - the fixture, re-exported
from tests.support.shops import (
    ShopKit,
    kit_for,
    shop,  # noqa: F401 - the fixture, re-exported
)

TABLE = "Adressen"
FIELD = "Sel5"
SECRET_ENV = "SYNCD_WIRED_SHOP_SECRET"

SAMPLE = [
    {"number": 10001, "first_name": "Anna", "last_name": "Adler", "salutation": "Frau",
     "street": "Hauptstr. 1", "zip": "10115", "city": "Berlin", "country": "DE", "email": "anna@example.com"},
    {"number": 10002, "first_name": "Bernd", "last_name": "Bauer", "salutation": "Herr", "street": "Ring 2",
     "zip": "20095", "city": "Hamburg", "country": "DE", "email": "bernd@example.com"},
    {"number": 10003, "first_name": "Clara", "last_name": "Chen", "salutation": "Frau", "street": "Weg 3",
     "zip": "80331", "city": "München", "country": "DE", "email": "not-an-address"},
]


@dataclass
class Env:
    root: Path
    config: Path
    erp_url: str
    erp_db: Path
    state_db: Path
    outbox: Path
    shop: Any  # the sandbox (either kind; ``kit`` is its ShopKit)

    @property
    def kit(self) -> ShopKit:
        return kit_for(self.shop)

    def write_config(self, *, addresses: str = "", daemon: str = "", mail: str = "", erp: str = "",
                     poll: str = "1h") -> Path:
        self.config.write_text(config_text(self, addresses=addresses, daemon=daemon, mail=mail, erp=erp,
                                           poll=poll))
        return self.config

    def cli(self, capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
        try:
            code = run_cli(["--config", str(self.config), *[str(a) for a in args]])
        finally:
            reset_logging()
        out, err = capsys.readouterr()
        return code, out, err

    def erp_rows(self) -> list[tuple]:
        with sqlite3.connect(self.erp_db) as conn:
            return conn.execute(f'SELECT * FROM "{TABLE}" ORDER BY "AdrNr"').fetchall()

    def password_fields(self) -> dict[int, Any]:
        with sqlite3.connect(self.erp_db) as conn:
            return dict(conn.execute(f'SELECT "AdrNr", "{FIELD}" FROM "{TABLE}"').fetchall())

    def outbox_files(self) -> list[Path]:
        return sorted(self.outbox.glob("*.eml"))

    def state_digest(self) -> str | None:
        if not self.state_db.exists():
            return None
        return hashlib.sha256(self.state_db.read_bytes()).hexdigest()


def config_text(e: Env, *, addresses: str = "", daemon: str = "", mail: str = "", erp: str = "",
                poll: str = "1h") -> str:
    # ``mail`` naming a transport replaces the outbox.
    outbox = "" if "transport" in mail else f'transport = "outbox"\noutbox_dir = "{e.outbox.as_posix()}"\n'
    return f"""
[daemon]
state_url = "sqlite:///{e.state_db.as_posix()}"
poll_interval = "{poll}"
pid_file = "{(e.root / 'syncd.pid').as_posix()}"
shutdown_timeout = "20s"
{daemon}

{erp_section(e.erp_url, TABLE, erp)}
[mail]
{outbox}sender = "Testshop <shop@example.com>"
{mail}

[[platforms]]
name = "shop"
url = "{e.kit.url}"
{_platform_keys(e)}
[platforms.addresses]
erp_to_shop = true
send_credentials = true
email_layout = "credentials"
password_field = "{FIELD}"
shop_to_erp = false
{_kind_addresses(e, addresses)}{addresses}
"""


def _platform_keys(e: Env) -> str:
    keys = e.kit.platform_fields(f"env:{SECRET_ENV}")
    if keys["kind"] == "shopware6":
        keys["sales_channel"] = "Storefront"
    return "".join(f'{k} = "{v}"\n' for k, v in keys.items())


def _kind_addresses(e: Env, addresses: str) -> str:
    """WooCommerce has no active flag: its platforms must say deactivate_blocked = false."""
    if e.kit.kind == "woocommerce" and "deactivate_blocked" not in addresses:
        return "deactivate_blocked = false\n"
    return ""


def make_env(root: Path, shop: Any, monkeypatch: pytest.MonkeyPatch, *, rows=SAMPLE, **table: Any) -> Env:  # noqa: F811
    monkeypatch.setenv(SECRET_ENV, kit_for(shop).secret)
    monkeypatch.delenv("SYNCD_CONFIG", raising=False)
    monkeypatch.delenv("SYNCD_UNIT", raising=False)
    erp_db = root / "erp.db"
    url = f"sqlite:///{erp_db.as_posix()}"
    erp_fixtures.create_address_table(url, TABLE, password_field=FIELD, **table)
    erp_fixtures.insert_addresses(url, TABLE, rows)
    outbox = root / "outbox"
    outbox.mkdir()
    e = Env(root=root, config=root / "config.toml", erp_url=url, erp_db=erp_db,
            state_db=root / "state" / "state.db", outbox=outbox, shop=shop)
    e.write_config()
    return e


@pytest.fixture
def env(tmp_path: Path, sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> Env:  # noqa: F811
    return make_env(tmp_path, sandbox, monkeypatch)


@pytest.fixture
def kind_env(tmp_path: Path, shop: ShopKit, monkeypatch: pytest.MonkeyPatch) -> Env:  # noqa: F811
    """``env`` over a sandbox of each platform kind."""
    return make_env(tmp_path, shop.sandbox, monkeypatch)


def shopware_only(reason: str) -> pytest.MarkDecorator:
    """A ``kind_env`` case for Shopware alone; the WooCommerce one is reported skipped with
    ``reason`` (say why: e.g. the feature is refused by ``check`` for WooCommerce)."""
    woo = pytest.param("woocommerce", marks=pytest.mark.skip(reason=reason))
    return pytest.mark.parametrize("shop", ["shopware6", woo], indirect=True)


def subprocess_env(e: Env) -> dict[str, str]:
    out = dict(os.environ)
    out[SECRET_ENV] = e.kit.secret
    out.pop("SYNCD_CONFIG", None)
    out.pop("NOTIFY_SOCKET", None)
    return out


def read_mail(path: Path) -> tuple[str, str]:
    """(recipient, password) of a credentials mail in the outbox (shipped German layout)."""
    import email
    import email.policy
    import email.utils
    import re

    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    body = message.get_body(preferencelist=("plain",))
    text = body.get_content() if body is not None else ""
    found = re.search(r"Passwort:\s+(\S+)", text)
    assert found, text
    return email.utils.parseaddr(str(message["To"]))[1], found.group(1)


def assert_nowhere(secret: str, *texts: str, files: Iterable[Path] = ()) -> None:
    """I3: ``secret`` is in none of the texts and none of the files (the state DB and its WAL)."""
    assert secret
    for text in texts:
        assert secret not in text
    raw = secret.encode()
    for f in files:
        if f.exists():
            assert raw not in f.read_bytes(), f

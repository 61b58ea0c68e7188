"""One face for the shop sandboxes of every platform kind, so the flow, kill and fault tests run
for each kind from one body (``shop`` fixture, parametrised over ``KINDS``).

    from tests.support.shops import shop  # noqa: F401 - the fixture

    def test_x(shop): shop.login(email, pw); shop.accounts_by_number(); shop.sandbox.faults ...

A kit knows its sandbox, the ``[[platforms]]`` keys that reach it, how a customer logs in, the
accounts in a kind-neutral form (``Account``), and what the kind cannot do (``caps_names``:
Shopware caps first names at 50; ``deactivates``: WooCommerce has no active flag).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from syncd.connectors.shopware6.sandbox import Sandbox
from syncd.connectors.woocommerce.sandbox import WooSandbox
from tests.support.shop_fixtures import DEFAULT_VERSION
from tests.support.shop_fixtures import store_login as _store_login

KINDS = ["shopware6", "woocommerce"]


@dataclass(frozen=True)
class Account:
    id: str
    email: str
    number: str | None  # the ERP number the shop holds (customerNumber / meta syncd_erp_number)
    city: str | None
    active: bool
    last_name: str | None = None


class ShopwareKit:
    kind = "shopware6"
    caps_names = True
    deactivates = True
    # Per-request latency that makes a cycle of 12 addresses last ~2 s (the random kill window):
    # a Shopware cycle makes several searches and syncs, a WooCommerce one two batch requests.
    kill_latency = 0.1

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    @property
    def url(self) -> str:
        return self.sandbox.url

    @property
    def secret(self) -> str:
        return self.sandbox.client_secret

    def platform_fields(self, secret_ref: str) -> dict[str, Any]:
        return {"kind": "shopware6", "client_id": self.sandbox.client_id, "client_secret": secret_ref}

    def login(self, email: str, password: str) -> bool:
        return _store_login(self.sandbox, email, password)

    def accounts(self) -> list[Account]:
        return [
            Account(
                c["id"],
                c["email"],
                c.get("customerNumber"),
                (c.get("addresses") or [{}])[0].get("city"),
                bool(c.get("active")),
                c.get("lastName"),
            )
            for c in self.sandbox.customers()
        ]

    def own_mails(self) -> list[Any]:
        """Registration mails the shop itself sent (must stay empty: customers get syncd's)."""
        return list(self.sandbox.flow_mails)

    def register(self, email: str, password: str, **person: str) -> str:
        """A customer registering in the storefront; ``person``: first_name, last_name, street,
        zip, city, country (ISO)."""
        if "zip" in person:
            person["zipcode"] = person.pop("zip")
        return self.sandbox.create_customer_as_shop_user(email, password, **person)["id"]

    def add_order(self, shop_id: str) -> None:
        self.sandbox.add_order(shop_id)

    def delete(self, shop_id: str) -> None:
        from tests.support.shop_fixtures import admin_session

        resp = admin_session(self.sandbox).delete(f"{self.sandbox.url}/api/customer/{shop_id}", timeout=10)
        assert resp.status_code == 204

    def writes(self) -> list[Any]:
        return [
            r
            for r in self.sandbox.request_log
            if r.method in ("PATCH", "DELETE", "PUT")
            or "_action" in r.path
            or (r.method == "POST" and "/search" not in r.path and "oauth" not in r.path)
        ]

    def shop_class(self) -> type:
        from syncd.connectors.shopware6.shop import ShopwareShop

        return ShopwareShop

    def accounts_by_number(self) -> dict[str, list[Account]]:
        return _by_number(self.accounts())

    # --- the connector on its own (fault tests) ---------------------------------------------
    def connector(self, **settings: Any) -> Any:
        """The kind's shop connector, warmed up (token, version and metadata held)."""
        from tests.support.shopware import make_shop

        shop = make_shop(self.sandbox, **settings)
        shop.metadata()
        shop.traits()
        return shop

    def is_write(self, path: str) -> bool:
        return path.startswith("/api/_action/sync")


class WooKit:
    kind = "woocommerce"
    caps_names = False
    deactivates = False
    kill_latency = 0.3

    def __init__(self, sandbox: WooSandbox) -> None:
        self.sandbox = sandbox

    @property
    def url(self) -> str:
        return self.sandbox.url

    @property
    def secret(self) -> str:
        return self.sandbox.consumer_secret

    def platform_fields(self, secret_ref: str) -> dict[str, Any]:
        return {
            "kind": "woocommerce",
            "consumer_key": self.sandbox.consumer_key,
            "consumer_secret": secret_ref,
        }

    def login(self, email: str, password: str) -> bool:
        """WordPress's login form, as a customer would: 302 with the logged-in cookie."""
        resp = requests.post(
            f"{self.sandbox.url}/wp-login.php",
            data={"log": email, "pwd": password},
            allow_redirects=False,
            timeout=10,
        )
        return resp.status_code == 302 and "wordpress_logged_in_" in resp.headers.get("Set-Cookie", "")

    def accounts(self) -> list[Account]:
        from syncd.connectors.woocommerce.mapping import erp_number_of

        return [
            Account(str(c["id"]), c["email"], erp_number_of(c), (c.get("billing") or {}).get("city"), True,
                    c.get("last_name"))
            for c in self.sandbox.customers()
        ]

    def own_mails(self) -> list[Any]:
        return list(self.sandbox.new_account_mails)

    def register(self, email: str, password: str, **person: str) -> str:
        billing = {"first_name": person.get("first_name", ""), "last_name": person.get("last_name", ""),
                   "address_1": person.get("street", ""), "postcode": person.get("zip", ""),
                   "city": person.get("city", ""), "country": person.get("country", ""), "email": email}
        names = {k: person[k] for k in ("first_name", "last_name") if k in person}
        return str(self.sandbox.create_customer_as_shop_user(email, password, billing=billing, **names)["id"])

    def add_order(self, shop_id: str) -> None:
        self.sandbox.add_order(shop_id)

    def delete(self, shop_id: str) -> None:
        self.sandbox.delete_customer(shop_id)

    def writes(self) -> list[Any]:
        return [r for r in self.sandbox.request_log if r.method in ("POST", "PUT", "PATCH", "DELETE")]

    def shop_class(self) -> type:
        from syncd.connectors.woocommerce.shop import WooShop

        return WooShop

    def accounts_by_number(self) -> dict[str, list[Account]]:
        return _by_number(self.accounts())

    def connector(self, **settings: Any) -> Any:
        from syncd.config.model import PlatformSettings
        from syncd.connectors.woocommerce import open_shop

        values = dict(
            name="shop", url=self.sandbox.url, timeout="5s", **self.platform_fields("env:SHOP_SECRET")
        )
        values.update(settings)
        return open_shop(PlatformSettings(**values), consumer_secret=self.sandbox.consumer_secret)

    def is_write(self, path: str) -> bool:
        return path.endswith("/customers/batch")


ShopKit = ShopwareKit | WooKit


def _by_number(accounts: list[Account]) -> dict[str, list[Account]]:
    out: dict[str, list[Account]] = {}
    for a in accounts:
        out.setdefault(str(a.number), []).append(a)
    return out


def kit_for(sandbox: Any) -> ShopKit:
    """The kit of a started sandbox (a kit passes through)."""
    if isinstance(sandbox, (ShopwareKit, WooKit)):
        return sandbox
    return WooKit(sandbox) if isinstance(sandbox, WooSandbox) else ShopwareKit(sandbox)


def start_kit(kind: str) -> ShopKit:
    if kind == "woocommerce":
        return WooKit(WooSandbox().start())
    return ShopwareKit(Sandbox(version=DEFAULT_VERSION).start())


@pytest.fixture(params=KINDS)
def shop(request: pytest.FixtureRequest) -> Iterator[ShopKit]:
    """A started sandbox of each platform kind (``indirect`` parametrisation picks one)."""
    kit = start_kit(request.param)
    try:
        yield kit
    finally:
        kit.sandbox.stop()

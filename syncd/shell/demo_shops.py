"""The sandbox shop of each platform kind for `syncd demo --platform KIND`: start it, seed the
customers who registered themselves, the ``[[platforms]]`` table that reaches it, and the
customer login the demo proves the mailed password with."""

from __future__ import annotations

from typing import Any

import requests

SECRET_ENV = "SYNCD_DEMO_CLIENT_SECRET"  # noqa: S105 - a variable name
KINDS = ("shopware6", "woocommerce")
SEED_PASSWORD = "Sommer2026!"  # noqa: S105 - the seeded self-registered customers' demo password


class ShopwareDemo:

    def __init__(self) -> None:
        from syncd.connectors.shopware6.sandbox import Sandbox

        self.sandbox = Sandbox(version="6.6.10.0").start()
        self.url = self.sandbox.url
        self.secret = self.sandbox.client_secret

    def register(self, email: str, first: str, last: str, street: str, zip_: str, city: str, country: str,
                 ordered: bool) -> None:
        customer = self.sandbox.create_customer_as_shop_user(
            email, SEED_PASSWORD, first_name=first, last_name=last, street=street, zipcode=zip_, city=city,
            country=country)
        if ordered:
            self.sandbox.add_order(customer["id"])

    def platform_toml(self) -> str:
        return f"""kind = "shopware6"
url = "{self.url}"
client_id = "{self.sandbox.client_id}"
client_secret = "env:{SECRET_ENV}"
sales_channel = "Storefront"
login_url = "{self.url}/account/login"
"""

    def addresses_toml(self) -> str:
        return ""

    def login(self, email: str, password: str) -> bool:
        resp = requests.post(f"{self.url}/store-api/account/login",
                             json={"username": email, "password": password},
                             headers={"sw-access-key": self.sandbox.access_key, "Accept": "application/json"},
                             timeout=10)
        return resp.status_code == 200

    def stop(self) -> None:
        self.sandbox.stop()


class WooDemo:

    def __init__(self) -> None:
        from syncd.connectors.woocommerce.sandbox import WooSandbox

        # The shop's own "New account" mail is off, as `syncd check` asks of a real shop.
        self.sandbox = WooSandbox(new_account_email=False).start()
        self.url = self.sandbox.url
        self.secret = self.sandbox.consumer_secret

    def register(self, email: str, first: str, last: str, street: str, zip_: str, city: str, country: str,
                 ordered: bool) -> None:
        billing = {"first_name": first, "last_name": last, "address_1": street, "postcode": zip_,
                   "city": city, "country": country, "email": email}
        customer = self.sandbox.create_customer_as_shop_user(
            email, SEED_PASSWORD, first_name=first, last_name=last, billing=billing)
        if ordered:
            self.sandbox.add_order(customer["id"])

    def platform_toml(self) -> str:
        return f"""kind = "woocommerce"
url = "{self.url}"
consumer_key = "{self.sandbox.consumer_key}"
consumer_secret = "env:{SECRET_ENV}"
login_url = "{self.url}/my-account/"
"""

    def addresses_toml(self) -> str:
        # WooCommerce customers have no active flag: blocked addresses are not transferred, and
        # accounts of addresses blocked later are left alone (`syncd check` refuses "true").
        return "deactivate_blocked = false\n"

    def login(self, email: str, password: str) -> bool:
        resp = requests.post(f"{self.url}/wp-login.php", data={"log": email, "pwd": password},
                             allow_redirects=False, timeout=10)
        return resp.status_code == 302 and "wordpress_logged_in_" in resp.headers.get("Set-Cookie", "")

    def stop(self) -> None:
        self.sandbox.stop()


def start_demo_shop(platform: str) -> Any:
    """The demo shop of the ``platform`` kind (``KINDS``)."""
    return {"shopware6": ShopwareDemo, "woocommerce": WooDemo}[platform]()

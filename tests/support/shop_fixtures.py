"""Shopware sandbox fixtures and helpers for any test that needs a shop.

Use::

    from tests.support import shop_fixtures
    from tests.support.shop_fixtures import store_login

    sandbox = shop_fixtures.sandbox  # pytest finds the fixture by this module-level name

    def test_x(sandbox): ...

    @pytest.mark.parametrize("sandbox", ["6.5.8.0", "6.7.10.0"], indirect=True)
    def test_y(sandbox): ...
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from syncd.connectors.shopware6.sandbox import Sandbox

DEFAULT_VERSION = "6.6.10.0"


@pytest.fixture
def sandbox(request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    """A started sandbox on a free loopback port. ``request.param`` (indirect parametrisation) is the
    version ("6.7.2.0") or a dict of ``Sandbox`` keyword arguments ({"version": …, "token_lifetime": 1})."""
    param = getattr(request, "param", None) or DEFAULT_VERSION
    kwargs = dict(param) if isinstance(param, dict) else {"version": param}
    kwargs.setdefault("version", DEFAULT_VERSION)
    sb = Sandbox(**kwargs)
    sb.start()
    try:
        yield sb
    finally:
        sb.stop()


def store_login(sandbox: Sandbox, email: str, password: str) -> bool:
    """Log in through the Store API over HTTP, as a customer would; True on 200 with a context token."""
    resp = requests.post(
        f"{sandbox.url}/store-api/account/login",
        json={"username": email, "password": password},
        headers={"sw-access-key": sandbox.access_key, "Accept": "application/json"},
        timeout=10,
    )
    return resp.status_code == 200 and bool(resp.json().get("contextToken"))


def admin_session(sandbox: Sandbox) -> requests.Session:
    """A requests session with a fresh bearer token and the JSON Accept header."""
    session = requests.Session()
    resp = session.post(
        f"{sandbox.url}/api/oauth/token",
        json={
            "grant_type": "client_credentials",
            "client_id": sandbox.client_id,
            "client_secret": sandbox.client_secret,
        },
        timeout=10,
    )
    resp.raise_for_status()
    session.headers.update(
        {"Authorization": f"Bearer {resp.json()['access_token']}", "Accept": "application/json"}
    )
    return session


def customer_payload(sandbox: Sandbox, number: int | str, **overrides: Any) -> dict[str, Any]:
    """A complete, valid customer upsert for the version the sandbox plays (deterministic ids)."""
    ids = sandbox.ids
    cid = hashlib.md5(f"test:{number}".encode(), usedforsecurity=False).hexdigest()
    aid = hashlib.md5(f"test:{number}:a1".encode(), usedforsecurity=False).hexdigest()
    payload: dict[str, Any] = {
        "id": cid,
        "customerNumber": str(number),
        "groupId": ids.customer_groups["Standard-Kundengruppe"],
        "salesChannelId": ids.sales_channel,
        "languageId": ids.language,
        "salutationId": ids.salutations["mr"],
        "firstName": "Max",
        "lastName": "Mustermann",
        "email": f"kunde{number}@example.com",
        "active": True,
        "guest": False,
        "addresses": [
            {
                "id": aid,
                "countryId": ids.countries["DE"],
                "firstName": "Max",
                "lastName": "Mustermann",
                "street": "Musterstr. 1",
                "zipcode": "48624",
                "city": "Schöppingen",
            }
        ],
        "defaultBillingAddressId": aid,
        "defaultShippingAddressId": aid,
    }
    if sandbox.shop_version.payment_method_on_customer:
        payload["defaultPaymentMethodId"] = ids.payment_method
    payload.update(overrides)
    return payload

"""Helpers shared by the Shopware connector tests (no tests here; named test_* to stay in the C2 paths)."""

from __future__ import annotations

from syncd.config.model import PlatformSettings
from syncd.connectors.shopware6 import ShopwareShop, open_shop
from syncd.connectors.shopware6.metadata import MemoryCache
from syncd.connectors.shopware6.sandbox import Sandbox
from syncd.core.domain import ErpAddress


def make_shop(sb: Sandbox, *, cache: MemoryCache | None = None, **settings) -> ShopwareShop:
    values = dict(
        name="shop", url=sb.url, client_id=sb.client_id, client_secret="env:SHOP_SECRET", timeout="5s"
    )
    values.update(settings)
    return open_shop(PlatformSettings(**values), client_secret=sb.client_secret, cache=cache)


def erp(number: int, **kw) -> ErpAddress:
    values = dict(
        number=number,
        email=f"kunde{number}@example.com",
        salutation="Herr",
        first_name="Max",
        last_name=f"Muster{number}",
        street="Musterstr. 1",
        zip="48624",
        city="Schöppingen",
        country="DE",
    )
    values.update(kw)
    return ErpAddress(**values)


def sync_requests(sb: Sandbox) -> list:
    return [r for r in sb.request_log if r.path.startswith("/api/_action/sync")]

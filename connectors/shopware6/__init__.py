"""Shopware 6 connector (Admin API, versions 6.5 - 6.7).

``open_shop(platform, client_secret=...)`` builds the ``ShopPort`` adapter for one platform.
The bundled sandbox server lives in ``syncd.connectors.shopware6.sandbox``.

Modules, one job each:
- ``http``: session, OAuth2 client credentials, error mapping onto transient/permanent, retries
- ``versions``: what differs per Shopware version (payment method, caps, page size)
- ``metadata``: sales channel defaults, groups, salutations, countries; kept in the tenant cache
- ``mapping``: ERP address -> customer payload and shop JSON -> ``ShopCustomer`` (pure)
- ``sync``: bulk upserts with per-record error mapping and bisecting
- ``push``: outcomes per address (created / linked / updated / unchanged / rejected)
- ``shop``: ``ShopwareShop``, the ``ShopPort`` the flows use

Every write sends ``sw-skip-trigger-flow: 1``: the shop sends no registration mail of its own.
"""

from __future__ import annotations

from collections.abc import Mapping

from syncd.config.model import PlatformSettings
from syncd.core.ports import TenantCache

from .http import ShopwareHttp
from .mapping import address_id, customer_id
from .metadata import MemoryCache
from .push import DETAIL_EXISTED, DETAIL_LINK_GONE
from .shop import ShopwareShop


def open_shop(
    platform: PlatformSettings,
    *,
    client_secret: str,
    cache: TenantCache | None = None,
    erp_columns: Mapping[str, str] | None = None,
    pool_size: int = 10,
) -> ShopwareShop:
    """The adapter for ``platform``. ``client_secret`` is the resolved secret (never the
    reference); ``cache`` is the state store's tenant cache (scope = platform name), None for an
    in-memory one; ``erp_columns`` (logical -> ERP column) only improves rejection reasons."""
    http = ShopwareHttp(
        platform.url,
        platform.client_id,
        client_secret,
        timeout=platform.timeout,
        verify=platform.verify_tls,
        pool_size=pool_size,
        platform=platform.name,
    )
    return ShopwareShop(platform, http, cache if cache is not None else MemoryCache(), erp_columns)


__all__ = [
    "DETAIL_EXISTED",
    "DETAIL_LINK_GONE",
    "MemoryCache",
    "ShopwareHttp",
    "ShopwareShop",
    "address_id",
    "customer_id",
    "open_shop",
]

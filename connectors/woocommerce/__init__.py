"""WooCommerce connector (REST API v3, ``/wp-json/wc/v3``).

``open_shop(platform, consumer_secret=...)`` builds the ``ShopPort`` adapter for one platform
of ``kind = "woocommerce"``. The bundled sandbox lives in ``syncd.connectors.woocommerce.sandbox``.

Modules, one job each:
- ``http``: session, consumer key/secret (Basic over HTTPS, OAuth 1.0a over HTTP), error mapping, retries
- ``mapping``: ERP address -> customer payload and shop JSON -> ``ShopCustomer`` (pure)
- ``push``: batch creates/updates with per-item errors, the look-ups that keep creates idempotent
- ``reads``: paging, look-ups by id, the ERP-number index, the incremental import scans
- ``orders``: order changes for the reminders (statuses mapped onto Shopware's three states)
- ``shop``: ``WooShop``, the ``ShopPort`` the flows use
"""

from __future__ import annotations

from syncd.config.model import PlatformSettings

from .http import WooHttp
from .mapping import META_KEY
from .push import DETAIL_EXISTED, DETAIL_LINK_GONE
from .shop import WooShop, unsupported

KIND = "woocommerce"  # the ``platforms[].kind`` this connector serves


def open_shop(platform: PlatformSettings, *, consumer_secret: str, pool_size: int = 10) -> WooShop:
    """The adapter for ``platform``; ``consumer_secret`` is the resolved secret (never the reference)."""
    http = WooHttp(
        platform.url,
        platform.consumer_key or "",
        consumer_secret,
        timeout=platform.timeout,
        verify=platform.verify_tls,
        pool_size=pool_size,
        platform=platform.name,
    )
    return WooShop(platform, http)


__all__ = [
    "KIND",
    "DETAIL_EXISTED",
    "DETAIL_LINK_GONE",
    "META_KEY",
    "WooHttp",
    "WooShop",
    "open_shop",
    "unsupported",
]

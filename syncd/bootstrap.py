"""Wiring: build the adapters of every platform from the validated configuration.

The one place where configuration turns into connectors. Flows receive a ``PlatformContext``
from here (daemon, CLI, demo) or from a test; nothing below ``syncd.flows`` builds an adapter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from connectors.erp import SqlErp, open_erp
from connectors.mail import open_transport
from connectors.shopware6 import ShopwareShop, open_shop
from syncd.config.loader import LoadedConfig
from syncd.config.model import PlatformSettings, Settings
from syncd.config.profiles import effective_columns
from syncd.config.secrets import Secrets
from syncd.flows.context import CycleReport, PlatformContext
from syncd.layouts import LayoutStore
from syncd.state.cache import Cache
from syncd.state.db import StateStore, open_state


class _TtlCache:
    """The tenant cache as the connectors see it: ``[daemon] cache_ttl`` applied on read."""

    def __init__(self, cache: Cache, ttl: float | None) -> None:
        self._cache = cache
        self._ttl = ttl

    def get(self, scope: str, key: str) -> Any:
        return self._cache.get(scope, key, max_age=self._ttl)

    def set(self, scope: str, key: str, value: Any) -> None:
        self._cache.set(scope, key, value)


@dataclass
class Runtime:
    """Everything one process needs to run flows: the state store and, per platform, its ports.

    Adapters are built lazily and kept, so a daemon reuses its connection pools across cycles.
    """

    settings: Settings
    secrets: Secrets
    state: StateStore
    config_path: str | None = None
    _contexts: dict[str, PlatformContext] = field(default_factory=dict)

    @property
    def cache(self) -> _TtlCache:
        return _TtlCache(Cache(self.state), self.settings.daemon.cache_ttl)

    def platform(self, name: str) -> PlatformSettings:
        for platform in self.settings.platforms:
            if platform.name == name:
                return platform
        raise KeyError(name)

    def erp_for(self, platform: PlatformSettings) -> SqlErp:
        addresses = platform.addresses
        return open_erp(
            self.settings.erp,
            password=self.secrets.erp_password,
            cache=self.cache,
            password_field=addresses.password_field if addresses.send_credentials else None,
            password_length=addresses.password_length,
            password_key=f"platforms[{self.settings.platforms.index(platform)}].addresses.password_field",
        )

    def shop_for(self, platform: PlatformSettings) -> ShopwareShop:
        return open_shop(
            platform,
            client_secret=self.secrets.client_secret(platform.name),
            cache=self.cache,
            erp_columns=effective_columns(self.settings.erp),
        )

    def context(self, platform: PlatformSettings | str) -> PlatformContext:
        if isinstance(platform, str):
            platform = self.platform(platform)
        ctx = self._contexts.get(platform.name)
        if ctx is None:
            ctx = PlatformContext(
                settings=self.settings,
                platform=platform,
                erp=self.erp_for(platform),
                shop=self.shop_for(platform),
                state=self.state,
                mail=open_transport(self.settings.mail, password=self.secrets.mail_password),
                layouts=LayoutStore(self.settings.mail.layouts_dir),
            )
            self._contexts[platform.name] = ctx
        return ctx

    def close(self) -> None:
        for ctx in self._contexts.values():
            for port in (ctx.erp, ctx.shop):
                closer = getattr(port, "close", None)
                if callable(closer):
                    closer()
        self._contexts.clear()
        self.state.close()


def open_runtime(loaded: LoadedConfig, secrets: Secrets) -> Runtime:
    """Open the state store (migrating it) and prepare the adapters of every platform."""
    state = open_state(loaded.settings.daemon.state_url)
    return Runtime(loaded.settings, secrets, state, config_path=str(loaded.path))


def flow_jobs() -> dict[str, Callable[[PlatformContext], CycleReport]]:
    """The scheduled jobs per platform, by direction. Each job checks its own settings
    (``erp_to_shop`` / ``shop_to_erp`` / collective address) and reports a no-op when off."""
    from syncd.flows.erp_to_shop import run_erp_to_shop
    from syncd.flows.import_customers import run_shop_to_erp

    return {"erp-to-shop": run_erp_to_shop, "shop-to-erp": run_shop_to_erp}


def sweep(ctx: PlatformContext) -> None:
    """Start-up settling of password fields (I2) before any new work."""
    from syncd.flows.erp_to_shop import settle_password_fields

    settle_password_fields(ctx)

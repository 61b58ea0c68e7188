"""`syncd accounts login-as ADDRESS`: staff see the storefront as one customer sees it, through
the shop's own "log in as customer" (Shopware 6.6.5.0+: ``ShopPort.login_as``), never through the
customer's password.

The shop hands out a token that logs a browser in as the customer; it exists only in memory and
in the one-time link's page (``syncd.shell.login_link``), never in logs, the state store or an
exception. History records *that* staff logged in as the customer (when the link is used), with
the shop's staff user, never the link. A shop without such a mechanism (WooCommerce, Shopware
before 6.6.5.0), a platform without the staff login, or an account the shop would refuse (gone,
inactive) is refused up front with the reason (``ConfigError``: exit 2, nothing changed).
"""

from __future__ import annotations

import structlog

from syncd.core.domain import StorefrontLogin
from syncd.core.errors import ConfigError, PermanentError
from syncd.core.rules import LOGIN_AS_UNSUPPORTED, HistoryEvent
from syncd.flows.accounts import _linked
from syncd.flows.context import PlatformContext

log = structlog.get_logger("syncd.flows.login_as")

# Shops whose connector has no login_as: why, in both languages.
NO_MECHANISM = {
    "woocommerce": "WooCommerce has no 'log in as customer' of its own (only plugins such as User Switching "
                   "offer it) / WooCommerce bietet keine Anmeldung als Kunde (nur über Plugins)",
}


def _key(ctx: PlatformContext, name: str) -> str:
    index = next((i for i, p in enumerate(ctx.settings.platforms) if p.name == ctx.platform.name), 0)
    return f"platforms[{index}].{name}"


def start(ctx: PlatformContext, number: int, staff_password: str | None) -> tuple[StorefrontLogin, str]:
    """The one-time storefront login for ERP address ``number`` and its shop account id."""
    number = int(number)
    link = _linked(ctx, [number])[number]
    login_as = getattr(ctx.shop, "login_as", None)
    if login_as is None:
        why = NO_MECHANISM.get(ctx.platform.kind, f"{ctx.platform.kind} has no 'log in as customer'")
        raise ConfigError(why, key=_key(ctx, "kind"), value=ctx.platform.kind)
    if not ctx.platform.login_as_user or not staff_password:
        missing = "login_as_user" if not ctx.platform.login_as_user else "login_as_password"
        raise ConfigError(
            "is not set: login-as needs an Administration user with the permission "
            "'api_proxy_imitate-customer' (an integration cannot imitate) / nicht gesetzt: die Anmeldung "
            "als Kunde braucht einen Administrations-Benutzer", key=_key(ctx, missing))
    customer = ctx.shop.get_customers([link.shop_id]).get(link.shop_id)
    if customer is None:
        raise ConfigError(f"address {number}: its shop account {link.shop_id} is gone / das Shop-Konto "
                          "gibt es nicht mehr", key="ADDRESS", value=number)
    if not customer.active:
        raise ConfigError(f"address {number}: its shop account is inactive; the shop does not log anyone "
                          "into an inactive account / das Shop-Konto ist deaktiviert", key="ADDRESS",
                          value=number)
    try:
        form = login_as(link.shop_id, ctx.platform.login_as_user, staff_password, ctx.clock())
    except PermanentError as exc:
        if exc.code == LOGIN_AS_UNSUPPORTED:
            raise ConfigError(str(exc), key=_key(ctx, "url"), value=ctx.platform.url) from None
        raise
    log.info("login-as prepared", platform=ctx.platform.name, address=number, step="login-as",
             staff_user=form.staff_user)
    return form, link.shop_id


def record_use(ctx: PlatformContext, number: int, shop_id: str, staff_user: str) -> None:
    """The link was followed: staff now have a storefront session as the customer."""
    with ctx.uow() as uow:
        uow.history.record(ctx.platform.name, int(number), HistoryEvent.STAFF_LOGIN_AS, shop_id=shop_id,
                           reason=f"staff user {staff_user!r} opened a storefront session as the customer "
                                  "(syncd accounts login-as)")
        uow.commit()
    log.info("login-as used", platform=ctx.platform.name, address=int(number), step="login-as",
             staff_user=staff_user)

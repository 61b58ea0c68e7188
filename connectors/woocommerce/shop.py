"""``WooShop``: the ``syncd.core.ports.ShopPort`` adapter for WooCommerce (REST API v3).

What WooCommerce's customer resource cannot do, syncd refuses instead of skipping it silently:
``check`` names each unsupported setting with its reason (customer groups, deactivation of
blocked addresses, link mode), and the operations raise ``PermanentError`` with the same reason
when called anyway (so a record fails with it, visible in ``syncd status``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from syncd.config.model import PlatformSettings
from syncd.core import redaction
from syncd.core.domain import CheckItem, ErpAddress, PushResult, ShopCustomer
from syncd.core.errors import PermanentError, SyncdError

from .http import WooHttp, describe_error
from .mapping import META_KEY, Rejected, differences, map_address, to_shop_customer
from .push import Claims, Intents, WooPusher

log = structlog.get_logger("syncd.woocommerce")

PAGE = 100  # per_page maximum of the WordPress REST API
NO_DEACTIVATION = (
    "WooCommerce customers have no active flag (a WordPress user with any role can still log "
    "in); set deactivate_blocked = false, or block the account in WordPress by hand / "
    "WooCommerce-Kunden haben kein Aktiv-Kennzeichen"
)
NO_GROUPS = (
    "WooCommerce customers have no customer group; remove customer_group / customer_group_map / "
    "WooCommerce-Kunden haben keine Kundengruppe"
)
NO_LOGIN_TIMES = (
    "WooCommerce's REST API does not report when a customer last logged in, so syncd cannot tell "
    "an unused account: remove activation_reminder / WooCommerce meldet keine letzte Anmeldung"
)
NO_APPROVAL = (
    'WooCommerce has no customer-group requests to approve; use approval = "auto" / '
    "WooCommerce kennt keine Kundengruppen-Anfragen"
)
NO_ORDERS_HERE = (
    "order reminders read Shopware's order and delivery states; WooCommerce orders are not read yet: "
    "name a Shopware platform in reminders[].platform"
)
NO_LINK_MODE = (
    'WooCommerce offers no REST route that mails a set-password link; use credential_mode = "password"'
)


def unsupported(platform: PlatformSettings, key: str | None = None) -> list[tuple[str, str]]:
    """(setting key, reason) of every configured feature WooCommerce cannot carry out; ``key``
    names the platform's table (default ``platforms[NAME]``). ``check`` lists them, ``syncd run``
    refuses to start with them (I7)."""
    key, a = key or f"platforms[{platform.name}]", platform.addresses
    out = []
    if platform.customer_group or platform.customer_group_map:
        out.append((f"{key}.customer_group", NO_GROUPS))
    if a.erp_to_shop and a.deactivate_blocked:
        out.append((f"{key}.addresses.deactivate_blocked", NO_DEACTIVATION))
    if a.credential_mode == "link":
        out.append((f"{key}.addresses.credential_mode", NO_LINK_MODE))
    if a.activation_reminder:  # every account would look unused: reminders for all
        out.append((f"{key}.addresses.activation_reminder", NO_LOGIN_TIMES))
    if a.approval == "manual":
        out.append((f"{key}.addresses.approval", NO_APPROVAL))
    return out


def _gmt(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


class WooShop:
    def __init__(self, platform: PlatformSettings, http: WooHttp) -> None:
        self.platform = platform
        self.name = platform.name
        self.url = platform.url.rstrip("/")
        self.login_url = platform.login_url or self.url + "/my-account/"
        self.http = http
        self.log = log.bind(platform=self.name)

    # --- check -------------------------------------------------------------------------------
    def customer_number_overlap(self, debtor_range: tuple[int, int], prefix: str | None = None
                                ) -> tuple[None, None]:
        """WooCommerce numbers no customers (syncd keeps the ERP number in ``meta_data``): no
        range of the shop's own can collide with syncd's numbers."""
        return None, None

    def unsupported(self) -> list[tuple[str, str]]:
        return unsupported(self.platform, f"platforms[{self.name}]")

    def check(self) -> list[CheckItem]:
        area = f"shop:{self.name}"
        items: list[CheckItem] = []
        try:
            result = self.http.call("GET", "/customers", query={"per_page": 1, "role": "all"})
            total = result.headers.get("X-WP-Total", "?")
            items.append(CheckItem(area, "connection", True, f"{self.url}: authenticated, {total} customers"))
        except SyncdError as exc:
            items.append(CheckItem(area, "connection", False, f"{self.url}: {redaction.redact(str(exc))}"))
            return items
        try:
            mail = self.http.call("GET", "/settings/email_customer_new_account/enabled").body or {}
            enabled = str(mail.get("value", "")).lower() == "yes"
            items.append(
                CheckItem(
                    area,
                    "new account mail",
                    not enabled,
                    "WooCommerce's own 'New account' mail is on: customers would get a second mail; "
                    "turn it off (WooCommerce > Settings > Emails) / die WooCommerce-Mail 'Neues Konto' "
                    "ist aktiv"
                    if enabled
                    else "off (customers get syncd's mail only)",
                )
            )
        except SyncdError as exc:
            items.append(CheckItem(area, "new account mail", False, redaction.redact(str(exc))))
        for key, reason in self.unsupported():
            items.append(CheckItem(area, f"unsupported: {key}", False, reason))
        return items

    # --- push --------------------------------------------------------------------------------
    def fingerprint(self, address: ErpAddress, shop_id: str | None = None) -> str | None:
        from .mapping import fingerprint

        try:
            return fingerprint(map_address(address).payload)
        except Rejected:
            return None

    def push(
        self,
        addresses: Sequence[ErpAddress],
        links: Mapping[int, str],
        *,
        claims: Claims | None = None,
        intents: Intents | None = None,
        dry_run: bool = False,
    ) -> list[PushResult]:
        """Create, link or update ``addresses``; one result per address, in order (``push`` module).
        ``dry_run``: decide from reads only, write nothing (``WooPusher.predict``)."""
        if not addresses:
            return []
        if dry_run:
            return WooPusher(self.http, self.platform.batch_size, claims, None).predict(addresses, links)
        results = WooPusher(self.http, self.platform.batch_size, claims, intents).push(addresses, links)
        counts: dict[str, int] = {}
        for r in results:
            counts[r.outcome.value] = counts.get(r.outcome.value, 0) + 1
        self.log.info("pushed customers", step="push", **counts)
        return results

    # --- account operations ------------------------------------------------------------------
    def _batch_update(self, items: list[dict[str, Any]]) -> dict[str, str | None]:
        """One ``customers/batch`` update per ``batch_size`` items; shop id -> error reason."""
        out: dict[str, str | None] = {}
        for start in range(0, len(items), self.platform.batch_size):
            chunk = items[start : start + self.platform.batch_size]
            answer = self.http.call("POST", "/customers/batch", {"update": chunk}).body or {}
            answered = answer.get("update") or []
            for index, item in enumerate(chunk):
                got = answered[index] if index < len(answered) else {"error": {"code": "SYNCD__NO_ANSWER"}}
                error = got.get("error") if isinstance(got, dict) else None
                out[str(item["id"])] = describe_error(error)[0] if error else None
        return out

    def set_passwords(self, passwords: Mapping[str, str]) -> dict[str, str | None]:
        """shop id -> password, batch updates of ≤ batch_size; shop id -> error reason (None = set)."""
        if not passwords:
            return {}
        with redaction.sensitive(*passwords.values()):
            return self._batch_update([{"id": int(sid), "password": pw} for sid, pw in passwords.items()])

    def set_active(self, shop_ids: Sequence[str], active: bool) -> dict[str, str | None]:
        """WooCommerce has no active flag: each deactivation is refused with the reason (the
        record fails with it, visible in ``syncd status`` and ``syncd accounts``; ``check`` says
        so up front). Reactivating needs nothing: the account never stopped working."""
        return {sid: None if active else NO_DEACTIVATION for sid in shop_ids}

    def delete_customer(self, shop_id: str) -> bool:
        """Delete the WordPress user of the account (``force``: customers have no trash); False
        when it is gone already (WooCommerce answers 400 ``woocommerce_rest_invalid_id``). Its
        orders stay, as WooCommerce keeps them."""
        try:
            result = self.http.call("DELETE", f"/customers/{int(shop_id)}", query={"force": "true"},
                                    pass_statuses=frozenset({404}))
        except PermanentError as exc:
            if exc.code == "woocommerce_rest_invalid_id":
                return False
            raise
        return result.status != 404

    def set_customer_number(self, shop_id: str, number: str) -> None:
        """Write the ERP number back (shop -> ERP import): the account's ``syncd_erp_number``."""
        self.http.call(
            "PUT", f"/customers/{int(shop_id)}", {"meta_data": [{"key": META_KEY, "value": str(number)}]}
        )

    def send_recovery_link(self, shop_id: str) -> None:
        raise PermanentError(NO_LINK_MODE, code="SYNCD__UNSUPPORTED")

    # --- reading -----------------------------------------------------------------------------
    def _pages(self, path: str, query: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        """Every row of a list route, page by page, until ``X-WP-TotalPages`` is reached."""
        page = 1
        while True:
            result = self.http.call("GET", path, query={**query, "per_page": PAGE, "page": page})
            rows = result.body or []
            yield from rows
            try:
                pages = int(result.headers.get("X-WP-TotalPages") or 0)
            except ValueError:
                pages = 0
            if page >= pages or not rows:
                return
            page += 1

    def customers_changed_since(self, since: datetime | None) -> Iterator[ShopCustomer]:
        """The customers route has no date filter: every customer is read (registration order)
        and those modified at or after ``since`` are kept. O(customers) per call."""
        bound = _gmt(since) if since is not None else None
        for row in self._pages("/customers", {"role": "all", "orderby": "registered_date", "order": "asc"}):
            changed = str(row.get("date_modified_gmt") or row.get("date_created_gmt") or "")
            if bound is None or changed >= bound:
                yield to_shop_customer(row)

    def customers_with_orders(self, since: datetime | None) -> Iterator[ShopCustomer]:
        """Customers with an order placed at or after ``since``: the orders route filters by date
        (``after``, inclusive here by one second's margin); guest orders (customer_id 0) are left out."""
        query: dict[str, Any] = {"orderby": "date", "order": "asc"}
        if since is not None:
            query["after"] = _gmt(since - timedelta(seconds=1))  # "after" is strict, the bound is not
        ids: dict[str, None] = {}
        for order in self._pages("/orders", query):
            cid = int(order.get("customer_id") or 0)
            if cid:
                ids[str(cid)] = None
        yield from self.get_customers(list(ids), has_orders=True).values()

    def get_customers(
        self, shop_ids: Sequence[str], *, has_orders: bool | None = None
    ) -> dict[str, ShopCustomer]:
        out: dict[str, ShopCustomer] = {}
        for row in self._rows(shop_ids):
            out[str(row["id"])] = to_shop_customer(row, has_orders=has_orders)
        return out

    def _rows(self, shop_ids: Sequence[str]) -> Iterator[dict[str, Any]]:
        ids = [str(int(s)) for s in dict.fromkeys(shop_ids) if str(s).isdigit()]
        for start in range(0, len(ids), PAGE):
            chunk = ids[start : start + PAGE]
            yield from self._pages("/customers", {"include": ",".join(chunk), "role": "all"})

    def compare(self, addresses: Sequence[ErpAddress], links: Mapping[int, str]) -> dict[int, str]:
        if not links:
            return {}
        rows = {
            str(r["id"]): r for r in self._rows([links[a.number] for a in addresses if a.number in links])
        }
        out: dict[int, str] = {}
        for a in addresses:
            sid = links.get(a.number)
            if sid is None:
                continue
            row = rows.get(sid)
            if row is None:
                out[a.number] = "missing"
                continue
            try:
                fields = differences(map_address(a).payload, row)
            except Rejected:
                continue
            if fields:
                out[a.number] = "differs: " + ", ".join(fields)
        return out

    def clear_cache(self) -> None:
        """Nothing kept: WooCommerce needs no metadata look-ups."""

    def close(self) -> None:
        self.http.close()


__all__ = ["WooShop"]

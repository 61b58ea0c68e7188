"""``WooShop``: the ``syncd.core.ports.ShopPort`` adapter for WooCommerce (REST API v3).

What WooCommerce's customer resource cannot do, syncd refuses instead of skipping it silently:
``check`` names each unsupported setting with its reason (customer groups, deactivation of
blocked addresses, link mode), and the operations raise ``PermanentError`` with the same reason
when called anyway (so a record fails with it, visible in ``syncd status``).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

import structlog

from syncd.config.model import PlatformSettings
from syncd.core import redaction
from syncd.core.domain import CheckItem, ErpAddress, OrderChanges, PushResult, ShopCustomer
from syncd.core.errors import PermanentError, SyncdError

from .http import WooHttp, describe_error
from .mapping import META_KEY, Rejected, differences, map_address, to_shop_customer
from .orders import order_changes
from .push import Claims, Intents, WooPusher
from .reads import changed, gmt, new_customers, number_index, order_customer_ids, pages, rows_by_id

log = structlog.get_logger("syncd.woocommerce")

# Why each refused setting cannot be carried out over the REST API v3 (checked against
# WooCommerce's customers controller and WC_Customer_Data_Store; shopware-notes §7).
NO_DEACTIVATION = (
    "WooCommerce customers have no active flag, and the customer's role is read-only over the "
    "REST API (any WordPress role can log in anyway); set deactivate_blocked = false, or block "
    "the account in WordPress by hand / WooCommerce-Kunden haben kein Aktiv-Kennzeichen, die "
    "Rolle ist über die REST-API nicht änderbar"
)
NO_GROUPS = (
    "WooCommerce customers have no customer group (the only grouping, the WordPress role, is "
    "read-only over the REST API); remove customer_group / customer_group_map / "
    "WooCommerce-Kunden haben keine Kundengruppe"
)
NO_LOGIN_TIMES = (
    "WooCommerce keeps only the day of a customer's last visit (meta wc_last_active) and its "
    "REST API cannot filter by it, so telling unused accounts would read every customer each "
    "cycle: remove activation_reminder / WooCommerce meldet die letzte Anmeldung nicht abfragbar"
)
NO_APPROVAL = (
    "WooCommerce has no customer-group requests to approve (customers cannot ask for a group); "
    'use approval = "auto" / WooCommerce kennt keine Kundengruppen-Anfragen'
)
NO_LINK_MODE = (
    "WooCommerce offers no REST route that mails a set-password link (only the storefront's "
    "lost-password form does, with WordPress's own mail); use credential_mode = \"password\" / "
    "WooCommerce hat keine REST-Route für Passwort-Links"
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
    if a.on_erp_delete == "deactivate":  # "delete" works: the account is deleted instead
        out.append((f"{key}.addresses.on_erp_delete", NO_DEACTIVATION))
    if a.credential_mode == "link":
        out.append((f"{key}.addresses.credential_mode", NO_LINK_MODE))
    if a.activation_reminder:  # every account would look unused: reminders for all
        out.append((f"{key}.addresses.activation_reminder", NO_LOGIN_TIMES))
    if a.approval == "manual":
        out.append((f"{key}.addresses.approval", NO_APPROVAL))
    return out


class _Recovery:
    """The ERP-number index of one recovery (``reads.number_index``), read once when first asked."""

    def __init__(self, http: WooHttp, logger: Any) -> None:
        self.http, self.log = http, logger
        self._index: dict[str, list[str]] | None = None

    def index(self) -> dict[str, list[str]]:
        if self._index is None:
            self._index = number_index(self.http)
            self.log.info("ERP numbers read from every customer (state store without a completed scan)",
                          step="push", numbered=len(self._index))
        return self._index

    def rows(self, shop_ids: Sequence[str]) -> Iterator[dict[str, Any]]:
        return rows_by_id(self.http, shop_ids)


class WooShop:
    def __init__(self, platform: PlatformSettings, http: WooHttp) -> None:
        self.platform = platform
        self.name = platform.name
        self.url = platform.url.rstrip("/")
        self.login_url = platform.login_url or self.url + "/my-account/"
        self.http = http
        self.log = log.bind(platform=self.name)
        self._recovery: _Recovery | None = None

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
        recovery = self._recovery_for(intents)
        size = self.platform.batch_size
        if dry_run:
            return WooPusher(self.http, size, claims, None, recovery).predict(addresses, links)
        results = WooPusher(self.http, size, claims, intents, recovery).push(addresses, links)
        counts: dict[str, int] = {}
        for r in results:
            counts[r.outcome.value] = counts.get(r.outcome.value, 0) + 1
        self.log.info("pushed customers", step="push", **counts)
        return results

    def _recovery_for(self, intents: Intents | None) -> _Recovery | None:
        """The ERP-number index while the state store says it may have lost links (``recovering``:
        no ERP scan completed for this platform - a fresh, lost or replaced store); kept for the
        pushes of that recovery, dropped once a scan has completed."""
        probe = getattr(intents, "recovering", None)
        if probe is None or not probe():
            self._recovery = None
            return None
        if self._recovery is None:
            self._recovery = _Recovery(self.http, self.log)
        return self._recovery

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
    def customers_changed_since(self, since: datetime | None) -> Iterator[ShopCustomer]:
        """Customers created or modified at or after ``since``. The customers route has no date
        filter (``reads``), so a full pass reads every customer - done for the first import
        (``since`` None) and when ``shop_changes`` must see every profile edit. Otherwise the
        candidates are the customers registered since (newest first, stopping at ``since``) and
        those with an order created or modified since (checkout writes the billing address to
        the customer): O(new customers + recent orders) per poll, not O(customers)."""
        if since is None or self.platform.addresses.shop_changes != "ignore":
            bound = gmt(since) if since is not None else None
            for row in pages(self.http, "/customers", {"role": "all", "orderby": "id", "order": "asc"}):
                if bound is None or changed(row) >= bound:
                    yield to_shop_customer(row)
            return
        bound, seen = gmt(since), set()
        for row in new_customers(self.http, since):
            seen.add(str(row["id"]))
            yield to_shop_customer(row)
        ordered = [sid for sid in order_customer_ids(self.http, since) if sid not in seen]
        for row in rows_by_id(self.http, ordered):
            if changed(row) >= bound:
                yield to_shop_customer(row)

    def customers_with_orders(self, since: datetime | None) -> Iterator[ShopCustomer]:
        """Customers with an order created or modified at or after ``since`` (``reads``)."""
        yield from self.get_customers(order_customer_ids(self.http, since), has_orders=True).values()

    def get_customers(
        self, shop_ids: Sequence[str], *, has_orders: bool | None = None
    ) -> dict[str, ShopCustomer]:
        out: dict[str, ShopCustomer] = {}
        for row in rows_by_id(self.http, shop_ids):
            out[str(row["id"])] = to_shop_customer(row, has_orders=has_orders)
        return out

    def compare(self, addresses: Sequence[ErpAddress], links: Mapping[int, str]) -> dict[int, str]:
        if not links:
            return {}
        linked = [links[a.number] for a in addresses if a.number in links]
        rows = {str(r["id"]): r for r in rows_by_id(self.http, linked)}
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

    def order_changes(self, since: Mapping[str, datetime], skip: Collection[str] = ()) -> OrderChanges:
        """New and changed orders for the reminders (``orders``: one bookmark on the modified date)."""
        return order_changes(self.http, since, skip)

    def clear_cache(self) -> None:
        """Nothing kept: WooCommerce needs no metadata look-ups."""

    def close(self) -> None:
        self.http.close()


__all__ = ["WooShop"]

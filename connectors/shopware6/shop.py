"""``ShopwareShop``: the ``syncd.core.ports.ShopPort`` adapter for Shopware 6.5 - 6.7."""

from __future__ import annotations

import contextvars
import hashlib
from collections import deque
from collections.abc import Collection, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from typing import Any

import structlog

from syncd.config.model import PlatformSettings
from syncd.core import redaction
from syncd.core.domain import CheckItem, ErpAddress, OrderChanges, PushResult, ShopCustomer, StorefrontLogin
from syncd.core.errors import ConfigError, PermanentError, SyncdError
from syncd.core.ports import TenantCache
from syncd.core.rules import email_key

from . import drift, imitate
from .http import ShopwareHttp
from .logins import logins_since
from .logins import shop_time as _shop_time
from .mapping import (
    CustomerMapper,
    Rejected,
    customer_id,
    fingerprint,
    normalise_email,
    to_shop_customer,
)
from .metadata import SALUTATION_KEYS, MemoryCache, ShopMetadata, fetch_metadata
from .numbers import NumberRange, customer_range, overlap
from .orders import OrderReader
from .push import Claims, CustomerPusher, Intents, lookup_groups, to_result
from .recovery import Recoveries, Recovery, recovery_id, require_storefront
from .sync import WRITE_HEADERS, SyncWriter
from .versions import VersionTraits, traits_for

log = structlog.get_logger("syncd.shopware6")

ID_CHUNK = 100  # values per equalsAny filter when reading given ids/e-mails: small, predictable requests


class ShopwareShop:
    def __init__(
        self,
        platform: PlatformSettings,
        http: ShopwareHttp,
        cache: TenantCache | None = None,
        erp_columns: Mapping[str, str] | None = None,
    ) -> None:
        self.platform = platform
        self.name = platform.name
        self.url = platform.url.rstrip("/")
        self.login_url = platform.login_url or self.url + "/account/login"
        self.http = http
        self.cache: TenantCache = cache if cache is not None else MemoryCache()
        self.erp_columns = dict(erp_columns or {})
        self.writer = SyncWriter(http)
        self._traits: VersionTraits | None = None
        self._meta: ShopMetadata | None = None
        self.log = log.bind(platform=self.name)
        self.recoveries = Recoveries(
            http, self.search,
            lambda: require_storefront(self.metadata().domains, self.platform.sales_channel),
        )

    # --- reading helpers ---------------------------------------------------------------------
    def search(
        self, entity: str, criteria: Mapping[str, Any], *, limit: int | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every entity matching ``criteria``, page by page (``entity`` as in the URL); pages
        as large as the shop version allows."""
        limit = limit or self.traits().page_limit
        page = 1
        while True:
            body = dict(criteria, page=page, limit=limit)
            data = self.http.call("POST", f"/api/search/{entity}", body).body or {}
            rows = data.get("data") or []
            yield from rows
            if len(rows) < limit:
                return
            page += 1

    def traits(self) -> VersionTraits:
        if self._traits is None:
            body = self.http.call("GET", "/api/_info/version").body or {}
            traits = traits_for(str(body.get("version", "")))
            if not traits.supported:
                raise PermanentError(
                    f"Shopware {traits.version} at {self.url} is not supported; syncd supports 6.5 to 6.7",
                    code="SYNCD__UNSUPPORTED_VERSION",
                )
            self._traits = traits
        return self._traits

    @property
    def _cache_key(self) -> str:
        digest = hashlib.sha256(self.platform.sales_channel.encode()).hexdigest()[:16]
        return f"shopware6.metadata.{digest}"

    def metadata(self, *, refresh: bool = False) -> ShopMetadata:
        if self._meta is not None and not refresh:
            return self._meta
        meta = None if refresh else ShopMetadata.from_json(self.cache.get(self.name, self._cache_key))
        if meta is None:
            meta = fetch_metadata(
                self.search, self.platform.sales_channel, f"platforms.{self.name}.sales_channel"
            )
            self.cache.set(self.name, self._cache_key, meta.to_json())
        self._meta = meta
        return meta

    def mapper(self) -> CustomerMapper:
        return CustomerMapper(self.platform, self.metadata(), self.traits(), self.erp_columns)

    # --- check -------------------------------------------------------------------------------
    def check(self) -> list[CheckItem]:
        area = f"shop:{self.name}"
        items: list[CheckItem] = []
        try:
            self.http.token()
            items.append(CheckItem(area, "connection", True, f"{self.url}: authenticated"))
        except SyncdError as exc:
            items.append(CheckItem(area, "connection", False, f"{self.url}: {redaction.redact(str(exc))}"))
            return items
        try:
            traits = self.traits()
            items.append(CheckItem(area, "version", True, f"Shopware {traits.version}"))
        except SyncdError as exc:
            items.append(CheckItem(area, "version", False, redaction.redact(str(exc))))
            return items
        try:
            meta = self.metadata(refresh=True)
        except ConfigError as exc:
            items.append(CheckItem(area, "sales channel", False, str(exc)))
            return items
        except SyncdError as exc:
            items.append(CheckItem(area, "metadata", False, redaction.redact(str(exc))))
            return items
        channel = f"{meta.sales_channel_name} ({meta.sales_channel_id})"
        items.append(CheckItem(area, "sales channel", True, channel))

        def found(name: str, value: str | None, missing: str) -> None:
            items.append(CheckItem(area, name, bool(value), value or missing))

        found("language", meta.language_id, "the sales channel has no language")
        found("default customer group", meta.customer_group_id, "the sales channel has no customer group")
        if traits.requires_payment_method:
            found("payment method", meta.payment_method_id, "the sales channel has no payment method")
        found("default country", meta.country_id, "the sales channel has no country")
        wanted = {}
        if self.platform.customer_group:
            wanted[self.platform.customer_group] = f"platforms.{self.name}.customer_group"
        for erp_group, name in self.platform.customer_group_map.items():
            wanted.setdefault(name, f"platforms.{self.name}.customer_group_map.{erp_group}")
        for name, key in wanted.items():
            gid = meta.group_id(name)
            found(f"customer group {name!r}", gid, f"not found in the shop ({key})")
        for key in SALUTATION_KEYS:
            found(f"salutation {key}", meta.salutations.get(key), "not found in the shop")
        countries = f"{len(meta.countries)} countries by ISO code"
        items.append(CheckItem(area, "countries", bool(meta.countries), countries))
        a = self.platform.addresses
        if a.send_credentials and a.credential_mode == "link":
            try:  # the link goes to the storefront of the sales channel's first domain
                found("set-password link", self.recovery_url("HASH"),
                      f"the sales channel has no domain (platforms.{self.name}.sales_channel)")
            except SyncdError as exc:
                items.append(CheckItem(area, "set-password link", False, redaction.redact(str(exc))))
        return items

    def customer_number_range(self) -> NumberRange | None:
        """The shop's own customer number range (storefront registrations), read each time."""
        return customer_range(self.search)

    def customer_number_overlap(self, debtor_range: tuple[int, int], prefix: str | None = None
                                ) -> tuple[NumberRange | None, str | None]:
        """(the range, why it collides with syncd's customer numbers or None); ``prefix``
        defaults to the platform's ``customer_number_prefix``."""
        rng = self.customer_number_range()
        if rng is None:
            return None, None
        prefix = self.platform.customer_number_prefix if prefix is None else prefix
        return rng, overlap(rng, debtor_range, prefix)

    # --- push --------------------------------------------------------------------------------
    def fingerprint(self, address: ErpAddress, shop_id: str | None = None) -> str | None:
        """The fingerprint ``push`` would report for ``address`` (None when it would be rejected)."""
        mapper = self.mapper()
        ours = customer_id(self.name, address.number)
        try:
            mapped = mapper.map(address, shop_id=shop_id if shop_id and shop_id != ours else None)
        except Rejected:
            return None
        return fingerprint(mapped.payload)

    def push(
        self,
        addresses: Sequence[ErpAddress],
        links: Mapping[int, str],
        *,
        linked_emails: Mapping[str, int] | None = None,
        fingerprints: Mapping[int, str] | None = None,
        claims: Claims | None = None,
        intents: Intents | None = None,
        dry_run: bool = False,
    ) -> list[PushResult]:
        """Create, link or update ``addresses``; one result per address, in order.

        ``links``: ERP number -> shop id already linked. ``linked_emails``: e-mail -> ERP number of
        addresses linked on this platform (so a new address cannot take an e-mail another address
        already has). ``fingerprints``: ERP number -> last fingerprint stored for a linked address;
        an equal one comes back UNCHANGED without a write. ``PushResult.fingerprint`` is filled
        only when ``fingerprints`` is given (an empty mapping will do): hashing costs time.
        ``claims``: shop ids -> ERP number they are linked to (the state store beyond ``links``),
        asked once per group for accounts found for unlinked addresses (see ``push`` module).
        ``intents``: the state store's create intents; recorded before each create request and
        asked which unlinked accounts found under syncd's id were made by a crashed push.
        ``dry_run``: the same mapping, look-ups and decisions, nothing written (no intent is
        recorded, no sync request sent): the outcomes a real push would have, except refusals
        only the shop's validation of the write would make.
        """
        if not addresses:
            return []
        mapper = self.mapper()
        owners = {email_key(e): n for e, n in (linked_emails or {}).items()}
        for address in addresses:
            if address.number in links and address.email:
                owners.setdefault(email_key(normalise_email(address.email)), address.number)
        reverse_links = {shop_id: number for number, shop_id in links.items()}
        size = self.platform.batch_size
        pusher = CustomerPusher(self.name, mapper, self.search, self.writer, size, claims, intents,
                                dry_run=dry_run)
        results: list[PushResult] = []
        # Two stages: this thread maps group k+1 while one worker talks to the shop about group k.
        # The worker is the only thread using the session during push; results keep their order.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"push-{self.name}") as worker:
            queued: deque[Future[list[Any]]] = deque()
            try:
                for start, end in lookup_groups(len(addresses), size):
                    plans = pusher.prepare(start, addresses[start:end], links, owners, fingerprints)
                    # The caller's bound log context (platform, step) follows the batch.
                    context = contextvars.copy_context()
                    queued.append(worker.submit(context.run, pusher.complete, plans, links, reverse_links))
                    if len(queued) > 1:
                        results.extend(to_result(p) for p in queued.popleft().result())
                while queued:
                    results.extend(to_result(p) for p in queued.popleft().result())
            except BaseException:
                for future in queued:
                    future.cancel()  # a failed batch ends the push; later ones must not start
                raise
        counts: dict[str, int] = {}
        for r in results:
            counts[r.outcome.value] = counts.get(r.outcome.value, 0) + 1
        self.log.info("push decided (dry run)" if dry_run else "pushed customers", step="push", **counts)
        return results

    # --- account operations ------------------------------------------------------------------
    def _upsert_each(self, records: list[dict[str, Any]]) -> dict[str, str | None]:
        rejected = self.writer.upsert("customer", records)
        return {r["id"]: (rejected[i][0] if i in rejected else None) for i, r in enumerate(records)}

    def set_passwords(self, passwords: Mapping[str, str]) -> dict[str, str | None]:
        """shop id -> password in one bulk upsert; returns shop id -> error reason (None = set)."""
        if not passwords:
            return {}
        with redaction.sensitive(*passwords.values()):
            return self._upsert_each([{"id": sid, "password": pw} for sid, pw in passwords.items()])

    def set_active(self, shop_ids: Sequence[str], active: bool) -> dict[str, str | None]:
        if not shop_ids:
            return {}
        return self._upsert_each([{"id": sid, "active": bool(active)} for sid in shop_ids])

    def group_requests(self) -> Iterator[ShopCustomer]:
        """Non-guest customers with an open customer-group request (``requestedGroupId`` set: they
        registered through a group's registration page), oldest first."""
        return self._customers({"filter": [
            {"type": "equals", "field": "guest", "value": False},
            {"type": "not", "operator": "and",
             "queries": [{"type": "equals", "field": "requestedGroupId", "value": None}]},
        ]})

    def decide_group_request(self, shop_ids: Sequence[str], accept: bool) -> None:
        """Accept (the requested group becomes the customer's group) or decline the open group
        requests of ``shop_ids`` (Admin API ``/_action/customer-group-registration/accept|decline``,
        ``silentError``: an account without a request is skipped). ``sw-skip-trigger-flow``: the
        shop's own accepted/declined mail is not sent; syncd mails the customer itself."""
        if not shop_ids:
            return
        action = "accept" if accept else "decline"
        self.http.call("POST", f"/api/_action/customer-group-registration/{action}",
                       {"customerIds": list(shop_ids), "silentError": True}, headers=WRITE_HEADERS)

    def set_customer_number(self, shop_id: str, number: str) -> None:
        body = {"customerNumber": str(number)}
        self.http.call("PATCH", f"/api/customer/{shop_id}", body, headers=WRITE_HEADERS)

    # --- reading customers -------------------------------------------------------------------
    def _customers(self, criteria: dict[str, Any]) -> Iterator[ShopCustomer]:
        meta = self.metadata()
        criteria = dict(criteria)
        criteria.setdefault("associations", {"defaultBillingAddress": {"associations": {"country": {}}}})
        criteria.setdefault("sort", [{"field": "createdAt", "order": "ASC"}, {"field": "id", "order": "ASC"}])
        for row in self.search("customer", criteria):
            yield to_shop_customer(row, meta)

    def logins_since(self, since: datetime | None) -> Iterator[tuple[str, datetime]]:
        return logins_since(self.search, since)

    def customers_changed_since(self, since: datetime | None) -> Iterator[ShopCustomer]:
        """Non-guest customers created or updated at/after ``since`` (all when None), oldest
        first, with order count and default billing address. Sorted by creation so that records
        changing while we page cannot move between pages. ``since`` is the literal bound: the
        flow that owns the bookmark has already moved it back by ``rules.SHOP_CHANGE_OVERLAP``."""
        filters: list[dict[str, Any]] = [{"type": "equals", "field": "guest", "value": False}]
        if since is not None:
            start = _shop_time(since)
            filters.append(
                {
                    "type": "multi",
                    "operator": "or",
                    "queries": [
                        {"type": "range", "field": "createdAt", "parameters": {"gte": start}},
                        {"type": "range", "field": "updatedAt", "parameters": {"gte": start}},
                        # an edit of the billing address moves only the address's updatedAt
                        {"type": "range", "field": "defaultBillingAddress.updatedAt",
                         "parameters": {"gte": start}},
                    ],
                }
            )
        return self._customers({"filter": filters})

    def customers_with_orders(self, since: datetime | None = None) -> Iterator[ShopCustomer]:
        """Non-guest customers with an order placed at/after ``since`` (None: any order), the
        literal bound as in ``customers_changed_since``. A new order does not bump the
        customer's ``updatedAt``, so this reads orders."""
        if since is None:
            yield from self._customers(
                {
                    "filter": [
                        {"type": "equals", "field": "guest", "value": False},
                        {"type": "range", "field": "orderCount", "parameters": {"gt": 0}},
                    ]
                }
            )
            return
        criteria = {
            "filter": [
                {
                    "type": "range",
                    "field": "orderDateTime",
                    "parameters": {"gte": _shop_time(since)},
                }
            ],
            "associations": {"orderCustomer": {}},
            "sort": [{"field": "orderDateTime", "order": "ASC"}, {"field": "id", "order": "ASC"}],
        }
        ids: dict[str, None] = {}
        for order in self.search("order", criteria):
            cid = (order.get("orderCustomer") or {}).get("customerId")
            if cid:
                ids[cid] = None
        for customer in self.get_customers(list(ids)).values():
            if not customer.guest:
                yield customer

    def get_customers(self, shop_ids: Sequence[str]) -> dict[str, ShopCustomer]:
        out: dict[str, ShopCustomer] = {}
        ids = list(dict.fromkeys(shop_ids))
        for start in range(0, len(ids), ID_CHUNK):
            chunk = ids[start : start + ID_CHUNK]
            for c in self._customers({"filter": [{"type": "equalsAny", "field": "id", "value": chunk}]}):
                out[c.id] = c
        return out

    def compare(self, addresses: Sequence[ErpAddress], links: Mapping[int, str]) -> dict[int, str]:
        """The reconciliation's view of linked accounts: ERP number -> "missing" or "differs: ..."
        for those gone from the shop or out of step with the ERP row (``shopware6.drift``)."""
        if not links:
            return {}
        limit = self.traits().page_limit
        return drift.compare(self.name, self.mapper(), self.search, limit, addresses, links)

    def send_recovery_link(self, shop_id: str) -> None:
        """Let the shop mail its own one-time "set your password" link (link mode, spec §3),
        through the Store API recovery route of the platform's sales channel."""
        meta = self.metadata()
        customers = self.get_customers([shop_id])
        if shop_id not in customers:
            raise PermanentError(f"shop account {shop_id} not found", code="FRAMEWORK__RESOURCE_NOT_FOUND")
        if not meta.access_key:
            raise PermanentError(f"sales channel {meta.sales_channel_name!r} has no access key")
        storefront = meta.domains[0] if meta.domains else self.url
        self.http.call(
            "POST",
            "/store-api/account/recovery-password",
            {"email": customers[shop_id].email, "storefrontUrl": storefront},
            headers={"sw-access-key": meta.access_key},
            auth=False,
        )

    # --- set-password links (credential_mode = "link") -------------------------------------
    def recovery_id(self, key: str) -> str:
        return recovery_id(f"{self.name}:{key}")

    def create_recoveries(self, wanted: Mapping[str, tuple[str, str]], now: datetime
                          ) -> dict[str, str | None]:
        """shop id -> (row id, hash): each becomes the customer's one open recovery, created
        ``now``; returns shop id -> reason when refused (None = written)."""
        return self.recoveries.replace(wanted, now)

    def open_recoveries(self, shop_ids: Sequence[str]) -> dict[str, Recovery]:
        return self.recoveries.read(shop_ids)

    def recoveries_since(self, since: datetime | None) -> Iterator[tuple[str, str, datetime]]:
        return self.recoveries.since(since)  # (row id, customer id, createdAt): no hash

    def recovery_url(self, recovery_hash: str) -> str:
        return self.recoveries.url(recovery_hash)

    def delete_customer(self, shop_id: str) -> bool:
        """Delete the account (addresses and an open recovery cascade); False when it is gone."""
        result = self.http.call("DELETE", f"/api/customer/{shop_id}", headers=WRITE_HEADERS,
                                pass_statuses=frozenset({404}))
        return result.status != 404

    def login_as(self, shop_id: str, user: str, password: str, now: datetime) -> StorefrontLogin:
        """The shop's own "log in as customer" (``shopware6.imitate``); refused before 6.6.5.0."""
        return imitate.Imitation(self.http, self.recoveries.storefront, self.metadata).login(
            self.traits(), shop_id, user, password, now)

    def order_changes(self, since: Mapping[str, datetime], skip: Collection[str] = ()) -> OrderChanges:
        return OrderReader(self).changes(since, skip)

    def clear_cache(self) -> None:
        """Forget metadata and version held in memory (the tenant cache is cleared by its owner)."""
        self._meta = None
        self._traits = None

    def close(self) -> None:
        self.http.close()


__all__ = ["ShopwareShop"]

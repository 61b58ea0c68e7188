"""Shop metadata a customer payload needs (sales channel defaults, groups, salutations,
countries), fetched once and kept in the tenant cache until ``syncd clear-cache``.

The cache value is plain JSON (the state store keeps it); nothing secret is in it. The sales
channel's ``accessKey`` is a public storefront key (sent by every browser), not a secret.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from syncd.connectors.cache import MemoryCache  # noqa: F401 - re-exported
from syncd.core.errors import ConfigError

SALUTATION_KEYS = ("mr", "mrs", "not_specified")
CACHE_VERSION = 1  # bump when the cached shape changes, so an old entry is fetched anew


@dataclass(frozen=True)
class ShopMetadata:
    sales_channel_name: str
    sales_channel_id: str
    language_id: str | None
    customer_group_id: str | None
    payment_method_id: str | None
    country_id: str | None
    access_key: str | None = None
    domains: tuple[str, ...] = ()
    groups: dict[str, str] = field(default_factory=dict)  # name -> id
    salutations: dict[str, str] = field(default_factory=dict)  # salutationKey -> id
    countries: dict[str, str] = field(default_factory=dict)  # ISO alpha-2 -> id

    def group_id(self, name: str) -> str | None:
        if name in self.groups:
            return self.groups[name]
        folded = name.casefold()
        for known, gid in self.groups.items():
            if known.casefold() == folded:
                return gid
        return None

    def country_iso(self, country_id: str | None) -> str | None:
        for iso, cid in self.countries.items():
            if cid == country_id:
                return iso
        return None

    def salutation_key(self, salutation_id: str | None) -> str | None:
        for key, sid in self.salutations.items():
            if sid == salutation_id:
                return key
        return None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["domains"] = list(self.domains)
        data["_v"] = CACHE_VERSION
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ShopMetadata | None:
        if not isinstance(data, dict) or data.get("_v") != CACHE_VERSION:
            return None
        values = {k: v for k, v in data.items() if k != "_v"}
        values["domains"] = tuple(values.get("domains") or ())
        try:
            return cls(**values)
        except TypeError:
            return None  # a damaged or foreign entry: fetched anew, never trusted


def _translated(entity: dict[str, Any], key: str) -> str | None:
    value = entity.get(key)
    if value is None:
        value = (entity.get("translated") or {}).get(key)
    return value


def fetch_metadata(
    search: Callable[[str, dict[str, Any]], Iterator[dict[str, Any]]], sales_channel: str, where: str
) -> ShopMetadata:
    """Resolve everything with a handful of searches. ``search(entity, criteria)`` yields every
    matching entity across pages. A missing sales channel is a configuration error (``where``
    names the config key)."""
    channels = [
        sc
        for sc in search(
            "sales-channel",
            {
                "filter": [{"type": "equals", "field": "name", "value": sales_channel}],
                "associations": {"domains": {}},
            },
        )
        if _translated(sc, "name") == sales_channel
    ]
    if not channels:
        raise ConfigError("sales channel not found in the shop", key=where, value=sales_channel)
    sc = channels[0]
    groups = {}
    for group in search("customer-group", {}):
        name = _translated(group, "name")
        if name:
            groups[name] = group["id"]
    salutations = {s["salutationKey"]: s["id"] for s in search("salutation", {}) if s.get("salutationKey")}
    countries = {}
    for country in search("country", {}):
        iso = (country.get("iso") or "").upper()
        if iso:
            countries[iso] = country["id"]
    domains = tuple(d.get("url") for d in (sc.get("domains") or []) if d.get("url"))
    return ShopMetadata(
        sales_channel_name=sales_channel,
        sales_channel_id=sc["id"],
        language_id=sc.get("languageId"),
        customer_group_id=sc.get("customerGroupId"),
        payment_method_id=sc.get("paymentMethodId"),
        country_id=sc.get("countryId"),
        access_key=sc.get("accessKey"),
        domains=domains,
        groups=groups,
        salutations=salutations,
        countries=countries,
    )

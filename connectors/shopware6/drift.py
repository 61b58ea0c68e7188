"""Compare linked shop accounts with the payload the ERP rows map to (``ShopwareShop.compare``).

The reconciliation asks this once per ERP page: one id search per ``page_limit`` accounts,
reading only the fields syncd writes, so the cost is a plain paged read of the linked accounts.
An account is reported ``missing`` when the shop does not return its id, and ``differs`` (with
the fields) when a field syncd writes holds something else than the ERP row maps to. Fields the
customer owns (password, sales channel, language, payment method, further addresses) are never
compared.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from syncd.core.domain import ErpAddress
from syncd.core.rules import email_key

from .mapping import CustomerMapper, Rejected, customer_id

MISSING = "missing"
CUSTOMER_FIELDS = ("customerNumber", "firstName", "lastName", "company", "email", "active", "groupId",
                   "salutationId")
ADDRESS_FIELDS = ("countryId", "firstName", "lastName", "street", "zipcode", "city", "company", "phoneNumber")
INCLUDES = {
    "customer": ["id", *CUSTOMER_FIELDS, "defaultBillingAddress"],
    "customer_address": ["id", *ADDRESS_FIELDS],
}


def _same(ours: Any, theirs: Any) -> bool:
    # The shop stores an empty string as NULL (NotBlank / DAL), so both read as "nothing".
    if ours in (None, "") and theirs in (None, ""):
        return True
    return ours == theirs


def differences(payload: Mapping[str, Any], account: Mapping[str, Any]) -> list[str]:
    """Fields of ``payload`` (a mapped customer) that ``account`` (the shop's record) lacks."""
    out = []
    for name in CUSTOMER_FIELDS:
        if name not in payload:
            continue
        ours, theirs = payload[name], account.get(name)
        if name == "email":
            ours, theirs = email_key(ours), email_key(theirs)
        if not _same(ours, theirs):
            out.append(name)
    billing = account.get("defaultBillingAddress") or {}
    address = (payload.get("addresses") or [{}])[0]
    for name in ADDRESS_FIELDS:
        if name in address and not _same(address[name], billing.get(name)):
            out.append(f"address.{name}")
    return out


def compare(
    platform: str,
    mapper: CustomerMapper,
    search: Callable[[str, Mapping[str, Any]], Iterator[dict[str, Any]]],
    page_limit: int,
    addresses: Sequence[ErpAddress],
    links: Mapping[int, str],
) -> dict[int, str]:
    """ERP number -> ``"missing"`` or ``"differs: f1, f2"`` for each linked address whose shop
    account is gone or out of step; addresses in step are left out. An address the mapper
    rejects is left out too: the ordinary push reports why."""
    wanted = [a for a in addresses if links.get(a.number)]
    found: dict[str, dict[str, Any]] = {}
    ids = list(dict.fromkeys(links[a.number] for a in wanted))
    for start in range(0, len(ids), page_limit):
        criteria = {
            "filter": [{"type": "equalsAny", "field": "id", "value": ids[start:start + page_limit]}],
            "associations": {"defaultBillingAddress": {}},
            "includes": INCLUDES,
        }
        for row in search("customer", criteria):
            found[row["id"]] = row
    out: dict[int, str] = {}
    for a in wanted:
        shop_id = links[a.number]
        account = found.get(shop_id)
        if account is None:
            out[a.number] = MISSING
            continue
        foreign = shop_id if shop_id != customer_id(platform, a.number) else None
        try:
            mapped = mapper.map(a, shop_id=foreign)
        except Rejected:
            continue
        fields = differences(mapped.payload, account)
        if fields:
            out[a.number] = "differs: " + ", ".join(fields)
    return out

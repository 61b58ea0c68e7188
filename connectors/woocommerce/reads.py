"""Reading WooCommerce list routes: paging, look-ups by id, the ERP-number index a recovering
push adopts from, and the incremental change scans of the shop -> ERP import.

What the REST API v3 lets a list filter by (shopware-notes §7): ``/customers`` by ``email``,
``role``, ``include``, ``search`` and an ``orderby`` of ``id``, ``include``, ``name`` or
``registered_date`` - no date filter (woocommerce/woocommerce#41371 asks for one) and no meta
query; ``/orders`` by ``after``/``before`` (created) and ``modified_after``/``modified_before``
with ``dates_are_gmt``, ``customer``, ``status``, ordered by ``date`` or ``modified`` with the id
as tie-breaker (``WC_REST_CRUD_Controller::prepare_objects_query``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from .http import WooHttp
from .mapping import erp_number_of

PAGE = 100  # per_page maximum of the WordPress REST API
# The fields the ERP-number index needs (WordPress's global ``_fields`` parameter): a page of
# 100 customers without their addresses.
INDEX_FIELDS = "id,email,meta_data,date_created_gmt"


def gmt(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def pages(
    http: WooHttp,
    path: str,
    query: Mapping[str, Any],
    *,
    stop: Callable[[dict[str, Any]], bool] | None = None,
) -> Iterator[dict[str, Any]]:
    """Every row of a list route, page by page, until ``X-WP-TotalPages`` is reached or ``stop``
    is true for a row (that row and all after it are left out: the caller's order puts them
    past its bound)."""
    page = 1
    while True:
        result = http.call("GET", path, query={**query, "per_page": PAGE, "page": page})
        rows = result.body or []
        for row in rows:
            if stop is not None and stop(row):
                return
            yield row
        try:
            total = int(result.headers.get("X-WP-TotalPages") or 0)
        except ValueError:
            total = 0
        if page >= total or not rows:
            return
        page += 1


def rows_by_id(http: WooHttp, shop_ids: Sequence[str], fields: str | None = None) -> Iterator[dict[str, Any]]:
    """The customers of ``shop_ids`` (any role), ``PAGE`` ids per request; unknown ids are left out."""
    ids = [str(int(s)) for s in dict.fromkeys(shop_ids) if str(s).isdigit()]
    extra = {"_fields": fields} if fields else {}
    for start in range(0, len(ids), PAGE):
        chunk = ids[start : start + PAGE]
        yield from pages(http, "/customers", {"include": ",".join(chunk), "role": "all", **extra})


def number_index(http: WooHttp) -> dict[str, list[str]]:
    """ERP number -> the ids of the customers carrying it in ``syncd_erp_number``, from every
    customer page (the REST API cannot search meta data). O(customers): built only by a push
    whose state store may have lost links (``WooShop.push``), once per recovery."""
    out: dict[str, list[str]] = {}
    query = {"role": "all", "orderby": "id", "order": "asc", "_fields": INDEX_FIELDS}
    for row in pages(http, "/customers", query):
        number = erp_number_of(row)
        if number is not None:
            out.setdefault(number, []).append(str(row["id"]))
    return out


def _stamp(row: Mapping[str, Any], *keys: str) -> str:
    for key in keys:
        if row.get(key):
            return str(row[key])[:19]
    return ""


def changed(row: Mapping[str, Any]) -> str:
    return _stamp(row, "date_modified_gmt", "date_created_gmt")


def new_customers(http: WooHttp, since: datetime) -> Iterator[dict[str, Any]]:
    """Customers registered at or after ``since``: newest id first, stopping at the first one
    registered before it. Ordered by id, not by registration date: ids are unique, so a page
    boundary inside a run of identical timestamps neither repeats nor skips anyone (MySQL gives
    tied rows no fixed order), and WordPress assigns ids in registration order."""
    bound = gmt(since)
    return pages(
        http,
        "/customers",
        {"role": "all", "orderby": "id", "order": "desc"},
        stop=lambda row: _stamp(row, "date_created_gmt") < bound,
    )


def order_customer_ids(http: WooHttp, since: datetime | None) -> list[str]:
    """Ids of the customers with an order created or modified at or after ``since`` (None: any
    order); guest orders (``customer_id`` 0) are left out. ``modified_after`` is strict and
    compares GMT only with ``dates_are_gmt``, hence the second's margin and the flag."""
    query: dict[str, Any] = {"orderby": "modified", "order": "asc", "dates_are_gmt": "true"}
    if since is not None:
        query["modified_after"] = gmt(since - timedelta(seconds=1))
    ids: dict[str, None] = {}
    for order in pages(http, "/orders", query):
        cid = int(order.get("customer_id") or 0)
        if cid:
            ids[str(cid)] = None
    return list(ids)


__all__ = ["PAGE", "changed", "gmt", "new_customers", "number_index", "order_customer_ids", "pages",
           "rows_by_id"]

"""Shopware's record of customers' storefront logins (``lastLogin``), read incrementally for the
activation tracking (``syncd.flows.activation``), and the time format its range filters need."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from .mapping import parse_timestamp


def shop_time(value: datetime) -> str:
    """Shopware compares range values raw against its UTC storage format."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.000")


def logins_since(search: Callable[[str, Mapping[str, Any]], Iterable[Mapping[str, Any]]],
                 since: datetime | None) -> Iterator[tuple[str, datetime]]:
    """(shop id, lastLogin) of every customer logged in at/after ``since`` (all that ever
    logged in when None), oldest login first. Only the two fields are fetched."""
    never = {"type": "equals", "field": "lastLogin", "value": None}
    filters: list[dict[str, Any]] = [{"type": "not", "operator": "and", "queries": [never]}]
    if since is not None:
        filters = [{"type": "range", "field": "lastLogin", "parameters": {"gte": shop_time(since)}}]
    criteria = {"filter": filters, "includes": {"customer": ["id", "lastLogin"]},
                "sort": [{"field": "lastLogin", "order": "ASC"}, {"field": "id", "order": "ASC"}]}
    for row in search("customer", criteria):
        at = parse_timestamp(row.get("lastLogin"))
        if at is not None:
            yield str(row["id"]), at

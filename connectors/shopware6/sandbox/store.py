"""In-memory tables with the indexes the connector's lookups need.

Every lookup the hot paths make (id, customer e-mail, customer number, addresses of a customer,
orders of a customer) is a dict hit, so pushing 100,000 customers stays linear. Records are kept
in the shape the API returns; password hashes live apart and never leave the store.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from .schema import Entity

# (entity, field) pairs kept in a value -> ids index; values are case-folded strings.
INDEXED = (
    ("customer", "email"),
    ("customer", "customerNumber"),
    ("customer_address", "customerId"),
    ("customer_recovery", "customerId"),
    ("customer_recovery", "hash"),
    ("order_customer", "customerId"),
    ("order_customer", "orderId"),
    ("sales_channel_domain", "salesChannelId"),
)


def now_iso() -> str:
    return format_dt(datetime.now(UTC))


def format_dt(dt: datetime) -> str:
    """Shopware's API date format, fixed width so that strings compare like dates."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}+00:00"


def parse_dt(value: Any) -> datetime | None:
    """A stored timestamp (``format_dt``) back as an aware datetime; None when absent."""
    if not isinstance(value, str) or not value:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def index_key(value: Any) -> Any:
    # MySQL's utf8mb4_unicode_ci compares case-insensitively; the index follows it.
    return value.casefold() if isinstance(value, str) else value


class Store:
    def __init__(self, entities: dict[str, Entity]):
        self.entities = entities
        self.lock = threading.RLock()
        self.tables: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in entities}
        self.passwords: dict[str, bytes] = {}
        self.generation = 0  # bumped by every write: search caches compare it
        self.index: dict[tuple[str, str], dict[Any, dict[str, None]]] = {pair: {} for pair in INDEXED}
        self._indexed_fields: dict[str, tuple[str, ...]] = {}
        for entity, fname in INDEXED:
            self._indexed_fields[entity] = self._indexed_fields.get(entity, ()) + (fname,)

    # --- reads -----------------------------------------------------------------------------
    def get(self, entity: str, rid: str) -> dict[str, Any] | None:
        return self.tables[entity].get(rid)

    def ids_by(self, entity: str, fname: str, value: Any) -> Iterable[str]:
        return self.index[(entity, fname)].get(index_key(value), {}).keys()

    def is_indexed(self, entity: str, fname: str) -> bool:
        return (entity, fname) in self.index

    # --- writes (callers hold ``lock``) -----------------------------------------------------
    def put(self, entity: str, record: dict[str, Any]) -> None:
        self.generation += 1
        table = self.tables[entity]
        rid = record["id"]
        old = table.get(rid)
        for fname in self._indexed_fields.get(entity, ()):
            old_value = old.get(fname) if old else None
            new_value = record.get(fname)
            if old is not None and index_key(old_value) == index_key(new_value):
                continue
            if old is not None and old_value is not None:
                self._unindex(entity, fname, old_value, rid)
            if new_value is not None:
                self.index[(entity, fname)].setdefault(index_key(new_value), {})[rid] = None
        table[rid] = record

    def remove(self, entity: str, rid: str) -> dict[str, Any] | None:
        record = self.tables[entity].pop(rid, None)
        if record is None:
            return None
        self.generation += 1
        for fname in self._indexed_fields.get(entity, ()):
            if record.get(fname) is not None:
                self._unindex(entity, fname, record[fname], rid)
        if entity == "customer":
            self.passwords.pop(rid, None)
        return record

    def _unindex(self, entity: str, fname: str, value: Any, rid: str) -> None:
        bucket = self.index[(entity, fname)].get(index_key(value))
        if bucket is not None:
            bucket.pop(rid, None)
            if not bucket:
                del self.index[(entity, fname)][index_key(value)]

"""Order changes from the Admin API, read incrementally (the reminders' source).

Two bookmarks, both on shop timestamps: new orders by ``order.createdAt`` (an order's insert
leaves ``updatedAt`` NULL), and state changes by ``state_machine_history.createdAt`` (every
transition of an order, its transactions and deliveries writes one history row). So a poll
costs O(changes): two range searches, the transaction / delivery ids mapped to their orders,
and one read of the changed orders with their states. From 6.6 on, ``stateMachineState`` must
be asked for as an association on transactions and deliveries (shopware/shopware#3717).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from syncd.core.domain import OrderChanges, ShopOrder

ID_CHUNK = 100
PREPAYMENT = "payment_prepayment"
STATE_ENTITIES = ("order", "order_transaction", "order_delivery")
SHIPPED = ("shipped", "shipped_partially")
_ORDER_ASSOCIATIONS = {
    "stateMachineState": {},
    "orderCustomer": {},
    "transactions": {"associations": {"stateMachineState": {}, "paymentMethod": {}}},
    "deliveries": {"associations": {"stateMachineState": {}}},
}


def shop_time(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.000")


def parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _state(record: Mapping[str, Any] | None, default: str = "open") -> str:
    state = (record or {}).get("stateMachineState") or {}
    return str(state.get("technicalName") or default)


def to_order(raw: Mapping[str, Any]) -> ShopOrder:
    transactions = sorted(raw.get("transactions") or [], key=lambda t: str(t.get("createdAt") or ""))
    deliveries = sorted(raw.get("deliveries") or [], key=lambda d: str(d.get("createdAt") or ""))
    tx = transactions[-1] if transactions else None  # Shopware: the latest transaction counts
    delivery = deliveries[0] if deliveries else None  # the primary delivery
    method = (tx or {}).get("paymentMethod") or {}
    technical = method.get("technicalName")
    if not technical and str(method.get("handlerIdentifier") or "").endswith("\\PrePayment"):
        technical = PREPAYMENT  # before 6.5.7 payment methods had no technical name
    delivery_state = _state(delivery)
    customer = raw.get("orderCustomer") or {}
    amount = raw.get("amountTotal")
    return ShopOrder(
        id=str(raw["id"]),
        number=str(raw.get("orderNumber") or raw["id"]),
        placed_at=parse_time(raw.get("orderDateTime") or raw.get("createdAt")) or datetime.now(UTC),
        state=_state(raw),
        payment_state=_state(tx),
        payment_method=technical,
        delivery_state=delivery_state,
        shipped_at=_shipped_at(delivery) if delivery_state in SHIPPED else None,
        customer_id=customer.get("customerId"),
        email=customer.get("email"),
        first_name=customer.get("firstName"),
        last_name=customer.get("lastName"),
        company=customer.get("company"),
        amount=float(amount) if amount not in (None, "") else None,
    )


def _shipped_at(delivery: Mapping[str, Any] | None) -> datetime | None:
    # A transition writes the delivery's stateId, so the DAL stamps its updatedAt then.
    d = delivery or {}
    return parse_time(d.get("updatedAt")) or parse_time(d.get("createdAt"))


class OrderReader:
    """``ShopPort.order_changes`` over a ``ShopwareShop``'s paged search."""

    def __init__(self, shop: Any) -> None:
        self.shop = shop

    def changes(self, since: Mapping[str, datetime], skip: Collection[str] = ()) -> OrderChanges:
        """Orders placed at/after ``since["orders"]`` or with a state change at/after
        ``since["states"]`` (literal bounds: the caller subtracts its overlap). Change rows whose
        key is in ``skip`` (processed by an earlier read) are listed but not handed out again.

        The state history is listed first (it is small); the new orders then stream page by
        page with their states, so a first read over 100,000 open orders never holds them all.
        ``cursor`` and ``seen`` of the result are complete once its ``orders`` are consumed."""
        newest = {"orders": since["orders"], "states": since["states"]}
        cursor: dict[str, Any] = {k: v.isoformat() for k, v in newest.items()}
        seen: dict[str, str] = {}
        changed: dict[str, None] = {}
        by_entity: dict[str, dict[str, None]] = {"order_transaction": {}, "order_delivery": {}}
        for row in self.shop.search("state-machine-history", {
            "filter": [
                {"type": "range", "field": "createdAt", "parameters": {"gte": shop_time(since["states"])}},
                {"type": "equalsAny", "field": "entityName", "value": list(STATE_ENTITIES)},
            ],
            "sort": [{"field": "createdAt", "order": "ASC"}, {"field": "id", "order": "ASC"}],
            "includes": {"state_machine_history": ["id", "entityName", "referencedId", "createdAt"]},
        }):
            stamp = parse_time(row.get("createdAt")) or newest["states"]
            newest["states"] = max(newest["states"], stamp)
            seen[f"h:{row['id']}"] = stamp.isoformat()
            if f"h:{row['id']}" in skip:
                continue
            if row.get("entityName") == "order":
                changed[str(row["referencedId"])] = None
            elif row.get("entityName") in by_entity:
                by_entity[row["entityName"]][str(row["referencedId"])] = None
        cursor["states"] = newest["states"].isoformat()
        for entity, ids in by_entity.items():
            for row in self._by_ids(entity, ids, {"includes": {entity: ["id", "orderId"]}}):
                changed[str(row["orderId"])] = None

        def orders() -> Iterator[ShopOrder]:
            done: set[str] = set()
            for raw in self.shop.search("order", {
                "filter": [{"type": "range", "field": "createdAt",
                            "parameters": {"gte": shop_time(since["orders"])}}],
                "sort": [{"field": "createdAt", "order": "ASC"}, {"field": "id", "order": "ASC"}],
                "associations": _ORDER_ASSOCIATIONS,
            }):
                oid = str(raw["id"])
                stamp = parse_time(raw.get("createdAt")) or newest["orders"]
                newest["orders"] = max(newest["orders"], stamp)
                cursor["orders"] = newest["orders"].isoformat()
                seen[f"o:{oid}"] = stamp.isoformat()
                if f"o:{oid}" not in skip or oid in changed:
                    done.add(oid)
                    yield to_order(raw)
            rest = [oid for oid in changed if oid not in done]
            for raw in self._by_ids("order", rest, {"associations": _ORDER_ASSOCIATIONS}):
                yield to_order(raw)

        return OrderChanges(orders(), cursor, seen)

    def _by_ids(self, entity: str, ids: Iterable[str], extra: Mapping[str, Any]) -> Iterable[dict[str, Any]]:
        chunk_ids = list(ids)
        for start in range(0, len(chunk_ids), ID_CHUNK):
            chunk = chunk_ids[start:start + ID_CHUNK]
            yield from self.shop.search(entity.replace("_", "-"), {
                "filter": [{"type": "equalsAny", "field": "id", "value": chunk}], **extra})

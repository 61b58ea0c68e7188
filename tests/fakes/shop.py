"""An in-memory shop for the shop -> ERP flow: customers, and the calls the flow made.

Only what ``syncd.flows.import_customers`` calls of ``ShopPort``; the ERP -> shop side (push,
passwords) is not modelled here. ``changed_since``/``with_orders_since`` record the ``since``
each poll was given, so a test can check the bound the flow computed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import datetime

from syncd.domain import ShopCustomer


class FakeShop:
    name = "fake-shop"
    login_url = "https://shop.invalid/account/login"

    def __init__(self, customers: Sequence[ShopCustomer] = ()) -> None:
        self.customers: dict[str, ShopCustomer] = {c.id: c for c in customers}
        self.changed_since: list[datetime | None] = []
        self.with_orders_since: list[datetime | None] = []
        self.numbers_written: list[tuple[str, str]] = []

    def add(self, customer: ShopCustomer) -> ShopCustomer:
        self.customers[customer.id] = customer
        return customer

    # --- ShopPort, shop -> ERP part ------------------------------------------------------------
    def customers_changed_since(self, since: datetime | None) -> Iterator[ShopCustomer]:
        """The bound taken literally, as the port's contract says (the caller owns the overlap)."""
        self.changed_since.append(since)
        for c in list(self.customers.values()):
            if not c.guest and (since is None or c.updated_at is None or c.updated_at >= since):
                yield c

    def customers_with_orders(self, since: datetime | None) -> Iterator[ShopCustomer]:
        self.with_orders_since.append(since)
        yield from (c for c in list(self.customers.values()) if not c.guest and c.order_count > 0)

    def get_customers(self, shop_ids: Sequence[str]) -> dict[str, ShopCustomer]:
        return {i: self.customers[i] for i in shop_ids if i in self.customers}

    def set_customer_number(self, shop_id: str, number: str) -> None:
        self.numbers_written.append((shop_id, number))
        self.customers[shop_id] = replace(self.customers[shop_id], customer_number=number)

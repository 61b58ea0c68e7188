"""An in-memory shop for flow tests: customers, and the calls the flows made.

Shop -> ERP: what ``syncd.flows.import_customers`` calls; ``changed_since``/``with_orders_since``
record the ``since`` each poll was given, so a test can check the bound the flow computed.

ERP -> shop: ``push`` and ``set_active`` as ``syncd.flows.push_addresses`` calls them, with the
connector's decisions reduced to their rule (``syncd.connectors.shopware6.push``): a linked address is
UPDATED; an unlinked one whose account under syncd's id (``own_id``) exists is UPDATED with
``detail="existed_with_deterministic_id"`` when a create intent is pending (our crashed create),
else ADOPTED; one whose e-mail has an account is LINKED; otherwise the create intent is recorded
(committed through the flow's ``intents``) before the account is made, CREATED. Addresses whose
e-mail is in ``reject`` come back REJECTED with that code. ``before_call`` runs at the start of
every push-side call (a test asserts there that no unit of work is open across a shop call).
Passwords and comparisons are not modelled.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from syncd.core.domain import ErpAddress, PushResult, ShopCustomer
from syncd.core.rules import PushOutcome, email_key

RECOVERED_CREATE = "existed_with_deterministic_id"


def own_id(number: int) -> str:
    """syncd's deterministic shop id of ERP address ``number`` (a uuid5 in the real connector)."""
    return f"syncd-{number:08d}"


class FakeShop:
    name = "fake-shop"
    login_url = "https://shop.invalid/account/login"

    def __init__(self, customers: Sequence[ShopCustomer] = ()) -> None:
        self.customers: dict[str, ShopCustomer] = {c.id: c for c in customers}
        self.changed_since: list[datetime | None] = []
        self.with_orders_since: list[datetime | None] = []
        self.numbers_written: list[tuple[str, str]] = []
        self.pushed: list[list[int]] = []  # ERP numbers of each push call
        self.active_calls: list[tuple[tuple[str, ...], bool]] = []
        self.reject: dict[str, str] = {}  # e-mail key -> error code of a refused write
        self.active_errors: dict[str, str] = {}  # shop id -> reason set_active reports
        self.before_call: Callable[[str], None] | None = None

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

    # --- ShopPort, ERP -> shop part ------------------------------------------------------------
    def _call(self, name: str) -> None:
        if self.before_call is not None:
            self.before_call(name)

    def _by_email(self, email: str | None) -> ShopCustomer | None:
        key = email_key(email)
        return next((c for c in self.customers.values() if not c.guest and email_key(c.email) == key), None)

    def _written(self, shop_id: str, a: ErpAddress) -> None:
        self.customers[shop_id] = ShopCustomer(
            id=shop_id, email=(a.email or "").strip(), customer_number=str(a.number), first_name=a.first_name,
            last_name=a.last_name, company=a.company, street=a.street, zip=a.zip, city=a.city,
            country=a.country, active=self.customers[shop_id].active if shop_id in self.customers else True)

    def push(self, addresses: Sequence[ErpAddress], links: Mapping[int, str], *,
             claims: Callable[[Iterable[str]], Mapping[str, int]] | None = None,
             intents: Any = None, dry_run: bool = False) -> list[PushResult]:
        self._call("push")
        if not dry_run:
            self.pushed.append([a.number for a in addresses])
        written = (lambda sid, a: None) if dry_run else self._written
        mine = [a.number for a in addresses if a.number not in links and own_id(a.number) in self.customers]
        intended = intents.pending(mine) if intents is not None and mine else set()
        results: list[PushResult] = []
        rejected = PushOutcome.REJECTED
        creates: list[ErpAddress] = []
        for a in addresses:
            code = self.reject.get(email_key(a.email))
            if code is not None:
                results.append(PushResult(a.number, rejected, reason=f"refused: {code}", code=code))
            elif a.number in links and links[a.number] in self.customers:
                written(links[a.number], a)
                results.append(PushResult(a.number, PushOutcome.UPDATED, links[a.number]))
            elif own_id(a.number) in self.customers:
                recovered = a.number in intended
                written(own_id(a.number), a)
                results.append(PushResult(a.number, PushOutcome.UPDATED if recovered else PushOutcome.ADOPTED,
                                          own_id(a.number), detail=RECOVERED_CREATE if recovered else None))
            elif (found := self._by_email(a.email)) is not None:
                claimed = (claims or (lambda ids: {}))([found.id])
                if found.id in claimed and claimed[found.id] != a.number:
                    results.append(PushResult(a.number, rejected, reason="claimed", code="CLAIMED"))
                else:
                    results.append(PushResult(a.number, PushOutcome.LINKED, found.id))
            else:
                creates.append(a)
                results.append(PushResult(a.number, PushOutcome.CREATED, own_id(a.number)))
        if creates and intents is not None and not dry_run:
            intents.record([(a.number, own_id(a.number)) for a in creates])  # write-ahead
        for a in creates:
            written(own_id(a.number), a)
        return results

    def set_active(self, shop_ids: Sequence[str], active: bool) -> dict[str, str | None]:
        self._call("set_active")
        self.active_calls.append((tuple(shop_ids), active))
        errors: dict[str, str | None] = {}
        for sid in shop_ids:
            if sid in self.active_errors:
                errors[sid] = self.active_errors[sid]
            elif sid in self.customers:
                self.customers[sid] = replace(self.customers[sid], active=active)
            else:
                errors[sid] = "no such customer"
        return errors

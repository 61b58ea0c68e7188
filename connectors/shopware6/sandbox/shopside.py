"""What happens in the shop without syncd: storefront registrations and edits, orders, admin settings.

A mixin of ``Sandbox``; every change goes through the same store (and, where the shop validates,
the same writer) as API writes, so tests see exactly what the connector would.
"""

from __future__ import annotations

import copy
import hashlib
from datetime import datetime
from typing import Any

import bcrypt

from .errors import ApiError
from .orders import add_order_parts, state_of, transition
from .seed import sid
from .store import Store, format_dt, now_iso
from .storeapi import verify_password
from .versions import ShopVersion
from .writer import Writer


class ShopSide:
    # provided by Sandbox
    _store: Store
    _writer: Writer
    _bcrypt_rounds: int
    shop_version: ShopVersion
    admin_api: Any
    store_api: Any

    def add_order(self, customer_id: str, amount: float = 119.0, *, payment: str | None = None,
                  at: datetime | None = None) -> str:
        """An order placed by that customer; bumps orderCount like Shopware's order-count updater
        (a plain SQL update: ``updatedAt`` of the customer does not change). The order comes with
        one transaction (``payment``: a payment method's technical name, default the sales
        channel's) and one delivery, all three ``open``; ``at`` stamps it (default: now)."""
        with self._store.lock:
            customer = self._store.get("customer", customer_id)
            if customer is None:
                raise KeyError(f"no customer {customer_id}")
            number = len(self._store.tables["order"]) + 10000
            order_id = sid("order", f"{customer_id}:{number}")
            stamp = format_dt(at) if at is not None else now_iso()
            self._store.put(
                "order",
                {
                    "id": order_id,
                    "orderNumber": str(number),
                    "orderDateTime": stamp,
                    "salesChannelId": customer.get("salesChannelId"),
                    "billingAddressId": None,
                    "amountTotal": amount,
                    "amountNet": round(amount / 1.19, 2),
                    "currencyId": None,
                    "languageId": customer.get("languageId"),
                    "stateId": None,
                    "createdAt": stamp,
                    "updatedAt": None,
                    "apiAlias": "order",
                },
            )
            self._store.put(
                "order_customer",
                {
                    "id": sid("order_customer", order_id),
                    "orderId": order_id,
                    "customerId": customer_id,
                    "email": customer.get("email"),
                    "firstName": customer.get("firstName"),
                    "lastName": customer.get("lastName"),
                    "company": customer.get("company"),
                    "customerNumber": customer.get("customerNumber"),
                    "salutationId": customer.get("salutationId"),
                    "vatIds": customer.get("vatIds"),
                    "createdAt": stamp,
                    "updatedAt": None,
                    "apiAlias": "order_customer",
                },
            )
            self._store.put(
                "customer",
                {
                    **customer,
                    "orderCount": customer.get("orderCount", 0) + 1,
                    "orderTotalAmount": customer.get("orderTotalAmount", 0) + amount,
                    "lastOrderDate": stamp,
                },
            )
            method = sid("payment_method", payment) if payment else customer.get("defaultPaymentMethodId")
            add_order_parts(self._store, order_id, payment_method_id=method, amount=amount, stamp=stamp)
        return order_id

    def transition(self, entity: str, record_id: str, action: str, *, at: datetime | None = None) -> str:
        """What the shop's admin (or a payment plugin) does: ``action`` on an order, its
        transaction or delivery (``record_id`` may be the order's id for those two: its one
        transaction / delivery). The new state's technical name."""
        if entity in ("order_transaction", "order_delivery") and self._store.get(entity, record_id) is None:
            record_id = sid(entity, record_id)
        return str(transition(self._store, entity, record_id, action, at)["technicalName"])

    def order_states(self, order_id: str) -> dict[str, str]:
        """{"order", "order_transaction", "order_delivery"} -> technical state name."""
        with self._store.lock:
            out = {"order": state_of(self._store, "order", self._store.get("order", order_id) or {})}
            for entity in ("order_transaction", "order_delivery"):
                record = self._store.get(entity, sid(entity, order_id)) or {}
                out[entity] = state_of(self._store, entity, record)
        return out

    def create_customer_as_shop_user(
        self,
        email: str,
        password: str,
        *,
        first_name: str = "Erika",
        last_name: str = "Musterfrau",
        street: str = "Hauptstr. 1",
        zipcode: str = "10115",
        city: str = "Berlin",
        country: str = "DE",
        salutation: str = "mrs",
        company: str | None = None,
        active: bool = True,
        requested_group: str | None = None,
    ) -> dict[str, Any]:
        """A customer who registered in the storefront: the shop numbered them (RegisterRoute),
        they are bound to no sales channel, and they can log in with ``password``.
        ``requested_group``: registered through that customer group's registration page
        (RegisterRoute sets ``requestedGroupId``; the customer stays in the default group until
        the shop accepts the request)."""
        ids = self._require_ids()
        number = self.admin_api.reserve_customer_number()  # RegisterRoute numbers from the range
        customer_id = hashlib.md5(f"storefront:{email}:{number}".encode(), usedforsecurity=False).hexdigest()
        address_id = hashlib.md5(
            f"storefront-address:{email}:{number}".encode(), usedforsecurity=False
        ).hexdigest()
        payload: dict[str, Any] = {
            "id": customer_id,
            "customerNumber": number,
            "groupId": ids.customer_groups["Standard-Kundengruppe"],
            "salesChannelId": ids.sales_channel,
            "languageId": ids.language,
            "salutationId": ids.salutations[salutation],
            "firstName": first_name,
            "lastName": last_name,
            "email": email,
            "company": company,
            "active": active,
            "guest": False,
            "password": password,
            "addresses": [
                {
                    "id": address_id,
                    "countryId": ids.countries[country],
                    "firstName": first_name,
                    "lastName": last_name,
                    "street": street,
                    "zipcode": zipcode,
                    "city": city,
                    "salutationId": ids.salutations[salutation],
                }
            ],
            "defaultBillingAddressId": address_id,
            "defaultShippingAddressId": address_id,
        }
        if self.shop_version.payment_method_on_customer:
            payload["defaultPaymentMethodId"] = ids.payment_method
        if self.shop_version.has_account_type:
            payload["accountType"] = "business" if company else "private"
        if requested_group is not None:
            payload["requestedGroupId"] = ids.customer_groups[requested_group]
        # The storefront registration sends its own mail; flow_mails only lists mails caused by API
        # writes, the ones syncd is responsible for suppressing.
        self._writer.sync(
            [("storefront", {"entity": "customer", "action": "upsert", "payload": [payload]})],
            skip_flow=True,
            language_id=None,
        )
        return self.customer(customer_id)

    def edit_customer_as_shop_user(self, customer_id: str, **fields: Any) -> dict[str, Any]:
        """The customer edits their profile in the storefront (validated like any DAL write;
        ``updatedAt`` moves). Raises ``ValueError`` with Shopware's violations when invalid."""
        self._storefront_write("customer", {"id": customer_id, **fields})
        return self.customer(customer_id)

    def edit_address_as_shop_user(self, address_id: str, **fields: Any) -> dict[str, Any]:
        """The customer edits one of their addresses in the storefront."""
        self._storefront_write("customer_address", {"id": address_id, **fields})
        with self._store.lock:
            return copy.deepcopy(self._store.get("customer_address", address_id))

    def set_customer_number_range(self, *, start: int | None = None, last_value: int | None = None,
                                  pattern: str | None = None) -> None:
        """What an operator changes under Settings > Number ranges > Customers."""
        from .seed import CUSTOMER_RANGE_ID

        with self._store.lock:
            rng = dict(self._store.get("number_range", CUSTOMER_RANGE_ID) or {})
            if start is not None:
                rng["start"] = start
            if pattern is not None:
                rng["pattern"] = pattern
            self._store.put("number_range", rng)
            if last_value is not None:
                for state in list(self._store.tables["number_range_state"].values()):
                    if state.get("numberRangeId") == CUSTOMER_RANGE_ID:
                        self._store.put("number_range_state", {**state, "lastValue": last_value})

    def lose_customers(self, ids: list[str] | None = None) -> int:
        """The shop loses customer accounts (a restored backup, an operator's bulk delete): the
        given ones, or all. Deleted as the admin's delete does (addresses cascade), without any
        mail; returns how many went."""
        with self._store.lock:
            targets = list(self._store.tables["customer"]) if ids is None else list(ids)
        return sum(1 for cid in targets if self._writer.delete_one("customer", cid))

    def _storefront_write(self, entity: str, payload: dict[str, Any]) -> None:
        with self._store.lock:
            if self._store.get(entity, payload["id"]) is None:
                raise KeyError(f"no {entity} {payload['id']}")
        try:
            self._writer.sync(
                [("storefront", {"entity": entity, "action": "upsert", "payload": [payload]})],
                skip_flow=True,
                language_id=None,
            )
        except ApiError as exc:
            raise ValueError(f"storefront write refused: {exc.errors}") from None

    def add_country(self, iso: str, name: str, iso3: str | None = None) -> str:
        """A country the operator added in the administration (and to the sales channel)."""
        country_id = sid("country", iso)
        with self._store.lock:
            self._store.put(
                "country",
                {
                    "id": country_id,
                    "iso": iso,
                    "iso3": iso3,
                    "active": True,
                    "position": 100,
                    "postalCodeRequired": False,
                    "shippingAvailable": True,
                    "name": name,
                    "translated": {"name": name},
                    "createdAt": now_iso(),
                    "updatedAt": None,
                    "apiAlias": "country",
                },
            )
            channel = self._store.get("sales_channel", self.sales_channel_id)
            if channel is not None and country_id not in channel["countryIds"]:
                self._store.put(
                    "sales_channel", {**channel, "countryIds": [*channel["countryIds"], country_id]}
                )
        return country_id

    def check_password(self, email: str, password: str) -> bool:
        """Whether the Store API would log this customer in (no HTTP round trip)."""
        with self._store.lock:
            customer = self.store_api._customer_by_email(email, active_only=False)
            stored = self._store.passwords.get(customer["id"]) if customer else None
        return stored is not None and bool(customer.get("active")) and verify_password(password, stored)

    def hash_password(self, password: str) -> str:
        """A bcrypt hash as PHP writes it, for payloads that send a pre-hashed password."""
        return "$2y$" + bcrypt.hashpw(password.encode(), bcrypt.gensalt(self._bcrypt_rounds)).decode()[4:]

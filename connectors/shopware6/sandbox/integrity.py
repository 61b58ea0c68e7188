"""What the database checks for a whole write: foreign keys, restricted deletes, unique e-mails.

The write is staged in a ``Batch`` (records by entity and id, shadowing the store), so these checks
see the request's own records next to the stored ones, as a transaction would.
"""

from __future__ import annotations

from typing import Any

from . import errors as e
from .errors import ApiError
from .store import Store, now_iso
from .versions import ShopVersion

# DAL field -> MySQL column, for the integrity error texts
FK_COLUMN = {
    "groupId": "customer_group_id",
    "requestedGroupId": "requested_customer_group_id",
    "salesChannelId": "sales_channel_id",
    "boundSalesChannelId": "bound_sales_channel_id",
    "languageId": "language_id",
    "defaultBillingAddressId": "default_billing_address_id",
    "defaultShippingAddressId": "default_shipping_address_id",
    "salutationId": "salutation_id",
    "defaultPaymentMethodId": "default_payment_method_id",
    "lastPaymentMethodId": "last_payment_method_id",
    "customerId": "customer_id",
    "countryId": "country_id",
    "countryStateId": "country_state_id",
}


class Batch:
    def __init__(self, store: Store):
        self.store = store
        self.records: dict[tuple[str, str], dict[str, Any]] = {}
        self.inserted: dict[tuple[str, str], None] = {}
        self.passwords: dict[str, bytes] = {}
        self.deleted: dict[tuple[str, str], None] = {}
        self.violations: list[dict[str, Any]] = []
        self.pointers: dict[tuple[str, str], str] = {}
        self.now = now_iso()  # one transaction, one timestamp

    def get(self, entity: str, rid: str) -> dict[str, Any] | None:
        if (entity, rid) in self.deleted:
            return None
        staged = self.records.get((entity, rid))
        return staged if staged is not None else self.store.get(entity, rid)


def check_batch(batch: Batch, version: ShopVersion, foreign_keys: dict[str, list[tuple[str, str]]]) -> None:
    """Raise the request's 400 (all violations) or the database's 500 (first integrity error)."""
    if version.enforces_unique_email:
        _unique_emails(batch, version)
    if batch.violations:
        raise ApiError(400, batch.violations)
    for (entity_name, rid), record in batch.records.items():
        if (entity_name, rid) in batch.deleted:
            continue
        for name, target_entity in foreign_keys[entity_name]:
            target = record.get(name)
            if target is not None and batch.get(target_entity, target) is None:
                raise e.foreign_key_failure(entity_name, FK_COLUMN.get(name, name), target_entity)
    _one_recovery_per_customer(batch)
    for entity_name, rid in batch.deleted:
        if entity_name == "customer_address":
            for cid in _customers_defaulting_to(batch, rid):
                if ("customer", cid) not in batch.deleted:
                    raise e.restrict_delete("customer", "default_billing_address_id")


def _one_recovery_per_customer(batch: Batch) -> None:
    """``uniq.customer_recovery.customer_id``: a second open recovery of a customer is a 1062."""
    owners: dict[str, str] = {}
    for (entity_name, rid), record in batch.records.items():
        if entity_name != "customer_recovery" or (entity_name, rid) in batch.deleted:
            continue
        cid = record.get("customerId")
        others = [o for o in batch.store.ids_by("customer_recovery", "customerId", cid or "")
                  if o != rid and batch.get("customer_recovery", o) is not None]
        if cid in owners or others:
            raise e.duplicate_entry(cid or "", "uniq.customer_recovery.customer_id")
        owners[cid or ""] = rid


def _customers_defaulting_to(batch: Batch, address_id: str) -> list[str]:
    address = batch.store.get("customer_address", address_id)
    if address is None:
        return []
    customer = batch.get("customer", address["customerId"])
    if customer and address_id in (
        customer.get("defaultBillingAddressId"),
        customer.get("defaultShippingAddressId"),
    ):
        return [customer["id"]]
    return []


def _unique_emails(batch: Batch, version: ShopVersion) -> None:
    """PR #17170: a non-guest e-mail may not repeat among customers bound to no channel or the same one,
    neither against stored customers nor within the request."""
    seen: dict[str, list[tuple[str, str | None]]] = {}
    for (entity_name, rid), record in batch.records.items():
        if entity_name != "customer" or record.get("guest") or not record.get("email"):
            continue
        email, bound = record["email"].casefold(), record.get("boundSalesChannelId")
        clash = any(
            _channels_clash(bound, other_bound) for other, other_bound in seen.get(email, ()) if other != rid
        )
        if not clash:
            for other in batch.store.ids_by("customer", "email", email):
                if other == rid:
                    continue
                stored = batch.get("customer", other)  # the request may have changed or deleted it
                if (
                    stored
                    and not stored.get("guest")
                    and str(stored.get("email", "")).casefold() == email
                    and _channels_clash(bound, stored.get("boundSalesChannelId"))
                ):
                    clash = True
                    break
        if clash:
            pointer = batch.pointers[(entity_name, rid)]
            if not version.email_violation_points_at_payload:
                pointer = f"/{rid}"  # before PR #18306 the pointer named the customer id
            batch.violations.append(e.email_not_unique(f"{pointer}/email", record["email"]))
        seen.setdefault(email, []).append((rid, bound))


def _channels_clash(bound: str | None, other: str | None) -> bool:
    return bound is None or other is None or bound == other

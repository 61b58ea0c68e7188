"""Writes through the DAL rules: validate a whole request, then apply all of it or nothing.

A write is staged in ``_Batch`` (records by entity and id, shadowing the store), validated field
by field with JSON pointers, checked for foreign keys at the end (as the database would), and only
then applied under the store lock. Any violation rejects the whole request.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import bcrypt

from . import errors as e
from .errors import ApiError
from .integrity import Batch as _Batch
from .integrity import check_batch
from .schema import SYSTEM_LANGUAGE_ID, WRITABLE, Entity
from .store import Store
from .validation import BCRYPT, EMAIL_HTML5, EMAIL_LOOSE, INVALID, check
from .versions import ShopVersion

_NESTED_ADDRESS_KEYS = ("defaultBillingAddress", "defaultShippingAddress")


class Writer:
    def __init__(
        self,
        store: Store,
        entities: dict[str, Entity],
        version: ShopVersion,
        *,
        password_min: int,
        bcrypt_rounds: int,
        on_register: Callable[[dict[str, Any]], None],
    ):
        self.store = store
        self.entities = entities
        self.version = version
        self.password_min = password_min
        self.bcrypt_rounds = bcrypt_rounds
        self.on_register = on_register
        self.email_pattern = EMAIL_HTML5 if version.at_least(6, 6) else EMAIL_LOOSE
        self.default_salutation: str | None = None  # set by the sandbox after seeding
        self._required = {
            n: [f for f, spec in ent.fields.items() if spec.required] for n, ent in entities.items()
        }
        self._foreign_keys = {
            n: [(f, spec.target) for f, spec in ent.fields.items() if spec.kind == "fk"]
            for n, ent in entities.items()
        }
        self._template = {n: self._insert_template(ent) for n, ent in entities.items()}

    def _insert_template(self, entity: Entity) -> dict[str, Any]:
        template: dict[str, Any] = {}
        if entity.name == "customer":
            template.update(
                active=True,
                guest=False,
                orderCount=0,
                reviewCount=0,
                orderTotalAmount=0.0,
                doubleOptInRegistration=False,
            )
            if self.version.has_account_type:
                template["accountType"] = "private"
        for name, spec in entity.fields.items():
            if spec.kind != "password":
                template.setdefault(name, None)
        return template

    # --- public entry points ---------------------------------------------------------------
    def sync(
        self, operations: list[tuple[str, dict[str, Any]]], *, skip_flow: bool, language_id: str | None
    ) -> dict[str, Any]:
        hashes = self._prehash(op.get("payload") if isinstance(op, dict) else None for _, op in operations)
        with self.store.lock:
            batch = _Batch(self.store)
            deleted: dict[str, list[str]] = {}
            not_found: dict[str, list[str]] = {}
            for key, op in operations:
                self._operation(batch, key, op, hashes, language_id, deleted, not_found)
            check_batch(batch, self.version, self._foreign_keys)
            written = self._apply(batch, skip_flow)
        return {
            "data": written or [],
            "notFound": not_found or [],
            "deleted": deleted or [],
            "extensions": [],
        }

    def write_one(
        self,
        entity: str,
        payload: Any,
        *,
        rid: str | None,
        insert: bool,
        skip_flow: bool,
        language_id: str | None,
    ) -> str:
        """POST (insert) or PATCH (update) of one entity; the pointer prefix is ``/0``."""
        if not isinstance(payload, dict):
            raise e.simple(
                400,
                "FRAMEWORK__INVALID_REQUEST_PARAMETER",
                "The payload must be an object; use the /sync api endpoint for lists.",
            )
        payload = dict(payload)
        if rid is not None:
            payload["id"] = rid
        hashes = self._prehash([[payload]])
        with self.store.lock:
            target = payload.get("id")
            exists = isinstance(target, str) and self.store.get(entity, target) is not None
            if exists == insert and target is not None:
                want, got = (
                    ("InsertCommand", "UpdateCommand") if insert else ("UpdateCommand", "InsertCommand")
                )
                raise e.simple(
                    400,
                    "FRAMEWORK__WRITE_TYPE_INTEND_ERROR",
                    f'Expected command for "{entity}" to be "{want}". (Got: {got})',
                )
            batch = _Batch(self.store)
            written_id = self._record(batch, self.entities[entity], payload, "/0", hashes, language_id)
            check_batch(batch, self.version, self._foreign_keys)
            self._apply(batch, skip_flow)
        return written_id

    def delete_one(self, entity: str, rid: str) -> bool:
        with self.store.lock:
            batch = _Batch(self.store)
            if self.store.get(entity, rid) is None:
                return False
            self._delete(batch, entity, rid)
            check_batch(batch, self.version, self._foreign_keys)
            self._apply(batch, skip_flow=True)
        return True

    # --- staging ---------------------------------------------------------------------------
    def _operation(
        self,
        batch: _Batch,
        key: str,
        op: Any,
        hashes: dict[str, bytes],
        language_id: str | None,
        deleted: dict[str, list[str]],
        not_found: dict[str, list[str]],
    ) -> None:
        pointer = f"/{key}"
        if not isinstance(op, dict):
            raise ApiError(
                400,
                [
                    e.violation(
                        pointer,
                        "FRAMEWORK__INVALID_SYNC_OPERATION",
                        f"Expected data at {pointer} to be an array.",
                    )
                ],
            )
        entity_name, action, payload = op.get("entity"), op.get("action"), op.get("payload")
        if entity_name not in WRITABLE:
            raise e.simple(
                400,
                "FRAMEWORK__INVALID_SYNC_OPERATION" if entity_name else "FRAMEWORK__SYNC_ENTITY_MISSING",
                f'Entity "{entity_name}" is not writable through the sandbox sync api'
                if entity_name
                else f"Missing entity for operation {key}",
            )
        if action not in ("upsert", "delete"):
            raise e.simple(
                400,
                "FRAMEWORK__INVALID_SYNC_OPERATION",
                f'Action "{action}" for operation {key} is not supported, use "upsert" or "delete"',
            )
        if not isinstance(payload, list):
            raise e.simple(
                400, "FRAMEWORK__INVALID_SYNC_OPERATION", f"Payload for operation {key} has to be a list"
            )
        entity = self.entities[entity_name]
        for i, item in enumerate(payload):
            item_pointer = f"{pointer}/{i}"
            if not isinstance(item, dict):
                batch.violations.append(
                    e.violation(
                        item_pointer,
                        "FRAMEWORK__WRITE_MALFORMED_INPUT",
                        f"Expected data at {item_pointer} to be an array.",
                    )
                )
                continue
            if action == "upsert":
                self._record(batch, entity, item, item_pointer, hashes, language_id)
                continue
            rid = item.get("id")
            if not isinstance(rid, str) or batch.get(entity_name, rid) is None:
                not_found.setdefault(entity_name, []).append(str(rid))
                continue
            self._delete(batch, entity_name, rid)
            deleted.setdefault(entity_name, []).append(rid)

    def _record(
        self,
        batch: _Batch,
        entity: Entity,
        item: dict[str, Any],
        pointer: str,
        hashes: dict[str, bytes],
        language_id: str | None,
        parent: tuple[str, str] | None = None,
    ) -> str:
        before = len(batch.violations)
        rid = item.get("id")
        if rid is None:
            rid = uuid.uuid4().hex
        elif (
            check(
                "id",
                entity.fields["id"],
                rid,
                f"{pointer}/id",
                batch.violations,
                email_pattern=self.email_pattern,
                password_min=0,
            )
            is INVALID
        ):
            return str(rid)
        existing = batch.get(entity.name, rid)
        record = dict(existing) if existing is not None else {"id": rid}
        if parent is not None:
            record[parent[0]] = parent[1]
        batch.records[(entity.name, rid)] = record  # before nested addresses: keeps write order
        batch.pointers[(entity.name, rid)] = pointer
        nested: list[tuple[str, Any]] = []
        for name, value in item.items():
            field_pointer = f"{pointer}/{name}"
            if name == "id":
                continue
            if entity.name == "customer" and name in ("addresses", *_NESTED_ADDRESS_KEYS):
                nested.append((name, value))
                continue
            spec = entity.fields.get(name)
            if spec is None:
                batch.violations.append(e.unexpected_field(field_pointer, name))
                continue
            if spec.protected:
                batch.violations.append(e.write_protected(field_pointer))
                continue
            if spec.auto:
                continue
            checked = check(
                name,
                spec,
                value,
                field_pointer,
                batch.violations,
                email_pattern=self.email_pattern,
                password_min=self.password_min,
            )
            if checked is INVALID:
                continue
            if spec.kind == "password":
                batch.passwords[rid] = checked.encode() if BCRYPT.match(checked) else hashes[checked]
                continue
            record[name] = checked
        for name, value in nested:
            self._nested_addresses(batch, record, name, value, f"{pointer}/{name}", hashes, language_id)
        if existing is None:
            self._defaults(entity, record, language_id, batch.now)
            reported = {v["source"]["pointer"] for v in batch.violations[before:]}
            for name in self._required[entity.name]:
                if record.get(name) is None and f"{pointer}/{name}" not in reported:
                    batch.violations.append(e.not_blank(f"{pointer}/{name}"))
            batch.inserted[(entity.name, rid)] = None
        else:
            record["updatedAt"] = batch.now
        return rid

    def _nested_addresses(
        self,
        batch: _Batch,
        customer: dict[str, Any],
        name: str,
        value: Any,
        pointer: str,
        hashes: dict[str, bytes],
        language_id: str | None,
    ) -> None:
        address = self.entities["customer_address"]
        parent = ("customerId", customer["id"])
        if name == "addresses":
            if not isinstance(value, list):
                batch.violations.append(e.invalid_type(pointer, "array"))
                return
            for j, item in enumerate(value):
                if not isinstance(item, dict):
                    batch.violations.append(
                        e.violation(
                            f"{pointer}/{j}",
                            "FRAMEWORK__WRITE_MALFORMED_INPUT",
                            f"Expected data at {pointer}/{j} to be an array.",
                        )
                    )
                    continue
                self._record(batch, address, item, f"{pointer}/{j}", hashes, language_id, parent)
            return
        if not isinstance(value, dict):
            batch.violations.append(e.invalid_type(pointer, "array"))
            return
        rid = self._record(batch, address, value, pointer, hashes, language_id, parent)
        customer[f"{name}Id"] = rid

    def _defaults(self, entity: Entity, record: dict[str, Any], language_id: str | None, now: str) -> None:
        record.setdefault("createdAt", now)
        if self.version.fills_default_salutation and record.get("salutationId") is None:
            record["salutationId"] = self.default_salutation
        if entity.name == "customer":
            record.setdefault("languageId", language_id or SYSTEM_LANGUAGE_ID)
        # every field is present in a stored record, NULL when never written (never the password)
        for name, default in self._template[entity.name].items():
            if name not in record:
                record[name] = default
        record["apiAlias"] = entity.name

    def _delete(self, batch: _Batch, entity: str, rid: str) -> None:
        batch.deleted[(entity, rid)] = None
        if entity == "customer":  # addresses and an open recovery cascade
            for child in ("customer_address", "customer_recovery"):
                for cid in list(self.store.ids_by(child, "customerId", rid)):
                    batch.deleted[(child, cid)] = None

    # --- apply -----------------------------------------------------------------------------
    def _apply(self, batch: _Batch, skip_flow: bool) -> dict[str, list[str]]:
        written: dict[str, list[str]] = {}
        for entity_name, rid in batch.deleted:
            self.store.remove(entity_name, rid)
        for (entity_name, rid), record in batch.records.items():
            if (entity_name, rid) in batch.deleted:
                continue
            self.store.put(entity_name, record)
            written.setdefault(entity_name, []).append(rid)
        self.store.passwords.update(batch.passwords)
        if not skip_flow:
            self._register_flows(batch)
        return written

    def _register_flows(self, batch: _Batch) -> None:
        """CustomerFlowEventsSubscriber after the write: restoring the customer's sales channel context
        fails for a language the channel does not offer; the subscriber deletes the customer again
        and the request answers 412 (the rest of the request stays written)."""
        refused: list[tuple[str, list[str]]] = []
        for entity_name, rid in batch.inserted:
            if entity_name != "customer":
                continue
            customer = batch.records[(entity_name, rid)]
            channel = self.store.get("sales_channel", customer.get("salesChannelId") or "") or {}
            languages = channel.get("languageIds") or []
            if customer.get("languageId") not in languages:
                refused.append((customer["languageId"], languages))
                for aid in list(self.store.ids_by("customer_address", "customerId", rid)):
                    self.store.remove("customer_address", aid)
                self.store.remove("customer", rid)
                continue
            self.on_register(customer)
        if refused:
            language, available = refused[0]
            raise e.simple(
                412,
                "SYSTEM__SALES_CHANNEL_LANGUAGE_NOT_AVAILABLE_EXCEPTION",
                f'Provided language "{language}" is not in list of available languages: '
                + ", ".join(available),
            )

    def _prehash(self, payload_lists) -> dict[str, bytes]:
        """Hash every plain password of the request before taking the store lock (bcrypt is slow)."""
        hashes: dict[str, bytes] = {}
        for payload in payload_lists:
            for item in payload if isinstance(payload, list) else ():
                pw = item.get("password") if isinstance(item, dict) else None
                if (
                    isinstance(pw, str)
                    and pw
                    and pw not in hashes
                    and not BCRYPT.match(pw)
                    and len(pw) >= self.password_min
                ):
                    hashes[pw] = bcrypt.hashpw(pw.encode(), bcrypt.gensalt(self.bcrypt_rounds))
        return hashes

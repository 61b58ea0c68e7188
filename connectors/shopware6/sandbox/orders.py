"""Orders with their three state machines, as Shopware 6 keeps them (sources: ../README.md, "Orders").

Shopware's ``state_machine`` rows (core migration ``Migration1536233560BasicData`` and the
``OrderStates``, ``OrderTransactionStates``, ``OrderDeliveryStates`` and
``StateMachineTransitionActions`` classes) name the states and transitions below; a transition
is ``POST /api/_action/<order|order_transaction|order_delivery>/<id>/state/<action>`` and
answers the new ``state_machine_state``. Every transition writes the entity's ``stateId`` (the
DAL sets its ``updatedAt``) and one ``state_machine_history`` row (``entityName``,
``referencedId``, ``fromStateId``, ``toStateId``, ``transitionActionName``, ``createdAt``): the
record an integration reads incrementally. A transition that is not allowed from the current
state answers 400 ``SYSTEM__ILLEGAL_STATE_TRANSITION`` (6.5+; the list of allowed actions is in
the detail).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from . import errors as e
from .schema import Association, Entity, Field
from .seed import sid
from .store import Store, format_dt, now_iso


@dataclass(frozen=True)
class Machine:
    technical_name: str  # state_machine.technicalName
    initial: str
    states: tuple[str, ...]
    transitions: dict[str, tuple[tuple[tuple[str, ...], str], ...]]  # action -> ((froms, to), ...)


ORDER = Machine(
    "order.state", "open", ("open", "in_progress", "completed", "cancelled"),
    {
        "process": ((("open",), "in_progress"),),
        "complete": ((("in_progress",), "completed"),),
        "cancel": ((("open", "in_progress"), "cancelled"),),
        "reopen": ((("completed", "cancelled"), "open"),),
    },
)
TRANSACTION = Machine(
    "order_transaction.state", "open",
    ("open", "in_progress", "paid", "paid_partially", "authorized", "cancelled", "failed", "reminded",
     "refunded", "refunded_partially", "unconfirmed", "chargeback"),
    {
        "do_pay": ((("open", "reminded", "paid_partially", "failed", "unconfirmed"), "in_progress"),),
        "process": ((("open", "reminded", "failed", "cancelled", "unconfirmed"), "in_progress"),),
        "paid": ((("open", "in_progress", "reminded", "paid_partially", "authorized", "unconfirmed",
                   "failed", "cancelled"), "paid"),),
        "paid_partially": ((("open", "in_progress", "reminded", "authorized", "unconfirmed"),
                            "paid_partially"),),
        "authorize": ((("open", "in_progress", "reminded"), "authorized"),),
        "remind": ((("open", "in_progress"), "reminded"),),
        "cancel": ((("open", "in_progress", "reminded", "paid_partially", "authorized", "failed",
                     "unconfirmed", "paid"), "cancelled"),),
        "fail": ((("open", "in_progress", "reminded", "authorized", "unconfirmed"), "failed"),),
        "refund": ((("paid", "paid_partially", "refunded_partially"), "refunded"),),
        "refund_partially": ((("paid", "paid_partially"), "refunded_partially"),),
        "chargeback": ((("paid", "paid_partially"), "chargeback"),),
        "reopen": ((("cancelled", "failed", "in_progress", "paid", "paid_partially", "refunded",
                     "refunded_partially", "authorized", "reminded", "chargeback", "unconfirmed"), "open"),),
    },
)
DELIVERY = Machine(
    "order_delivery.state", "open",
    ("open", "shipped", "shipped_partially", "returned", "returned_partially", "cancelled"),
    {
        "ship": ((("open", "shipped_partially"), "shipped"),),
        "ship_partially": ((("open",), "shipped_partially"),),
        "retour": ((("shipped", "shipped_partially", "returned_partially"), "returned"),),
        "retour_partially": ((("shipped", "shipped_partially"), "returned_partially"),),
        "cancel": ((("open", "shipped", "shipped_partially", "returned", "returned_partially"),
                    "cancelled"),),
        "reopen": ((("cancelled", "shipped", "shipped_partially", "returned", "returned_partially"),
                    "open"),),
    },
)
MACHINES = {"order": ORDER, "order_transaction": TRANSACTION, "order_delivery": DELIVERY}


def state_id(machine: Machine, state: str) -> str:
    return sid("state_machine_state", f"{machine.technical_name}:{state}")


def machine_id(machine: Machine) -> str:
    return sid("state_machine", machine.technical_name)


def _state_assoc() -> Association:
    return Association("one", "state_machine_state", "stateId")


def order_entities() -> list[Entity]:
    """The definitions the sandbox's schema adds for orders (read-only over CRUD: state changes
    go through the transition action, as in the shop)."""

    def ro(name: str, fields: list[str], assoc: dict[str, Association]) -> Entity:
        f = {n: Field("string") for n in fields}
        f.update({n: Field("datetime") for n in ("createdAt", "updatedAt")})
        f["id"] = Field("id")
        return Entity(name, f, assoc)

    return [
        ro("state_machine", ["technicalName", "name", "initialStateId"],
           {"states": Association("many", "state_machine_state", "stateMachineId")}),
        ro("state_machine_state", ["technicalName", "name", "stateMachineId", "translated"],
           {"stateMachine": Association("one", "state_machine", "stateMachineId")}),
        ro("state_machine_history",
           ["entityName", "referencedId", "referencedVersionId", "fromStateId", "toStateId",
            "transitionActionName", "userId", "integrationId"],
           {"fromStateMachineState": Association("one", "state_machine_state", "fromStateId"),
            "toStateMachineState": Association("one", "state_machine_state", "toStateId")}),
        ro("order_transaction", ["orderId", "orderVersionId", "paymentMethodId", "stateId", "amount"],
           {"stateMachineState": _state_assoc(), "order": Association("one", "order", "orderId"),
            "paymentMethod": Association("one", "payment_method", "paymentMethodId")}),
        ro("order_delivery", ["orderId", "orderVersionId", "stateId", "trackingCodes", "shippingDateEarliest",
                              "shippingDateLatest", "shippingMethodId"],
           {"stateMachineState": _state_assoc(), "order": Association("one", "order", "orderId")}),
    ]


ORDER_ASSOCIATIONS = {
    "stateMachineState": _state_assoc(),
    "transactions": Association("many", "order_transaction", "orderId"),
    "deliveries": Association("many", "order_delivery", "orderId"),
}


def seed_states(store: Store) -> None:
    stamp = now_iso()
    with store.lock:
        for machine in MACHINES.values():
            store.put("state_machine", {
                "id": machine_id(machine), "technicalName": machine.technical_name,
                "name": machine.technical_name, "initialStateId": state_id(machine, machine.initial),
                "createdAt": stamp, "updatedAt": None, "apiAlias": "state_machine",
            })
            for state in machine.states:
                store.put("state_machine_state", {
                    "id": state_id(machine, state), "technicalName": state,
                    "name": state.replace("_", " ").capitalize(), "stateMachineId": machine_id(machine),
                    "translated": {"name": state.replace("_", " ").capitalize()},
                    "createdAt": stamp, "updatedAt": None, "apiAlias": "state_machine_state",
                })


def state_of(store: Store, entity: str, record: dict[str, Any]) -> str:
    state = store.get("state_machine_state", record.get("stateId") or "")
    return state["technicalName"] if state else MACHINES[entity].initial


def transition(store: Store, entity: str, rid: str, action: str,
               at: datetime | None = None) -> dict[str, Any]:
    """Apply ``action`` to ``entity`` ``rid``; the new state record. Callers need not hold the lock."""
    machine = MACHINES[entity]
    stamp = format_dt(at) if at is not None else now_iso()
    with store.lock:
        record = store.get(entity, rid)
        if record is None:
            raise e.simple(404, "FRAMEWORK__ENTITY_NOT_FOUND",
                           f'Could not find entity for "{entity}" with id "{rid}".')
        current = state_of(store, entity, record)
        allowed = [a for a, moves in machine.transitions.items() if any(current in f for f, _ in moves)]
        target = next((to for froms, to in machine.transitions.get(action, ()) if current in froms), None)
        if target is None:
            raise e.simple(
                400, "SYSTEM__ILLEGAL_STATE_TRANSITION",
                f'Illegal transition "{action}" from state "{current}". Possible transitions are: '
                + ", ".join(allowed),
                parameters={"transition": action, "currentState": current, "possibleTransitions": allowed},
            )
        new_id = state_id(machine, target)
        store.put(entity, {**record, "stateId": new_id, "updatedAt": stamp})
        seq = len(store.tables["state_machine_history"])
        history_id = sid("state_machine_history", f"{entity}:{rid}:{seq}")
        store.put("state_machine_history", {
            "id": history_id, "entityName": entity, "referencedId": rid,
            "referencedVersionId": record.get("versionId"), "fromStateId": record.get("stateId"),
            "toStateId": new_id, "transitionActionName": action, "userId": None, "integrationId": None,
            "createdAt": stamp, "updatedAt": None, "apiAlias": "state_machine_history",
        })
        return dict(store.get("state_machine_state", new_id) or {})


def add_order_parts(store: Store, order_id: str, *, payment_method_id: str | None, amount: float,
                    stamp: str) -> None:
    """The transaction and the delivery a checkout creates with an order, both in their initial
    state (``open``); the order itself is ``open`` too. Callers hold the lock."""
    order = store.get("order", order_id)
    assert order is not None
    store.put("order", {**order, "stateId": state_id(ORDER, "open")})
    store.put("order_transaction", {
        "id": sid("order_transaction", order_id), "orderId": order_id, "orderVersionId": None,
        "paymentMethodId": payment_method_id, "stateId": state_id(TRANSACTION, "open"), "amount": amount,
        "createdAt": stamp, "updatedAt": None, "apiAlias": "order_transaction",
    })
    store.put("order_delivery", {
        "id": sid("order_delivery", order_id), "orderId": order_id, "orderVersionId": None,
        "stateId": state_id(DELIVERY, "open"), "trackingCodes": [], "shippingDateEarliest": stamp,
        "shippingDateLatest": stamp, "shippingMethodId": None,
        "createdAt": stamp, "updatedAt": None, "apiAlias": "order_delivery",
    })

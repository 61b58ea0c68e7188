"""The sandbox's orders: payment and delivery state machines over the Admin API transition
action, the state history they write, and the connector's incremental read of order changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from syncd.connectors.shopware6.sandbox.orders import DELIVERY, TRANSACTION
from tests.support.shop_fixtures import admin_session, sandbox  # noqa: F401 - the fixture
from tests.support.shopware import make_shop

T0 = datetime(2026, 4, 1, 12, 0, tzinfo=UTC)


def _customer(sb) -> str:  # noqa: ANN001
    return sb.create_customer_as_shop_user("besteller@beispiel.example", "geheim-passwort-1")["id"]


def test_an_order_comes_with_open_payment_and_delivery(sandbox) -> None:  # noqa: F811
    order = sandbox.add_order(_customer(sandbox), payment="payment_prepayment", at=T0)
    states = sandbox.order_states(order)
    assert states == {"order": "open", "order_transaction": "open", "order_delivery": "open"}


def test_transition_action_over_http_writes_state_and_history(sandbox) -> None:  # noqa: F811
    order = sandbox.add_order(_customer(sandbox), at=T0)
    s = admin_session(sandbox)
    by_order = {"filter": [{"type": "equals", "field": "orderId", "value": order}]}
    delivery = s.post(f"{sandbox.url}/api/search/order-delivery", json=by_order).json()["data"][0]
    r = s.post(f"{sandbox.url}/api/_action/order_delivery/{delivery['id']}/state/ship_partially")
    assert r.status_code == 200 and r.json()["technicalName"] == "shipped_partially"
    r = s.post(f"{sandbox.url}/api/_action/order_delivery/{delivery['id']}/state/ship")
    assert r.json()["technicalName"] == "shipped"
    history = s.post(f"{sandbox.url}/api/search/state-machine-history", json={
        "filter": [{"type": "equals", "field": "referencedId", "value": delivery["id"]}],
        "associations": {"toStateMachineState": {}},
        "sort": [{"field": "createdAt", "order": "ASC"}]}).json()["data"]
    assert [h["transitionActionName"] for h in history] == ["ship_partially", "ship"]
    assert [h["toStateMachineState"]["technicalName"] for h in history] == ["shipped_partially", "shipped"]
    assert all(h["entityName"] == "order_delivery" for h in history)
    found = s.post(f"{sandbox.url}/api/search/order", json={
        "ids": [order],
        "associations": {"deliveries": {"associations": {"stateMachineState": {}}}}}).json()["data"]
    assert found[0]["deliveries"][0]["stateMachineState"]["technicalName"] == "shipped"


def test_an_illegal_transition_is_refused_with_the_possible_ones(sandbox) -> None:  # noqa: F811
    order = sandbox.add_order(_customer(sandbox), at=T0)
    s = admin_session(sandbox)
    tx = s.post(f"{sandbox.url}/api/search/order-transaction",
                json={"filter": [{"type": "equals", "field": "orderId", "value": order}]}).json()["data"][0]
    r = s.post(f"{sandbox.url}/api/_action/order_transaction/{tx['id']}/state/refund")
    assert r.status_code == 400
    error = r.json()["errors"][0]
    assert error["code"] == "SYSTEM__ILLEGAL_STATE_TRANSITION" and "paid" in error["detail"]
    assert sandbox.order_states(order)["order_transaction"] == "open"  # nothing changed


def test_state_machines_follow_shopware(sandbox) -> None:  # noqa: F811
    order = sandbox.add_order(_customer(sandbox), at=T0)
    assert sandbox.transition("order_transaction", order, "remind") == "reminded"
    assert sandbox.transition("order_transaction", order, "paid") == "paid"
    assert sandbox.transition("order_transaction", order, "refund") == "refunded"
    assert sandbox.transition("order_delivery", order, "ship") == "shipped"
    assert sandbox.transition("order_delivery", order, "retour") == "returned"
    assert sandbox.transition("order", order, "process") == "in_progress"
    assert sandbox.transition("order", order, "complete") == "completed"
    with pytest.raises(Exception, match='Illegal transition "cancel" from state "completed"'):
        sandbox.transition("order", order, "cancel")  # completed orders are reopened first
    assert "shipped" in DELIVERY.states and "reminded" in TRANSACTION.states


def test_order_changes_reads_new_orders_and_state_changes_only(sandbox) -> None:  # noqa: F811
    cid = _customer(sandbox)
    old = sandbox.add_order(cid, at=T0 - timedelta(days=30))
    new = sandbox.add_order(cid, 99.5, payment="payment_prepayment", at=T0)
    sandbox.transition("order_delivery", old, "ship", at=T0 + timedelta(hours=1))
    shop = make_shop(sandbox)
    since = {"orders": T0 - timedelta(minutes=1), "states": T0 - timedelta(minutes=1)}
    changes = shop.order_changes(since)
    by_id = {o.id: o for o in changes.orders}  # consumed first: the cursor is complete after
    assert set(by_id) == {old, new}  # the old order because its delivery shipped now
    assert by_id[old].delivery_state == "shipped" and by_id[old].shipped_at == T0 + timedelta(hours=1)
    assert by_id[new].payment_method == "payment_prepayment" and by_id[new].amount == 99.5
    assert by_id[new].email == "besteller@beispiel.example"
    assert datetime.fromisoformat(changes.cursor["states"]) == T0 + timedelta(hours=1)
    again = shop.order_changes(since, skip=set(changes.seen))
    assert list(again.orders) == []  # everything listed was seen: nothing handed out again


def test_a_since_read_over_many_orders_answers_as_a_scan_would(sandbox) -> None:  # noqa: F811
    """The sandbox's timestamp index (``SORTED_INDEX_MIN`` rows and more, with a sort): the same
    rows as a scan, ``gt`` excluding the bound, and an order added afterwards is found."""
    from syncd.connectors.shopware6.sandbox import criteria

    customer = _customer(sandbox)
    for i in range(criteria.SORTED_INDEX_MIN + 10):
        sandbox.add_order(customer, at=T0 + timedelta(seconds=i // 2))  # pairs share a timestamp
    s = admin_session(sandbox)

    def since(op: str, at: datetime, sort: bool = True) -> list[str]:
        found: list[str] = []
        for page in range(1, 100):
            window = {"type": "range", "field": "createdAt", "parameters": {op: at.isoformat()}}
            body: dict = {"filter": [window],
                          "limit": 500, "page": page, "includes": {"order": ["id", "createdAt"]}}
            if sort:
                body["sort"] = [{"field": "createdAt", "order": "ASC"}, {"field": "id", "order": "ASC"}]
            data = s.post(f"{sandbox.url}/api/search/order", json=body).json()["data"]
            found += [o["id"] for o in data]
            if len(data) < 500:
                return found
        raise AssertionError("too many pages")

    bound = T0 + timedelta(seconds=500)
    indexed = since("gte", bound)
    assert len(indexed) == criteria.SORTED_INDEX_MIN + 10 - 1000
    assert sorted(indexed) == sorted(since("gte", bound, sort=False))  # the scan's answer
    assert len(since("gt", bound)) == len(indexed) - 2  # the two at the bound itself
    late = sandbox.add_order(customer, at=T0 + timedelta(days=1))
    assert since("gte", bound)[-1] == late

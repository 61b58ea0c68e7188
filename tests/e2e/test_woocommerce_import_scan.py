"""The shop -> ERP change scan on WooCommerce is incremental (the customers route has no date
filter): new customers newest id first down to the bound, customers of orders created or
modified since, a full pass only for the first import or when ``shop_changes`` needs every edit.
Real sandbox over HTTP, more customers than one page, identical timestamps on both sides of the
bound."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from syncd.connectors.woocommerce.sandbox import WooSandbox
from tests.support.shops import WooKit

OLD, NEW = "2026-01-05T08:00:00", "2026-03-01T12:00:00"


@pytest.fixture
def kit() -> Iterator[WooKit]:
    sb = WooSandbox().start()
    try:
        yield WooKit(sb)
    finally:
        sb.stop()


def _register(kit: WooKit, count: int, stamp: str, prefix: str) -> list[str]:
    ids = []
    for i in range(count):
        sid = kit.register(f"{prefix}{i}@example.com", "Geheim-123", first_name="Kim",
                           last_name=f"{prefix}{i}")
        user = kit.sandbox.data.users[int(sid)]
        user["date_created_gmt"] = user["date_modified_gmt"] = stamp
        ids.append(sid)
    return ids


def _customer_lists(kit: WooKit) -> list[dict[str, str]]:
    return [r.query for r in kit.sandbox.request_log if r.method == "GET" and r.path.endswith("/customers")
            and not r.query.get("include")]


def test_new_customers_are_read_down_to_the_bound_not_the_whole_list(kit: WooKit) -> None:
    old = _register(kit, 230, OLD, "alt")  # three pages of customers from before the bound
    new = _register(kit, 130, NEW, "neu")  # two pages registered in the same second
    shop = kit.connector()
    kit.sandbox.request_log.clear()

    found = [c.id for c in shop.customers_changed_since(datetime.fromisoformat(NEW).replace(tzinfo=UTC))]

    assert sorted(found) == sorted(new)  # every one of the tied timestamps, none twice, no old one
    assert len(found) == len(set(found))
    lists = _customer_lists(kit)
    assert len(lists) == 2, lists  # the pages of the new ones (the second ends at the first old one)
    assert all(q["orderby"] == "id" and q["order"] == "desc" for q in lists)
    # a poll with nothing new reads one page of one customer's worth, whatever the shop's size
    kit.sandbox.request_log.clear()
    later = datetime(2026, 3, 2, tzinfo=UTC)
    assert list(shop.customers_changed_since(later)) == []
    assert len(_customer_lists(kit)) == 1
    assert old  # (kept: the old ones exist and were not read)


def test_an_edit_at_checkout_is_found_through_the_order(kit: WooKit) -> None:
    old = _register(kit, 120, OLD, "alt")
    shop = kit.connector()
    since = datetime.fromisoformat(NEW).replace(tzinfo=UTC)
    kit.sandbox.data.update(old[7], {"billing": {"city": "Ulm"}})  # checkout saved a new address
    kit.sandbox.add_order(old[7])
    kit.sandbox.add_order(old[8])  # ordered, changed nothing
    kit.sandbox.add_order(0)  # a guest order: no customer behind it

    found = {c.id: c for c in shop.customers_changed_since(since)}

    assert list(found) == [old[7]] and found[old[7]].city == "Ulm"
    assert {c.id for c in shop.customers_with_orders(since)} == {old[7], old[8]}


def test_an_order_moved_on_later_counts_by_its_modified_date(kit: WooKit) -> None:
    [cid] = _register(kit, 1, OLD, "alt")
    order = kit.sandbox.add_order(cid, status="on-hold")
    for o in kit.sandbox.data.orders:
        o["date_created_gmt"] = o["date_modified_gmt"] = OLD
    shop = kit.connector()
    since = datetime.fromisoformat(NEW).replace(tzinfo=UTC)
    assert list(shop.customers_with_orders(since)) == []
    kit.sandbox.set_order_status(order["id"], "processing")  # the bank transfer arrived
    assert [c.id for c in shop.customers_with_orders(since)] == [cid]


def test_shop_changes_still_sees_every_profile_edit(kit: WooKit) -> None:
    old = _register(kit, 150, OLD, "alt")
    kit.sandbox.data.update(old[140], {"first_name": "Neu"})  # edited in My Account, no order
    since = datetime.fromisoformat(NEW).replace(tzinfo=UTC)
    ignoring = kit.connector()
    assert list(ignoring.customers_changed_since(since)) == []  # not asked for: not read
    importing = kit.connector(addresses={"shop_changes": "import"})
    assert [c.id for c in importing.customers_changed_since(since)] == [old[140]]

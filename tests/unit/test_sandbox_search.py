"""Criteria on /api/search and /api/search-ids: filters, paging, totals, sorting, associations."""

from __future__ import annotations

import json
import time

import pytest

from tests.support import shop_fixtures
from tests.support.shop_fixtures import admin_session, customer_payload

sandbox = shop_fixtures.sandbox  # the fixture


@pytest.fixture
def shop(sandbox):
    """Ten customers 1..10; odd numbers inactive; names Alpha..; one with a company."""
    s = admin_session(sandbox)
    names = ["Alpha", "Bravo", "Charlie", "Delta", "Echo", "Foxtrot", "Golf", "Hotel", "India", "Juliett"]
    batch = [
        customer_payload(
            sandbox, n, lastName=names[n - 1], active=n % 2 == 0, company="Müller GmbH" if n == 3 else None
        )
        for n in range(1, 11)
    ]
    resp = s.post(
        f"{sandbox.url}/api/_action/sync",
        json={"w": {"entity": "customer", "action": "upsert", "payload": batch}},
        headers={"sw-skip-trigger-flow": "1"},
    )
    assert resp.status_code == 200
    return s, sandbox, {n: p["id"] for n, p in enumerate(batch, start=1)}


def _search(shop, criteria, entity="customer", ids=False):
    s, sb, _ = shop
    resp = s.post(f"{sb.url}/api/{'search-ids' if ids else 'search'}/{entity}", json=criteria)
    assert resp.status_code == 200, resp.text
    return resp.json()


def _numbers(body):
    return [int(c["customerNumber"]) for c in body["data"]]


def test_equals_and_equals_any(shop):
    body = _search(shop, {"filter": [{"type": "equals", "field": "customerNumber", "value": "4"}]})
    assert _numbers(body) == [4]
    body = _search(shop, {"filter": [{"type": "equals", "field": "email", "value": "KUNDE5@example.com"}]})
    assert _numbers(body) == [5]  # e-mail matching ignores case, like MySQL's collation
    body = _search(
        shop, {"filter": [{"type": "equalsAny", "field": "customerNumber", "value": ["2", "7", "99"]}]}
    )
    assert sorted(_numbers(body)) == [2, 7]
    body = _search(
        shop, {"filter": [{"type": "equalsAny", "field": "customer.customerNumber", "value": "1|3"}]}
    )
    assert sorted(_numbers(body)) == [1, 3]
    body = _search(
        shop, {"filter": [{"type": "equals", "field": "active", "value": True}], "total-count-mode": 1}
    )
    assert body["total"] == 5
    body = _search(
        shop, {"filter": [{"type": "equals", "field": "company", "value": None}], "total-count-mode": 1}
    )
    assert body["total"] == 9


def test_contains_prefix_not_and_multi(shop):
    assert _numbers(
        _search(shop, {"filter": [{"type": "contains", "field": "company", "value": "müller"}]})
    ) == [3]
    assert _numbers(_search(shop, {"filter": [{"type": "prefix", "field": "lastName", "value": "ech"}]})) == [
        5
    ]
    body = _search(
        shop,
        {
            "filter": [
                {
                    "type": "multi",
                    "operator": "or",
                    "queries": [
                        {"type": "equals", "field": "lastName", "value": "Alpha"},
                        {"type": "equals", "field": "lastName", "value": "Golf"},
                    ],
                }
            ]
        },
    )
    assert sorted(_numbers(body)) == [1, 7]
    body = _search(
        shop,
        {
            "filter": [
                {"type": "not", "queries": [{"type": "equals", "field": "active", "value": False}]},
                {
                    "type": "multi",
                    "operator": "and",
                    "queries": [{"type": "range", "field": "orderCount", "parameters": {"gte": 0}}],
                },
            ],
            "total-count-mode": 1,
        },
    )
    assert body["total"] == 5


def test_range_on_datetimes_in_storage_and_iso_format(shop):
    s, sb, ids = shop
    time.sleep(1.01)  # the marker below has second resolution: step past the creation second
    marker = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()) + ".000"
    assert s.patch(f"{sb.url}/api/customer/{ids[6]}", json={"lastName": "Changed"}).status_code == 204
    crit = {
        "filter": [
            {
                "type": "multi",
                "operator": "or",
                "queries": [
                    {"type": "range", "field": "createdAt", "parameters": {"gte": marker}},
                    {"type": "range", "field": "updatedAt", "parameters": {"gte": marker}},
                ],
            }
        ]
    }
    assert _numbers(_search(shop, crit)) == [6]
    iso = marker.replace(" ", "T")[:-4] + "+00:00"
    assert _numbers(
        _search(shop, {"filter": [{"type": "range", "field": "updatedAt", "parameters": {"gte": iso}}]})
    ) == [6]
    everything = {
        "filter": [{"type": "range", "field": "createdAt", "parameters": {"lt": "2999-01-01"}}],
        "total-count-mode": 1,
    }
    assert _search(shop, everything)["total"] == 10
    s, sb, _ = shop
    bad = s.post(
        f"{sb.url}/api/search/customer",
        json={"filter": [{"type": "range", "field": "createdAt", "parameters": {"gte": "yesterday"}}]},
    )
    assert bad.status_code == 400


def test_paging_sorting_and_total_count_modes(shop):
    crit = {"limit": 3, "page": 2, "sort": [{"field": "lastName", "order": "DESC"}]}
    body = _search(shop, crit)
    assert [c["lastName"] for c in body["data"]] == ["Golf", "Foxtrot", "Echo"]
    assert body["total"] == 3  # mode 0 counts the page only
    assert _search(shop, {**crit, "total-count-mode": 1})["total"] == 10
    assert _search(shop, {"limit": 1, "page": 1, "total-count-mode": 2})["total"] == 7  # limit * 6 + 1
    assert _search(shop, {"limit": 3, "total-count-mode": "exact"})["total"] == 10
    assert _search(shop, {"limit": 1, "total-count-mode": "next-pages"})["total"] == 7
    assert _search(shop, {"limit": 3, "page": 4, "total-count-mode": 1})["data"] != []
    assert _search(shop, {"limit": 3, "page": 5})["data"] == []
    sort_num = _search(
        shop, {"sort": [{"field": "active", "order": "ASC"}, {"field": "customerNumber", "order": "ASC"}]}
    )
    assert _numbers(sort_num)[:2] == [1, 3]


def test_search_ids_and_ids_criteria(shop):
    _, _, ids = shop
    body = _search(
        shop, {"filter": [{"type": "equalsAny", "field": "customerNumber", "value": ["1", "2"]}]}, ids=True
    )
    assert sorted(body["data"]) == sorted([ids[1], ids[2]])
    body = _search(shop, {"ids": [ids[3], "f" * 32]})
    assert _numbers(body) == [3]


def test_associations_and_includes(shop):
    body = _search(
        shop,
        {
            "filter": [{"type": "equals", "field": "customerNumber", "value": "2"}],
            "associations": {
                "addresses": {"associations": {"country": {}}},
                "defaultBillingAddress": {},
                "salutation": {},
                "group": {},
            },
        },
    )
    c = body["data"][0]
    assert c["addresses"][0]["country"]["iso"] == "DE"
    assert c["defaultBillingAddress"]["id"] == c["defaultBillingAddressId"]
    assert c["salutation"]["salutationKey"] == "mr"
    assert c["group"]["name"] == "Standard-Kundengruppe"
    body = _search(shop, {"limit": 1, "includes": {"customer": ["id", "email"]}})
    assert set(body["data"][0]) == {"id", "email", "apiAlias"}


def test_filter_through_an_association(shop):
    s, sb, ids = shop
    at = sb.ids.countries["AT"]
    assert (
        _search(shop, {"filter": [{"type": "equals", "field": "addresses.countryId", "value": at}]})["data"]
        == []
    )
    body = _search(
        shop,
        {
            "filter": [{"type": "equals", "field": "addresses.country.iso", "value": "DE"}],
            "total-count-mode": 1,
        },
    )
    assert body["total"] == 10


def test_orders_and_order_count(shop):
    s, sb, ids = shop
    sb.add_order(ids[4])
    sb.add_order(ids[4])
    sb.add_order(ids[8])
    body = _search(
        shop,
        {
            "filter": [{"type": "range", "field": "orderCount", "parameters": {"gt": 0}}],
            "total-count-mode": 1,
        },
    )
    assert sorted(_numbers(body)) == [4, 8]
    assert sb.customer(ids[4])["orderCount"] == 2 and sb.customer(ids[4])["updatedAt"] is None
    orders = _search(
        shop,
        {
            "filter": [{"type": "equals", "field": "orderCustomer.customerId", "value": ids[4]}],
            "associations": {"orderCustomer": {}},
            "sort": [{"field": "orderDateTime", "order": "DESC"}],
            "total-count-mode": 1,
        },
        entity="order",
    )
    assert orders["total"] == 2
    assert orders["data"][0]["orderCustomer"]["customerNumber"] == "4"


def test_bad_criteria_are_400(shop):
    s, sb, _ = shop
    url = f"{sb.url}/api/search/customer"
    for crit in (
        {"filter": [{"type": "wat", "field": "email", "value": 1}]},
        {"filter": [{"field": "email"}]},
        {"filter": {"type": "equals"}},
        {"limit": 0},
        {"page": 0},
        {"sort": [{"field": "nope"}]},
        {"total-count-mode": "all"},
        {"total-count-mode": 5},
    ):
        assert s.post(url, json=crit).status_code == 400, crit


def test_a_repeated_search_sees_writes_made_in_between(shop):
    s, sb, ids = shop
    crit = {"filter": [{"type": "equals", "field": "active", "value": True}], "sort": [{"field": "lastName"}]}
    before = _numbers(_search(shop, {**crit, "limit": 2, "page": 1}))
    assert before == [2, 4]  # Bravo, Delta
    assert s.patch(f"{sb.url}/api/customer/{ids[1]}", json={"active": True}).status_code == 204
    assert _numbers(_search(shop, {**crit, "limit": 2, "page": 1})) == [1, 2]  # Alpha now active
    sb.add_order(ids[8])
    body = _search(shop, {"filter": [{"type": "range", "field": "orderCount", "parameters": {"gt": 0}}]})
    assert _numbers(body) == [8]


def test_mixed_sort_directions(shop):
    body = _search(
        shop, {"sort": [{"field": "active", "order": "DESC"}, {"field": "customerNumber", "order": "ASC"}]}
    )
    numbers = _numbers(body)
    # active first, then customer numbers as the strings they are
    assert numbers == [10, 2, 4, 6, 8, 1, 3, 5, 7, 9]
    by_created = _search(
        shop, {"sort": [{"field": "createdAt", "order": "DESC"}, {"field": "id", "order": "ASC"}]}
    )
    assert len(by_created["data"]) == 10


def test_malformed_criteria_never_crash_the_sandbox(shop):
    s, sb, _ = shop
    url = f"{sb.url}/api/search/customer"
    for crit in (
        {"ids": 5},
        {"ids": [1, 2]},
        {"sort": "lastName"},
        {"sort": ["lastName"]},
        {"sort": {"field": "lastName"}},
        {"filter": [{"type": "range", "field": "orderCount", "parameters": "gte"}]},
        {"filter": [{"type": "multi", "operator": "xor", "queries": []}]},
        {"filter": [{"type": "equalsAny", "field": "email", "value": 5}]},
        {"filter": [None]},
        {"associations": ["addresses"], "includes": "id"},
        {"limit": "abc"},
        [],
    ):
        resp = s.post(url, json=crit)
        assert resp.status_code < 500, (crit, resp.text)


def test_criteria_sent_without_json_content_type_are_ignored_like_symfony_does(shop):
    s, sb, _ = shop
    crit = {"filter": [{"type": "equals", "field": "customerNumber", "value": "4"}], "total-count-mode": 1}
    declared = s.post(
        f"{sb.url}/api/search/customer", data=json.dumps(crit), headers={"Content-Type": "application/json"}
    )
    assert declared.json()["total"] == 1
    undeclared = s.post(
        f"{sb.url}/api/search/customer", data=json.dumps(crit), headers={"Content-Type": "text/plain"}
    )
    assert undeclared.status_code == 200 and len(undeclared.json()["data"]) == 10


def test_aggregations_over_the_filtered_rows(shop):
    s, sb, ids = shop
    sb.add_order(ids[2], amount=100.0)
    sb.add_order(ids[2], amount=50.0)
    sb.add_order(ids[4], amount=10.0)
    body = _search(
        shop,
        {
            "limit": 1,
            "filter": [{"type": "equals", "field": "active", "value": True}],
            "post-filter": [{"type": "equals", "field": "customerNumber", "value": "2"}],
            "aggregations": [
                {"name": "n", "type": "count", "field": "id"},
                {"name": "orders", "type": "sum", "field": "orderCount"},
                {"name": "top", "type": "max", "field": "orderTotalAmount"},
                {"name": "by-active", "type": "terms", "field": "active"},
                {"name": "countries", "type": "terms", "field": "addresses.country.iso"},
            ],
        },
    )
    assert len(body["data"]) == 1  # post-filter narrows the data ...
    aggs = body["aggregations"]
    assert aggs["n"]["count"] == 5  # ... but not the aggregations
    assert aggs["orders"]["sum"] == 3 and aggs["top"]["max"] == 150.0
    assert aggs["by-active"]["buckets"] == [{"key": True, "count": 5, "extensions": []}]
    assert aggs["countries"]["buckets"][0] == {"key": "DE", "count": 5, "extensions": []}
    bad = s.post(
        f"{sb.url}/api/search/customer",
        json={"aggregations": [{"name": "x", "type": "median", "field": "id"}]},
    )
    assert bad.status_code == 400

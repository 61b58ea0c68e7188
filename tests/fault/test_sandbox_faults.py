"""Every fault switch of the sandbox, observed over real HTTP."""

from __future__ import annotations

import time

import pytest
import requests

from syncd.connectors.shopware6.sandbox import Sandbox
from tests.support import shop_fixtures
from tests.support.shop_fixtures import admin_session, customer_payload, store_login

sandbox = shop_fixtures.sandbox  # the fixture


def _version(s, sb, timeout=10):
    return s.get(f"{sb.url}/api/_info/version", timeout=timeout)


def test_latency_delays_admin_requests_but_not_the_store_api(sandbox):
    s = admin_session(sandbox)
    sandbox.faults.latency = 0.3
    t0 = time.perf_counter()
    assert _version(s, sandbox).status_code == 200
    assert time.perf_counter() - t0 >= 0.3
    t0 = time.perf_counter()
    store_login(sandbox, "nobody@example.com", "whatever1")
    assert time.perf_counter() - t0 < 0.3


def test_fail_next_answers_the_given_status_n_times_in_shopware_format(sandbox):
    s = admin_session(sandbox)
    sandbox.faults.fail_next(2, 502)
    first, second, third = (_version(s, sandbox) for _ in range(3))
    assert (first.status_code, second.status_code, third.status_code) == (502, 502, 200)
    assert first.json()["errors"][0]["status"] == "502"


def test_fail_next_also_hits_the_token_endpoint(sandbox):
    sandbox.faults.fail_next(1, 503)
    with pytest.raises(requests.HTTPError):
        admin_session(sandbox)
    admin_session(sandbox)


def test_error_rate_is_deterministic_for_a_seed():
    def statuses(seed):
        with Sandbox(random_seed=seed) as sb:
            s = admin_session(sb)
            sb.faults.error_rate_5xx = 0.5
            return [_version(s, sb).status_code for _ in range(40)]

    a, b = statuses(7), statuses(7)
    assert a == b
    assert 5 < a.count(503) < 35 and a.count(200) + a.count(503) == 40
    assert statuses(8) != a


def test_rate_limit_count_gives_429_with_retry_after(sandbox):
    s = admin_session(sandbox)
    sandbox.faults.rate_limit = 2
    sandbox.faults.retry_after = 3
    r1, r2, r3 = (_version(s, sandbox) for _ in range(3))
    assert [r.status_code for r in (r1, r2, r3)] == [429, 429, 200]
    assert r1.headers["Retry-After"] == "3"


def test_rate_limit_per_second_refuses_the_excess(sandbox):
    s = admin_session(sandbox)
    sandbox.faults.rate_limit_per_second = 3
    codes = [_version(s, sandbox).status_code for _ in range(5)]
    assert codes[:3] == [200, 200, 200] and codes[3:] == [429, 429]
    time.sleep(1.05)
    assert _version(s, sandbox).status_code == 200


def test_token_throttle_answers_auth_throttled_without_retry_after(sandbox):
    sandbox.faults.token_throttle = 1.5
    resp = requests.post(
        f"{sandbox.url}/api/oauth/token",
        json={
            "grant_type": "client_credentials",
            "client_id": sandbox.client_id,
            "client_secret": sandbox.client_secret,
        },
        timeout=10,
    )
    assert resp.status_code == 429
    assert "Retry-After" not in resp.headers
    err = resp.json()["errors"][0]
    assert err["code"] == "FRAMEWORK__AUTH_THROTTLED" and err["meta"]["parameters"]["seconds"] == 2
    time.sleep(1.6)
    admin_session(sandbox)  # the wait is over


def test_hang_makes_a_client_time_out(sandbox):
    s = admin_session(sandbox)
    sandbox.faults.hang = 1.0
    with pytest.raises(requests.exceptions.ReadTimeout):
        _version(s, sandbox, timeout=0.3)
    sandbox.faults.hang = 0
    assert _version(s, sandbox).status_code == 200


def test_hang_after_write_times_out_but_the_write_happened(sandbox):
    s = admin_session(sandbox)
    sandbox.faults.hang_after_write = 0.5
    p = customer_payload(sandbox, 1)
    with pytest.raises((requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError)):
        s.post(
            f"{sandbox.url}/api/_action/sync",
            json={"w": {"entity": "customer", "action": "upsert", "payload": [p]}},
            timeout=0.2,
        )
    time.sleep(0.4)
    assert [c["id"] for c in sandbox.customers()] == [p["id"]]


def test_reset_clears_every_switch(sandbox):
    s = admin_session(sandbox)
    f = sandbox.faults
    f.latency, f.error_rate_5xx, f.rate_limit, f.hang = 0.2, 1.0, 5, 0.2
    f.fail_next(3)
    f.token_throttle = 10
    f.reset()
    t0 = time.perf_counter()
    assert _version(s, sandbox).status_code == 200
    assert time.perf_counter() - t0 < 0.2
    admin_session(sandbox)


def test_fail_after_write_replaces_only_the_answer(sandbox):
    s = admin_session(sandbox)
    sandbox.faults.fail_next(1, 504, after_write=True)
    p = customer_payload(sandbox, 1)
    resp = s.post(
        f"{sandbox.url}/api/_action/sync",
        json={"w": {"entity": "customer", "action": "upsert", "payload": [p]}},
        headers={"sw-skip-trigger-flow": "1"},
    )
    assert resp.status_code == 504
    assert [c["id"] for c in sandbox.customers()] == [p["id"]]  # the shop did the work
    assert _version(s, sandbox).status_code == 200  # only one answer was replaced


def test_drop_next_closes_the_connection_without_processing(sandbox):
    s = admin_session(sandbox)
    sandbox.faults.drop_next(1)
    p = customer_payload(sandbox, 1)
    with pytest.raises(requests.exceptions.ConnectionError):
        s.post(
            f"{sandbox.url}/api/_action/sync",
            json={"w": {"entity": "customer", "action": "upsert", "payload": [p]}},
        )
    assert sandbox.customers() == []
    assert sandbox.request_log[-1].status == -1
    assert _version(s, sandbox).status_code == 200

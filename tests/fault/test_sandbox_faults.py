"""Every fault switch of the shop sandbox of each platform kind (``shop``: Shopware 6, WooCommerce,
which shares the switches), observed over real HTTP. Shopware's token endpoint has switches of
its own; WooCommerce has no token (signed requests): those cases are Shopware-only."""

from __future__ import annotations

import time

import pytest
import requests

from syncd.connectors.shopware6.sandbox import Sandbox
from syncd.connectors.woocommerce.http import oauth1_params
from syncd.connectors.woocommerce.sandbox import WooSandbox
from tests.support.shop_fixtures import admin_session, customer_payload
from tests.support.shops import WooKit, shop  # noqa: F401 - the fixture
from tests.support.wired_env import shopware_only

NO_TOKEN = "WooCommerce signs each request (OAuth 1.0a): there is no token endpoint to throttle or fail"


class Raw:
    """Plain requests to a sandbox of either kind, as any client of its API would send them: a
    read, a write creating customer ``n``, the status an error body names, a customer login."""

    def __init__(self, kit) -> None:
        self.kit, self.sb = kit, kit.sandbox
        self.woo = isinstance(kit, WooKit)
        self.session = requests.Session() if self.woo else admin_session(self.sb)

    def _woo(self, method: str, path: str, timeout: float, body=None) -> requests.Response:
        url = f"{self.sb.url}/wp-json/wc/v3{path}"
        params = oauth1_params(method, url, {}, self.sb.consumer_key, self.sb.consumer_secret)
        return self.session.request(method, url, params=params, json=body, timeout=timeout)

    def read(self, timeout: float = 10) -> requests.Response:
        if self.woo:
            return self._woo("GET", "/customers", timeout)
        return self.session.get(f"{self.sb.url}/api/_info/version", timeout=timeout)

    def write(self, n: int, timeout: float = 10) -> requests.Response:
        if self.woo:
            return self._woo("POST", "/customers/batch", timeout,
                             {"create": [{"email": f"kunde{n}@example.com", "first_name": "Max"}]})
        return self.session.post(
            f"{self.sb.url}/api/_action/sync",
            json={"w": {"entity": "customer", "action": "upsert", "payload": [customer_payload(self.sb, n)]}},
            headers={"sw-skip-trigger-flow": "1"}, timeout=timeout)

    def emails(self) -> list[str]:
        return [a.email for a in self.kit.accounts()]

    def error_status(self, resp: requests.Response) -> str:
        """The status the error body carries, in the kind's own error format."""
        body = resp.json()
        return str(body["data"]["status"]) if self.woo else body["errors"][0]["status"]

    def login(self) -> bool:
        return self.kit.login("nobody@example.com", "whatever1")


@pytest.fixture
def raw(shop) -> Raw:  # noqa: F811
    return Raw(shop)


def test_latency_delays_admin_requests_but_not_the_customer_login(raw):
    raw.sb.faults.latency = 0.3
    t0 = time.perf_counter()
    assert raw.read().status_code == 200
    assert time.perf_counter() - t0 >= 0.3
    t0 = time.perf_counter()
    raw.login()
    assert time.perf_counter() - t0 < 0.3


def test_fail_next_answers_the_given_status_n_times_in_the_kinds_format(raw):
    raw.sb.faults.fail_next(2, 502)
    first, second, third = (raw.read() for _ in range(3))
    assert (first.status_code, second.status_code, third.status_code) == (502, 502, 200)
    assert raw.error_status(first) == "502"


@shopware_only(NO_TOKEN)
def test_fail_next_also_hits_the_token_endpoint(shop):  # noqa: F811
    sandbox = shop.sandbox
    sandbox.faults.fail_next(1, 503)
    with pytest.raises(requests.HTTPError):
        admin_session(sandbox)
    admin_session(sandbox)


@pytest.mark.parametrize("kind", [Sandbox, WooSandbox])
def test_error_rate_is_deterministic_for_a_seed(kind):
    from tests.support.shops import kit_for

    def statuses(seed):
        with kind(random_seed=seed) as sb:
            r = Raw(kit_for(sb))
            sb.faults.error_rate_5xx = 0.5
            return [r.read().status_code for _ in range(40)]

    a, b = statuses(7), statuses(7)
    assert a == b
    assert 5 < a.count(503) < 35 and a.count(200) + a.count(503) == 40
    assert statuses(8) != a


def test_rate_limit_count_gives_429_with_retry_after(raw):
    raw.sb.faults.rate_limit = 2
    raw.sb.faults.retry_after = 3
    r1, r2, r3 = (raw.read() for _ in range(3))
    assert [r.status_code for r in (r1, r2, r3)] == [429, 429, 200]
    assert r1.headers["Retry-After"] == "3"


def test_rate_limit_per_second_refuses_the_excess(raw):
    raw.sb.faults.rate_limit_per_second = 3
    codes = [raw.read().status_code for _ in range(5)]
    assert codes[:3] == [200, 200, 200] and codes[3:] == [429, 429]
    time.sleep(1.05)
    assert raw.read().status_code == 200


@shopware_only(NO_TOKEN)
def test_token_throttle_answers_auth_throttled_without_retry_after(shop):  # noqa: F811
    sandbox = shop.sandbox
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


def test_hang_makes_a_client_time_out(raw):
    raw.sb.faults.hang = 1.0
    with pytest.raises(requests.exceptions.ReadTimeout):
        raw.read(timeout=0.3)
    raw.sb.faults.hang = 0
    assert raw.read().status_code == 200


def test_hang_after_write_times_out_but_the_write_happened(raw):
    raw.sb.faults.hang_after_write = 0.5
    with pytest.raises((requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError)):
        raw.write(1, timeout=0.2)
    time.sleep(0.4)
    assert raw.emails() == ["kunde1@example.com"]


def test_reset_clears_every_switch(raw):
    f = raw.sb.faults
    f.latency, f.error_rate_5xx, f.rate_limit, f.hang = 0.2, 1.0, 5, 0.2
    f.fail_next(3)
    f.token_throttle = 10
    f.reset()
    t0 = time.perf_counter()
    assert raw.read().status_code == 200
    assert time.perf_counter() - t0 < 0.2
    if not raw.woo:
        admin_session(raw.sb)  # the token endpoint too


def test_fail_after_write_replaces_only_the_answer(raw):
    raw.sb.faults.fail_next(1, 504, after_write=True)
    resp = raw.write(1)
    assert resp.status_code == 504
    assert raw.emails() == ["kunde1@example.com"]  # the shop did the work
    assert raw.read().status_code == 200  # only one answer was replaced


def test_drop_next_closes_the_connection_without_processing(raw):
    raw.sb.faults.drop_next(1)
    with pytest.raises(requests.exceptions.ConnectionError):
        raw.write(1)
    assert raw.emails() == []
    assert raw.sb.request_log[-1].status == -1
    assert raw.read().status_code == 200

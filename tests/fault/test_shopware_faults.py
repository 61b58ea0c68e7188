"""The Shopware connector under the faults only Shopware has: its OAuth token endpoint (throttling,
expiry, revocation), per-version behaviour, 413 splitting. The faults every platform kind meets
(5xx, 429, latency, hangs, lost answers, 403) are in test_shop_faults.py, for each kind."""

from __future__ import annotations

import time

import pytest

from syncd.core.errors import PermanentError, TransientError
from syncd.core.rules import PushOutcome
from tests.support import shop_fixtures
from tests.support.shopware import erp, make_shop, sync_requests

sandbox = shop_fixtures.sandbox


def warmed(sb, **settings):
    """A shop object that already holds a token, the version and the metadata."""
    shop = make_shop(sb, **settings)
    shop.metadata()
    shop.traits()
    return shop


def statuses(sb, path: str) -> list[int]:
    return [r.status for r in sb.request_log if r.path == path]


VERSIONS = ["6.5.8.0", "6.6.10.0", "6.7.10.0"]


@pytest.mark.parametrize("sandbox", VERSIONS, indirect=True)
def test_5xx_burst_then_success(sandbox, captured_logs):
    shop = warmed(sandbox)
    sandbox.faults.fail_next(2, 503)
    results = shop.push([erp(10001), erp(10002)], {})
    assert [r.outcome for r in results] == [PushOutcome.CREATED, PushOutcome.CREATED]
    assert len(sandbox.customers()) == 2
    assert statuses(sandbox, "/api/search/customer")[:3] == [503, 503, 200]
    assert "retrying" in captured_logs.text
    assert sandbox.client_secret not in captured_logs.text and shop.http._token not in captured_logs.text


@pytest.mark.parametrize("sandbox", VERSIONS, indirect=True)
def test_token_throttle_waits_the_announced_seconds_and_does_not_loop(sandbox):
    sandbox.faults.token_throttle = 1.0
    shop = make_shop(sandbox)
    started = time.monotonic()
    [r] = shop.push([erp(10001)], {})
    assert r.outcome == PushOutcome.CREATED
    assert time.monotonic() - started >= 0.9
    tokens = statuses(sandbox, "/api/oauth/token")
    assert tokens == [429, 200]


def test_token_throttle_longer_than_the_budget_gives_up_without_hammering(sandbox):
    sandbox.faults.token_throttle = 30
    shop = make_shop(sandbox)
    with pytest.raises(TransientError) as exc:
        shop.push([erp(10001)], {})
    assert "throttled" in str(exc.value)
    # One request learnt the wait; every later attempt waited locally instead of asking again.
    assert statuses(sandbox, "/api/oauth/token") == [429]


def test_short_token_lifetime_is_renewed_before_expiry(sandbox):
    sandbox.token_lifetime = 1
    shop = make_shop(sandbox)
    shop.push([erp(10001)], {})
    time.sleep(1.1)
    shop.push([erp(10002)], {})
    assert statuses(sandbox, "/api/oauth/token") == [200, 200]
    assert 401 not in [r.status for r in sandbox.request_log]
    assert len(sandbox.customers()) == 2


@pytest.mark.parametrize("sandbox", VERSIONS, indirect=True)
def test_revoked_token_is_renewed_once_on_401_and_the_request_resent(sandbox):
    shop = warmed(sandbox)
    sandbox.expire_tokens()
    [r] = shop.push([erp(10001)], {})
    assert r.outcome == PushOutcome.CREATED
    assert [x.status for x in sandbox.request_log].count(401) == 1
    assert statuses(sandbox, "/api/oauth/token") == [200, 200]


def test_wrong_secret_is_permanent_not_retried(sandbox):
    shop = make_shop(sandbox)
    shop.http._secret = "not-the-secret"
    with pytest.raises(PermanentError):
        shop.push([erp(10001)], {})
    assert len(statuses(sandbox, "/api/oauth/token")) == 1


def test_request_too_large_is_split_not_failed(sandbox):
    from syncd.connectors.shopware6.sync import SyncWriter

    shop = warmed(sandbox)
    records = [shop.mapper().map(erp(n)).payload for n in range(10001, 10005)]
    sandbox.faults.fail_next(1, 413)
    assert SyncWriter(shop.http).upsert("customer", records) == {}
    assert [r.status for r in sync_requests(sandbox)] == [413, 200, 200]
    assert len(sandbox.customers()) == 4

"""The connector under every sandbox fault switch: retried where the fault is transient, never
duplicated, never looping on the token endpoint, secrets never logged."""

from __future__ import annotations

import threading
import time

import pytest

from syncd.core import retry
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


def test_5xx_outlasting_the_retry_budget_raises_transient_and_writes_nothing_twice(sandbox):
    shop = warmed(sandbox)
    sandbox.faults.fail_next(50, 500)
    with pytest.raises(TransientError) as exc:
        shop.push([erp(10001)], {})
    assert "500" in str(exc.value) and sandbox.client_secret not in str(exc.value)
    sandbox.faults.reset()
    shop.push([erp(10001)], {})
    assert len(sandbox.customers()) == 1


def test_random_5xx_rate_still_completes_every_record(sandbox):
    # Enough attempts that a 40 % failure rate cannot exhaust them in this run (seeded faults).
    retry.set_policy(retry.RetryPolicy(attempts=12, max_total=5.0, initial=0.001, maximum=0.01))
    shop = warmed(sandbox, batch_size=10)
    sandbox.faults.error_rate_5xx = 0.4
    results = shop.push([erp(n) for n in range(10001, 10051)], {})
    assert all(r.outcome == PushOutcome.CREATED for r in results)
    assert len(sandbox.customers()) == 50
    assert 503 in [r.status for r in sandbox.request_log]


def test_429_with_retry_after_is_honoured(sandbox):
    shop = warmed(sandbox)
    sandbox.faults.retry_after = 1
    sandbox.faults.rate_limit = 1
    started = time.monotonic()
    [r] = shop.push([erp(10001)], {})
    elapsed = time.monotonic() - started
    assert r.outcome == PushOutcome.CREATED
    assert 429 in [x.status for x in sandbox.request_log]
    # The fast test policy would retry after ~1 ms; the wait came from Retry-After.
    assert elapsed >= 0.9


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


def test_latency_slows_but_does_not_fail(sandbox):
    shop = warmed(sandbox)
    sandbox.faults.latency = 0.2
    started = time.monotonic()
    results = shop.push([erp(10001), erp(10002)], {})
    assert all(r.outcome == PushOutcome.CREATED for r in results)
    assert time.monotonic() - started >= 0.2 * 2  # one lookup and one sync


def test_hanging_response_times_out_and_is_retried(sandbox):
    shop = warmed(sandbox, timeout="0.3s")
    [r] = shop.push([erp(10001)], {})
    sandbox.faults.hang = 5
    threading.Timer(0.4, lambda: setattr(sandbox.faults, "hang", 0.0)).start()
    started = time.monotonic()
    assert shop.set_active([r.shop_id], False) == {r.shop_id: None}
    assert 0.3 <= time.monotonic() - started < 3  # one read timeout, then the retry went through
    assert sandbox.customer(r.shop_id)["active"] is False


def test_write_done_but_answer_lost_is_replayed_without_duplicates(sandbox):
    shop = warmed(sandbox, timeout="0.3s")
    sandbox.faults.hang_after_write = 2
    threading.Timer(0.5, lambda: setattr(sandbox.faults, "hang_after_write", 0.0)).start()
    started = time.monotonic()
    results = shop.push([erp(n) for n in range(10001, 10006)], {})
    assert time.monotonic() - started >= 0.3  # at least one answer was lost to the read timeout
    assert all(r.outcome == PushOutcome.CREATED for r in results)
    time.sleep(0.1)
    assert len(sandbox.customers()) == 5
    assert len({a["id"] for c in sandbox.customers() for a in c["addresses"]}) == 5
    assert len(sync_requests(sandbox)) >= 1


def test_forbidden_is_permanent_and_not_retried(sandbox):
    shop = warmed(sandbox)
    before = len(sandbox.request_log)
    sandbox.faults.fail_next(1, 403)
    with pytest.raises(PermanentError) as exc:
        shop.push([erp(10001)], {})
    assert "403" in str(exc.value)
    assert len(sandbox.request_log) - before == 1
    assert sandbox.customers() == []


def test_retry_log_lines_carry_the_callers_context_from_the_push_worker(sandbox, captured_logs):
    import structlog

    shop = warmed(sandbox)
    sandbox.faults.fail_next(1, 503)
    with structlog.contextvars.bound_contextvars(cycle="c-42"):
        shop.push([erp(10001)], {})
    retries = [e for e in captured_logs.events() if e.get("event") == "retrying"]
    assert retries and all(e.get("cycle") == "c-42" for e in retries)


def test_request_too_large_is_split_not_failed(sandbox):
    from syncd.connectors.shopware6.sync import SyncWriter

    shop = warmed(sandbox)
    records = [shop.mapper().map(erp(n)).payload for n in range(10001, 10005)]
    sandbox.faults.fail_next(1, 413)
    assert SyncWriter(shop.http).upsert("customer", records) == {}
    assert [r.status for r in sync_requests(sandbox)] == [413, 200, 200]
    assert len(sandbox.customers()) == 4

"""Each platform kind's connector under the sandbox fault switches (``shop`` fixture: Shopware 6,
WooCommerce): retried where the fault is transient, never duplicated, secrets never logged. The
Shopware-only faults (its OAuth token endpoint, versions) stay in test_shopware_faults.py."""

from __future__ import annotations

import threading
import time

import pytest

from syncd.core import retry
from syncd.core.errors import PermanentError, TransientError
from syncd.core.rules import PushOutcome
from tests.support.shops import shop  # noqa: F401 - the fixture
from tests.support.shopware import erp


class Intents:
    """The state store's create intents, in memory (what ``push_addresses`` hands the connector)."""

    def __init__(self) -> None:
        self.numbers: set[int] = set()

    def pending(self, numbers):
        return set(numbers) & self.numbers

    def record(self, creates):
        self.numbers |= {n for n, _ in creates}


def is_new(r) -> bool:
    """Created by this push: CREATED, or (WooCommerce, a lost answer) our own account found again."""
    return r.outcome == PushOutcome.CREATED or r.detail == "existed_with_deterministic_id"


def writes(shop) -> list[int]:  # noqa: F811
    return [r.status for r in shop.sandbox.request_log if shop.is_write(r.path)]


def test_5xx_burst_then_success(shop, captured_logs):  # noqa: F811
    conn = shop.connector()
    shop.sandbox.faults.fail_next(2, 503)
    results = conn.push([erp(10001), erp(10002)], {})
    assert [r.outcome for r in results] == [PushOutcome.CREATED, PushOutcome.CREATED]
    assert len(shop.accounts()) == 2
    assert [r.status for r in shop.sandbox.request_log].count(503) == 2
    assert "retrying" in captured_logs.text
    assert shop.secret not in captured_logs.text


def test_5xx_outlasting_the_retry_budget_raises_transient_and_writes_nothing_twice(shop):  # noqa: F811
    conn = shop.connector()
    shop.sandbox.faults.fail_next(50, 500)
    with pytest.raises(TransientError) as exc:
        conn.push([erp(10001)], {})
    assert "500" in str(exc.value) and shop.secret not in str(exc.value)
    shop.sandbox.faults.reset()
    conn.push([erp(10001)], {})
    assert len(shop.accounts()) == 1


def test_random_5xx_rate_still_completes_every_record(shop):  # noqa: F811
    # Enough attempts that a 40 % failure rate cannot exhaust them in this run (seeded faults).
    retry.set_policy(retry.RetryPolicy(attempts=12, max_total=5.0, initial=0.001, maximum=0.01))
    conn = shop.connector(batch_size=10)
    shop.sandbox.faults.error_rate_5xx = 0.4
    intents = Intents()
    results = conn.push([erp(n) for n in range(10001, 10051)], {}, intents=intents)
    assert all(is_new(r) for r in results), [r for r in results if not is_new(r)]
    assert len(shop.accounts()) == 50
    assert len({a.number for a in shop.accounts()}) == 50
    assert 503 in [r.status for r in shop.sandbox.request_log]


def test_429_with_retry_after_is_honoured(shop):  # noqa: F811
    conn = shop.connector()
    shop.sandbox.faults.retry_after = 1
    shop.sandbox.faults.rate_limit = 1
    started = time.monotonic()
    [r] = conn.push([erp(10001)], {})
    elapsed = time.monotonic() - started
    assert r.outcome == PushOutcome.CREATED
    assert 429 in [x.status for x in shop.sandbox.request_log]
    # The fast test policy would retry after ~1 ms; the wait came from Retry-After.
    assert elapsed >= 0.9


def test_latency_slows_but_does_not_fail(shop):  # noqa: F811
    conn = shop.connector()
    shop.sandbox.faults.latency = 0.2
    started = time.monotonic()
    results = conn.push([erp(10001), erp(10002)], {})
    assert all(r.outcome == PushOutcome.CREATED for r in results)
    assert time.monotonic() - started >= 0.2


def test_hanging_response_times_out_and_is_retried(shop):  # noqa: F811
    conn = shop.connector(timeout="0.3s")
    [r] = conn.push([erp(10001)], {})
    shop.sandbox.faults.hang = 5
    threading.Timer(0.4, lambda: setattr(shop.sandbox.faults, "hang", 0.0)).start()
    started = time.monotonic()
    assert conn.set_passwords({r.shop_id: "Neu-Gesetzt-42"}) == {r.shop_id: None}
    assert 0.3 <= time.monotonic() - started < 3  # one read timeout, then the retry went through
    assert shop.login("kunde10001@example.com", "Neu-Gesetzt-42")


def test_write_done_but_answer_lost_is_replayed_without_duplicates(shop):  # noqa: F811
    """The shop made the accounts, the answer never came: the retried request must not make them
    again. Shopware: deterministic ids. WooCommerce: the retry is refused per item as existing,
    the look-up by e-mail finds the accounts with their ERP number, and the pending intents say
    they are ours (so the flow still mails them)."""
    conn = shop.connector(timeout="0.3s")
    shop.sandbox.faults.hang_after_write = 2
    threading.Timer(0.5, lambda: setattr(shop.sandbox.faults, "hang_after_write", 0.0)).start()
    started = time.monotonic()
    results = conn.push([erp(n) for n in range(10001, 10006)], {}, intents=Intents())
    assert time.monotonic() - started >= 0.3  # at least one answer was lost to the read timeout
    assert all(is_new(r) for r in results), results
    time.sleep(0.1)
    assert sorted(a.number for a in shop.accounts()) == [str(n) for n in range(10001, 10006)]
    assert sorted(r.shop_id for r in results) == sorted(a.id for a in shop.accounts())
    assert len(writes(shop)) >= 1


def test_forbidden_is_permanent_and_not_retried(shop):  # noqa: F811
    conn = shop.connector()
    before = len(shop.sandbox.request_log)
    shop.sandbox.faults.fail_next(1, 403)
    with pytest.raises(PermanentError) as exc:
        conn.push([erp(10001)], {})
    assert "403" in str(exc.value)
    assert len(shop.sandbox.request_log) - before == 1
    assert shop.accounts() == []


def test_retry_log_lines_carry_the_callers_context(shop, captured_logs):  # noqa: F811
    import structlog

    conn = shop.connector()
    shop.sandbox.faults.fail_next(1, 503)
    with structlog.contextvars.bound_contextvars(cycle="c-42"):
        conn.push([erp(10001)], {})
    retries = [e for e in captured_logs.events() if e.get("event") == "retrying"]
    assert retries and all(e.get("cycle") == "c-42" for e in retries)

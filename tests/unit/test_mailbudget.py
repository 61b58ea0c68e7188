"""The shared mail budget (``syncd.flows.mailbudget``) over a real state store: the rate window is
global across platforms, the canary counts per platform and restarts with a new configuration,
and the send log is pruned."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from syncd.config.model import AddressSettings, ErpSettings, MailSettings, PlatformSettings, Settings
from syncd.flows import mailbudget
from syncd.flows.context import PlatformContext
from syncd.state.mailsends import MailSends
from tests.support.dbs import state_store

NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def _ctx(store, name: str = "shop", *, mail: dict | None = None, **addresses) -> PlatformContext:
    platforms = tuple(PlatformSettings(name=n, url="https://shop.example.com", client_id="id",
                                       client_secret="env:X", addresses=AddressSettings(**addresses))
                      for n in ("shop", "b2b"))
    settings = Settings(erp=ErpSettings(url="sqlite://"), mail=MailSettings(**(mail or {})),
                        platforms=platforms)
    platform = next(p for p in platforms if p.name == name)
    return PlatformContext(settings=settings, platform=platform, erp=None, shop=None,  # type: ignore[arg-type]
                           state=store, clock=lambda: NOW)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.realdb)])
def store(request, tmp_path):
    with state_store(request.param, tmp_path) as s:
        yield s


def test_no_limits_no_log(store) -> None:
    ctx = _ctx(store)
    budget = mailbudget.MailBudget.open(ctx, "credentials")
    assert budget.remaining is None and budget.limit(500) == 500
    mailbudget.record_send(ctx, "credentials")
    assert MailSends(store).count_since(NOW - timedelta(days=1)) == 0  # nothing written without limits


def test_the_rate_window_is_shared_by_platforms(store) -> None:
    shop = _ctx(store, mail={"max_per_minute": 3, "max_per_hour": 4})
    b2b = _ctx(store, "b2b", mail={"max_per_minute": 3, "max_per_hour": 4})
    for _ in range(2):
        mailbudget.record_send(shop, "credentials")
    budget = mailbudget.MailBudget.open(b2b, "credentials")
    assert budget.remaining == 1 and "max_per_minute" in budget.why
    budget.take(1)
    assert budget.exhausted and budget.limit(10) == 0
    MailSends(store).record("b2b", "notification", NOW - timedelta(minutes=30))  # another kind counts too
    later = _ctx(store, mail={"max_per_minute": 3, "max_per_hour": 4})
    later.clock = lambda: NOW + timedelta(minutes=2)
    hour = mailbudget.MailBudget.open(later, "credentials")
    assert hour.remaining == 1 and "max_per_hour" in hour.why
    assert MailSends(store).prune(NOW + timedelta(minutes=1)) == 3
    assert MailSends(store).count_since(NOW - timedelta(days=1)) == 0


def test_canary_per_configuration(store) -> None:
    ctx = _ctx(store, canary=2)
    assert mailbudget.MailBudget.open(ctx, "credentials").remaining == 2
    mailbudget.record_send(ctx, "credentials")
    mailbudget.record_send(ctx, "credentials")
    assert mailbudget.MailBudget.open(ctx, "credentials").exhausted
    assert mailbudget.canary_state(ctx).holding
    assert mailbudget.release(ctx).released
    assert mailbudget.MailBudget.open(ctx, "credentials").remaining is None
    # another layout: a new configuration, a new canary, counted from its start
    changed = _ctx(store, canary=2, email_layout="credentials_en")
    changed.clock = lambda: NOW + timedelta(seconds=1)
    assert mailbudget.MailBudget.open(changed, "credentials").remaining == 2
    # a read-only look (dry run, status) starts nothing
    other = _ctx(store, "b2b", canary=5)
    assert mailbudget.MailBudget.open(other, "credentials", start=False).remaining == 5
    assert mailbudget.canary_state(other, start=False).sent == 0

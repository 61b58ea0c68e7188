"""kill -9 during the reminders' SMS sends and queueing: a real process
(tests/support/reminder_kill_runner.py) against the shop sandbox of each platform kind (``shop``
fixture: Shopware 6 orders shipped, WooCommerce orders completed) and the seven.io fake over
loopback, SIGKILLed at a checkpoint, then run again. No SMS is lost, and at most the one whose
outcome the kill left unknown goes out twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from syncd.state.db import open_state
from syncd.state.links import Link
from syncd.state.messages import Messages
from syncd.state.uow import SqlUnitOfWork
from tests.support.fakes.sms_providers import FakeSeven
from tests.support.shops import shop  # noqa: F401 - the fixture

ROOT = Path(__file__).resolve().parents[2]
KEY = "seven-kill-test-key"
T0 = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
N = 6
pytestmark = pytest.mark.slow


@pytest.fixture
def seven():
    with FakeSeven(KEY) as fake:
        fake.reload_lock = 0.0  # show syncd's own bound, not the provider's duplicate lock
        yield fake


@pytest.fixture
def setup(tmp_path, shop, seven):  # noqa: F811
    sandbox = shop.sandbox
    url = f"sqlite:///{tmp_path / 'state.db'}"
    store = open_state(url)
    addresses = []
    try:
        with SqlUnitOfWork(store) as uow:
            for i in range(N):
                number = 61000 + i
                email = f"sms.{number}@beispiel.example"
                customer = str(sandbox.create_customer_as_shop_user(email, "geheim-passwort-1")["id"])
                if shop.kind == "woocommerce":  # fulfilled: WooCommerce's "shipped"
                    sandbox.add_order(customer, status="completed", at=T0 + timedelta(minutes=1))
                else:
                    order = sandbox.add_order(customer, at=T0)
                    sandbox.transition("order_delivery", order, "ship", at=T0 + timedelta(minutes=1))
                uow.links.upsert(Link(platform="shop", shop_id=customer, erp_number=number, email=email))
                addresses.append({"number": number, "email": email, "mobile": f"0170 55500{i:02d}"})
            uow.commit()
    finally:
        store.close()
    config = tmp_path / "config.json"
    config.write_text(json.dumps({
        "state_url": url, "shop_url": sandbox.url, "platform": shop.platform_fields("env:UNUSED"),
        "client_secret": shop.secret, "sms_url": seven.url, "sms_key": KEY,
        "addresses": addresses, "now": (T0 + timedelta(minutes=5)).isoformat(),
    }))
    return config, url


def _run(config: Path, **env: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k not in ("SYNCD_KILL_AT", "SYNCD_PAUSE_AT")}
    full.update(env)
    return subprocess.run([sys.executable, "-m", "tests.support.reminder_kill_runner", str(config)], cwd=ROOT,
                          env=full, capture_output=True, text=True, timeout=120)


def _sent(seven: FakeSeven) -> Counter:
    return Counter(s.to for s in seven.sent)


def _counts(url: str) -> dict:
    store = open_state(url, migrate=False)
    try:
        return dict(Messages(store).counts("shop"))
    finally:
        store.close()


@pytest.mark.parametrize("point, duplicates", [
    ("sms_after_request:3", 1),   # the provider took the 3rd SMS, the kill came before it was recorded
    ("sms_before_request:3", 0),  # counted as sending, but the request never left
    ("sms_before_commit:3", 0),   # not even counted
    ("reminders_before_commit:1", 0),  # queued in a transaction that never committed
])
def test_kill_during_the_sms_run(setup, seven, point, duplicates) -> None:
    config, url = setup
    killed = _run(config, SYNCD_KILL_AT=point)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    done = _run(config)
    assert done.returncode == 0, done.stderr[-2000:]
    sent = _sent(seven)
    assert len(sent) == N, sent  # none lost
    assert sum(sent.values()) - N == duplicates  # at most the one in doubt, once
    assert _counts(url) == {"sent": N}
    again = _run(config)  # a third run sends nothing
    assert again.returncode == 0 and sum(_sent(seven).values()) == N + duplicates
    assert KEY not in killed.stderr + done.stderr + again.stderr
    db = Path(url.removeprefix("sqlite:///"))
    assert KEY.encode() not in db.read_bytes()  # the API key never reaches the state store


def test_two_kills_after_acceptance_fail_it_instead_of_a_third_send(setup, seven) -> None:
    config, url = setup
    assert _run(config, SYNCD_KILL_AT="sms_after_request:1").returncode == -signal.SIGKILL
    assert _run(config, SYNCD_KILL_AT="sms_after_request:1").returncode == -signal.SIGKILL
    assert _run(config).returncode == 0
    sent = _sent(seven)
    assert len(sent) == N and max(sent.values()) == 2 and sum(sent.values()) == N + 1
    counts = _counts(url)
    assert counts == {"sent": N - 1, "failed": 1}  # delivery unknown twice: not sent a third time

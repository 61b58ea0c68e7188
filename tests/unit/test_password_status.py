"""The own-password rule of ``syncd.flows.password_status`` on the shop's customer fields."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from syncd.flows.password_status import from_shop

MAILED = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


@dataclass
class Customer:
    last_login: datetime | None = None
    updated_at: datetime | None = None


@pytest.mark.parametrize(
    ("mode", "ours", "customer", "own"),
    [
        # link mode: any login after the link mail is with a password the customer chose
        ("link", None, Customer(last_login=MAILED + MIN, updated_at=MAILED + MIN), True),
        ("link", None, Customer(last_login=MAILED - MIN, updated_at=MAILED - MIN), False),
        # password mode: a login is not a change, whenever it happens
        ("password", None, Customer(last_login=MAILED + MIN, updated_at=MAILED + MIN), False),
        # a write after the mail that is not a login: a password change (or recovery) by the customer
        ("password", None, Customer(last_login=MAILED + MIN, updated_at=MAILED + 5 * MIN), True),
        ("password", None, Customer(last_login=None, updated_at=MAILED + MIN), True),
        # ... unless it is syncd's own later write, or within the clock skew of the mail
        ("password", MAILED + 10 * MIN, Customer(updated_at=MAILED + 10 * MIN + timedelta(seconds=2)), False),
        ("password", None, Customer(updated_at=MAILED + timedelta(seconds=3)), False),
        ("password", None, Customer(), False),
        # naive times from SQLite are UTC
        ("password", None, Customer(updated_at=(MAILED + MIN).replace(tzinfo=None)), True),
    ],
)
def test_own_password(mode, ours, customer, own):
    assert from_shop(MAILED, mode, ours, customer) is own


def test_nothing_mailed_or_no_account_is_never_own():
    assert from_shop(None, "link", None, Customer(last_login=MAILED)) is False
    assert from_shop(MAILED, "link", None, None) is False

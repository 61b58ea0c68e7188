"""The one Retry-After reader every connector hands to the retry policy."""

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from syncd.core.retry import retry_after_seconds


def test_seconds_dates_and_garbage():
    assert retry_after_seconds("120") == 120.0
    assert retry_after_seconds("-5") == 0.0
    soon = format_datetime(datetime.now(UTC) + timedelta(seconds=90), usegmt=True)
    assert 80 <= retry_after_seconds(soon) <= 91
    assert retry_after_seconds(None) is None and retry_after_seconds("") is None
    assert retry_after_seconds("soon, maybe") is None

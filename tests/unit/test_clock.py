from datetime import UTC, datetime, timedelta

from syncd.core import clock


def test_utcnow_is_aware_utc_and_now():
    before = datetime.now(UTC)
    now = clock.utcnow()
    assert now.tzinfo is UTC and before <= now <= before + timedelta(seconds=5)


def test_the_old_definitions_are_the_clock():
    from syncd.flows import context

    assert context.PlatformContext.__dataclass_fields__["clock"].default is clock.utcnow

"""Fixtures of the kill tests: ``runner`` starts kill runners on the test module's own
``harness`` (``tests.support.kill_scaffold``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.kill_scaffold import Runner


@pytest.fixture
def runner(harness) -> Iterator[Runner]:
    r = Runner(harness.config_file())
    try:
        yield r
    finally:
        r.close()

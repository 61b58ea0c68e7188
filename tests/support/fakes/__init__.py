"""In-memory fakes of syncd's ports and state for fast flow tests (see ``state.py``)."""

from tests.support.fakes.state import (
    FakeAllocations,
    FakeCreateIntents,
    FakeCredentialJobs,
    FakeCursors,
    FakeFailures,
    FakeLinks,
    FakeState,
    FakeUnitOfWork,
)

__all__ = [
    "FakeAllocations",
    "FakeCreateIntents",
    "FakeCredentialJobs",
    "FakeCursors",
    "FakeFailures",
    "FakeLinks",
    "FakeState",
    "FakeUnitOfWork",
]

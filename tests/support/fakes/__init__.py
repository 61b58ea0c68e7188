"""In-memory fakes of syncd's ports and state for fast flow tests (see ``state.py``)."""

from tests.support.fakes.state import (
    FakeAllocations,
    FakeApprovals,
    FakeCreateIntents,
    FakeCredentialJobs,
    FakeCursors,
    FakeFailures,
    FakeLinks,
    FakeMessages,
    FakeState,
    FakeUnitOfWork,
)

__all__ = [
    "FakeAllocations",
    "FakeApprovals",
    "FakeCreateIntents",
    "FakeCredentialJobs",
    "FakeCursors",
    "FakeFailures",
    "FakeLinks",
    "FakeMessages",
    "FakeState",
    "FakeUnitOfWork",
]

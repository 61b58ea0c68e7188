"""Recording and clearing a record's failure from a flow, for flows that share it.

The ERP -> shop flow and the credential run both record failures under an ERP number; which of
the two directions a failure belongs to follows from its step. Each call is one unit of work of
its own: a caller that holds a unit already writes ``uow.failures`` directly instead.

Moved here from ``syncd.flows.push_addresses`` (issue 12, WP-A), which the credential run
borrowed them from; ``push_addresses`` re-exports them until its own migration to the unit of
work lands.
"""

from __future__ import annotations

from collections.abc import Iterable

from syncd.core.domain import Direction
from syncd.flows.context import PlatformContext

DIRECTION = Direction.ERP_TO_SHOP.value
# Mail failures are kept apart from push failures: a later successful update of the address
# must not hide that its credentials mail bounced.
MAIL_DIRECTION = "credentials"


def direction_of(step: str) -> str:
    return MAIL_DIRECTION if step == "credentials" else DIRECTION


def record_failure(ctx: PlatformContext, number: object, *, step: str, reason: str, code: str | None = None,
                   direction: str | None = None) -> None:
    with ctx.uow() as uow:
        uow.failures.record(ctx.platform.name, direction or direction_of(step), number, step, reason, code)
        uow.commit()


def clear_failures(ctx: PlatformContext, numbers: Iterable[object], *, step: str) -> None:
    numbers = list(numbers)
    if numbers:
        with ctx.uow() as uow:
            uow.failures.clear_many(ctx.platform.name, direction_of(step), numbers)
            uow.commit()

"""Account status back into the ERP (``[erp.columns] credentials_sent_at``, ``account_state``), so
office staff see in the ERP when the credentials went out and what state the shop account is in.

Written after the state store recorded the event (the state store stays the truth); a failed
write is logged and never fails the record: the next event writes the field again. The values of
``account_state`` are stable codes: ``created``, ``mail held`` (go-live, ``send_credentials_since``),
``mailed``, ``active``, ``deactivated``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import structlog

from syncd.core.errors import SyncdError
from syncd.flows.context import PlatformContext

log = structlog.get_logger("syncd.flows.erpstatus")

CREATED = "created"
HELD = "mail held"
MAILED = "mailed"
ACTIVE = "active"
DEACTIVATED = "deactivated"


def enabled(ctx: PlatformContext) -> bool:
    c = ctx.settings.erp.columns
    return bool(c.credentials_sent_at or c.account_state)


def write(ctx: PlatformContext, values: Mapping[int, Mapping[str, Any]]) -> None:
    if not values or not enabled(ctx):
        return
    try:
        ctx.erp.write_account_status(values)
    except SyncdError as exc:
        log.warning("account status not written to the ERP", platform=ctx.platform.name, error=str(exc),
                    addresses=len(values))


def states(ctx: PlatformContext, numbers: Iterable[int], state: str, *,
           sent_at: datetime | None = None) -> None:
    fields: dict[str, Any] = {"account_state": state}
    if sent_at is not None:
        fields["credentials_sent_at"] = sent_at
    write(ctx, {int(n): fields for n in numbers})


def write_fields(ctx: PlatformContext, values: Mapping[int, Mapping[str, Any]]) -> None:
    """Status columns other than the account's (``email_undeliverable``): same write, same rule
    that a failed write is logged, never fatal."""
    if not values:
        return
    try:
        ctx.erp.write_account_status(values)
    except SyncdError as exc:
        log.warning("status not written to the ERP", platform=ctx.platform.name, error=str(exc),
                    addresses=len(values))

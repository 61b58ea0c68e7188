"""Which notification table answers an event, and the message jobs of one event occurrence.

The most specific table wins: one for the address's ERP customer group before the ``"*"`` one;
a disabled table silences the event for its group (``"*"`` is not consulted then), so an operator
can switch one group off. The sender: the table's, else the platform's, else ``[mail] sender``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

from syncd.core.rules import HistoryEvent
from syncd.flows.messages.channels import CustomerPlan, customer_plan
from syncd.state.messages import EMAIL, SMS, Messages

if TYPE_CHECKING:
    from syncd.config.messaging import NotificationSettings
    from syncd.config.model import Settings
    from syncd.flows.context import PlatformContext

log = structlog.get_logger("syncd.flows.messages")


def choose(settings: Settings, group: str | None, event: str) -> NotificationSettings | None:
    """The table for ``event`` and ERP customer ``group``; None when the event mails nobody."""
    tables = [n for n in settings.notifications if n.event == event]
    specific = next((n for n in tables if group is not None and n.group == str(group).strip()), None)
    chosen = specific or next((n for n in tables if n.group == "*"), None)
    return chosen if chosen is not None and chosen.enabled else None


@dataclass(frozen=True)
class Occurrence:
    """One occurrence of an event about one account.

    ``key`` names the occurrence, unique per (platform, event): with the recipient it is the
    dedup key, so detecting the same occurrence twice mails once. ``values`` are plain values for
    the layout (``event.reason``, ``event.login`` ...), never a secret: they are stored."""

    event: str
    key: str
    erp_number: int | None = None
    group: str | None = None
    email: str | None = None  # the customer's address; None: only internal recipients
    values: Mapping[str, Any] = field(default_factory=dict)


def notify(ctx: PlatformContext, occurrence: Occurrence, *, uow: Any = None) -> list[int]:
    """Queue the messages of ``occurrence`` (customer + ``internal_to``) in ``uow`` (the caller's
    unit of work, committed by the caller) or in a unit of its own; returns the new message ids
    (none when no table answers or the occurrence is already on record)."""
    table = choose(ctx.settings, occurrence.group, occurrence.event)
    if table is None:
        return []
    # The customer by their channel (``channels``); internal recipients are staff: e-mail.
    plan = (customer_plan(ctx, occurrence.event, table.layout_name, occurrence.erp_number, occurrence.email)
            if table.to_customer else CustomerPlan(()))
    recipients: list[tuple[str, str, str, bool]] = [  # (address, role, channel, fallback)
        (d.to, "customer", d.channel, d.fallback) for d in plan.deliveries]
    recipients += [(r.strip(), "internal", EMAIL, False) for r in table.internal_to if r.strip()]
    if not recipients and not plan.withheld and not plan.problems:
        return []
    if uow is None:
        with ctx.uow() as own:
            ids = _enqueue(ctx, own, occurrence, table, recipients, plan)
            own.commit()
        return ids
    return _enqueue(ctx, uow, occurrence, table, recipients, plan)


def _enqueue(ctx: PlatformContext, uow: Any, occurrence: Occurrence, table: NotificationSettings,
             recipients: list[tuple[str, str, str, bool]], plan: CustomerPlan) -> list[int]:
    repo: Messages = uow.messages
    now = uow.clock()
    ids = []
    context = {**occurrence.values, "group": occurrence.group, "customer_email": occurrence.email}
    for recipient, role, channel, fallback in recipients:
        new = repo.enqueue(
            platform=ctx.platform.name, kind=occurrence.event, occurrence=occurrence.key,
            recipient=recipient, erp_number=occurrence.erp_number, channel=channel, layout=table.layout_name,
            sender=table.sender, now=now,
            context={**context, "role": role, **({"fallback": True} if fallback else {})},
        )
        if new is not None:
            ids.append(new)
            if occurrence.erp_number is not None:
                via = f", {channel}" if channel != EMAIL else ""
                uow.history.record(ctx.platform.name, occurrence.erp_number, HistoryEvent.MESSAGE_QUEUED,
                                   reason=f"{occurrence.event} -> {role} ({table.layout_name}{via})")
    _unsent(ctx, uow, occurrence, table, plan, context, now)
    return ids


def _unsent(ctx: PlatformContext, uow: Any, occurrence: Occurrence, table: NotificationSettings,
            plan: CustomerPlan, context: dict[str, Any], now: Any) -> None:
    """What the customer does not get, on record: "none" in the history; an SMS they wanted that
    cannot go as a failed SMS message with the reason (one per occurrence, shown by ``status``)."""
    if plan.withheld and occurrence.erp_number is not None:
        uow.history.record(ctx.platform.name, occurrence.erp_number, HistoryEvent.NOT_SENT,
                           reason=f"{occurrence.event}: the customer chose no messages / keine Nachrichten")
    sms_problems = [p for p in plan.problems if p.startswith("sms")]
    if sms_problems and not any(d.channel == SMS for d in plan.deliveries):
        failed = uow.messages.enqueue(
            platform=ctx.platform.name, kind=occurrence.event, occurrence=occurrence.key,
            recipient="(no usable number)", erp_number=occurrence.erp_number, channel=SMS,
            layout=table.layout_name, now=now, context={**context, "role": "customer"})
        if failed is not None:
            uow.messages.fail(failed, "; ".join(sms_problems), now)

"""The customer's channel for event messages (issue 16 applied to the events of issue 15).

An event's message to the customer goes by the customer's channel (``[erp.columns]
preferred_channel``, else ``[messages] default_channel``), by the one rule the credentials use
(``syncd.flows.channel_choice``): e-mail, SMS (``sms.txt.j2`` of the event's layout, sent by
``syncd.flows.messages.sms``), both, or none. Internal recipients (``internal_to``) are staff:
always e-mail. ``forgot_username`` answers to the e-mail address the login belongs to (that is
what the customer asked about): always e-mail.

The ERP row is read only when SMS is possible at all (``[sms]`` on and some customer may want
it), so a setup without SMS reads and queues exactly as before.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from syncd.config.messaging import sms_possible
from syncd.core.domain import ErpAddress
from syncd.core.errors import SyncdError
from syncd.core.rules import email_problem
from syncd.flows import channel_choice
from syncd.flows.context import PlatformContext
from syncd.state.messages import EMAIL, SMS

log = structlog.get_logger("syncd.flows.messages")

# Events whose customer message may go by SMS; the others are answered by e-mail.
SMS_EVENTS = frozenset({"access_requested", "approved", "rejected", "validated", "blocked", "password_reset",
                        "new_main_contact", "former_main_contact"})


@dataclass(frozen=True)
class CustomerDelivery:
    to: str
    channel: str  # EMAIL | SMS
    fallback: bool = False  # an e-mail sent because the SMS could not be


@dataclass(frozen=True)
class CustomerPlan:
    deliveries: tuple[CustomerDelivery, ...]
    withheld: bool = False  # the customer chose no messages
    problems: tuple[str, ...] = ()  # channels that could not be used, with the reason


def customer_plan(ctx: PlatformContext, event: str, layout: str, erp_number: int | None,
                  email: str | None) -> CustomerPlan:
    """The customer's deliveries of one event message."""
    if event not in SMS_EVENTS or erp_number is None or not _sms_on(ctx):
        return _email_only(ctx, event, erp_number, email)
    address = _erp_row(ctx, erp_number)
    if address is None:
        return _email_only(ctx, event, erp_number, email)
    plan, note = channel_choice.plan_for(ctx, address, layout=layout, email=email or "")
    if note:
        log.warning("preferred channel unreadable", platform=ctx.platform.name, address=erp_number,
                    reason=note)
    if plan.chosen == "none":
        return CustomerPlan((), withheld=True)
    return CustomerPlan(tuple(CustomerDelivery(d.to, SMS if d.channel == "sms" else EMAIL, d.fallback)
                              for d in plan.deliveries), problems=plan.problems)


def _sms_on(ctx: PlatformContext) -> bool:
    return getattr(ctx, "sms", None) is not None and sms_possible(ctx.settings)


def _erp_row(ctx: PlatformContext, erp_number: int) -> ErpAddress | None:
    try:
        return ctx.erp.get_addresses([erp_number]).get(erp_number)
    except SyncdError as exc:
        # The event is not lost for a failed read: its message goes by e-mail.
        log.warning("ERP row unreadable for the channel choice; the event goes by e-mail",
                    platform=ctx.platform.name, address=erp_number, error=str(exc))
        return None


def _email_only(ctx: PlatformContext, event: str, erp_number: int | None, email: str | None) -> CustomerPlan:
    if not email:
        return CustomerPlan(())
    problem = email_problem(email)
    if problem is None:
        return CustomerPlan((CustomerDelivery(email.strip(), EMAIL),))
    log.warning("event mail to the customer skipped", platform=ctx.platform.name, address=erp_number,
                kind=event, reason=problem)
    return CustomerPlan(())

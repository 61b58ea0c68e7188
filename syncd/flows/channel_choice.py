"""The channels one message to one ERP customer goes by: the customer's own choice
(``[erp.columns] preferred_channel``), else ``[messages] default_channel``, applied to the
customer's contact data by the one rule (``syncd.core.channels.plan_channels``).

Shared by the credential run (password and link mode) and the event messages; order reminders
read the same columns (``syncd.flows.reminders.poll``).
"""

from __future__ import annotations

from typing import Any

from syncd.config.profiles import effective_columns
from syncd.core.channels import ChannelName, ChannelPlan, ChannelProblem, parse_channel, plan_channels
from syncd.core.domain import ErpAddress
from syncd.flows.context import PlatformContext

SMS_WITHOUT_PERMISSION = ("a password is not sent by SMS unless [messages] allow_password_by_sms = true "
                          "/ Passwörter gehen nur mit allow_password_by_sms = true per SMS")


def always_email(ctx: PlatformContext) -> bool:
    """Every customer's channel is e-mail (no ``preferred_channel`` column, the default e-mail):
    the flows then skip the planning and behave exactly as before channels existed."""
    return ctx.settings.messages.default_channel == "email" and not ctx.settings.erp.columns.preferred_channel


_COLUMNS: dict[int, tuple[Any, dict[str, str]]] = {}  # id(ErpSettings) -> (it, its columns)


def _columns(erp: Any) -> dict[str, str]:
    # Built once per settings object, not per message: effective_columns dumps the model.
    hit = _COLUMNS.get(id(erp))
    if hit is None or hit[0] is not erp:
        hit = _COLUMNS[id(erp)] = (erp, effective_columns(erp))
    return hit[1]


def column(ctx: PlatformContext, address: ErpAddress | None, logical: str) -> Any:
    """The ERP row's value of a logical column (``mobile``, ``preferred_channel``); None when the
    column is not configured."""
    name = _columns(ctx.settings.erp).get(logical)
    if address is None or not name:
        return None
    row = address.row
    if name in row:
        return row[name]
    lowered = name.lower()  # some drivers hand column names back in another case
    return next((v for k, v in row.items() if str(k).lower() == lowered), None)


def wanted(ctx: PlatformContext, address: ErpAddress | None) -> tuple[ChannelName, str | None]:
    """The customer's channel, and a note when their ERP value could not be read (the default
    applies then: one unreadable value never stops a message)."""
    default: ChannelName = ctx.settings.messages.default_channel
    try:
        return parse_channel(column(ctx, address, "preferred_channel")) or default, None
    except ChannelProblem as exc:
        return default, f"{exc}; using {default}"


def sms_unavailable(ctx: PlatformContext, layout: str, *, carries_password: bool) -> str | None:
    """Why this message cannot go by SMS at all, whatever the number; None when it can."""
    if getattr(ctx, "sms", None) is None or not ctx.settings.sms.enabled:
        return "the SMS channel is off ([sms] enabled = false)"
    if carries_password and not ctx.settings.messages.allow_password_by_sms:
        return SMS_WITHOUT_PERMISSION
    layouts = ctx.layouts
    if layouts is None or not layouts.has_sms(layout):
        return f"layout {layout!r} has no sms.txt.j2 / Layout ohne SMS-Text"
    return None


def plan_for(ctx: PlatformContext, address: ErpAddress, *, layout: str, carries_password: bool = False,
             email: str | None = None, choice: ChannelName | None = None) -> tuple[ChannelPlan, str | None]:
    """(the plan, a note on the customer's value) for one message to ``address``. ``email``: the
    recipient when not the row's; ``choice``: a fixed channel instead of the customer's."""
    note = None
    if choice is None:
        choice, note = wanted(ctx, address)
    m = ctx.settings.messages
    plan = plan_channels(
        wanted=choice, email=email if email is not None else address.email,
        mobile=column(ctx, address, "mobile"), country=address.country, default_region=m.default_region,
        sms_enabled=True,
        # Only asked when SMS is wanted: it looks at the layout's files.
        sms_unavailable=(sms_unavailable(ctx, layout, carries_password=carries_password)
                         if choice in ("sms", "both") else None),
        fallback_to_email=m.fallback_to_email,
    )
    return plan, note

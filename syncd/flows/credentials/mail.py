"""The credentials mail of one job: its layout context (spec §2) and the rendered message."""

from __future__ import annotations

from typing import Any

from syncd.core.domain import ErpAddress, OutgoingMail
from syncd.flows.context import PlatformContext
from syncd.state.jobs import CredentialJob


def field_value(address: ErpAddress, field: str) -> str | None:
    """The password field as the ERP row holds it now (stripped), None when empty."""
    value = address.row.get(field)
    if value is None:
        # Column names may come back in another case from some drivers.
        lowered = field.lower()
        value = next((v for k, v in address.row.items() if str(k).lower() == lowered), None)
    return None if value is None else str(value).strip()


def render_context(ctx: PlatformContext, address: ErpAddress, **link: Any) -> dict[str, Any]:
    """The layout context of spec §2 (erp by column, address by logical name, shop, customer);
    in link mode ``link`` and ``link_expires`` too."""
    from syncd.render.context import build_context

    return build_context(address, platform=ctx.platform, shop=ctx.shop, sender=sender(ctx), **link)


def sender(ctx: PlatformContext) -> str:
    return ctx.platform.sender or ctx.settings.mail.sender


def field_length(erp: Any) -> int | None:
    """The ERP password field's size, when the connector can tell: passwords never exceed it."""
    known = getattr(erp, "password_field_length", None)
    if isinstance(known, int):
        return known
    try:  # syncd.connectors.erp.SqlErp keeps it in its resolved layout
        column = erp.layout.write.column(erp.password_field)
        return int(column.length) if column is not None and column.length else None
    except Exception:  # any other adapter: the ERP refuses an over-long value itself
        return None


def build_mail(ctx: PlatformContext, address: ErpAddress, job: CredentialJob, **link: Any) -> OutgoingMail:
    assert ctx.layouts is not None
    layout = ctx.platform.addresses.layout_for(job.reason)
    rendered = ctx.layouts.render(layout, render_context(ctx, address, **link))
    name = " ".join(p for p in (address.first_name, address.last_name) if p) or address.company
    return OutgoingMail(
        to_addr=address.email or "",
        to_name=name or None,
        sender=sender(ctx),
        subject=rendered.subject,
        text=rendered.text,
        html=rendered.html,
        key=f"{ctx.platform.name}:{job.erp_number}:{job.id}",
    )

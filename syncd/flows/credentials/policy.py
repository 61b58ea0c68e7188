"""When credential mails run at all, and the limits every part of the run shares."""

from __future__ import annotations

from datetime import timedelta

from syncd.flows.context import PlatformContext

STEP = "credentials"  # the failures' step and the cycle report's direction for this flow
KIND = "credentials"  # this flow's mails in the shared send log (``syncd.flows.mailbudget``)
MAX_SENDS = 2  # the first send plus at most one after a crash with unknown outcome (I5)


def enabled(ctx: PlatformContext) -> bool:
    a = ctx.platform.addresses
    return bool(a.erp_to_shop and a.send_credentials and (link_mode(ctx) or a.password_field))


def link_mode(ctx: PlatformContext) -> bool:
    """``credential_mode = "link"``: the mail carries a set-password link, no password exists."""
    return ctx.platform.addresses.credential_mode == "link"


def backoff(attempts: int) -> timedelta:
    """Delay before a job that met a transient fault is tried again: 30 s doubling, max 1 h."""
    return timedelta(seconds=min(3600, 30 * 2 ** min(attempts, 7)))

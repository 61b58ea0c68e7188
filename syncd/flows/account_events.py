"""Event mails an operator's account action raises (``syncd accounts ...``):

* ``password_reset_notice``: after ``accounts reset-password`` queued new credentials, the
  ``password_reset`` event (a notice without the password, to the customer and/or
  ``internal_to``; the password itself only ever travels in the credentials mail, I3);
* ``forgot_username``: ``accounts forgot-username EMAIL|NUMBER`` answers a customer who asks
  which login belongs to their e-mail address or customer number: the login (the shop account's
  e-mail, which is what Shopware logs in with) and the customer number, never a password.

Both queue through ``syncd.flows.messages`` (dedup key: the action's time) and send under the
erp-to-shop lease, like a cycle.
"""

from __future__ import annotations

from syncd.core.errors import SyncdError
from syncd.core.rules import HistoryEvent
from syncd.flows.context import CycleReport, PlatformContext
from syncd.flows.messages import Occurrence, choose, notify, send_due
from syncd.state.links import Link


def password_reset_notice(ctx: PlatformContext, number: int) -> list[int]:
    """Queue the ``password_reset`` event of ``number`` (when a table answers it); the caller
    holds the lease and sends."""
    address = ctx.erp.get_address(int(number))
    with ctx.uow() as uow:
        now = uow.clock()
        uow.history.record(ctx.platform.name, int(number), HistoryEvent.PASSWORD_RESET, reason="by staff")
        ids = notify(ctx, Occurrence(event="password_reset", key=f"{number}:{now.isoformat()}",
                                     erp_number=int(number),
                                     group=address.customer_group if address is not None else None,
                                     email=address.email if address is not None else None), uow=uow)
        uow.commit()
    return ids


class ForgotUsernameError(SyncdError):
    """The request cannot be answered (unknown e-mail/number, no table for the event)."""


def _find(ctx: PlatformContext, key: str) -> Link:
    name = ctx.platform.name
    with ctx.uow() as uow:
        if key.strip().isdigit():
            link = uow.links.get_by_erp(name, int(key))
            found = [link] if link is not None else []
        else:
            wanted = key.strip().lower()
            found = [lk for lk in uow.links.iter(name) if (lk.email or "").strip().lower() == wanted]
    found = [lk for lk in found if lk.kind != "collective"]
    if not found:
        raise ForgotUsernameError(
            f"platform {name!r}: no shop account for {key!r} / kein Shop-Konto zu {key!r}")
    if len(found) > 1:
        numbers = ", ".join(str(lk.erp_number) for lk in found)
        raise ForgotUsernameError(f"platform {name!r}: {key!r} belongs to several accounts ({numbers}); "
                                  "ask with the customer number / mehrere Konten, bitte Kundennummer angeben")
    return found[0]


def forgot_username(ctx: PlatformContext, key: str) -> CycleReport:
    """Mail the login of the account ``key`` (e-mail or ERP number) to that account's e-mail."""
    from syncd.flows.accounts import credential_lease

    link = _find(ctx, key)
    address = ctx.erp.get_address(link.erp_number)
    group = address.customer_group if address is not None else None
    if choose(ctx.settings, group, "forgot_username") is None:
        raise ForgotUsernameError(
            "no enabled [[notifications]] table answers event 'forgot_username' for group "
            f"{group or '*'!r}; add one (README: Event mails) / keine Benachrichtigung konfiguriert")
    email = (link.email or (address.email if address is not None else None) or "").strip()
    report = CycleReport(ctx.platform.name, "messages")
    with credential_lease(ctx):
        with ctx.uow() as uow:
            now = uow.clock()
            uow.history.record(ctx.platform.name, link.erp_number, HistoryEvent.FORGOT_USERNAME)
            ids = notify(ctx, Occurrence(event="forgot_username", key=f"{link.erp_number}:{now.isoformat()}",
                                         erp_number=link.erp_number, group=group, email=email,
                                         values={"login": email, "customer_number": str(link.erp_number)}),
                         uow=uow)
            uow.commit()
        if not ids:
            report.add(link.erp_number, "failed", "no recipient: the account has no usable e-mail address")
            return report
        send_due(ctx, report)
    return report

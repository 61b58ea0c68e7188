"""Credential jobs an operator asks for (``syncd accounts send-credentials``)."""

from __future__ import annotations

from collections.abc import Iterable

from syncd.core.rules import HistoryEvent
from syncd.flows.context import CycleReport, PlatformContext
from syncd.flows.credentials.pipeline import send_due
from syncd.flows.credentials.policy import enabled
from syncd.flows.push_addresses import email_problem
from syncd.state.bounces import Bounces
from syncd.state.jobs import CredentialJobs
from syncd.state.links import Links


def queue_credentials(ctx: PlatformContext, numbers: Iterable[int], *, reason: str = "resend") -> CycleReport:
    """New passwords and credential mails for linked ERP addresses chosen by an operator: a job
    per address, then the normal delivery."""
    report = CycleReport(ctx.platform.name, "credentials")
    if not enabled(ctx):
        for n in numbers:
            report.add(n, "failed", "credential mails are off for this platform (send_credentials)")
        return report
    wanted = sorted({int(n) for n in numbers})
    links = Links(ctx.state, clock=ctx.clock).get_many(ctx.platform.name, wanted)
    addresses = ctx.erp.get_addresses(wanted)
    repo = CredentialJobs(ctx.state)
    for n in wanted:
        link, address = links.get(n), addresses.get(n)
        if address is None:
            report.add(n, "failed", "no such ERP address")
        elif link is None or link.kind == "collective":
            report.add(n, "failed", "no shop account is linked to this ERP address")
        elif address.blocked or not link.shop_active:
            report.add(n, "failed", "the address is blocked / the shop account is inactive")
        elif (problem := email_problem(address.email)) is not None:
            report.add(n, "failed", problem)
        elif repo.release(ctx.platform.name, [n], ctx.clock()):
            # The account's mail was held at go-live (syncd.flows.golive): asking for it sends it.
            with ctx.uow() as uow:
                uow.history.record(ctx.platform.name, n, HistoryEvent.MAIL_RELEASED,
                                   reason="accounts send-credentials", shop_id=link.shop_id)
                uow.commit()
        elif repo.create(platform=ctx.platform.name, erp_number=n, shop_id=link.shop_id,
                         email=(address.email or "").strip(), now=ctx.clock(), reason=reason,
                         mode=ctx.platform.addresses.credential_mode) is None:
            report.add(n, "skipped", "a credentials mail for this address is already in progress")
    for n in Bounces(ctx.state).blocked_numbers(ctx.platform.name, wanted):  # [mail.bounces]
        report.add(n, "deferred", "the address's e-mail bounced: the mail waits until the ERP e-mail changes")
    send_due(ctx, report)
    return report

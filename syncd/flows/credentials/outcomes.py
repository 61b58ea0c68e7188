"""How a credential job ends a run: deferred with a backoff (``retry``) or failed (``fail``).

Both record the outcome durably before anything else happens to the job, report it, and log
it; reasons pass the redaction point first (I3). ``done`` ends delivered jobs. Each outcome is
one unit of work with its ``syncd history`` event (the address, a reason; never the mail).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import structlog

from syncd.core.domain import OutgoingMail
from syncd.core.errors import ConfigurationFault
from syncd.core.redaction import redact
from syncd.core.rules import HistoryEvent
from syncd.flows import erpstatus
from syncd.flows.context import CycleReport, PlatformContext
from syncd.flows.credentials.policy import STEP, backoff
from syncd.flows.failures import direction_of
from syncd.state import jobs as steps
from syncd.state.jobs import CredentialJob

log = structlog.get_logger("syncd.flows.credentials")

# What a delivered job's mail was, for its history event (``CredentialJob.reason``).
_PURPOSE = {"created": "first credentials mail", "resend": "new credentials sent by staff",
            "reset": "password reset by staff", "reminder": "activation reminder"}


def _what(job: CredentialJob) -> str:
    what = _PURPOSE.get(job.reason, job.reason)
    return f"{what} (set-password link)" if job.mode == "link" else what


@dataclass
class Item:
    """A job in this run, with its in-flight password (memory only)."""

    job: CredentialJob
    password: str
    mail: OutgoingMail | None = None
    result: str = ""  # sent | failed | retry | unknown | none ("" while the job goes on)
    # The SMS leg (``smsleg``): the E.164 recipient and the rendered text (memory only, it may
    # carry the password), the mail that replaces an SMS the provider refuses, and whether the
    # customer has the message by SMS already.
    sms_to: str | None = None
    sms_text: str | None = None
    fallback_mail: OutgoingMail | None = None
    sms_delivered: bool = False


def retry(ctx: PlatformContext, items: Iterable[Item], error: object, report: CycleReport, *,
          cause: BaseException | None = None) -> None:
    """Back to pending: the next attempt starts over with a fresh password."""
    items = [i for i in items if not i.result]
    if not items:
        return
    now = ctx.clock()
    fault = next((e for e in (error, cause) if isinstance(e, ConfigurationFault)), None)
    why = redact(str(error))
    for i in items:
        # A configuration fault is not waited out: the job is due again as soon as the fix may
        # be in (the transport itself spaces out attempts at a refused login).
        due = now if fault is not None else now + backoff(i.job.attempts)
        with ctx.uow() as uow:
            uow.jobs.retry_later([i.job.id], error=error, next_attempt_at=due, now=now)
            # A refused login defers the queue every cycle until fixed: the history says it
            # once per reason, not once per cycle.
            if i.job.last_error != why[:2000]:
                uow.history.record(ctx.platform.name, i.job.erp_number, HistoryEvent.MAIL_DEFERRED,
                                   reason=why, shop_id=i.job.shop_id)
            uow.commit()
        i.result = "retry"
        report.add(i.job.erp_number, "deferred", redact(str(error)))
        if fault is not None:  # the job waits as after any transient fault, but the cycle is not ok
            report.config_fault(redact(str(fault)))
        log.warning("credentials deferred", platform=ctx.platform.name, address=i.job.erp_number,
                    step=i.job.step, error=str(error))


def fail(ctx: PlatformContext, item: Item, reason: str, report: CycleReport, *, code: str | None = None
         ) -> None:
    """The job ends as failed with ``reason``, visible in ``syncd status`` (direction credentials)."""
    with ctx.uow() as uow:
        uow.jobs.fail(item.job.id, reason, uow.clock())
        uow.failures.record(ctx.platform.name, direction_of(STEP), item.job.erp_number, STEP, reason, code)
        uow.history.record(ctx.platform.name, item.job.erp_number, HistoryEvent.MAIL_FAILED, reason=reason,
                           shop_id=item.job.shop_id)
        uow.commit()
    item.result = "failed"
    report.add(item.job.erp_number, "failed", redact(reason))
    log.warning("credentials failed", platform=ctx.platform.name, address=item.job.erp_number,
                step=STEP, reason=reason)


def _to(j: CredentialJob, via: str) -> str:
    if via == "sms":
        return "by SMS"
    return f"to {j.email or '?'}" + (" and by SMS" if via == "both" else "")


def done(ctx: PlatformContext, jobs: Iterable[CredentialJob], via: Mapping[int, str] | None = None) -> None:
    """Delivered and the field cleared: the jobs end, their mail failures go, the history says
    to whom and why (first credentials, reset by staff ...; ``via``: job id -> "sms" / "both"
    when not by mail alone), in one unit; then the ERP status
    columns say "mailed" (``syncd.flows.erpstatus``; after the state store, never failing)."""
    jobs = list(jobs)
    if not jobs:
        return
    name = ctx.platform.name
    with ctx.uow() as uow:
        uow.jobs.set_step([j.id for j in jobs], steps.DONE, uow.clock())
        uow.failures.clear_many(name, direction_of(STEP), [j.erp_number for j in jobs])
        uow.history.record_many(name, [(j.erp_number, HistoryEvent.MAIL_SENT,
                                        f"{_what(j)} {_to(j, (via or {}).get(j.id, 'email'))}", j.shop_id)
                                       for j in jobs])
        uow.commit()
        now = uow.clock()
    erpstatus.states(ctx, [j.erp_number for j in jobs], erpstatus.MAILED, sent_at=now)


def delivery_unknown(ctx: PlatformContext, item: Item, error: object) -> None:
    """The server may hold the mail: the next cycle resends it once with the same password."""
    with ctx.uow() as uow:
        why = f"delivery unknown ({redact(str(error))}); sent once more by the next cycle"
        uow.history.record(ctx.platform.name, item.job.erp_number, HistoryEvent.MAIL_DEFERRED,
                           reason=why, shop_id=item.job.shop_id)
        uow.commit()

"""How a credential job ends a run: deferred with a backoff (``retry``) or failed (``fail``).

Both record the outcome durably before anything else happens to the job, report it, and log
it; reasons pass the redaction point first (I3).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import structlog

from syncd.core.domain import OutgoingMail
from syncd.core.errors import ConfigurationFault
from syncd.core.redaction import redact
from syncd.flows.context import CycleReport, PlatformContext
from syncd.flows.credentials.policy import STEP, backoff
from syncd.flows.failures import record_failure
from syncd.state.jobs import CredentialJob, CredentialJobs

log = structlog.get_logger("syncd.flows.credentials")


@dataclass
class Item:
    """A job in this run, with its in-flight password (memory only)."""

    job: CredentialJob
    password: str
    mail: OutgoingMail | None = None
    result: str = ""  # sent | failed | retry | unknown ("" while the job goes on)


def retry(ctx: PlatformContext, items: Iterable[Item], error: object, report: CycleReport, *,
          cause: BaseException | None = None) -> None:
    """Back to pending: the next attempt starts over with a fresh password."""
    items = [i for i in items if not i.result]
    if not items:
        return
    now = ctx.clock()
    repo = CredentialJobs(ctx.state)
    fault = next((e for e in (error, cause) if isinstance(e, ConfigurationFault)), None)
    for i in items:
        # A configuration fault is not waited out: the job is due again as soon as the fix may
        # be in (the transport itself spaces out attempts at a refused login).
        due = now if fault is not None else now + backoff(i.job.attempts)
        repo.retry_later([i.job.id], error=error, next_attempt_at=due, now=now)
        i.result = "retry"
        report.add(i.job.erp_number, "deferred", redact(str(error)))
        if fault is not None:  # the job waits as after any transient fault, but the cycle is not ok
            report.config_fault(redact(str(fault)))
        log.warning("credentials deferred", platform=ctx.platform.name, address=i.job.erp_number,
                    step=i.job.step, error=str(error))


def fail(ctx: PlatformContext, item: Item, reason: str, report: CycleReport, *, code: str | None = None
         ) -> None:
    """The job ends as failed with ``reason``, visible in ``syncd status`` (direction credentials)."""
    CredentialJobs(ctx.state).fail(item.job.id, reason, ctx.clock())
    record_failure(ctx, item.job.erp_number, step=STEP, reason=reason, code=code)
    item.result = "failed"
    report.add(item.job.erp_number, "failed", redact(reason))
    log.warning("credentials failed", platform=ctx.platform.name, address=item.job.erp_number,
                step=STEP, reason=reason)

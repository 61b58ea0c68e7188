"""The credential run of a cycle: every due job of the platform, batch by batch, with the shop
calls of later batches overlapping the mailing of the oldest. The only threads of the flow.

The shop hashes every password (bcrypt), which costs about as much as mailing it, so up to
``SHOP_CALLS_AHEAD`` later batches have their fields written and their shop call running on a
worker while the oldest is re-read, rendered, mailed and cleared here. Only those HTTP calls
leave this thread; every ERP, state and SMTP step runs here through ``jobrun`` in the order of
spec §1 step 3, so each job's record tells the sweep what to do after a crash exactly as in a
sequential run. (Preparing whole batches in a worker was tried: its SQLite writes queued on this
thread's locks.) The depth changes how many fields hold a password at once, never how many mails
a crash can resend (``jobrun.e_send``).
"""

from __future__ import annotations

import contextvars
from collections import deque
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from contextlib import ExitStack
from functools import partial
from typing import Any

import structlog

from syncd.core.errors import ConfigurationFault, TransientError
from syncd.core.ports import MailSession
from syncd.flows.context import CycleReport, PlatformContext
from syncd.flows.credentials import jobrun, linkrun
from syncd.flows.credentials.outcomes import Item, retry
from syncd.flows.credentials.policy import KIND, enabled, link_mode
from syncd.flows.mailbudget import MailBudget
from syncd.state.jobs import CredentialJobs

log = structlog.get_logger("syncd.flows.credentials")

# Batches whose passwords the shop sets while the oldest one is mailed; two calls in flight keep
# the shop from being the bottleneck. Each adds a batch's time to how long a password sits in its
# field.
SHOP_CALLS_AHEAD = 2


def send_due(ctx: PlatformContext, report: CycleReport) -> None:
    """Run every due pending job of the platform, batch by batch (``[mail] batch_size``)."""
    if not enabled(ctx):
        return
    if ctx.mail is None or ctx.layouts is None:
        # The jobs are durable: they wait for a context that can send.
        log.warning("credential jobs wait: no mail transport or layouts in this context",
                    platform=ctx.platform.name)
        return
    repo = CredentialJobs(ctx.state)
    size = ctx.settings.mail.batch_size
    after_id = 0
    exhausted = False
    ahead: deque[jobrun.Batch] = deque()  # fields written, shop call running or done, oldest first
    if not repo.due(ctx.platform.name, ctx.clock(), limit=1):
        return
    # Rate limits and the canary: jobs over the allowance are not taken at all, so they stay
    # pending in their order (never deferred, never failed) for a later run.
    budget = MailBudget.open(ctx, KIND)
    if budget.exhausted:
        _report_waiting(ctx, repo, budget)
        return
    with (
        ThreadPoolExecutor(max_workers=SHOP_CALLS_AHEAD, thread_name_prefix=f"passwords-{ctx.platform.name}")
        as shop_calls,
        ExitStack() as open_session,
    ):
        # Opened before any field is written or password set: a mail server refusing the login
        # defers the whole queue at the cost of one attempt, not a shop call per customer.
        try:
            session: MailSession | None = _open_session(ctx, open_session, now=True)
        except ConfigurationFault as exc:
            _defer_queue(ctx, report, exc)
            return
        if link_mode(ctx):  # no field, no password to set: the link jobs run on this thread
            linkrun.run_due(ctx, report, session, budget)
            if budget.exhausted:
                _report_waiting(ctx, repo, budget)
            return
        submit = partial(_on_worker, shop_calls)
        try:
            while True:
                jobs = [] if exhausted or budget.exhausted else repo.due(
                    ctx.platform.name, ctx.clock(), limit=budget.limit(size), after_id=after_id)
                if jobs:
                    budget.take(len(jobs))
                    after_id = jobs[-1].id
                    batch = jobrun.start(ctx, jobs, jobrun.a_generate(ctx, jobs), report,
                                         field_written=False, submit=submit)
                    if batch is not None:
                        ahead.append(batch)
                else:
                    exhausted = True
                if ahead and (exhausted or len(ahead) > SHOP_CALLS_AHEAD):
                    if session is None:
                        try:
                            session = _open_session(ctx, open_session)
                        except ConfigurationFault:
                            session = None  # each batch then defers its own jobs with the reason
                    jobrun.finish(ctx, ahead.popleft(), report, session)
                if exhausted and not ahead:
                    if budget.exhausted:
                        _report_waiting(ctx, repo, budget)
                    return
        finally:
            for batch in ahead:  # an error ended the loop: their fields wait for the next settle
                batch.close()


def _report_waiting(ctx: PlatformContext, repo: CredentialJobs, budget: MailBudget) -> None:
    waiting = repo.count_due(ctx.platform.name, ctx.clock())
    if waiting:
        log.info("credential mails wait for the mail budget", platform=ctx.platform.name, waiting=waiting,
                 limit=budget.why)


def _on_worker(pool: Executor, fn: Any, arg: Any) -> Future[Any]:
    # The caller's bound log context (platform, cycle) follows the call into the worker.
    return pool.submit(contextvars.copy_context().run, fn, arg)


def _open_session(ctx: PlatformContext, stack: ExitStack, *, now: bool = False) -> MailSession | None:
    """The run's shared session; None when it cannot be opened now, so that each batch tries
    its own and defers its jobs with the reason (``jobrun.e_send``). A ConfigurationFault (a
    refused login) is raised: retrying it per batch cannot succeed. ``now``: connect at once."""
    assert ctx.mail is not None
    try:
        session = stack.enter_context(ctx.mail.session())
        if now and hasattr(session, "open"):
            session.open()
        return session
    except ConfigurationFault:
        raise
    except TransientError:
        return None


def _defer_queue(ctx: PlatformContext, report: CycleReport, fault: ConfigurationFault) -> None:
    """Every due job waits for the operator's fix; nothing was written for them."""
    repo = CredentialJobs(ctx.state)
    after_id = 0
    while jobs := repo.due(ctx.platform.name, ctx.clock(), limit=ctx.settings.mail.batch_size,
                           after_id=after_id):
        after_id = jobs[-1].id
        retry(ctx, [Item(j, "") for j in jobs], f"mail server: {fault}", report, cause=fault)

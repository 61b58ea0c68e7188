"""Credential jobs in link mode (``credential_mode = "link"``): the mail carries a one-time link
to the shop's own set-password page instead of a password.

The same job, steps and resend bound as a password job (``jobrun``), with the shop's recovery
row in the place of the ERP field: no password is generated and the ERP is only read.

b. ``b_create_links``: a fresh hash per job (``secrets``) becomes the customer's one open
   ``customer_recovery`` in the shop, under an id derived from the job, in one call; from here
   the shop row is the one durable place of the link (step ``field_written``, read "link
   created"). The hash never reaches the state store or a log: it is registered with the
   redaction point while the batch runs, and after a crash it is read back from the shop.
d. render: the ERP row as it stands, plus ``link`` and ``link_expires``.
e. send: ``jobrun.e_send``, the same commit point and ledger, so a crash resends at most one
   mail, carrying the same link (I5).
f. done: the row stays in the shop (it *is* the link) until the customer uses it or it expires.

The sweep (``settle``), per active job after a crash:

* ``sent``: done;
* link created or sending, and the shop still holds *this job's* row, valid for a while yet:
  resend with that link (the job's ``send_attempts`` bound the resends, as for passwords);
* sending, and the row is gone or replaced: the customer used the link (or asked the shop for a
  recovery of their own), so the mail arrived: done, nothing re-sent;
* otherwise (no send counted, or the link expired): start over with a fresh link.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Mapping
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import structlog

from syncd.core.errors import PermanentError, SyncdError, TransientError
from syncd.core.ports import MailSession
from syncd.core.redaction import register, sensitive, unregister
from syncd.flows.context import CycleReport, PlatformContext
from syncd.flows.credentials import smsleg
from syncd.flows.credentials.jobrun import e_send
from syncd.flows.credentials.mail import build_mail, render_context
from syncd.flows.credentials.outcomes import Item, done, fail, retry
from syncd.flows.mailbudget import MailBudget
from syncd.flows.push_addresses import checkpoint
from syncd.state import jobs as steps
from syncd.state.jobs import CredentialJob, CredentialJobs

log = structlog.get_logger("syncd.flows.credentials")

LINK_CREATED = steps.FIELD_WRITTEN  # the stored step value: the durable secret exists (in the shop)
HASH_ALPHABET = string.ascii_letters + string.digits
HASH_LENGTH = 32  # as Shopware's own recovery route (Random::getAlphanumericString(32))
# A link resent after a crash must leave the customer time to use it; an older one is replaced.
RESEND_MARGIN = timedelta(minutes=15)


def link_key(job: CredentialJob) -> str:
    """What the shop row's id is derived from: one row per job, found again after a crash."""
    return f"{job.erp_number}:{job.id}"


def new_hash() -> str:
    return "".join(secrets.choice(HASH_ALPHABET) for _ in range(HASH_LENGTH))


class LinkBatch:
    """Jobs that go through b-f together, with their hash and its creation time."""

    def __init__(self, jobs: list[CredentialJob], links: Mapping[int, tuple[str, datetime]]) -> None:
        self.items = [Item(j, links[j.id][0]) for j in jobs]
        self.created = {j.id: links[j.id][1] for j in jobs}
        self._hashes = [h for h, _ in links.values()]
        register(*self._hashes)

    def close(self) -> None:
        unregister(*self._hashes)
        self._hashes = []


def run_due(ctx: PlatformContext, report: CycleReport, session: MailSession | None,
            budget: MailBudget) -> None:
    """Every due pending job of the platform, batch by batch, over the run's session, as far as
    the mail budget allows (the rest stay pending in their order)."""
    repo = CredentialJobs(ctx.state)
    after_id = 0
    size = ctx.settings.mail.batch_size
    while not budget.exhausted and (jobs := repo.due(ctx.platform.name, ctx.clock(), limit=budget.limit(size),
                                                     after_id=after_id)):
        budget.take(len(jobs))
        after_id = jobs[-1].id
        deliver(ctx, jobs, report, session=session)


def deliver(ctx: PlatformContext, jobs: list[CredentialJob], report: CycleReport, *,
            existing: Mapping[int, Any] | None = None, session: MailSession | None = None) -> None:
    """Take ``jobs`` to done/failed/retry. ``existing``: job id -> the shop's open row of that job
    (the sweep resends its link); the others get a fresh link."""
    now = ctx.clock()
    existing = existing or {}
    links = {j.id: ((existing[j.id].hash, existing[j.id].created_at or now) if j.id in existing
                    else (new_hash(), now)) for j in jobs}
    batch = LinkBatch(jobs, links)
    try:
        b_create_links(ctx, [i for i in batch.items if i.job.id not in existing], now, report)
        live = [i for i in batch.items if not i.result]
        ready = d_render(ctx, live, batch.created, report)
        checkpoint("after_render")
        smsleg.send(ctx, ready, report)
        mails = [i for i in ready if i.mail is not None and not i.result]
        if mails:
            e_send(ctx, mails, report, session)
        f_done(ctx, batch, report)
    finally:
        batch.close()


def b_create_links(ctx: PlatformContext, items: list[Item], now: datetime, report: CycleReport) -> None:
    for i in items:
        if not i.job.shop_id:
            fail(ctx, i, "no shop account id recorded for this job", report)
    todo = [i for i in items if not i.result]
    if not todo:
        return
    wanted = {i.job.shop_id: (ctx.shop.recovery_id(link_key(i.job)), i.password) for i in todo}
    try:
        errors = ctx.shop.create_recoveries(wanted, now)
    except TransientError as exc:
        retry(ctx, todo, exc, report)
        return
    except PermanentError as exc:
        for i in todo:
            fail(ctx, i, f"shop refused the set-password link: {exc}", report, code=exc.code)
        return
    for i in todo:
        reason = (errors or {}).get(i.job.shop_id or "")
        if reason:
            fail(ctx, i, f"shop refused the set-password link: {reason}", report)
    created = [i.job.id for i in todo if not i.result]
    checkpoint("after_link_write")
    CredentialJobs(ctx.state).set_step(created, LINK_CREATED, ctx.clock())
    checkpoint("after_link_created")


def d_render(ctx: PlatformContext, items: list[Item], created: Mapping[int, datetime],
             report: CycleReport) -> list[Item]:
    if not items:
        return []
    layout = ctx.platform.addresses.email_layout
    valid_for = timedelta(seconds=float(ctx.platform.addresses.link_valid_for))
    try:
        rows = ctx.erp.get_addresses([i.job.erp_number for i in items])
    except TransientError as exc:
        retry(ctx, items, exc, report)
        return []
    for i in items:
        address = rows.get(i.job.erp_number)
        if address is None:
            fail(ctx, i, "the address no longer exists in the ERP", report)
            continue
        try:
            link = ctx.shop.recovery_url(i.password)
        except TransientError as exc:
            retry(ctx, [i], exc, report)
            continue
        except PermanentError as exc:
            fail(ctx, i, f"no set-password link: {exc}", report, code=exc.code)
            continue
        # Shown in the server's time zone: the customer reads it as a clock time.
        expires = (created[i.job.id] + valid_for).astimezone()
        try:
            # A one-time link may go by SMS (no password in it): the customer's channel decides.
            smsleg.prepare(ctx, i, address, layout=layout,
                           context=partial(render_context, ctx, address, link=link, link_expires=expires),
                           build=partial(build_mail, ctx, address, i.job, link=link, link_expires=expires),
                           carries_password=False, report=report)
        except SyncdError as exc:
            fail(ctx, i, f"layout {layout!r}: {exc}", report, code="layout")
        except Exception as exc:  # a template error must end this job, not the batch
            fail(ctx, i, f"layout {layout!r}: {type(exc).__name__}: {exc}", report, code="layout")
    smsleg.record_channels(ctx, items)
    return smsleg.ready(items)


def f_done(ctx: PlatformContext, batch: LinkBatch, report: CycleReport) -> None:
    smsleg.withheld(ctx, batch.items)
    sent = [i for i in batch.items if i.result == "sent"]
    done(ctx, [i.job for i in sent], smsleg.via(sent))
    for i in sent:
        report.add(i.job.erp_number, "mailed", i.job.email or "")
        log.info("set-password link sent", platform=ctx.platform.name, address=i.job.erp_number, step="done")


def _sent_once(j: CredentialJob) -> bool:
    """A send of this job's link was counted on some channel: it may have arrived."""
    mailed = j.step == steps.SENDING and j.send_attempts > 0
    return mailed or (j.sms_step in (steps.SENDING, steps.SENT) and j.sms_attempts > 0)


def settle(ctx: PlatformContext, report: CycleReport) -> None:
    """Finish every link job a crash interrupted (see the module docstring)."""
    repo = CredentialJobs(ctx.state)
    active = repo.active(ctx.platform.name)
    if not active:
        return
    now = ctx.clock()
    done(ctx, [j for j in active if j.step == steps.SENT])
    open_jobs = [j for j in active if j.step in (LINK_CREATED, steps.SENDING) and j.shop_id]
    if not open_jobs:
        return
    try:
        rows = ctx.shop.open_recoveries([j.shop_id for j in open_jobs if j.shop_id])
    except (TransientError, PermanentError) as exc:
        log.warning("cannot read open set-password links; the next cycle tries again",
                    platform=ctx.platform.name, error=str(exc))
        return
    with sensitive(*[r.hash for r in rows.values()]):
        _settle_open(ctx, open_jobs, rows, now, report)


def _settle_open(ctx: PlatformContext, open_jobs: list[CredentialJob], rows: Mapping[str, Any], now: datetime,
                 report: CycleReport) -> None:
    repo = CredentialJobs(ctx.state)
    finish: dict[int, Any] = {}
    restart: list[CredentialJob] = []
    delivered: list[CredentialJob] = []
    for j in open_jobs:
        row = rows.get(j.shop_id or "")
        ours = row is not None and row.id == ctx.shop.recovery_id(link_key(j))
        if ours and row.valid_at(now, margin=RESEND_MARGIN):
            finish[j.id] = row
        elif _sent_once(j) and not ours:
            delivered.append(j)
        else:
            restart.append(j)
    done(ctx, delivered)
    for j in delivered:
        report.add(j.erp_number, "mailed", "the customer used the link or asked the shop for a new one")
    repo.restart([j.id for j in restart], now)
    for j in restart:
        report.add(j.erp_number, "restarted", f"interrupted at {j.step}; a fresh link follows")
    if finish:
        log.info("finishing interrupted set-password link jobs", platform=ctx.platform.name,
                 addresses=[j.erp_number for j in open_jobs if j.id in finish])
        jobs = [j for j in open_jobs if j.id in finish]
        size = ctx.settings.mail.batch_size
        for start in range(0, len(jobs), size):
            deliver(ctx, jobs[start:start + size], report, existing=finish)

"""The customer's channel for credential messages (issue 16): e-mail, SMS, both, or none.

``prepare`` (in step d) plans the channels of one job by the one rule
(``syncd.flows.channel_choice``) and renders what goes: the mail, and the SMS text from the same
context (``sms.txt.j2`` of the job's layout). A password goes by SMS only with ``[messages]
allow_password_by_sms = true``; otherwise the SMS is unavailable and the customer gets the e-mail
(``fallback_to_email``) or the job fails with the reason. Nothing is ever sent for "none": the
job ends with a ``not_sent`` history event, the field is cleared as for any other job (I2).

``send`` (step e, before the mail) sends the SMS legs. Crash argument, per channel, as for the
mail: right before each request leaves, one state write counts it (``sms_step = sending``,
``sms_attempts + 1``); once the provider answers, ``sent``. A kill in between leaves the job's
field and its counted SMS, so the sweep resends it once (``MAX_SENDS``) with the same password
and then fails it; a kill before the write costs no send. The SMS goes first, so with "both" the
mail's ``sent`` (the ledger's) always comes after the SMS leg is settled, and the sweep never
ends a job whose SMS is still open. The SMS text lives in memory only; the password in it is
registered with the redaction point for the batch (``jobrun.Batch``).

Once the customer has the message on one channel, a fault on the other never restarts the job
(that would change the password the customer already holds): it is recorded and the job ends.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import structlog

from syncd.core.domain import ErpAddress, OutgoingMail
from syncd.core.errors import ConfigurationFault, DeliveryUnknown, PermanentError, TransientError
from syncd.core.redaction import redact
from syncd.core.rules import HistoryEvent, email_problem
from syncd.flows import channel_choice
from syncd.flows.context import CycleReport, PlatformContext
from syncd.flows.credentials.outcomes import Item, fail, retry
from syncd.flows.credentials.policy import MAX_SENDS
from syncd.flows.push_addresses import checkpoint
from syncd.state import jobs as steps
from syncd.state.jobs import CredentialJobs

log = structlog.get_logger("syncd.flows.credentials")

NONE = "none"  # Item.result of a job whose customer wants no messages


def prepare(ctx: PlatformContext, item: Item, address: ErpAddress, *, layout: str,
            context: Callable[[], dict[str, Any]],
            build: Callable[[], OutgoingMail], carries_password: bool, report: CycleReport) -> None:
    """Plan and render the messages of one job: sets ``item.mail`` / ``item.sms_*``, or ends it
    (``result`` "none", or failed with the reason). Render errors propagate (the caller fails
    the job with its layout)."""
    job = item.job
    if channel_choice.always_email(ctx):
        problem = email_problem(address.email)
        if problem:
            fail(ctx, item, problem, report, code="email")
        else:
            item.mail = build()
        return
    plan, note = channel_choice.plan_for(ctx, address, layout=layout, carries_password=carries_password)
    if note:
        log.warning("preferred channel unreadable", platform=ctx.platform.name, address=job.erp_number,
                    reason=note)
    if plan.chosen == NONE:
        item.result = NONE
        report.add(job.erp_number, "not-sent", plan.reason)
        return
    if not plan.deliveries:
        if plan.chosen == "email":  # the rule's own words, as before channels existed
            fail(ctx, item, email_problem(address.email) or plan.reason, report, code="email")
        else:
            fail(ctx, item, plan.reason, report, code="channel")
        return
    for problem in plan.problems:
        event = HistoryEvent.SMS_FAILED if problem.startswith("sms") else HistoryEvent.MAIL_FAILED
        _history(ctx, item, event, problem)
    sms = next((d for d in plan.deliveries if d.channel == "sms"), None)
    if job.sms_step == steps.SENT:
        # A crash came after the SMS went: the customer has it, with this password; only the
        # mail may be missing, and it goes only when planned anyway.
        item.sms_delivered, sms = True, None
    elif job.sms_step == steps.FAILED:
        sms = None  # refused before a crash: not asked again
    mail_ok = email_problem(address.email) is None
    if sms is not None:
        item.sms_to = sms.to
        assert ctx.layouts is not None
        item.sms_text = ctx.layouts.render_sms(layout, context())
    if any(d.channel == "email" for d in plan.deliveries):
        item.mail = build()
    elif sms is not None and ctx.settings.messages.fallback_to_email and mail_ok:
        item.fallback_mail = build()  # sent only when the provider refuses the SMS
    elif sms is None and not item.sms_delivered:  # an SMS-only plan whose SMS was refused before
        if ctx.settings.messages.fallback_to_email and mail_ok:
            item.mail = build()
        else:
            fail(ctx, item, f"SMS refused earlier ({job.last_error or 'see syncd history'})", report,
                 code="sms")


def ready(items: Iterable[Item]) -> list[Item]:
    """The items with something to send (or an SMS that went before a crash to settle)."""
    return [i for i in items
            if not i.result and (i.mail is not None or i.sms_to is not None or i.sms_delivered)]


def send(ctx: PlatformContext, items: Iterable[Item], report: CycleReport) -> None:
    """The SMS legs of ``items``, one request each, before any of their mails."""
    repo = CredentialJobs(ctx.state)
    for i in items:
        if i.result:
            continue
        if i.sms_delivered and i.mail is None:  # an SMS-only job whose SMS went before a crash
            repo.set_step([i.job.id], steps.SENT, ctx.clock())
            i.result = "sent"
            continue
        if i.sms_to is None:
            continue
        if getattr(ctx, "sms", None) is None:  # switched off since the plan: the mail goes, if any
            _ended(ctx, repo, i, "the SMS channel is off ([sms] enabled = false)", report)
            continue
        _send_one(ctx, repo, i, report)


def _send_one(ctx: PlatformContext, repo: CredentialJobs, i: Item, report: CycleReport) -> None:
    job = i.job
    if job.sms_step == steps.SENDING and job.sms_attempts >= MAX_SENDS:
        _ended(ctx, repo, i, "SMS delivery unknown after an interrupted resend; not sent again", report,
               assume_delivered=True)
        return
    counted = False

    def commit() -> None:
        nonlocal counted
        if counted:  # a retried request (429, 5xx: not accepted) is the same send
            return
        checkpoint("cred_sms_before_commit")
        repo.sms_sending(job.id, ctx.clock())
        counted = True
        checkpoint("cred_sms_before_request")

    assert i.sms_text is not None and ctx.sms is not None
    try:
        message_id = ctx.sms.send(i.sms_to or "", i.sms_text, on_commit=commit)
    except DeliveryUnknown as exc:
        # The provider may have sent it: the job keeps its field and its counted SMS; the next
        # settle resends it once with the same password, then the mail follows.
        i.result = "unknown"
        _history(ctx, i, HistoryEvent.MAIL_DEFERRED, f"SMS delivery unknown ({redact(str(exc))}); "
                 "sent once more by the next cycle")
        report.add(job.erp_number, "deferred", redact(f"SMS delivery unknown: {exc}"))
        return
    except (ConfigurationFault, TransientError) as exc:
        if counted:
            repo.sms_refused(job.id, ctx.clock())
        # Nothing reached the customer yet (the SMS goes first): the whole job waits, and the
        # next attempt starts over with a fresh password, as after a mail server's 4xx.
        retry(ctx, [i], f"SMS provider: {exc}", report, cause=exc)
        return
    except PermanentError as exc:
        if counted:
            repo.sms_refused(job.id, ctx.clock())
        _ended(ctx, repo, i, f"SMS provider refused: {exc}", report)
        return
    checkpoint("cred_sms_after_request")
    only = i.mail is None
    repo.sms_done(job.id, steps.SENT, ctx.clock(), job_sent=only)
    i.sms_delivered = True
    if only:
        i.result = "sent"
    _history(ctx, i, HistoryEvent.SMS_SENT, f"credentials by SMS ({job.reason})")
    report.add(job.erp_number, "sms", job.reason)
    log.info("credentials SMS sent", platform=ctx.platform.name, address=job.erp_number,
             provider_id=message_id)


def _ended(ctx: PlatformContext, repo: CredentialJobs, i: Item, reason: str, report: CycleReport, *,
           assume_delivered: bool = False) -> None:
    """The SMS leg ends without a (known) SMS. The mail goes when planned; else the fallback
    mail; else the job ends: as sent when the SMS probably arrived, failed otherwise."""
    repo.sms_done(i.job.id, steps.FAILED, ctx.clock())
    if i.mail is None and i.fallback_mail is not None and not assume_delivered:
        i.mail = i.fallback_mail
        reason += "; sent by e-mail instead / stattdessen per E-Mail"
    _history(ctx, i, HistoryEvent.SMS_FAILED, reason)
    report.add(i.job.erp_number, "sms-failed", redact(reason))
    log.warning("credentials SMS not sent", platform=ctx.platform.name, address=i.job.erp_number,
                reason=reason)
    if i.mail is not None:
        return
    if assume_delivered:
        repo.set_step([i.job.id], steps.SENT, ctx.clock())
        i.result = "sent"
    else:
        fail(ctx, i, reason, report, code="sms")


def mail_leg_failed(ctx: PlatformContext, i: Item, reason: str, report: CycleReport) -> None:
    """The customer has the message by SMS; the mail beside it failed. The job ends as sent (the
    password they hold stays valid) with the mail's failure on record."""
    CredentialJobs(ctx.state).set_step([i.job.id], steps.SENT, ctx.clock())
    i.result = "sent"
    _history(ctx, i, HistoryEvent.MAIL_FAILED, f"{reason}; the customer has the SMS")
    report.add(i.job.erp_number, "mail-failed", redact(reason))


def record_channels(ctx: PlatformContext, items: Iterable[Item]) -> None:
    """What each job's message goes by (``credential_jobs.channel``, counted in ``status``)."""
    groups: dict[str, list[int]] = {}
    for i in items:
        if i.result == NONE:
            channel = NONE
        elif i.result:
            continue
        else:
            sms = i.sms_to is not None or i.sms_delivered
            channel = "both" if sms and i.mail is not None else "sms" if sms else "email"
        groups.setdefault(channel, []).append(i.job.id)
    repo = CredentialJobs(ctx.state)
    for channel, ids in groups.items():
        repo.set_channel(ids, channel, ctx.clock())


def via(items: Iterable[Item]) -> dict[int, str]:
    """Job id -> "sms" / "both" for the history of delivered jobs that went by SMS."""
    return {i.job.id: "both" if i.mail is not None else "sms" for i in items if i.sms_delivered}


def withheld(ctx: PlatformContext, items: Iterable[Item]) -> None:
    """Jobs of customers who want no messages: done after their field was cleared, said in the
    history (``syncd history``) and counted in ``status`` (channel "none")."""
    items = [i for i in items if i.result == NONE]
    if not items:
        return
    with ctx.uow() as uow:
        uow.jobs.set_step([i.job.id for i in items], steps.DONE, uow.clock())
        for i in items:
            uow.history.record(ctx.platform.name, i.job.erp_number, HistoryEvent.NOT_SENT,
                               reason="the customer chose no messages / keine Nachrichten gewünscht",
                               shop_id=i.job.shop_id)
        uow.commit()
    for i in items:
        log.info("credentials not sent: the customer chose no messages", platform=ctx.platform.name,
                 address=i.job.erp_number)


def _history(ctx: PlatformContext, i: Item, event: HistoryEvent, reason: str) -> None:
    with ctx.uow() as uow:
        uow.history.record(ctx.platform.name, i.job.erp_number, event, reason=redact(reason),
                           shop_id=i.job.shop_id)
        uow.commit()

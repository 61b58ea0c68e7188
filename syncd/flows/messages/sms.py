"""The SMS run of a platform: every due message job of channel ``sms``, oldest first.

The crash argument is the e-mail run's, with the provider's HTTP request as the commit point:
right before each request leaves, one state write (the shared ``syncd.state.ledger``) counts the
message as ``sending``; once the provider answers, it is ``sent``. A kill in between leaves it
``sending`` with its send counted, and the next run resends it once (``MAX_SENDS``), then fails
it as "delivery unknown": at most one duplicate, none lost. A kill before the write costs no
send. seven.io even drops that one resend itself when it comes within 180 s (its "reload lock").
A lost answer (``DeliveryUnknown``) is kept ``sending`` the same way; transient faults defer
with the credential backoff, a refused account defers everything (the cycle reports the
configuration fault), a refused SMS fails with the provider's reason.
"""

from __future__ import annotations

from typing import Any

import structlog

from syncd.core.errors import ConfigurationFault, DeliveryUnknown, PermanentError, SyncdError, TransientError
from syncd.core.redaction import redact
from syncd.core.rules import HistoryEvent
from syncd.flows.context import CycleReport, PlatformContext
from syncd.flows.credentials.policy import MAX_SENDS, backoff
from syncd.flows.messages.send import message_context
from syncd.flows.push_addresses import checkpoint
from syncd.state import messages as steps
from syncd.state.messages import SMS, Message, Messages

log = structlog.get_logger("syncd.flows.messages.sms")

BATCH = 100


def send_due_sms(ctx: PlatformContext, report: CycleReport) -> None:
    repo = Messages(ctx.state)
    name = ctx.platform.name
    if not repo.due(name, ctx.clock(), limit=1, channel=SMS):
        return
    sms = getattr(ctx, "sms", None)
    if sms is None or ctx.layouts is None:
        # Queued while the channel was on: they wait (visible in status) until it is on again.
        log.warning("SMS wait: the SMS channel is off ([sms] enabled = false)", platform=name)
        return
    after_id = 0
    with repo.ledger() as ledger:
        while batch := repo.due(name, ctx.clock(), limit=BATCH, after_id=after_id, channel=SMS):
            after_id = batch[-1].id
            try:
                rows = ctx.erp.get_addresses([m.erp_number for m in batch if m.erp_number is not None])
            except TransientError as exc:
                for m in batch:
                    _defer(ctx, repo, report, m, exc)
                continue
            for m in batch:
                if not _send_one(ctx, repo, report, sms, ledger, m, rows):
                    return  # the account is refused: the rest waits for the operator


def _send_one(ctx: PlatformContext, repo: Messages, report: CycleReport, sms: Any, ledger: Any,
              m: Message, rows: dict[int, Any]) -> bool:
    if m.step == steps.SENDING and m.send_attempts >= MAX_SENDS:
        _fail(ctx, repo, report, m, "delivery unknown after an interrupted resend; not sent again")
        return True
    try:
        assert ctx.layouts is not None
        context, _, _ = message_context(ctx, m, rows.get(m.erp_number) if m.erp_number is not None else None)
        text = ctx.layouts.render_sms(m.layout, context)
    except SyncdError as exc:
        _fail(ctx, repo, report, m, f"layout {m.layout!r}: {exc}")
        return True
    except Exception as exc:  # a template error ends this message, not the run
        _fail(ctx, repo, report, m, f"layout {m.layout!r}: {type(exc).__name__}: {exc}")
        return True
    counted = False

    def commit() -> None:
        nonlocal counted
        if counted:  # a retried request (429, 5xx: not accepted) is the same send
            return
        checkpoint("sms_before_commit")
        ledger.advance(sent=None, sending=m.id, now=ctx.clock())
        counted = True
        checkpoint("sms_before_request")

    try:
        message_id = sms.send(m.recipient, text, on_commit=commit)
    except DeliveryUnknown as exc:
        report.add(_record(m), "deferred", redact(f"delivery unknown: {exc}"))
        log.warning("sms delivery unknown", platform=ctx.platform.name, address=m.erp_number, kind=m.kind)
        return True
    except ConfigurationFault as exc:
        if counted:
            repo.refused(m.id, ctx.clock())
        _defer(ctx, repo, report, m, exc)
        return False
    except TransientError as exc:
        if counted:
            repo.refused(m.id, ctx.clock())
        _defer(ctx, repo, report, m, exc)
        return True
    except PermanentError as exc:
        if counted:
            repo.refused(m.id, ctx.clock())
        _fail(ctx, repo, report, m, f"SMS provider refused: {exc}")
        return True
    checkpoint("sms_after_request")
    repo.mark_sent([m.id], ctx.clock())
    _history(ctx, m, HistoryEvent.MESSAGE_SENT)
    report.add(_record(m), "sms", m.kind)
    log.info("sms message sent", platform=ctx.platform.name, address=m.erp_number, kind=m.kind,
             provider_id=message_id)
    return True


def _record(m: Message) -> str:
    return str(m.erp_number) if m.erp_number is not None else f"message {m.id}"


def _history(ctx: PlatformContext, m: Message, event: HistoryEvent, reason: str | None = None) -> None:
    if m.erp_number is None:
        return
    with ctx.uow() as uow:
        uow.history.record(ctx.platform.name, m.erp_number, event,
                           reason=f"{m.kind} -> sms" + (f": {reason}" if reason else ""))
        uow.commit()


def _defer(ctx: PlatformContext, repo: Messages, report: CycleReport, m: Message,
           error: BaseException) -> None:
    now = ctx.clock()
    fault = isinstance(error, ConfigurationFault)
    due = now if fault else now + backoff(m.attempts)
    repo.defer(m.id, error=f"SMS provider: {error}", next_attempt_at=due, now=now)
    report.add(_record(m), "deferred", redact(str(error)))
    if fault:
        report.config_fault(redact(str(error)))
    _history(ctx, m, HistoryEvent.MESSAGE_DEFERRED, redact(str(error)))
    log.warning("sms deferred", platform=ctx.platform.name, address=m.erp_number, kind=m.kind,
                error=str(error))


def _fail(ctx: PlatformContext, repo: Messages, report: CycleReport, m: Message, reason: str) -> None:
    repo.fail(m.id, reason, ctx.clock())
    report.add(_record(m), "failed", redact(reason))
    _history(ctx, m, HistoryEvent.MESSAGE_FAILED, reason)
    log.warning("sms failed", platform=ctx.platform.name, address=m.erp_number, kind=m.kind, reason=reason)

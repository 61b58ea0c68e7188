"""The message run of a platform: every due message job, over one SMTP session, oldest first.

Each mail is rendered at send time from its address's ERP row as it stands (or, for a shop
customer without one, from the values the event stored) and its layout. The crash argument is
the credential run's (``syncd.flows.credentials.jobrun.e_send``): at each mail's commit point,
right before the server can accept it, one state write (``syncd.state.ledger``) records the
mail before it as ``sent`` and counts this one as ``sending``. So a kill leaves at most one
message ``sending`` per open session, which the next run resends once (``MAX_SENDS``), and a kill
before the commit point costs nothing (the message is still pending / deferred and is sent
again uncounted). A transient fault defers the message with the credential backoff; a
permanent one (SMTP 5xx, a broken layout) fails it with the reason, visible in ``status``.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

import structlog

from syncd.config.model import platform_sender
from syncd.core.domain import ErpAddress, OutgoingMail
from syncd.core.errors import ConfigurationFault, DeliveryUnknown, PermanentError, SyncdError, TransientError
from syncd.core.redaction import redact
from syncd.core.retry import call_with_retry
from syncd.core.rules import HistoryEvent
from syncd.flows.context import CycleReport, PlatformContext
from syncd.flows.credentials.policy import MAX_SENDS, backoff
from syncd.flows.push_addresses import checkpoint
from syncd.state import messages as steps
from syncd.state.messages import Message, Messages

log = structlog.get_logger("syncd.flows.messages")

STEP = "messages"  # the cycle report's word for this run


def send_due(ctx: PlatformContext, report: CycleReport) -> None:
    """Send every due e-mail message of the platform (``[mail] batch_size`` per read)."""
    repo = Messages(ctx.state)
    name = ctx.platform.name
    if not repo.due(name, ctx.clock(), limit=1):
        return
    if ctx.mail is None or ctx.layouts is None:
        log.warning("messages wait: no mail transport or layouts in this context", platform=name)
        return
    after_id = 0
    accepted: Message | None = None  # the server has it; recorded as sent by the next write
    with ExitStack() as stack:
        try:
            session = stack.enter_context(ctx.mail.session())
            if hasattr(session, "open"):
                session.open()
        except TransientError as exc:  # includes a refused login (ConfigurationFault)
            _defer_all(ctx, repo, report, exc)
            return
        ledger = stack.enter_context(repo.ledger())
        try:
            while batch := repo.due(name, ctx.clock(), limit=ctx.settings.mail.batch_size, after_id=after_id):
                after_id = batch[-1].id
                try:
                    rows = ctx.erp.get_addresses([m.erp_number for m in batch if m.erp_number is not None])
                except TransientError as exc:
                    for m in batch:
                        _defer(ctx, repo, report, m, exc)
                    continue
                for m in batch:
                    accepted = _send_one(ctx, repo, report, session, ledger, m, rows, accepted)
        finally:
            if accepted is not None:  # what the server accepted is on record before anything else
                _sent(ctx, repo, report, accepted)


def _send_one(ctx: PlatformContext, repo: Messages, report: CycleReport, session: Any, ledger: Any,
              m: Message, rows: dict[int, ErpAddress], accepted: Message | None) -> Message | None:
    """Returns the message the server holds unrecorded after this one: this one when it was
    accepted (its ``sent`` is written at the next commit point), else ``accepted`` unchanged."""
    if m.step == steps.SENDING and m.send_attempts >= MAX_SENDS:
        _fail(ctx, repo, report, m, "delivery unknown after an interrupted resend; not sent again")
        return accepted
    try:
        mail = build_mail(ctx, m, rows.get(m.erp_number) if m.erp_number is not None else None)
    except SyncdError as exc:
        _fail(ctx, repo, report, m, f"layout {m.layout!r}: {exc}")
        return accepted
    except Exception as exc:  # a template error ends this message, not the run
        _fail(ctx, repo, report, m, f"layout {m.layout!r}: {type(exc).__name__}: {exc}")
        return accepted
    counted = False
    before = accepted

    def commit() -> None:
        nonlocal counted, before
        if counted:  # a retry after a refused end of data must not count the same send twice
            return
        checkpoint("message_before_commit")
        ledger.advance(sent=before.id if before else None, sending=m.id, now=ctx.clock())
        counted = True
        if before is not None:
            _history(ctx, before, HistoryEvent.MESSAGE_SENT)
            report.add(_record(before), "mailed", before.kind)
            before = None
        checkpoint("message_before_smtp")

    try:
        call_with_retry(lambda: session.send(mail, on_commit=commit), what=f"send {m.kind} mail")
    except DeliveryUnknown as exc:
        # The server may hold it: it stays ``sending`` and the next run resends it once.
        report.add(_record(m), "deferred", redact(f"delivery unknown: {exc}"))
        log.warning("message delivery unknown", platform=ctx.platform.name, address=m.erp_number,
                    kind=m.kind)
        return before
    except TransientError as exc:
        if counted:
            repo.refused(m.id, ctx.clock())
        _defer(ctx, repo, report, m, exc)
        return before
    except PermanentError as exc:
        if counted:
            repo.refused(m.id, ctx.clock())
        _fail(ctx, repo, report, m, f"mail server refused: {exc}")
        return before
    checkpoint("message_after_smtp")
    return m


def message_context(ctx: PlatformContext, m: Message, address: ErpAddress | None
                    ) -> tuple[dict[str, Any], ErpAddress, str]:
    """(layout context, the address it was built from, sender) of one message, for every channel."""
    from syncd.render.context import build_context

    values = dict(m.context)
    if address is None:
        # A shop customer without an ERP address (yet): the names the event stored.
        address = ErpAddress(
            number=m.erp_number or 0, email=values.get("customer_email"), company=values.get("company"),
            first_name=values.get("first_name"), last_name=values.get("last_name"),
            salutation=values.get("salutation"),
        )
    sender = m.sender or platform_sender(ctx.settings, ctx.platform)
    context = build_context(address, platform=ctx.platform, shop=ctx.shop, sender=sender,
                            email=values.get("customer_email") or address.email)
    context["event"] = {"name": m.kind, **values}
    return context, address, sender


def build_mail(ctx: PlatformContext, m: Message, address: ErpAddress | None) -> OutgoingMail:
    assert ctx.layouts is not None
    values = dict(m.context)
    context, address, sender = message_context(ctx, m, address)
    rendered = ctx.layouts.render(m.layout, context)
    if values.get("role") == "internal":
        to_name = None
    else:
        to_name = " ".join(p for p in (address.first_name, address.last_name) if p) or address.company or None
    return OutgoingMail(to_addr=m.recipient, to_name=to_name, sender=sender, subject=rendered.subject,
                        text=rendered.text, html=rendered.html, key=f"{ctx.platform.name}:message:{m.id}")


def _record(m: Message) -> str:
    return str(m.erp_number) if m.erp_number is not None else f"message {m.id}"


def _history(ctx: PlatformContext, m: Message, event: HistoryEvent, reason: str | None = None) -> None:
    if m.erp_number is None:
        return
    role = m.context.get("role", "customer")
    with ctx.uow() as uow:
        uow.history.record(ctx.platform.name, m.erp_number, event,
                           reason=f"{m.kind} -> {role}" + (f": {reason}" if reason else ""))
        uow.commit()


def _sent(ctx: PlatformContext, repo: Messages, report: CycleReport, m: Message) -> None:
    repo.mark_sent([m.id], ctx.clock())
    _history(ctx, m, HistoryEvent.MESSAGE_SENT)
    report.add(_record(m), "mailed", m.kind)
    log.info("message sent", platform=ctx.platform.name, address=m.erp_number, kind=m.kind)


def _defer(ctx: PlatformContext, repo: Messages, report: CycleReport, m: Message,
           error: BaseException) -> None:
    now = ctx.clock()
    fault = isinstance(error, ConfigurationFault)
    # A configuration fault is not waited out: due again as soon as the fix may be in.
    due = now if fault else now + backoff(m.attempts)
    repo.defer(m.id, error=f"mail server: {error}", next_attempt_at=due, now=now)
    report.add(_record(m), "deferred", redact(str(error)))
    if fault:
        report.config_fault(redact(str(error)))
    _history(ctx, m, HistoryEvent.MESSAGE_DEFERRED, redact(str(error)))
    log.warning("message deferred", platform=ctx.platform.name, address=m.erp_number, kind=m.kind,
                error=str(error))


def _defer_all(ctx: PlatformContext, repo: Messages, report: CycleReport, error: BaseException) -> None:
    after_id = 0
    while batch := repo.due(ctx.platform.name, ctx.clock(), limit=ctx.settings.mail.batch_size,
                            after_id=after_id):
        after_id = batch[-1].id
        for m in batch:
            _defer(ctx, repo, report, m, error)


def _fail(ctx: PlatformContext, repo: Messages, report: CycleReport, m: Message, reason: str) -> None:
    repo.fail(m.id, reason, ctx.clock())
    report.add(_record(m), "failed", redact(reason))
    _history(ctx, m, HistoryEvent.MESSAGE_FAILED, reason)
    log.warning("message failed", platform=ctx.platform.name, address=m.erp_number, kind=m.kind,
                reason=reason)

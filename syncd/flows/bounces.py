"""The bounce check (``[mail.bounces]``): read the bounce mailbox, mark hard-bounced mails, and
let an address be mailed again once its ERP e-mail changed.

Per message, on its own (one bad message never stops the batch, and is read again next time):
the tags it was addressed to (``syncd.core.returnpath``) name a credential or message job; the
tag's HMAC must match the job's recipient (or an address the bounce names), else the message is
left as "unknown tag" and marks nobody. A hard bounce (permanent, 5.x.x) is recorded
(``syncd.state.bounces``), written to the address's history (``mail_bounced``) and, when mapped, to
``[erp.columns] email_undeliverable``; from then on the credential and message runs skip the
address (the state queries' gate) until ``release_changed`` sees another e-mail in the ERP row:
then the bounce is cleared, the ERP field emptied, and the bounced mail queued once more. A soft
bounce (temporary, 4.x.x) is recorded and listed only.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog

from syncd.config.model import Settings
from syncd.core.ports import BounceSource
from syncd.core.redaction import error_text, redact
from syncd.core.returnpath import CREDENTIALS, ReadBounce, Tag, verify
from syncd.core.rules import HistoryEvent
from syncd.flows import erpstatus
from syncd.flows.context import PlatformContext
from syncd.flows.push_addresses import checkpoint
from syncd.state.bounces import HARD, Bounces
from syncd.state.db import StateStore
from syncd.state.history import History
from syncd.state.jobs import CredentialJobs
from syncd.state.messages import LIVE_STEPS, Messages

log = structlog.get_logger("syncd.flows.bounces")

KIND_NAMES = {CREDENTIALS: "credentials", "m": "message"}


@dataclass
class BounceReport:
    """What one check did. ``counts``: read, hard, soft, duplicate, not-ours, no-bounce,
    unknown-tag, error, cleared, retried, moved (waiting messages readdressed)."""

    counts: Counter[str] = field(default_factory=Counter)
    items: list[tuple[str, str, str]] = field(default_factory=list)  # (what, platform/address, detail)


@dataclass(frozen=True)
class _Target:
    platform: str
    erp_number: int | None
    kind: str
    job_id: int
    email: str


def check(settings: Settings, state: StateStore, source: BounceSource,
          read: Callable[[bytes, str], ReadBounce], context: Callable[[str], PlatformContext | None],
          clock: Callable[[], datetime]) -> BounceReport:
    """Read up to ``batch_size`` unseen messages, then release addresses whose e-mail changed.
    ``read(raw, ref)``: what a message says (``syncd.connectors.mail.bounces.read_bounce``)."""
    report = BounceReport()
    bounces = Bounces(state)
    key = bounces.tag_key(clock())
    assert key is not None
    for ref, raw in source.fetch(settings.mail.bounces.batch_size):
        report.counts["read"] += 1
        try:
            processed = _one(state, bounces, key, read(raw, ref), context, clock, report)
            checkpoint("bounce_before_done")
            source.done(ref, processed=processed)
        except Exception as exc:  # one bad message: reported, read again next time
            report.counts["error"] += 1
            text = error_text(exc)
            report.items.append(("error", ref, text))
            log.warning("bounce message not handled", message=ref, error=text)
    release_changed(state, context, clock, report)
    return report


def _one(state: StateStore, bounces: Bounces, key: bytes, rb: ReadBounce,
         context: Callable[[str], PlatformContext | None], clock: Callable[[], datetime],
         report: BounceReport) -> bool:
    """Handle one message; True when it was a bounce of syncd (then ``processed`` applies)."""
    if not rb.tags:
        report.counts["not-ours"] += 1
        return False
    severity = rb.severity
    if severity is None:  # an auto-reply or the like sent to the return path
        report.counts["no-bounce"] += 1
        return False
    targets = [t for t in (_target(state, key, tag, rb) for tag in rb.tags) if t is not None]
    if not targets:
        report.counts["unknown-tag"] += 1
        report.items.append(("unknown-tag", ", ".join(str(t) for t in rb.tags), rb.source_id))
        log.warning("bounce with an unknown or forged tag ignored", tags=[str(t) for t in rb.tags])
        return False
    now = clock()
    for target in targets:
        detail = redact(f"{target.kind} to {target.email}: {rb.status or '?'} {rb.diagnostic or ''}".strip())
        event = HistoryEvent.MAIL_BOUNCED if severity == HARD else HistoryEvent.MAIL_SOFT_BOUNCED

        def history(conn: Any, t: _Target = target, reason: str = detail, e: HistoryEvent = event) -> None:
            if t.erp_number is not None:
                History(state, clock).record_many(t.platform, [(t.erp_number, e, reason, None)], conn=conn)

        recorded = bounces.record(platform=target.platform, erp_number=target.erp_number, kind=target.kind,
                                  job_id=target.job_id, email=target.email, severity=severity,
                                  status=rb.status, diagnostic=rb.diagnostic, source_id=rb.source_id, now=now,
                                  also=history)
        checkpoint("bounce_after_record")
        if recorded is None:
            report.counts["duplicate"] += 1
            # Killed after the record, before the ERP field: the message is read again; writing the
            # same text again (the first bounce's date) is harmless, never writing it is not.
            _mark_erp(state, context, target, severity)
            continue
        report.counts[severity] += 1
        where = f"{target.platform}/{target.erp_number if target.erp_number is not None else '-'}"
        report.items.append((severity, where, detail))
        log.warning("mail bounced", platform=target.platform, address=target.erp_number, kind=target.kind,
                    severity=severity, status=rb.status)
        _mark_erp(state, context, target, severity)
    return True


def _mark_erp(state: StateStore, context: Callable[[str], PlatformContext | None], target: _Target,
              severity: str) -> None:
    """``[erp.columns] email_undeliverable`` of a hard-bounced address: the text and the day of the
    address's open bounce (so a repeat writes the same value). Nothing once the bounce is cleared."""
    if severity != HARD or target.erp_number is None:
        return
    ctx = context(target.platform)
    if ctx is None or not ctx.settings.erp.columns.email_undeliverable:
        return
    since = Bounces(state).open_since(target.platform).get(target.erp_number)
    if since is None:
        return
    day = (since if since.tzinfo else since.replace(tzinfo=UTC)).astimezone().strftime("%Y-%m-%d")
    _erp_field(ctx, target.erp_number, f"{ctx.settings.mail.bounces.erp_text} {day}")


def _target(state: StateStore, key: bytes, tag: Tag, rb: ReadBounce) -> _Target | None:
    """The job a tag names, when its HMAC matches the job's recipient or a bounced address."""
    found: Any
    if tag.kind == CREDENTIALS:
        found = CredentialJobs(state).get(tag.id)
        if found is None:
            return None
        platform, number, mailed = found.platform, found.erp_number, found.email
    else:
        found = Messages(state).get(tag.id)
        if found is None:
            return None
        platform, number, mailed = found.platform, found.erp_number, found.recipient
    for candidate in dict.fromkeys([*([mailed] if mailed else []), *sorted(rb.permanent | rb.temporary)]):
        if verify(key, tag, candidate):
            return _Target(platform, number, KIND_NAMES[tag.kind], tag.id, candidate.strip().lower())
    return None


def _erp_field(ctx: PlatformContext, number: int, value: str | None) -> None:
    if ctx.settings.erp.columns.email_undeliverable:
        erpstatus.write_fields(ctx, {number: {"email_undeliverable": value}})


def release_changed(state: StateStore, context: Callable[[str], PlatformContext | None],
                    clock: Callable[[], datetime], report: BounceReport) -> None:
    """Clear every open hard bounce whose address's ERP e-mail is now another one, and queue the
    bounced mail once more (a credentials job of the same reason, or the message to the new
    address). An address deleted from the ERP, or with no e-mail now, stays blocked."""
    bounces = Bounces(state)
    by_platform: dict[str, list[Any]] = {}
    for b in bounces.open():
        if b.erp_number is not None:
            by_platform.setdefault(b.platform, []).append(b)
    for platform, open_ in by_platform.items():
        ctx = context(platform)
        if ctx is None:
            continue
        try:
            rows = ctx.erp.get_addresses({b.erp_number for b in open_})
        except Exception as exc:
            report.counts["error"] += 1
            report.items.append(("error", platform, error_text(exc)))
            continue
        for b in open_:
            row = rows.get(b.erp_number)
            email = (row.email or "").strip().lower() if row is not None else ""
            if not email or email == b.email:
                continue
            try:
                retried = _retry(ctx, b, email)
                report.counts["moved"] += _move_waiting(ctx, b, email)
                bounces.clear(b.id, clock(), retried_job=retried)
            except Exception as exc:
                report.counts["error"] += 1
                report.items.append(("error", f"{platform}/{b.erp_number}", error_text(exc)))
                continue
            report.counts["cleared"] += 1
            if retried is not None:
                report.counts["retried"] += 1
            reason = f"{b.kind}: e-mail changed, " + ("mail queued again" if retried else "nothing to resend")
            History(state, clock).record(platform, b.erp_number, HistoryEvent.BOUNCE_CLEARED, reason=reason)
            report.items.append(("cleared", f"{platform}/{b.erp_number}", reason))
            _erp_field(ctx, b.erp_number, None)


def _retry(ctx: PlatformContext, b: Any, email: str) -> int | None:
    """Queue the bounced mail once more; its id, or None when one is queued already."""
    now = ctx.clock()
    if b.kind == KIND_NAMES[CREDENTIALS]:
        job = CredentialJobs(ctx.state).get(b.job_id)
        if job is None:
            return None
        return CredentialJobs(ctx.state).create(platform=job.platform, erp_number=job.erp_number,
                                                shop_id=job.shop_id, email=email, now=now, reason=job.reason,
                                                mode=job.mode)
    repo = Messages(ctx.state)
    m = repo.get(b.job_id)
    if m is None:
        return None
    return _readdress(repo, m, email, now)


def _readdress(repo: Messages, m: Any, email: str, now: datetime) -> int | None:
    return repo.enqueue(platform=m.platform, kind=m.kind, occurrence=m.occurrence, recipient=email,
                        layout=m.layout, now=now, erp_number=m.erp_number, channel=m.channel,
                        sender=m.sender, context=m.context)


def _move_waiting(ctx: PlatformContext, b: Any, email: str) -> int:
    """Messages of the address that waited for the bounced one (the gate held them) go to the new
    e-mail; the old ones are failed with the reason. How many moved."""
    repo = Messages(ctx.state)
    moved = 0
    for m in repo.of(b.platform, erp_number=b.erp_number):
        if m.channel != "email" or m.step not in LIVE_STEPS or m.recipient.strip().lower() != b.email:
            continue
        if _readdress(repo, m, email, ctx.clock()) is not None:
            moved += 1
        repo.fail(m.id, "e-mail address bounced; sent to the address's new e-mail instead", ctx.clock())
    return moved

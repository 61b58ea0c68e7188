"""One ERP -> shop cycle of one platform (spec §1 steps 1-3), and the start-up sweep (I2).

Order inside a cycle: finish credential jobs an earlier cycle left half-done, send the mails
whose backoff has passed, then scan the ERP for changes batch by batch (push, link, mail). The
cursor is stored only after every batch it covers is processed; a crash re-reads the overlap,
which is harmless because pushes, links and jobs are idempotent.

The daemon runs ``settle_password_fields`` once per platform at start-up, before any cycle.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

import structlog

from syncd.core.errors import SyncdError
from syncd.flows import activation, approvals, contacts, credentials, golive, messages, reminders
from syncd.flows.context import CycleReport, PlatformContext
from syncd.flows.corrected import reevaluate_corrected
from syncd.flows.messages.sms import send_due_sms
from syncd.flows.push_addresses import CONFIG_CODES, DIRECTION, apply_batch

log = structlog.get_logger("syncd.flows.erp_to_shop")

CURSOR = "erp-to-shop"
T = TypeVar("T")


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def settle_password_fields(ctx: PlatformContext) -> CycleReport:
    """Start-up sweep: every non-empty password field is finished (its job's mail sent with the
    password it holds) or cleared (no job owns it); interrupted jobs are reset. Run it before
    new work."""
    report = CycleReport(ctx.platform.name, DIRECTION)
    credentials.settle(ctx, report, full=True)
    if report.items:
        log.info("password fields settled", platform=ctx.platform.name, **dict(report.counts))
    return report


def _numbers_apart(ctx: PlatformContext, report: CycleReport) -> bool:
    """``number_range_overlap = "refuse"``: push nothing while the shop's own customer number
    range can hand out a number syncd gives an ERP address (issue 13). Asked each cycle (three
    small searches), so a fix in the shop takes effect without a restart."""
    if ctx.platform.number_range_overlap != "refuse":
        return True
    _range, problem = ctx.shop.customer_number_overlap(tuple(ctx.settings.erp.debtor_range),
                                                       ctx.platform.customer_number_prefix)
    if problem is None:
        return True
    report.config_fault(f"platforms[{ctx.platform.name}]: {problem}; set customer_number_prefix or "
                        "move the shop's range (number_range_overlap = \"refuse\")")
    log.error("push refused: customer numbers overlap", platform=ctx.platform.name, reason=problem)
    return False


def run_erp_to_shop(ctx: PlatformContext, *, dry_run: bool = False) -> CycleReport:
    """One cycle. Transient faults that outlast the retry budget escape (the cycle failed; the
    cursor did not move); permanent per-record faults are recorded and the batch goes on."""
    report = CycleReport(ctx.platform.name, DIRECTION, dry_run=dry_run)
    if dry_run:
        return _dry_run(ctx, report)
    # Event mails, reminders and SMS go out under this direction's lease only, so two cycles
    # never send one.
    approvals.detect(ctx, report)
    reminders.poll(ctx, report)
    messages.send_due(ctx, report)
    send_due_sms(ctx, report)
    if not ctx.platform.addresses.erp_to_shop:
        return report
    name = ctx.platform.name
    mail = credentials.enabled(ctx)
    if mail and ctx.platform.addresses.send_credentials_since == "first-run":
        with ctx.uow() as uow:  # the first run's start is the cut-off, kept across restarts
            golive.cutoff(ctx, uow.cursors, start=True)
            uow.commit()
    credentials.settle(ctx, report, full=False)
    credentials.send_due(ctx, report)
    if not _numbers_apart(ctx, report):
        return report
    _push_config_deferred(ctx, report, mail)
    # Failed records whose row was corrected without its stamp moving (syncd.flows.corrected).
    reevaluate_corrected(ctx, report, mail=mail)

    with ctx.uow() as uow:
        cursor = uow.cursors.get(name, CURSOR)
    scan = ctx.erp.scan_changes(cursor, batch_size=ctx.settings.erp.batch_size)
    total = getattr(scan, "total", None)
    done = 0
    for batch in scan.batches():
        for chunk in _chunks(batch, ctx.platform.batch_size):
            apply_batch(ctx, chunk, report, credentials=mail)
            contacts.follow(ctx, chunk, report, credentials=mail)
        done += len(batch)
        if ctx.progress is not None:
            ctx.progress(done, total)
    with ctx.uow() as uow:
        uow.cursors.set(name, CURSOR, scan.cursor())
        uow.commit()
    contacts.changed_alone(ctx, report, credentials=mail)
    # The cycle's mails go out after its push, as one stream: their jobs are durable, and one
    # stream keeps the shop's password calls overlapping the mailing instead of starting the
    # pipeline afresh after every push chunk.
    credentials.send_due(ctx, report)
    messages.send_due(ctx, report)  # the events this cycle found (an address blocked ...)
    send_due_sms(ctx, report)
    try:
        activation.track(ctx, report)
    except SyncdError as exc:  # the cycle's own work is done: logins are read again next cycle
        log.warning("shop logins not read", platform=name, error=str(exc))
    log.info("erp-to-shop cycle done", platform=name, addresses=done, **dict(report.counts))
    return report


def _push_config_deferred(ctx: PlatformContext, report: CycleReport, mail: bool) -> None:
    """Push again the addresses a configuration fault held back (a mapping target missing in
    the shop): the change scan has moved past them, and a fixed mapping must not wait for the
    next ERP edit of each address."""
    name = ctx.platform.name
    with ctx.uow() as uow:
        records = uow.failures.records_with_code(name, DIRECTION, CONFIG_CODES)
    numbers = [int(r) for r in records if r.lstrip("-").isdigit()]  # < 0: a contact account
    for chunk in _chunks(numbers, ctx.platform.batch_size):
        found = ctx.erp.get_addresses(chunk)
        gone = [n for n in chunk if n not in found]
        if gone:  # deleted in the ERP meanwhile: nothing waits for them any more
            with ctx.uow() as uow:
                uow.failures.clear_many(name, DIRECTION, gone)
                uow.commit()
        if found:
            apply_batch(ctx, [found[n] for n in chunk if n in found], report, credentials=mail)


def _dry_run(ctx: PlatformContext, report: CycleReport) -> CycleReport:
    """What a cycle would do, from reads only (``syncd.flows.erp_to_shop_dry``)."""
    from syncd.flows.erp_to_shop_dry import dry_run

    return dry_run(ctx, report)

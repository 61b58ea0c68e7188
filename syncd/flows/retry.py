"""Failed ERP -> shop records, evaluated again: on an operator's word (``syncd retry``) and, each
cycle, when their ERP row was corrected without its change stamp moving.

The change scan only sees rows whose stamp moved. A record that failed (an invalid e-mail, a
shop rejection) and was corrected by a tool that does not touch the stamp would wait for the
nightly reconciliation; so each failure keeps a fingerprint of the row as it failed
(``push_addresses.row_fingerprint``) and every cycle compares it with the row as it is now:
O(failed records) reads, not O(table). ``syncd retry`` re-reads the named rows and pushes them
whatever the link's fingerprint says, and sends the credentials mail an address is still owed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import structlog

from syncd.core.domain import ErpAddress
from syncd.core.rules import LinkKind
from syncd.flows import credentials
from syncd.flows.context import CycleReport, PlatformContext
from syncd.flows.failures import DIRECTION, MAIL_DIRECTION
from syncd.flows.push_addresses import CONFIG_CODES, apply_batch, row_fingerprint

log = structlog.get_logger("syncd.flows.retry")

# Report actions that leave a record not done (its line says why).
NOT_DONE = frozenset({"failed", "deferred"})


def _chunks(items: Sequence[int], size: int) -> Iterator[Sequence[int]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def corrected_failures(ctx: PlatformContext) -> Iterator[list[ErpAddress]]:
    """Batches of failed records whose ERP row differs from the row they failed with (reads
    only). Records a configuration fault holds back are left out: ``erp_to_shop`` pushes them
    every cycle anyway."""
    name = ctx.platform.name
    with ctx.uow() as uow:
        prints = uow.failures.fingerprints(name, DIRECTION)
        waiting = set(uow.failures.records_with_code(name, DIRECTION, CONFIG_CODES)) if prints else set()
    numbers = sorted(int(r) for r in prints if r.isdigit() and r not in waiting)
    for chunk in _chunks(numbers, ctx.platform.batch_size):
        found = ctx.erp.get_addresses(chunk)
        changed = [found[n] for n in chunk if n in found and row_fingerprint(found[n]) != prints[str(n)]]
        if changed:
            yield changed


def reevaluate_corrected(ctx: PlatformContext, report: CycleReport, *, mail: bool) -> int:
    """Push again every failed record whose ERP row was corrected; how many."""
    again = 0
    for changed in corrected_failures(ctx):
        log.info("failed records corrected in the ERP; evaluated again", platform=ctx.platform.name,
                 addresses=[a.number for a in changed])
        apply_batch(ctx, changed, report, credentials=mail)
        again += len(changed)
    return again


@dataclass(frozen=True)
class RetryOutcome:
    address: int
    ok: bool
    detail: str


class UnknownAddresses(ValueError):
    """Addresses that are not in the ERP: nothing was retried."""

    def __init__(self, platform: str, numbers: Iterable[int]) -> None:
        self.numbers = sorted(numbers)
        super().__init__(f"platform {platform!r}: no such ERP address: {', '.join(map(str, self.numbers))} "
                         "/ keine solche ERP-Adresse")


def failed_records(ctx: PlatformContext) -> tuple[list[int], list[str]]:
    """(ERP numbers failed in ERP -> shop or in their credentials mail, shop customer ids whose
    import failed). The imports are retried by every shop -> ERP cycle on their own."""
    with ctx.uow() as uow:
        failures = uow.failures.list(ctx.platform.name)
    numbers = sorted({int(f.record) for f in failures
                      if f.direction in (DIRECTION, MAIL_DIRECTION) and f.record.isdigit()})
    imports = sorted(f.record for f in failures if f.direction not in (DIRECTION, MAIL_DIRECTION))
    return numbers, imports


def retry_addresses(ctx: PlatformContext, numbers: Iterable[int]) -> list[RetryOutcome]:
    """Re-read these ERP rows now and run them through the flow: pushed (whatever the link says),
    linked, and mailed when a credentials mail is owed (its job failed or waits for a retry).
    Raises ``UnknownAddresses`` before any work when a number is not in the ERP."""
    from syncd.flows.accounts import credential_lease
    from syncd.flows.erp_to_shop import settle_password_fields

    wanted = sorted({int(n) for n in numbers})
    name = ctx.platform.name
    found = ctx.erp.get_addresses(wanted)
    missing = [n for n in wanted if n not in found]
    if missing:
        raise UnknownAddresses(name, missing)
    mail = credentials.enabled(ctx)
    report = CycleReport(name, DIRECTION)
    # The cycle's lease: a running daemon's cycle never pushes or mails the same record meanwhile.
    with credential_lease(ctx):
        settle_password_fields(ctx)  # as at a start: a field left by a crash is settled first
        for chunk in _chunks(wanted, ctx.platform.batch_size):
            apply_batch(ctx, [found[n] for n in chunk], report, credentials=mail, force=True)
        if mail:
            _owed_mails(ctx, wanted)
            credentials.send_due(ctx, report)
    return _outcomes(ctx, wanted, report)


def _owed_mails(ctx: PlatformContext, numbers: list[int]) -> None:
    """A failed credentials job gets a successor (same purpose: a failed first mail stays the
    first); a job waiting out its backoff is due now."""
    name = ctx.platform.name
    with ctx.uow() as uow:
        links = uow.links.get_many(name, numbers)
        active = {j.erp_number: j for j in uow.jobs.active(name, numbers)}
        failed = {j.erp_number: j for j in uow.jobs.failed(name) if j.erp_number in set(numbers)}
        mail_failed = uow.failures.among(name, MAIL_DIRECTION, numbers)
        waiting = [j.id for j in active.values() if j.step == "pending"]
        uow.jobs.restart(waiting, uow.clock())
        for n in numbers:
            link, job = links.get(n), failed.get(n)
            if n in active or job is None or str(n) not in mail_failed:
                continue
            if link is None or link.kind == LinkKind.COLLECTIVE or not link.shop_active or link.erp_blocked:
                continue
            uow.jobs.create(platform=name, erp_number=n, shop_id=link.shop_id, email=link.email,
                            now=uow.clock(), reason=job.reason, mode=job.mode)
        uow.commit()


def _outcomes(ctx: PlatformContext, numbers: list[int], report: CycleReport) -> list[RetryOutcome]:
    last: dict[int, tuple[str, str]] = {}
    for item in report.items:
        if item.record.isdigit() and int(item.record) in last.keys() | set(numbers):
            last[int(item.record)] = (item.action, item.detail)
    with ctx.uow() as uow:
        still = uow.failures.among(ctx.platform.name, DIRECTION, numbers) \
            | uow.failures.among(ctx.platform.name, MAIL_DIRECTION, numbers)
        owed = {j.erp_number for j in uow.jobs.active(ctx.platform.name, numbers)}
    out = []
    for n in numbers:
        action, detail = last.get(n, ("unchanged", ""))
        text = action + (f" ({detail})" if detail else "")
        if str(n) in still or action in NOT_DONE:
            out.append(RetryOutcome(n, False, text))
        elif n in owed:
            out.append(RetryOutcome(n, False, f"{text}; credentials mail still pending"))
        else:
            out.append(RetryOutcome(n, True, text))
    return out

"""``syncd retry``: failed (or any) ERP -> shop records, evaluated again on an operator's word.

Each named ERP row is re-read now and pushed whatever the link's fingerprint says, and the
credentials mail the address is still owed is sent. The cycle's own re-evaluation of corrected
rows is ``syncd.flows.corrected``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from syncd.core.rules import LinkKind, parse_account
from syncd.flows import credentials
from syncd.flows.context import CycleReport, PlatformContext
from syncd.flows.corrected import chunks
from syncd.flows.failures import DIRECTION, MAIL_DIRECTION
from syncd.flows.push_addresses import apply_batch

# Report actions that leave a record not done (its line says why).
NOT_DONE = frozenset({"failed", "deferred"})


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
                      if f.direction in (DIRECTION, MAIL_DIRECTION) and f.record.lstrip("-").isdigit()})
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
        for chunk in chunks(wanted, ctx.platform.batch_size):
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
        number = parse_account(item.record)  # "10001-2": a contact account
        if number is not None and number in last.keys() | set(numbers):
            last[number] = (item.action, item.detail)
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

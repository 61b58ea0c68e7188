"""What one ERP -> shop cycle would do (`syncd sync --dry-run`), from reads only.

It walks the cycle's own path - the records a configuration fault held back, then the change
scan, batch by batch and chunk by chunk - through the same plan (``plan_batch``: blocked, e-mail
rules, duplicates) and the same shop decision (``ShopPort.push(..., dry_run=True)``: mapping,
the read-only look-ups by e-mail, by syncd's id and by customer number, the create intents),
and names each outcome as the run would (``push_action``), prefixed ``would-``. Nothing is
written to the ERP, the shop, the state store or a mail server.

Between chunks the run commits its links, so a later chunk sees them (an e-mail taken by an
address created earlier in the cycle, an address met twice). The dry run keeps the links it
would make in memory (``_Foreseen``) and hands them to the later chunks the same way.

What it cannot foresee: a refusal only the shop's validation of the write makes, and the
outcome of mails. Mails are counted as the run would take them (``_Mails``): jobs already in
flight (``would-mail``: the sweep sends them outside the mail budget), then queued jobs and the
new accounts' mails in order, ``would-mail`` as far as the budget (rate limits, canary) allows
and ``would-wait`` beyond; an account whose ERP row is older than ``send_credentials_since``
is ``would-hold`` and a job already held ``held`` (issue 18, ``syncd.flows.golive``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from syncd.core.domain import ErpAddress, PushResult
from syncd.core.rules import LinkKind, email_key
from syncd.flows import contacts, credentials, golive
from syncd.flows.context import CycleReport, PlatformContext
from syncd.flows.corrected import corrected_failures
from syncd.flows.fingerprints import address_fingerprint
from syncd.flows.mailbudget import MailBudget
from syncd.flows.push_addresses import (
    CONFIG_CODES,
    DIRECTION,
    _PlatformIntents,
    linked_numbers,
    load_links,
    plan_batch,
    push_action,
)
from syncd.state import jobs as steps
from syncd.state.links import Link

CURSOR = "erp-to-shop"
T = TypeVar("T")
# The run's report action -> what the dry run reports for it.
WOULD = {"created": "would-create", "linked": "would-link", "adopted": "would-adopt",
         "updated": "would-update", "failed": "would-fail", "deferred": "would-defer"}


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class _Foreseen:
    """The links the run would have stored by now (in memory only)."""

    def __init__(self, platform: str) -> None:
        self.platform = platform
        self.links: dict[int, Link] = {}

    def add(self, address: ErpAddress, result: PushResult, new: bool, old: Link | None) -> None:
        had_link = old is not None and old.kind != LinkKind.COLLECTIVE
        kind = LinkKind.ERP if new else (old.kind if had_link else LinkKind.EMAIL)  # type: ignore[union-attr]
        self.links[address.number] = Link(
            platform=self.platform, shop_id=result.shop_id or "", erp_number=address.number, kind=kind,
            email=(address.email or "").strip() or None, erp_blocked=address.blocked,
            shop_active=old.shop_active if had_link else True,  # type: ignore[union-attr]
            fingerprint=address_fingerprint(address),
        )

    def owners(self, emails: Iterable[str]) -> dict[str, int]:
        wanted = set(emails)
        return {key: n for n, lk in self.links.items() if (key := email_key(lk.email)) in wanted}

    def claims(self, shop_ids: Iterable[str]) -> dict[str, int]:
        wanted = set(shop_ids)
        return {lk.shop_id: n for n, lk in self.links.items() if lk.shop_id in wanted}


@dataclass
class _Mails:
    """The credentials mails the run would send: queued in order, the budget applied at the end."""

    enabled: bool
    cut: datetime | None = None  # send_credentials_since's cut-off (None: mail all)
    in_flight: list[tuple[int, str]] = field(default_factory=list)
    queued: list[tuple[int, str]] = field(default_factory=list)

    def new_account(self, a: ErpAddress, report: CycleReport) -> None:
        if golive.is_old(a, self.cut):
            report.add(a.number, "would-hold", "ERP row older than send_credentials_since")
        else:
            self.queued.append((a.number, _to(a)))

    def report(self, ctx: PlatformContext, report: CycleReport) -> None:
        for number, detail in self.in_flight:
            report.add(number, "would-mail", detail)
        budget = MailBudget.open(ctx, credentials.KIND, start=False) if self.enabled else None
        allowed = len(self.queued) if budget is None else budget.limit(len(self.queued))
        for number, detail in self.queued[:allowed]:
            report.add(number, "would-mail", detail)
        for number, _detail in self.queued[allowed:]:
            report.add(number, "would-wait", budget.why if budget is not None else "")


def mails_next_cycle(report: CycleReport) -> int:
    """What ``sync --dry-run`` and ``check`` print: the credentials mails the next cycle sends."""
    return report.counts.get("would-mail", 0)


def dry_run(ctx: PlatformContext, report: CycleReport) -> CycleReport:
    name = ctx.platform.name
    mail = _Mails(credentials.enabled(ctx))
    with ctx.uow() as uow:  # read only: never committed
        for job in uow.jobs.active(name):
            if job.held:
                report.add(job.erp_number, "held", f"credentials mail held ({job.held})")
            elif job.step == steps.PENDING:
                mail.queued.append((job.erp_number, "queued credentials job"))
            else:
                mail.in_flight.append((job.erp_number, f"unfinished credentials job ({job.step})"))
        cursor = uow.cursors.get(name, CURSOR)
        held = uow.failures.records_with_code(name, DIRECTION, CONFIG_CODES)
        mail.cut = golive.cutoff(ctx, uow.cursors) if mail.enabled else None
    foreseen = _Foreseen(name)
    size = ctx.platform.batch_size
    numbers = [int(r) for r in held if r.lstrip("-").isdigit()]  # < 0: a contact account
    for chunk in _chunks(numbers, size):  # what the cycle pushes again first (a fixed mapping)
        found = ctx.erp.get_addresses(chunk)
        if found:
            _chunk(ctx, [found[n] for n in chunk if n in found], report, mail, foreseen)
    for corrected in corrected_failures(ctx):  # failed rows corrected without their stamp moving
        _chunk(ctx, corrected, report, mail, foreseen)
    scan = ctx.erp.scan_changes(cursor, batch_size=ctx.settings.erp.batch_size)
    total = getattr(scan, "total", None)
    done = 0
    for batch in scan.batches():
        for chunk in _chunks(batch, size):
            _chunk(ctx, chunk, report, mail, foreseen)
            for accounts in _chunks(contacts.accounts_of(ctx, chunk), size):  # accounts_per = "contact"
                _chunk(ctx, accounts, report, mail, foreseen)
        done += len(batch)
        if ctx.progress is not None:
            ctx.progress(done, total)
    mail.report(ctx, report)
    return report


def _chunk(ctx: PlatformContext, addresses: Sequence[ErpAddress], report: CycleReport, mail: _Mails,
           foreseen: _Foreseen) -> None:
    name = ctx.platform.name
    with ctx.uow() as uow:
        links, owners = load_links(uow, name, addresses)
        links.update({a.number: foreseen.links[a.number] for a in addresses if a.number in foreseen.links})
        owners.update(foreseen.owners(email_key(a.email) for a in addresses if a.email))
        plan = plan_batch(addresses, links, owners, ctx.platform.addresses)
        mailed_before = {a.number for a, link in plan.reactivate
                         if mail.enabled and link.kind == LinkKind.ERP and uow.jobs.ever_had(name, a.number)}
    for a, reason, _code in plan.fail:
        report.add(a.number, "would-fail", reason)
    for a, reason in plan.skip:
        report.add(a.number, "would-skip", reason)
    for a in plan.unchanged:
        report.add(a.number, "unchanged")
    if plan.push:
        _push(ctx, plan.push, links, report, mail, foreseen)
    for a, link in plan.deactivate:
        report.add(a.number, "would-deactivate", link.shop_id)
    for a, link in plan.reactivate:
        report.add(a.number, "would-reactivate", link.shop_id)
        if mail.enabled and link.kind == LinkKind.ERP and a.number not in mailed_before:
            mail.queued.append((a.number, _to(a)))


def _push(ctx: PlatformContext, addresses: Sequence[ErpAddress], links: Mapping[int, Link],
          report: CycleReport, mail: _Mails, foreseen: _Foreseen) -> None:
    known = {n: lk.shop_id for n, lk in links.items() if lk.kind != LinkKind.COLLECTIVE}

    def claims(ids: Iterable[str]) -> dict[str, int]:
        ids = list(ids)
        return {**linked_numbers(ctx, ids), **foreseen.claims(ids)}

    results = ctx.shop.push(addresses, known, claims=claims, intents=_PlatformIntents(ctx), dry_run=True)
    by_number = {a.number: a for a in addresses}
    for r in results:
        a = by_number[r.number]
        old = links.get(r.number)
        action, new = push_action(r, old)
        would = WOULD.get(action, f"would-{action}")
        if action in ("failed", "deferred"):
            report.add(r.number, would, r.reason or "the shop would reject the address")
            continue
        report.add(r.number, would, r.shop_id or "")
        foreseen.add(a, r, new, old)
        if new and mail.enabled and not a.blocked:
            mail.new_account(a, report)


def _to(address: ErpAddress) -> str:
    return (address.email or "").strip()

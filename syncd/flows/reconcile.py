"""Reconciliation (`syncd sync --full`, ``[daemon] reconcile_interval``): the safety net under
change detection. It compares every ERP address, every link and every linked shop account,
repairs what drifted through the ordinary push, and stores the drift it counted
(``syncd.state.drift``) for `syncd status` and the metrics.

Cost and memory: two streams, each O(table), one page in memory at a time.

1. ERP addresses in number order, in pages of ``[erp] batch_size``. Per page: one state query
   for the page's links, one for its failures, and the linked accounts read from the shop by id
   (``ShopPort.compare``: one search per shop page). A record that needs work goes through the
   ordinary push (``apply_batch``), so every rule of the normal cycle (blocked, e-mail owners,
   credential jobs in the link's transaction) applies unchanged:
   - an eligible address without a link (``unlinked``): pushed (created, linked or adopted);
   - a link whose shop account is gone (``missing_in_shop``): looked up again by id, and only
     when that lookup confirms it, the link's fingerprint is reset and the push re-creates the
     account under its id, which queues a credentials mail like any new account;
   - a link whose fingerprint is not the address's (a change the scan missed) or an account of
     syncd's that holds other data than the address maps to (``stale``): pushed;
   - a blocked address whose link or account still says otherwise (``blocked_linked``) and a
     link whose address came back: deactivated / reactivated as configured;
   - a record in the failures table (``failed_rechecked``): evaluated again; its failure goes
     away when it now succeeds, or is recorded again with today's reason.
2. Links in shop-id pages; per page one ERP query for which numbers still exist. A link whose
   address is gone (``orphaned_links``) is reported, and its account deactivated when
   ``deactivate_blocked`` is on (a vanished address is treated like a blocked one).

With ``accounts_per = "contact"`` each page carries its business addresses' contact persons'
accounts (one ERP query per page, ``contacts.accounts_of``): they are compared, counted and
repaired like the address's own, and a contact account whose ``Ansprechpartner`` row is gone is an
orphaned link (``on_erp_delete``).

Accounts the customer linked themselves (link kind ``email``) or that were imported from the
shop are compared for presence only: their data is the customer's until the ERP row changes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from typing import TypeVar

import structlog

from syncd.core.domain import ErpAddress
from syncd.core.rules import HistoryEvent, LinkKind, account_label
from syncd.flows import contacts, credentials, erasure
from syncd.flows.context import CycleReport, PlatformContext
from syncd.flows.deactivation import set_active
from syncd.flows.erp_to_shop import run_erp_to_shop
from syncd.flows.fingerprints import address_fingerprint
from syncd.flows.push_addresses import (
    DIRECTION,
    apply_batch,
    email_problem,
)
from syncd.state.drift import KEYS
from syncd.state.links import Link

log = structlog.get_logger("syncd.flows.reconcile")
T = TypeVar("T")

# Report actions after which a drifted record is in step again.
DONE_ACTIONS = frozenset(
    {"created", "linked", "updated", "unchanged", "deactivated", "reactivated", "skipped", "mailed"}
)
# Link kinds whose shop data syncd owns and compares field by field.
OWN_KINDS = frozenset({LinkKind.ERP})
# Link kinds whose account is deactivated when their ERP address vanished (deactivate_blocked).
PERSONAL_KINDS = frozenset({LinkKind.ERP, LinkKind.EMAIL})
LINK_PAGE = 500
# Vanished addresses are deactivated only while they are few (see ``_orphans``).
ORPHAN_LIMIT = 1000
ORPHAN_SHARE = 0.05
ORPHANS_LISTED = 100  # logged and reported one by one; the count covers all
MISSING = "missing"  # what ShopPort.compare says of an account that is gone
STALE_MARK = ""  # a link fingerprint no address has: the next push of it is never skipped


def run_full(ctx: PlatformContext, *, dry_run: bool = False) -> CycleReport:
    """An ordinary erp-to-shop cycle, then the reconciliation, then the mails it queued."""
    report = run_erp_to_shop(ctx, dry_run=dry_run)
    if not ctx.platform.addresses.erp_to_shop:
        return report
    reconcile(ctx, report, repair=not dry_run)
    if not dry_run:
        credentials.send_due(ctx, report)
    return report


def reconcile(ctx: PlatformContext, report: CycleReport, *, repair: bool = True) -> dict[str, int]:
    """Compare, repair (unless ``repair`` is False: then nothing is written anywhere) and store
    the drift counts; returns them (also set as ``report.drift``)."""
    started = ctx.clock()
    counts: Counter[str] = Counter({k: 0 for k in KEYS})
    repairs = _Repairs(ctx, report, counts, repair=repair)
    done = 0
    for page in ctx.erp.iter_all(batch_size=ctx.settings.erp.batch_size):
        _erp_page(ctx, page, counts, repairs)
        done += len(page)
        if ctx.progress is not None:
            ctx.progress(done, None)
    repairs.flush()
    _orphans(ctx, report, counts, repair=repair)
    with ctx.uow() as uow:
        counts["still_failed"] = uow.failures.count(ctx.platform.name, DIRECTION)
    drift = {k: int(counts[k]) for k in KEYS}
    report.drift = drift
    if repair:
        with ctx.uow() as uow:
            uow.drift.set(ctx.platform.name, started, ctx.clock(), drift)
            uow.commit()
    log.info("reconciliation done", platform=ctx.platform.name, dry_run=not repair, **drift)
    return drift


class _Repairs:
    """Records that need the ordinary push, collected over ERP pages and pushed a platform
    batch at a time: drift is rare, and a push per ERP page would cost a round of shop calls
    for a handful of records. At most one batch is held."""

    def __init__(self, ctx: PlatformContext, report: CycleReport, counts: Counter[str], *,
                 repair: bool) -> None:
        self.ctx, self.report, self.counts, self.repair = ctx, report, counts, repair
        self.mail = credentials.enabled(ctx) if repair else False
        self.todo: dict[int, ErpAddress] = {}
        self.counted: set[int] = set()  # drifted or failed before: "repaired" when done now
        self.reset: set[int] = set()  # links whose fingerprint must not let the push skip them

    def add(self, address: ErpAddress, *, counted: bool, reset: bool = False) -> None:
        self.todo[address.number] = address
        if counted:
            self.counted.add(address.number)
        if reset:
            self.reset.add(address.number)
        if len(self.todo) >= self.ctx.platform.batch_size:
            self.flush()

    def flush(self) -> None:
        todo, counted, reset = self.todo, self.counted, self.reset
        self.todo, self.counted, self.reset = {}, set(), set()
        if not todo:
            return
        if not self.repair:
            for n in sorted(counted):
                self.report.add(n, "would-repair")
            return
        ctx, name = self.ctx, self.ctx.platform.name
        if reset:
            with ctx.uow() as uow:
                for n in sorted(reset):
                    uow.links.set_state(name, n, fingerprint=STALE_MARK)
                uow.commit()
        part = CycleReport(name, DIRECTION)
        apply_batch(ctx, [todo[n] for n in sorted(todo)], part, credentials=self.mail)
        _merge(self.report, part)
        outcome: dict[str, set[str]] = {}
        for item in part.items:
            outcome.setdefault(item.record, set()).add(item.action)
        # In step now: every action a success, and no failure left (a skip keeps an old one).
        with ctx.uow() as uow:
            left = uow.failures.among(name, DIRECTION, counted)
        for n in counted:
            actions = outcome.get(account_label(n), set())
            if actions and actions <= DONE_ACTIONS and str(n) not in left:
                self.counts["repaired"] += 1


def _erp_page(ctx: PlatformContext, page: Sequence[ErpAddress], counts: Counter[str],
              repairs: _Repairs) -> None:
    name = ctx.platform.name
    settings = ctx.platform.addresses
    counts["erp_addresses"] += len(page)
    # Contact persons' accounts (accounts_per = "contact") are compared and repaired with their
    # company's page, by the same rules: they are accounts like the address's own.
    page = [*page, *contacts.accounts_of(ctx, page)]
    numbers = [a.number for a in page]
    with ctx.uow() as uow:
        links = {n: lk for n, lk in uow.links.get_many(name, numbers).items()
                 if lk.kind != LinkKind.COLLECTIVE}
        recorded = uow.failures.among(name, DIRECTION, numbers)
    failed = {int(r) for r in recorded if r.lstrip("-").isdigit()}  # "-100010002": a contact account
    counts["_matched"] += len(links)
    compared = [a for a in page if a.number in links and not a.blocked and a.for_shop is not False]
    shop_view = ctx.shop.compare(compared, {a.number: links[a.number].shop_id for a in compared})
    missing = [a.number for a in compared if shop_view.get(a.number) == MISSING]
    if missing:
        # Verify by a direct lookup of each id: a re-created account means a new password and a
        # mail, so a page the shop answered incompletely must not cause one.
        present = ctx.shop.get_customers([links[n].shop_id for n in missing])
        missing = [n for n in missing if links[n].shop_id not in present]
    missing_set = set(missing)

    for a in page:
        link = links.get(a.number)
        rechecked = a.number in failed
        if rechecked:
            counts["failed_rechecked"] += 1
        if link is None:
            # not for the shop: blocked (skip_blocked), or its shop flag is not set (issue 13)
            if (a.blocked and settings.skip_blocked) or a.for_shop is False:
                if rechecked:
                    repairs.add(a, counted=True)
                continue
            usable = not a.blocked and not a.problems and email_problem(a.email) is None
            if usable:
                counts["unlinked"] += 1
            repairs.add(a, counted=usable or rechecked)
            continue
        if a.for_shop is False:  # its shop flag was cleared: deactivated unless unflagged = "ignore"
            if link.shop_active and settings.unflagged == "deactivate":
                counts["blocked_linked"] += 1
                repairs.add(a, counted=True)
            elif rechecked:
                repairs.add(a, counted=True)
            continue
        if a.blocked:
            if not link.erp_blocked or (link.shop_active and settings.deactivate_blocked):
                counts["blocked_linked"] += 1
                repairs.add(a, counted=True)
            elif rechecked:
                repairs.add(a, counted=True)
            continue
        view = shop_view.get(a.number)
        if a.number in missing_set:
            counts["missing_in_shop"] += 1
            repairs.add(a, counted=True, reset=True)
        elif link.fingerprint != address_fingerprint(a):
            counts["stale"] += 1
            repairs.add(a, counted=True)
        elif view is not None and view != MISSING and link.kind in OWN_KINDS:
            counts["stale"] += 1
            repairs.add(a, counted=True, reset=True)
        elif not link.shop_active or rechecked:
            repairs.add(a, counted=True)  # usable again (the plan reactivates), or failed before


def _orphans(ctx: PlatformContext, report: CycleReport, counts: Counter[str], *, repair: bool) -> None:
    name = ctx.platform.name
    on_delete = erasure.mode(ctx)  # platforms[].addresses.on_erp_delete
    act: list[Link] = []  # personal links to deactivate or delete, at most ORPHAN_LIMIT kept
    for page in _link_pages(ctx):
        counts["links"] += len(page)
        present = ctx.erp.numbers_present(lk.erp_number for lk in page)
        for lk in page:
            if lk.erp_number in present:
                continue
            counts["orphaned_links"] += 1
            if counts["orphaned_links"] <= ORPHANS_LISTED:  # a wrong read_source would list them all
                log.warning("link without ERP address", platform=name, address=lk.erp_number,
                            shop_id=lk.shop_id, kind=lk.kind)
                report.add(lk.erp_number, "orphaned", f"ERP address gone (shop account {lk.shop_id})")
            if lk.kind in PERSONAL_KINDS and (lk.shop_active or on_delete == "delete") \
                    and len(act) <= ORPHAN_LIMIT:
                act.append(lk)
    if not (repair and on_delete != "ignore" and act):
        return
    orphans, links = counts["orphaned_links"], counts["links"]
    # Addresses do not vanish by the thousand: when many links lose their address at once, the
    # ERP source is more likely misconfigured (an empty view, a wrong number format) than the
    # customers gone. Report, and leave the accounts alone.
    too_many = orphans > ORPHAN_LIMIT or orphans > max(10, links * ORPHAN_SHARE)
    if too_many or counts["_matched"] + orphans > links:
        log.error("links without ERP address not deactivated: too many at once; check [erp] read_source",
                  platform=name, orphaned=orphans, links=links)
        return
    page_report = CycleReport(name, DIRECTION)
    for start in range(0, len(act), LINK_PAGE):
        chunk = act[start:start + LINK_PAGE]
        if on_delete == "delete":
            erasure.delete_accounts(ctx, chunk, page_report)
            continue
        set_active(ctx, [(ErpAddress(number=lk.erp_number, blocked=True), lk) for lk in chunk], False,
                    page_report, credentials=False)
        with ctx.uow() as uow:
            uow.history.record_many(name, [(lk.erp_number, HistoryEvent.ERP_DELETED, "account deactivated",
                                            lk.shop_id) for lk in chunk])
            uow.commit()
    _merge(report, page_report)
    counts["repaired"] += sum(1 for i in page_report.items if i.action in ("deactivated", "deleted"))


def _link_pages(ctx: PlatformContext) -> Iterator[list[Link]]:
    """Every link of the platform by shop id, a page per unit of work: the caller reads the ERP
    between pages, and no unit (on SQLite: the write lock) is held across that."""
    after: str | None = None
    while True:
        with ctx.uow() as uow:
            page = list(uow.links.iter(ctx.platform.name, after=after, page_size=LINK_PAGE))
        if page:
            yield page
        if len(page) < LINK_PAGE:
            return
        after = page[-1].shop_id


def _pages(items: Iterable[T], size: int) -> Iterable[list[T]]:
    page: list[T] = []
    for item in items:
        page.append(item)
        if len(page) >= size:
            yield page
            page = []
    if page:
        yield page


def _merge(report: CycleReport, part: CycleReport) -> None:
    report.counts.update(part.counts)
    report.items.extend(part.items)

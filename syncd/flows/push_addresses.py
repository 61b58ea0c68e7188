"""ERP -> shop, spec §1 steps 1-2: decide per changed address what to do, push, link.

``plan_batch`` is the pure part (no I/O): from a batch of ERP addresses and their links it
decides push / deactivate / reactivate / skip / fail / unchanged. ``apply_batch`` carries the
plan out against the shop and records links, failures and credential jobs. A link and the
credential job of a newly created account are recorded in ONE state transaction, so a crash can
never leave an account that was linked but forgotten for its mail.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import structlog

from syncd.config.model import AddressSettings
from syncd.config.profiles import platform_columns
from syncd.core.domain import ErpAddress, PushResult
from syncd.core.errors import PermanentError
from syncd.core.redaction import redact
from syncd.core.rules import HistoryEvent, LinkKind, PushOutcome, account_label, email_key, email_problem
from syncd.flows import erasure, erpstatus, golive
from syncd.flows.context import CycleReport, PlatformContext
from syncd.flows.deactivation import NOT_FOR_SHOP, holding, not_held, set_active
from syncd.flows.failures import DIRECTION
from syncd.flows.fingerprints import address_fingerprint, row_fingerprint
from syncd.state import jobs as steps
from syncd.state.links import Link
from syncd.state.uow import UnitOfWork

log = structlog.get_logger("syncd.flows.push_addresses")

# Imported from here by the credential run and tests until they import syncd.flows.failures.

RECOVERED_CREATE = "existed_with_deterministic_id"
# Rejections that name a missing mapping target in the shop (customer_group_map, customer_group):
# a configuration fault, so the address is kept for a later push instead of failing for good.
CONFIG_CODES = frozenset({"SYNCD__UNKNOWN_GROUP"})



class Checkpoints:
    """Named step boundaries of the flow. Production leaves ``hook`` unset; the crash tests set
    it to stop the process exactly between two durable writes."""

    hook: Callable[[str], None] | None = None

    def __call__(self, name: str) -> None:
        if self.hook is not None:
            self.hook(name)


checkpoint = Checkpoints()

# ---------------------------------------------------------------------------------------- the plan
@dataclass
class Plan:
    push: list[ErpAddress] = field(default_factory=list)
    deactivate: list[tuple[ErpAddress, Link]] = field(default_factory=list)
    # Marked for deletion in the ERP ([erp] deletion_mark), with their link (None: no account).
    marked: list[tuple[ErpAddress, Link | None]] = field(default_factory=list)
    reactivate: list[tuple[ErpAddress, Link]] = field(default_factory=list)
    skip: list[tuple[ErpAddress, str]] = field(default_factory=list)
    fail: list[tuple[ErpAddress, str, str]] = field(default_factory=list)  # address, reason, code
    unchanged: list[ErpAddress] = field(default_factory=list)


def plan_batch(
    addresses: Sequence[ErpAddress],
    links: Mapping[int, Link],
    email_owners: Mapping[str, int],
    settings: AddressSettings,
    *,
    force: bool = False,
) -> Plan:
    """Decide what happens to each address of a batch (pure).

    ``email_owners``: lower-cased e-mail -> the ERP number already linked with it on this
    platform; a second address with the same e-mail fails instead of taking over the account.
    ``force``: push even an address whose link says the shop holds it already (``syncd retry``).
    """
    plan = Plan()
    current = {a.number: email_key(a.email) for a in addresses}
    # An address of this batch that changed its e-mail no longer owns the old one.
    owners = {k: n for k, n in email_owners.items() if n not in current or current[n] == k}
    for a in sorted(addresses, key=lambda x: x.number):
        link = links.get(a.number)
        if link is not None and link.kind == LinkKind.COLLECTIVE:
            link = None  # the collective address is many shop customers; never pushed as one
        if a.marked_deleted:
            # Marked for deletion: as if the row were deleted (on_erp_delete, syncd.flows.erasure),
            # never created or updated while the mark stays.
            plan.marked.append((a, link))
            continue
        if a.for_shop is False:
            # Not marked for the shop ([erp] shop_flag, büro+ WShopAdrKz): never created there.
            # An account it already has is deactivated like a blocked one (``unflagged``), never
            # deleted: its orders and login stay, and setting the flag again reactivates it.
            if link is not None and link.shop_active and settings.unflagged == "deactivate":
                plan.deactivate.append((a, link))
            else:
                plan.skip.append((a, NOT_FOR_SHOP))
            continue
        if a.blocked and settings.skip_blocked:
            if link is not None and link.shop_active and settings.deactivate_blocked:
                plan.deactivate.append((a, link))
            else:
                plan.skip.append((a, "blocked in the ERP"))
            continue
        if a.problems:
            plan.fail.append((a, "; ".join(a.problems), "validation"))
            continue
        problem = email_problem(a.email)
        if problem:
            plan.fail.append((a, problem, "email"))
            continue
        key = email_key(a.email)
        owner = owners.get(key)
        if owner is not None and owner != a.number:
            reason = f"e-mail address {a.email} is also used by ERP address {account_label(owner)}"
            plan.fail.append((a, reason, "email-duplicate"))
            continue
        owners[key] = a.number
        acted = False
        if link is None or force or link.fingerprint != address_fingerprint(a):
            plan.push.append(a)
            acted = True
        if link is not None and not link.shop_active and not a.blocked:
            plan.reactivate.append((a, link))
            acted = True
        if link is not None and link.shop_active and a.blocked and settings.deactivate_blocked:
            plan.deactivate.append((a, link))  # blocked, but transferred: skip_blocked is off
            acted = True
        if not acted:
            plan.unchanged.append(a)
    return plan


# ---------------------------------------------------------------------------------------- doing it
def load_links(uow: UnitOfWork, platform: str,
               addresses: Sequence[ErpAddress]) -> tuple[dict[int, Link], dict[str, int]]:
    """The batch's links, and which ERP number owns each of the batch's e-mails on ``platform``."""
    links = uow.links.get_many(platform, [a.number for a in addresses])
    owners = uow.links.email_owners(platform, {email_key(a.email) for a in addresses if a.email})
    return links, owners


def _personal(links: Mapping[int, Link]) -> dict[int, Link]:
    """The collective address never owns an account: its links are none of the push's business."""
    return {n: lk for n, lk in links.items() if lk.kind != LinkKind.COLLECTIVE}


def apply_batch(ctx: PlatformContext, addresses: Sequence[ErpAddress], report: CycleReport, *,
                credentials: bool, force: bool = False) -> Plan:
    """Carry out the plan of one batch. Transient shop faults escape after the retry budget so
    the cycle stops before its cursor moves past this batch.

    State work runs in units of work that never span a shop call (on SQLite a unit holds the
    write lock): one for the plan's own records, then the shop push (whose write-ahead create
    intents the connector commits through ``_PlatformIntents``), then one for its outcome."""
    name = ctx.platform.name
    with ctx.uow() as uow:
        # Erased on request (`syncd accounts erase`): never pushed again while the row exists.
        erased = uow.tombstones.among(name, [a.number for a in addresses])
        if erased:
            addresses = [a for a in addresses if a.number not in erased]
        links, owners = load_links(uow, name, addresses)
        plan = plan_batch(addresses, links, owners, ctx.platform.addresses, force=force)
        # A reconciliation re-checks failed records daily: the same refusal again is no new event.
        known = uow.failures.reasons(name, DIRECTION, [a.number for a, _r, _c in plan.fail]) \
            if plan.fail else {}
        for a, reason, code in plan.fail:
            uow.failures.record(name, DIRECTION, a.number, "validate", reason, code,
                                fingerprint=row_fingerprint(a))
        uow.history.record_many(name, [(a.number, HistoryEvent.REJECTED, f"not transferred: {reason}", None)
                                       for a, reason, _code in plan.fail
                                       if known.get(str(a.number)) != redact(reason)])
        for a, _reason in plan.skip:
            old = _personal(links).get(a.number)
            if old is not None and not old.erp_blocked and a.blocked:
                uow.links.set_state(name, a.number, erp_blocked=True)
        if plan.fail or plan.skip:
            uow.commit()

    for number in sorted(erased):
        report.add(number, "skipped", "erased on request (syncd accounts erase)")
    for a, reason, _code in plan.fail:
        report.add(a.number, "failed", reason)
        log.warning("address not transferred", platform=name, address=a.number, step="validate",
                    reason=reason)
    for a, reason in plan.skip:
        report.add(a.number, "skipped", reason)
    for a in plan.unchanged:
        report.add(a.number, "unchanged")

    if plan.push:
        known = {n: lk.shop_id for n, lk in _personal(links).items()}
        results = ctx.shop.push(holding(ctx, plan.push, known), known,
                                claims=lambda ids: linked_numbers(ctx, ids), intents=_PlatformIntents(ctx))
        checkpoint("after_push")
        _record_pushes(ctx, plan.push, results, links, report, credentials=credentials)

    if plan.marked:
        erasure.apply_marks(ctx, plan.marked, report)
    if plan.deactivate:
        set_active(ctx, plan.deactivate, False, report, credentials=False)
    if plan.reactivate:
        set_active(ctx, not_held(ctx, plan.reactivate, report), True, report, credentials=credentials)
    write_shop_ids(ctx, addresses, report)
    return plan


def write_shop_ids(ctx: PlatformContext, addresses: Sequence[ErpAddress], report: CycleReport) -> None:
    """The shop id of each linked account into the ERP's ``shop_id`` column (büro+ WShopID), as
    imports already do, when the row does not hold it yet: an ERP user (and a büro+ bridge) sees
    which shop customer an address is. Runs after the links are stored, and again for any
    address of a later batch whose row still lacks it, so a failed write heals itself."""
    column = platform_columns(ctx.settings, ctx.platform.name).get("shop_id")
    if not column:
        return
    # A contact account (number < 0) has no row of its own: the company's id stays in it.
    rows = [a for a in addresses if column in a.row and a.number > 0]
    if not rows:
        return
    name = ctx.platform.name
    with ctx.uow() as uow:
        links = _personal(uow.links.get_many(name, [a.number for a in rows]))
    wanted = {a.number: links[a.number].shop_id for a in rows
              if a.number in links and str(a.row.get(column) or "").strip() != links[a.number].shop_id}
    if not wanted:
        return
    try:
        gone = ctx.erp.write_shop_ids(wanted) or set()
    except PermanentError as exc:  # e.g. a column too short for the id: every row would refuse it
        log.warning("shop id not written to the ERP", platform=name, step="write-shop-id", reason=str(exc))
        return
    # A row deleted since the scan has no place for the id (the reconciliation reports its link).
    # No history event: the id goes with the created/adopted/linked event of its account.
    wanted = {n: sid for n, sid in wanted.items() if n not in gone}
    log.info("shop ids written to the ERP", platform=name, step="write-shop-id", count=len(wanted))


def linked_numbers(ctx: PlatformContext, shop_ids: Iterable[str]) -> dict[str, int]:
    """shop id -> the ERP number it is linked to on this platform (collective links aside: the
    collective address never owns an account)."""
    with ctx.uow() as uow:
        found = uow.links.get_by_shops(ctx.platform.name, shop_ids)
    return {sid: lk.erp_number for sid, lk in found.items() if lk.kind != LinkKind.COLLECTIVE}


class _PlatformIntents:
    """The state store's create intents of one platform, as the shop connector asks for them.
    Each call is a unit of its own: ``record`` must be committed before the create request."""

    def __init__(self, ctx: PlatformContext) -> None:
        self.platform = ctx.platform.name
        self.uow = ctx.uow

    def pending(self, numbers: Iterable[int]) -> set[int]:
        with self.uow() as uow:
            return uow.intents.pending(self.platform, numbers)

    def record(self, creates: Sequence[tuple[int, str]]) -> None:
        if not creates:
            return
        with self.uow() as uow:
            uow.intents.record(self.platform, creates)
            uow.commit()

    def recovering(self) -> bool:
        """True while no ERP scan has completed for the platform with this state store (a fresh,
        lost or replaced store): accounts the shop holds may lack their links. A connector whose
        look-ups cannot find an account by the ERP number (WooCommerce: no meta search) reads
        its whole customer list once then; the scan's cursor (``erp_to_shop.CURSOR``) ends it."""
        with self.uow() as uow:
            return uow.cursors.get(self.platform, "erp-to-shop") is None


def _is_new(result: PushResult, had_link: bool) -> bool:
    """Created by syncd: a fresh account, or our own account from a run that crashed before it
    recorded the link (the connector flags it in ``PushResult.detail``)."""
    if result.outcome == PushOutcome.CREATED:
        return True
    return not had_link and result.detail == RECOVERED_CREATE


def push_action(result: PushResult, old: Link | None) -> tuple[str, bool]:
    """(report action, whether the account is new: linked kind ``erp`` and mailed) of one push
    result for an address whose link was ``old``. One rule for the real run and its dry run,
    so the dry run names what the run will do."""
    if result.outcome == PushOutcome.REJECTED or not result.shop_id:
        return ("deferred" if result.code in CONFIG_CODES else "failed"), False
    had_link = old is not None and old.kind != LinkKind.COLLECTIVE
    new = _is_new(result, had_link)
    if result.outcome == PushOutcome.ADOPTED and not had_link:
        return "adopted", new
    return ("created" if new else ("linked" if not had_link else str(result.outcome))), new


def _record_pushes(ctx: PlatformContext, pushed: Sequence[ErpAddress], results: Sequence[PushResult],
                   links: Mapping[int, Link], report: CycleReport, *, credentials: bool) -> None:
    name = ctx.platform.name
    by_number = {a.number: a for a in pushed}
    failed: list[tuple[ErpAddress, str, str | None]] = []
    events: list[tuple[int, HistoryEvent, str | None, str | None]] = []
    new_links: list[Link] = []
    stale_links: list[str] = []  # shop ids of linked accounts the shop replaced (deleted there)
    new_jobs: list[tuple[ErpAddress, str]] = []
    ok: list[int] = []
    actions: list[tuple[int, str, str]] = []
    refused: list[PushResult] = []
    for r in results:
        a = by_number.get(r.number)
        if a is None:  # pragma: no cover - a connector answering for an address it was not given
            continue
        if r.outcome == PushOutcome.REJECTED or not r.shop_id:
            reason = r.reason or "the shop rejected the address"
            failed.append((a, reason, r.code))
            refused.append(r)
            if r.code in CONFIG_CODES:
                # Not the record's fault: it is pushed again each cycle (see erp_to_shop) and the
                # cycle is not ok until the operator adds the target or changes the mapping.
                report.config_fault(f"platforms[{name}]: mapping target missing in the shop: {reason}")
                actions.append((a.number, "deferred", reason))
            else:
                actions.append((a.number, "failed", reason))
            continue
        old = links.get(a.number)
        had_link = old is not None and old.kind != LinkKind.COLLECTIVE
        action, new = push_action(r, old)
        if had_link and old.shop_id != r.shop_id:
            stale_links.append(old.shop_id)
        # An adopted account (lost or new state store) is linked like one the customer made:
        # kind "email", so no later step ever mails it a new password (I4).
        kind = LinkKind.ERP if new else (old.kind if had_link else LinkKind.EMAIL)
        new_links.append(Link(
            platform=name, shop_id=r.shop_id, erp_number=a.number, kind=kind,
            email=(a.email or "").strip() or None, erp_blocked=a.blocked,
            shop_active=old.shop_active if had_link else True,
            # A recovered create is written like a create (an intent guards it, see
            # syncd.connectors.shopware6.push): it holds the address as it is now.
            fingerprint=address_fingerprint(a),
        ))
        if new and credentials and not a.blocked:
            new_jobs.append((a, r.shop_id))
        actions.append((a.number, action, r.shop_id))
        ok.append(a.number)
        event = _push_event(action, a)
        if event is not None:
            events.append((a.number, *event, r.shop_id))
    # One unit: a link and the credential job of its new account are stored together or not at
    # all (I1), and the create intent goes with them; a crash before the commit leaves the
    # intent, so the replay's push recovers the account as ours and mails it.
    with ctx.uow() as uow:
        # A mapping target missing in the shop fails the same addresses every cycle until fixed:
        # their history says so once, not once per cycle.
        # The same refusal again (a daily reconciliation re-checks failed records) is no new event.
        known = uow.failures.reasons(name, DIRECTION, [a.number for a, _r, _c in failed]) if failed else {}
        for a, reason, code in failed:
            uow.failures.record(name, DIRECTION, a.number, "push", reason, code,
                                fingerprint=row_fingerprint(a))
            if known.get(str(a.number)) != redact(reason):
                events.append((a.number, HistoryEvent.REJECTED, f"shop refused: {reason}", None))
        for shop_id in stale_links:
            # One link per address: the account that replaced a deleted one takes its place.
            uow.links.delete(name, shop_id)
        uow.links.upsert_many(new_links)
        now, mode = uow.clock(), ctx.platform.addresses.credential_mode
        cut = golive.cutoff(ctx, uow.cursors) if new_jobs else None
        held: list[tuple[int, HistoryEvent, str | None, str | None]] = []
        for a, shop_id in new_jobs:
            # An existing customer's account (ERP row older than send_credentials_since) gets
            # its job held: no mail until an operator sends it (syncd.flows.golive).
            old_row = golive.is_old(a, cut)
            job = uow.jobs.create(platform=name, erp_number=a.number, shop_id=shop_id,
                                  email=(a.email or "").strip(), now=now, mode=mode,
                                  held=steps.GO_LIVE if old_row else None)
            if old_row and job is not None:
                held.append((a.number, HistoryEvent.MAIL_HELD, "ERP row older than send_credentials_since",
                             shop_id))
        events.extend(held)  # after the account's own event: created, then mail held
        # Every answered address: linked (with its job), or its create refused by the shop. An
        # account of ours whose recovering write was refused keeps its intent: it still exists.
        uow.intents.settle(name, [r.number for r in results
                                  if r.outcome != PushOutcome.REJECTED or r.detail != RECOVERED_CREATE])
        uow.failures.clear_many(name, DIRECTION, ok)
        uow.history.record_many(name, events)
        uow.commit()
    checkpoint("after_link")
    held_numbers = {n for n, *_ in held}
    created = [n for n, act, _ in actions if act == "created"]
    erpstatus.write(ctx, {n: {"account_state": erpstatus.HELD if n in held_numbers else erpstatus.CREATED}
                          for n in created})
    for number, action, detail in actions:
        report.add(number, action, detail)
        if action not in ("failed", "deferred"):
            log.info("address pushed", platform=name, address=number, step="push", outcome=action)
    for r in refused:
        # The operator has to act on these (fix the ERP row or the shop's setup): a warning
        # with the shop's own words and the field it named, not an info line without either.
        log.warning("address rejected by the shop", platform=name, address=r.number, step="push",
                    reason=r.reason or "the shop rejected the address", field=r.field, code=r.code,
                    outcome="deferred" if r.code in CONFIG_CODES else "failed")


def _push_event(action: str, a: ErpAddress) -> tuple[HistoryEvent, str] | None:
    """The history event of one push outcome (``_record_pushes``' action), with its reason."""
    email = (a.email or "").strip()
    if action == "created":
        return HistoryEvent.CREATED, f"shop account created for {email}"
    if action == "adopted":
        return HistoryEvent.ADOPTED, "an existing shop account of this address was linked again (no mail)"
    if action == "linked":
        return HistoryEvent.ADOPTED, f"linked to the account the customer made in the shop with {email}"
    if action == str(PushOutcome.UNCHANGED):
        return None
    if action == str(PushOutcome.UPDATED):
        return HistoryEvent.PUSHED, "shop account updated from the ERP address"
    return HistoryEvent.PUSHED, f"shop account updated from the ERP address ({action})"

"""Activating and deactivating linked shop accounts: an address blocked or unblocked in the ERP,
one no longer marked for the shop, and the accounts an approval holds inactive."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace

import structlog

from syncd.core.domain import ErpAddress
from syncd.core.errors import PermanentError
from syncd.core.rules import HistoryEvent, LinkKind, email_problem
from syncd.flows import erpstatus
from syncd.flows.context import CycleReport, PlatformContext
from syncd.flows.failures import DIRECTION
from syncd.flows.fingerprints import row_fingerprint
from syncd.state.links import Link
from syncd.state.uow import UnitOfWork

log = structlog.get_logger("syncd.flows.push_addresses")  # the events it logs were the push's

NOT_FOR_SHOP = "not marked for the shop (shop flag)"


def holding(ctx: PlatformContext, addresses: list[ErpAddress], known: Mapping[int, str]
             ) -> list[ErpAddress]:
    """The addresses to push, those whose account an approval holds inactive marked blocked for
    the push only: the mapping writes ``active`` = not blocked, and a pushed ERP change must not
    activate a rejected account. (Blocked is no part of the fingerprint; links record the ERP's.)"""
    ids = {known[a.number] for a in addresses if a.number in known}
    if not ids:
        return addresses
    with ctx.uow() as uow:
        held = uow.approvals.held(ctx.platform.name, ids)
    return [replace(a, blocked=True) if known.get(a.number) in held else a for a in addresses]


def not_held(ctx: PlatformContext, pairs: list[tuple[ErpAddress, Link]], report: CycleReport
              ) -> list[tuple[ErpAddress, Link]]:
    """Reactivations minus the accounts an approval keeps inactive (in progress, or rejected by
    an operator: ``syncd accounts approve`` is what activates them)."""
    with ctx.uow() as uow:
        held = uow.approvals.held(ctx.platform.name, [lk.shop_id for _, lk in pairs])
    for a, _ in (p for p in pairs if p[1].shop_id in held):
        report.add(a.number, "skipped", "kept inactive: the account is not approved (syncd accounts approve)")
    return [p for p in pairs if p[1].shop_id not in held]


def blocked_event(ctx: PlatformContext, uow: UnitOfWork, a: ErpAddress) -> None:
    """The address became blocked and its account was deactivated: the ``blocked`` event, in the
    unit that records the deactivation, so a replayed cycle (which finds the link inactive) never
    raises it twice. The ERP change stamp names the occurrence: blocked again later is a new one."""
    from syncd.flows.messages.routing import Occurrence, notify  # not the package: no import circle

    stamp = a.modified_at.isoformat() if a.modified_at is not None else uow.clock().isoformat()
    uow.history.record(ctx.platform.name, a.number, HistoryEvent.BLOCKED, reason="ERP address blocked")
    notify(ctx, Occurrence(event="blocked", key=f"{a.number}:{stamp}", erp_number=a.number,
                           group=a.customer_group, email=a.email), uow=uow)


def set_active(ctx: PlatformContext, pairs: Iterable[tuple[ErpAddress, Link]], active: bool,
                report: CycleReport, *, credentials: bool) -> None:
    pairs = list(pairs)
    name = ctx.platform.name
    try:
        errors = ctx.shop.set_active([lk.shop_id for _, lk in pairs], active)
    except PermanentError as exc:
        errors = {lk.shop_id: str(exc) for _, lk in pairs}
    action = "reactivated" if active else "deactivated"
    done: list[tuple[ErpAddress, Link, str | None]] = []
    with ctx.uow() as uow:
        for a, lk in pairs:
            reason = (errors or {}).get(lk.shop_id)
            if reason:
                uow.failures.record(name, DIRECTION, a.number, action[:-1], reason,
                                    fingerprint=row_fingerprint(a))
                uow.history.record(name, a.number, HistoryEvent.REJECTED, shop_id=lk.shop_id,
                                   reason=f"shop refused to {action[:-1]} the account: {reason}")
                done.append((a, lk, reason))
                continue
            uow.links.set_state(name, a.number, erp_blocked=a.blocked, shop_active=active)
            if not active and a.blocked:  # the event first: the deactivation is what it led to
                blocked_event(ctx, uow, a)
            uow.history.record(name, a.number,
                               HistoryEvent.DEACTIVATED if not active else HistoryEvent.REACTIVATED,
                               reason="blocked in the ERP" if not active else "no longer blocked in the ERP",
                               shop_id=lk.shop_id)
            # An account syncd created while the address was blocked never got its mail: the
            # customer gets it now that the address is usable.
            if active and credentials and lk.kind == LinkKind.ERP and not uow.jobs.ever_had(name, a.number) \
                    and email_problem(a.email) is None:
                uow.jobs.create(platform=name, erp_number=a.number, shop_id=lk.shop_id,
                                email=(a.email or "").strip(), now=uow.clock(),
                                mode=ctx.platform.addresses.credential_mode)
            done.append((a, lk, None))
        uow.commit()
    erpstatus.states(ctx, [a.number for a, _, reason in done if not reason],
                     erpstatus.ACTIVE if active else erpstatus.DEACTIVATED)
    unflagged = [(a.number, HistoryEvent.DEACTIVATED, NOT_FOR_SHOP, lk.shop_id)
                 for a, lk, reason in done if not reason and not active and a.for_shop is False]
    if unflagged:
        with ctx.uow() as uow:
            uow.history.record_many(name, unflagged)
            uow.commit()
    for a, lk, reason in done:
        if reason:
            report.add(a.number, "failed", reason)
            log.warning("account not " + action + ": the shop refused it", platform=name,
                        address=a.number, step=action, reason=reason)
            continue
        report.add(a.number, action, NOT_FOR_SHOP if a.for_shop is False and not active else lk.shop_id)
        log.info("account " + action, platform=name, address=a.number, step=action)

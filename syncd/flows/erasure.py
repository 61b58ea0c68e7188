"""Erasure: ERP addresses that are gone (``platforms[].addresses.on_erp_delete``) and an erasure on
request (`syncd accounts erase ADDRESS`, a GDPR request).

Deletion is detected by the reconciliation (``syncd.flows.reconcile``, `syncd sync --full` and
the daemon every ``[daemon] reconcile_interval``): a link whose ERP row no longer exists. A
change scan cannot see it (a deleted row has no change stamp). A row *marked* for deletion
(``[erp] deletion_mark``) is a change like any other: the change scan finds it (O(changes)) and
``apply_marks`` treats it as deleted, once; clearing the mark makes the row usable again (a
deactivated account is reactivated like an unblocked one; a deleted one is created anew).
``on_erp_delete``:
``deactivate`` sets the account inactive, ``delete`` deletes it in the shop and removes the
link, ``ignore`` reports it only; unset, the reconciliation deactivates when
``deactivate_blocked`` is on (the behaviour before the key existed).

``erase`` removes the shop account, the link, the credential jobs, the event messages (but one
being sent), the failures, the create intent and the history of one address, and leaves a
tombstone (number and time only) so that the ERP -> shop flow does not create the account again
while the ERP row exists. Erasing a
company erases its contact persons' accounts with it (each one as above, each with its
tombstone) and its main-contact record: a GDPR request about a company covers the people
syncd knows through it, and a contact added later is not given an account either
(``contacts.follow`` skips a tombstoned company). `accounts erase 10001-2` erases one contact.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from syncd.core.domain import ErpAddress
from syncd.core.errors import PermanentError
from syncd.core.rules import HistoryEvent, LinkKind, account_label
from syncd.flows import erpstatus
from syncd.flows.context import CycleReport, PlatformContext
from syncd.flows.failures import DIRECTION, MAIL_DIRECTION
from syncd.state.cursors import MAIN_CONTACT as MAIN
from syncd.state.links import Link
from syncd.state.shop_changes import ReportedShopChanges

log = structlog.get_logger("syncd.flows.erasure")


def mode(ctx: PlatformContext) -> str:
    a = ctx.platform.addresses
    return a.on_erp_delete or ("deactivate" if a.deactivate_blocked else "ignore")


MARKED = "marked for deletion in the ERP ([erp] deletion_mark)"
# The events that say what became of an account (not logins, mails ...): after one of them a
# new marking is a new occurrence.
_LIFE = frozenset({HistoryEvent.ERP_DELETED, HistoryEvent.PUSHED, HistoryEvent.CREATED, HistoryEvent.ADOPTED,
                   HistoryEvent.REACTIVATED, HistoryEvent.DEACTIVATED})


def delete_accounts(ctx: PlatformContext, links: Sequence[Link], report: CycleReport, *,
                    why: str = "the ERP address was deleted") -> None:
    """``on_erp_delete = "delete"``: the accounts of vanished ERP addresses are deleted."""
    name = ctx.platform.name
    errors = {lk.shop_id: _delete(ctx, lk.shop_id) for lk in links}
    with ctx.uow() as uow:
        for lk in links:
            reason = errors.get(lk.shop_id)
            if reason:
                uow.failures.record(name, DIRECTION, lk.erp_number, "delete", reason)
                continue
            uow.links.delete(name, lk.shop_id)
            uow.history.record(name, lk.erp_number, HistoryEvent.DELETED, shop_id=lk.shop_id,
                               reason=f"{why} (on_erp_delete = delete)")
        uow.commit()
    for lk in links:
        reason = errors.get(lk.shop_id)
        report.add(lk.erp_number, "failed" if reason else "deleted", reason or lk.shop_id)
        log.info("account deleted" if not reason else "account not deleted", platform=name,
                 address=lk.erp_number, step="delete", reason=reason)


def _delete(ctx: PlatformContext, shop_id: str) -> str | None:
    """Delete one account in the shop (gone already counts as deleted); the shop's reason when
    it refuses. A transient fault propagates: the cycle or the operator tries again."""
    try:
        ctx.shop.delete_customer(shop_id)
    except PermanentError as exc:
        return str(exc)
    return None


def apply_marks(ctx: PlatformContext, pairs: Sequence[tuple[ErpAddress, Link | None]],
                report: CycleReport) -> None:
    """Addresses marked for deletion, with their links: ``on_erp_delete`` once per marking. An
    address without an account gets none; ``deactivate`` skips an account already inactive,
    ``delete`` leaves no link to act on twice, ``ignore`` records the marking once."""
    name, how = ctx.platform.name, mode(ctx)
    linked = [(a, lk) for a, lk in pairs if lk is not None and lk.kind != LinkKind.COLLECTIVE]
    for a, lk in pairs:
        if lk is None or lk.kind == LinkKind.COLLECTIVE:
            report.add(a.number, "skipped", f"{MARKED}: no shop account, none is created")
    if how == "delete":
        delete_accounts(ctx, [lk for _, lk in linked], report, why=MARKED)
        return
    with ctx.uow() as uow:  # ignore: recorded unless the newest event of the account's life is it
        newest = {a.number: [e.event for e in uow.history.of_address(a.number, name) if e.event in _LIFE][-1:]
                  for a, _ in linked}
    act = [(a, lk) for a, lk in linked if lk.shop_active] if how == "deactivate" else \
        [(a, lk) for a, lk in linked if newest[a.number] != [HistoryEvent.ERP_DELETED]]
    for a, lk in linked:
        if (a, lk) not in act:
            report.add(a.number, "skipped", f"{MARKED}: already applied (on_erp_delete = {how})")
    if not act:
        return
    errors: dict[str, str | None] = {}
    if how == "deactivate":
        try:
            errors = ctx.shop.set_active([lk.shop_id for _, lk in act], False) or {}
        except PermanentError as exc:
            errors = {lk.shop_id: str(exc) for _, lk in act}
    done = [(a, lk) for a, lk in act if not errors.get(lk.shop_id)]
    what = "account deactivated" if how == "deactivate" else "account left as it is"
    with ctx.uow() as uow:
        for a, lk in act:
            if errors.get(lk.shop_id):
                uow.failures.record(name, DIRECTION, a.number, "deactivate", str(errors[lk.shop_id]))
        for a, lk in done:
            if how == "deactivate":
                uow.links.set_state(name, a.number, shop_active=False)
            uow.history.record(name, a.number, HistoryEvent.ERP_DELETED, shop_id=lk.shop_id,
                               reason=f"{MARKED}: {what} (on_erp_delete = {how})")
        uow.commit()
    if how == "deactivate":
        erpstatus.states(ctx, [a.number for a, _ in done], erpstatus.DEACTIVATED)
    for a, lk in act:
        problem = errors.get(lk.shop_id)
        report.add(a.number, "failed" if problem else ("deactivated" if how == "deactivate" else "skipped"),
                   problem or f"{MARKED}: {what}")
        log.info("address marked for deletion", platform=name, address=a.number, step="erp-delete",
                 on_erp_delete=how, reason=problem)


def erase(ctx: PlatformContext, number: int) -> tuple[str, str]:
    """Erase one address's account and syncd's record of it, a company's with its contact
    persons' accounts; (action, detail)."""
    contacts = _contact_keys(ctx, number) if number > 0 else []
    for key in contacts:  # first: a refusal leaves the company's account for a second try
        action, detail = _erase_one(ctx, key)
        if action == "failed":
            return "failed", f"contact {account_label(key)}: {detail}"
    action, detail = _erase_one(ctx, number)
    if action == "erased" and number > 0:  # its main contact too (kept for the events, any accounts_per)
        with ctx.uow() as uow:
            uow.cursors.delete(ctx.platform.name, MAIN + str(number))
            uow.commit()
    if action == "erased" and contacts:
        detail += "; its contact persons too: " + ", ".join(account_label(k) for k in contacts)
    return action, detail


def _contact_keys(ctx: PlatformContext, number: int) -> list[int]:
    """Every contact account of address ``number`` syncd knows: linked, in the history, or in
    the ERP now (a contact not yet pushed gets its tombstone too)."""
    name = ctx.platform.name
    with ctx.uow() as uow:
        keys = {lk.erp_number for lk in uow.links.of_contacts(name, number)}
        events = uow.history.of_address(number, name, contacts=True)
    keys |= {e.erp_number for e in events if e.erp_number < 0}
    company = ctx.erp.get_address(number) if getattr(ctx.erp, "contacts", None) is not None else None
    if company is not None:
        keys |= {c.number for c in ctx.erp.contact_addresses([company]).get(number, [])}
    return sorted(keys, reverse=True)  # 10001-1, 10001-2, ...


def _erase_one(ctx: PlatformContext, number: int) -> tuple[str, str]:
    name = ctx.platform.name
    with ctx.uow() as uow:
        link = uow.links.get_by_erp(name, number)
    if link is not None and link.kind == LinkKind.COLLECTIVE:
        return "failed", "is the collective address, not one customer's account"
    if link is not None:
        problem = _delete(ctx, link.shop_id)
        if problem:
            return "failed", f"shop refused to delete the account: {problem}"
    if ctx.platform.addresses.password_field and number > 0:  # a contact account has no ERP field
        ctx.erp.clear_password_fields([number])  # a password in flight must not outlive the account
    with ctx.uow() as uow:
        if link is not None:
            uow.links.delete(name, link.shop_id)
        uow.jobs.forget(name, number)
        uow.messages.forget(name, number)  # event mails keep the recipient and names
        uow.failures.clear(name, DIRECTION, number)
        uow.failures.clear(name, MAIL_DIRECTION, number)
        uow.intents.settle(name, [number])
        uow.tombstones.add(name, number, uow.clock())
        uow.tombstones.forget_traces(name, number)
        ReportedShopChanges(uow.cursors, name).drop(number)  # the shop edits reported: old and new values
        uow.commit()
    with ctx.uow() as uow:  # its own unit: History writes through its own transaction
        uow.history.forget(name, number)
        uow.commit()
    log.info("address erased on request", platform=name, address=number, step="erase")
    return "erased", link.shop_id if link is not None else "no shop account was linked"

"""Approval states of shop accounts (``platforms[].addresses.approval``) and their event mails.

* ``detect``: open customer-group requests in the shop (Shopware ``requestedGroupId``: the
  customer registered through a group's registration page) become ``in-progress`` with an
  ``access_requested`` event; with ``approval = "auto"`` they are approved at once. With
  ``"manual"`` also accounts customers register themselves are deactivated and wait
  (``_registrations``).
* ``decide``: ``syncd accounts approve|reject``: the decision is applied in the shop first
  (accept/decline the group request, activate/deactivate the account), then recorded with its
  ``approved``/``rejected`` event in one unit of work. A crash between the two leaves the old
  state, and running the verb again repeats an idempotent shop call (``silentError``) and
  records it: one mail per decision, never two (the dedup key is the decision's time).

Detection runs in the erp-to-shop cycle when it has anything to do (``wanted``): with
``approval = "manual"`` or a ``[[notifications]]`` table for an approval event. Otherwise group
requests stay with the shop's administration as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import structlog

from syncd.core.domain import ShopCustomer
from syncd.core.errors import PermanentError, SyncdError, TransientError
from syncd.core.rules import SHOP_CHANGE_OVERLAP, HistoryEvent, LinkKind
from syncd.flows.context import CycleReport, PlatformContext
from syncd.flows.messages import Occurrence, notify
from syncd.state.approvals import APPROVED, IN_PROGRESS, REJECTED, Approval

log = structlog.get_logger("syncd.flows.approvals")

EVENTS = ("access_requested", "approved", "rejected")
REGISTRATIONS = "approval_registrations"  # cursor: creation time of the newest account looked at


def wanted(ctx: PlatformContext) -> bool:
    if not hasattr(ctx.shop, "group_requests"):
        return False
    return ctx.platform.addresses.approval == "manual" or any(
        n.event in EVENTS and n.enabled for n in ctx.settings.notifications)


def _erp_side(ctx: PlatformContext, shop_id: str) -> tuple[int | None, str | None]:
    """The linked ERP number and its customer group (None, None for an unlinked account)."""
    with ctx.uow() as uow:
        link = uow.links.get_by_shop(ctx.platform.name, shop_id)
    if link is None or link.kind == "collective":
        return None, None
    try:
        address = ctx.erp.get_address(link.erp_number)
    except TransientError:
        address = None
    return link.erp_number, (address.customer_group if address is not None else None)


def _values(c: ShopCustomer) -> dict[str, object]:
    return {"first_name": c.first_name, "last_name": c.last_name, "company": c.company,
            "salutation": c.salutation, "requested_group": c.requested_group, "shop_id": c.id}


def detect(ctx: PlatformContext, report: CycleReport) -> None:
    """Record new group requests; approve them at once with ``approval = "auto"``."""
    if not wanted(ctx) or not hasattr(ctx.shop, "group_requests"):
        return  # WooCommerce has no group requests (approval = "manual" is refused there)
    name = ctx.platform.name
    auto = ctx.platform.addresses.approval == "auto"
    for c in ctx.shop.group_requests():  # type: ignore[attr-defined]
        number, group = _erp_side(ctx, c.id)
        with ctx.uow() as uow:
            before = uow.approvals.get(name, c.id)
            if before is not None and before.state == IN_PROGRESS:
                continue  # known and waiting for the operator (or the auto step below)
            stamp = (c.updated_at or c.created_at or uow.clock()).isoformat()
            uow.approvals.set_state(platform=name, shop_id=c.id, state=IN_PROGRESS, now=uow.clock(),
                                    erp_number=number, email=c.email, requested_group=c.requested_group)
            if number is not None:
                uow.history.record(name, number, HistoryEvent.ACCESS_REQUESTED, reason=c.requested_group,
                                   shop_id=c.id)
            notify(ctx, Occurrence(event="access_requested", key=f"{c.id}:{stamp}", erp_number=number,
                                   group=group, email=c.email, values=_values(c)), uow=uow)
            uow.commit()
        report.add(c.id, "access-requested", c.requested_group or "")
    if not auto:
        _registrations(ctx, report)
    if auto:
        # Also those a crash left in progress between the shop call and its record.
        for a in _approvals(ctx, IN_PROGRESS):
            outcome = _apply(ctx, a, approve=True, reason=None)
            report.add(a.shop_id, outcome.action, outcome.detail)


def _registrations(ctx: PlatformContext, report: CycleReport) -> None:
    """``approval = "manual"``: accounts customers made themselves in the shop since the last
    look (no group request; not created by syncd) are deactivated and wait in progress.

    The first look only notes the time: switching to "manual" must not hold every existing
    account. Each account is deactivated in the shop first, then recorded with its event; a
    crash in between finds it again (the cursor moves only at the end) and the repeat is
    harmless (deactivating twice, one dedup key per account)."""
    name = ctx.platform.name
    with ctx.uow() as uow:
        cursor = uow.cursors.get(name, REGISTRATIONS)
    first = cursor is None
    since = ctx.clock() if first else datetime.fromisoformat(cursor["since"])
    # Accounts already looked at within the overlap window (the shop's clock may lag ours).
    seen = set(() if first else cursor.get("seen", ()))
    newest = since
    window: dict[str, datetime] = {}
    for c in ctx.shop.customers_changed_since(since - SHOP_CHANGE_OVERLAP):
        if c.guest or c.created_at is None or c.created_at < since - SHOP_CHANGE_OVERLAP:
            continue  # an older account that was merely edited
        newest = max(newest, c.created_at)
        window[c.id] = c.created_at
        if first or c.id in seen or c.requested_group or not _customer_made(ctx, c):
            continue
        errors = ctx.shop.set_active([c.id], False) or {}
        if errors.get(c.id):
            report.add(c.id, "failed", f"could not hold the new account: {errors[c.id]}")
            continue
        number, group = _erp_side(ctx, c.id)
        with ctx.uow() as uow:
            uow.approvals.set_state(platform=name, shop_id=c.id, state=IN_PROGRESS, now=uow.clock(),
                                    erp_number=number, email=c.email)
            if number is not None:
                uow.links.set_state(name, number, shop_active=False)
                uow.history.record(name, number, HistoryEvent.ACCESS_REQUESTED, reason="registered",
                                   shop_id=c.id)
            notify(ctx, Occurrence(event="access_requested", key=f"{c.id}:registered", erp_number=number,
                                   group=group, email=c.email, values=_values(c)), uow=uow)
            uow.commit()
        report.add(c.id, "access-requested", "registered in the shop")
    keep = sorted(i for i, t in window.items() if t >= newest - SHOP_CHANGE_OVERLAP)
    with ctx.uow() as uow:
        uow.cursors.set(name, REGISTRATIONS, {"since": newest.isoformat(), "seen": keep})
        uow.commit()


def _customer_made(ctx: PlatformContext, c: ShopCustomer) -> bool:
    """Whether the customer made the account (storefront registration) rather than syncd (a link
    of its own, or a create intent still open after a crash) or an earlier decision."""
    name = ctx.platform.name
    with ctx.uow() as uow:
        if uow.approvals.get(name, c.id) is not None:
            return False
        link = uow.links.get_by_shop(name, c.id)
        if link is not None:
            return link.kind == LinkKind.IMPORT  # imported from the shop: the customer's own
        number = (c.customer_number or "").strip()
        return not (number.isdigit() and uow.intents.pending(name, [int(number)]))


def _approvals(ctx: PlatformContext, state: str) -> list[Approval]:
    with ctx.uow() as uow:
        return uow.approvals.of_state(ctx.platform.name, state)


@dataclass(frozen=True)
class Decision:
    key: str
    action: str  # approved | rejected | unchanged | failed
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.action in (APPROVED, REJECTED, "unchanged")


class UnknownAccounts(SyncdError):
    def __init__(self, platform: str, keys: list[str]) -> None:
        self.keys = keys
        super().__init__(f"platform {platform!r}: no shop account known for {', '.join(keys)} "
                         "(an ERP address number with a link, or a shop customer id) / "
                         "kein Shop-Konto zu dieser Angabe bekannt")


def resolve(ctx: PlatformContext, keys: list[str]) -> list[Approval]:
    """Each key (ERP number or shop id) as its approval record; an account with none yet (linked,
    never requested) gets one built from its link. UnknownAccounts names every key without."""
    name = ctx.platform.name
    out: list[Approval] = []
    missing = []
    with ctx.uow() as uow:
        for key in keys:
            found = uow.approvals.find(name, key)
            if found is None:
                link = (uow.links.get_by_erp(name, int(key)) if key.isdigit()
                        else uow.links.get_by_shop(name, key))
                if link is not None and link.kind != "collective":
                    now = uow.clock()
                    found = Approval(name, link.shop_id, link.erp_number, link.email, APPROVED, None, None,
                                     now, now)
            if found is None:
                missing.append(key)
            else:
                out.append(found)
    if missing:
        raise UnknownAccounts(name, missing)
    return out


def decide(ctx: PlatformContext, keys: list[str], *, approve: bool, reason: str | None = None
           ) -> list[Decision]:
    """``syncd accounts approve|reject``: apply and record each decision, then send its mail.
    The caller holds the platform's erp-to-shop lease (the CLI: ``accounts.credential_lease``),
    under which alone messages are sent, as in a cycle."""
    from syncd.flows.messages import send_due

    records = resolve(ctx, keys)
    decisions = [_apply(ctx, a, approve=approve, reason=reason) for a in records]
    send_due(ctx, CycleReport(ctx.platform.name, "messages"))
    return [Decision(k, d.action, d.detail) for k, d in zip(keys, decisions, strict=True)]


def _apply(ctx: PlatformContext, a: Approval, *, approve: bool, reason: str | None) -> Decision:
    name = ctx.platform.name
    if a.state == (APPROVED if approve else REJECTED):
        # Not a change: no shop call, no mail (an operator repeating a command must not mail twice).
        return Decision(a.shop_id, "unchanged", f"already {a.state}")
    try:
        if a.requested_group or a.state == IN_PROGRESS:
            ctx.shop.decide_group_request([a.shop_id], approve)  # type: ignore[attr-defined]
        errors = ctx.shop.set_active([a.shop_id], approve) or {}
    except (PermanentError, TransientError) as exc:
        log.warning("approval not applied in the shop", platform=name, shop_id=a.shop_id, error=str(exc))
        return Decision(a.shop_id, "failed", f"shop: {exc}")
    if errors.get(a.shop_id):
        return Decision(a.shop_id, "failed", f"shop refused: {errors[a.shop_id]}")
    number, group = _erp_side(ctx, a.shop_id)
    number = number if number is not None else a.erp_number
    state = APPROVED if approve else REJECTED
    email = a.email
    if email is None and number is not None:
        with ctx.uow() as uow:
            link = uow.links.get_by_erp(name, number)
        email = link.email if link is not None else None
    values: dict[str, object] = {"shop_id": a.shop_id, "requested_group": a.requested_group}
    if number is None:  # no ERP row to render from: the shop's names
        try:
            customer = ctx.shop.get_customers([a.shop_id]).get(a.shop_id)
        except (PermanentError, TransientError):
            customer = None
        if customer is not None:
            values.update(_values(customer))
    if reason:
        values["reason"] = reason
    with ctx.uow() as uow:
        now = uow.clock()
        uow.approvals.set_state(platform=name, shop_id=a.shop_id, state=state, now=now, erp_number=number,
                                email=email, reason=reason)
        if number is not None:
            uow.links.set_state(name, number, shop_active=approve)
            event = HistoryEvent.APPROVED if approve else HistoryEvent.APPROVAL_REJECTED
            uow.history.record(name, number, event, reason=reason, shop_id=a.shop_id)
        notify(ctx, Occurrence(event=state, key=f"{a.shop_id}:{state}:{now.isoformat()}", erp_number=number,
                               group=group, email=email, values=values), uow=uow)
        uow.commit()
    log.info("account " + state, platform=name, shop_id=a.shop_id, address=number)
    return Decision(a.shop_id, state, email or "")

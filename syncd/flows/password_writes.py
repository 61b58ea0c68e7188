"""Own password through the account page, seen as it happens (the companion of
``recovery_watch``).

Shopware's "change password" writes the customer (``updatedAt`` moves) and keeps no other trace
the Admin API can read (shopware-notes §11). Afterwards such a write is soon hidden: the next
storefront login bumps ``updatedAt`` to ``lastLogin``. So each erp-to-shop cycle reads the linked
accounts written since its bookmark (cursor ``shop-writes``, moved back by
``SHOP_CHANGE_OVERLAP``; O(changes), the first cycle only sets the bookmark) and keeps, as a
``password_changed_in_shop`` history event, each write that

* is not a login (``updatedAt`` not at ``lastLogin``),
* is not syncd's own (after the link's last write and the account's credential job steps), and
* changed nothing syncd can see: the e-mail is the linked one and the shop account is in step
  with the ERP row (``ShopPort.compare``), so no profile edit explains it.

What is left is a write of a field the shop does not show: the password (or an Administration
edit of a field syncd does not compare, such as tags; README, limits).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

import structlog
from sqlalchemy import func, select

from syncd.core.rules import SHOP_CHANGE_OVERLAP, HistoryEvent, LinkKind, email_key
from syncd.flows.context import CycleReport, PlatformContext
from syncd.flows.password_status import SKEW
from syncd.flows.recovery_watch import evidence_of
from syncd.state.schema import credential_jobs

log = structlog.get_logger("syncd.flows.password_writes")

CURSOR = "shop-writes"


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def track(ctx: PlatformContext, report: CycleReport) -> int:
    changed_since = getattr(ctx.shop, "customers_changed_since", None)
    if changed_since is None:
        return 0
    name = ctx.platform.name
    with ctx.uow() as uow:
        stored = uow.cursors.get(name, CURSOR)
    if not stored or not stored.get("at"):  # never the whole customer table: from now on
        with ctx.uow() as uow:
            uow.cursors.set(name, CURSOR, {"at": ctx.clock().isoformat()})
            uow.commit()
        return 0
    rows = list(changed_since(datetime.fromisoformat(stored["at"]) - SHOP_CHANGE_OVERLAP))
    if not rows:
        return 0
    with ctx.uow() as uow:
        linked = uow.links.get_by_shops(name, [c.id for c in rows])
    jobs = _job_activity(ctx, [lk.erp_number for lk in linked.values()])
    candidates = []
    for c in rows:
        lk = linked.get(c.id)
        written, login = _utc(c.updated_at), _utc(c.last_login)
        if lk is None or lk.kind == LinkKind.COLLECTIVE or written is None:
            continue
        if login is not None and abs(written - login) <= SKEW:
            continue  # a login
        ours = [t for t in (_utc(lk.updated_at), jobs.get(lk.erp_number)) if t is not None]
        if ours and written <= max(ours) + SKEW:
            continue  # syncd's own write
        if email_key(c.email) != email_key(lk.email):
            continue  # an e-mail change explains it
        candidates.append((lk, written))
    fresh = _invisible(ctx, candidates)
    if fresh:
        with ctx.uow() as uow:
            uow.history.record_many(name, [
                (lk.erp_number, HistoryEvent.PASSWORD_CHANGED_IN_SHOP,
                 "the account was written in the shop with no visible change, not a login and not syncd "
                 f"(write at {at.isoformat()})", lk.shop_id) for lk, at in fresh])
            uow.commit()
        for lk, _at in fresh:
            report.add(lk.erp_number, "password-changed-in-shop")
        log.info("password changes in the shop recorded", platform=name, accounts=len(fresh))
    stamps = [_utc(c.updated_at) or _utc(c.created_at) for c in rows]
    newest = max((t for t in stamps if t is not None), default=None)
    if newest is not None:
        with ctx.uow() as uow:
            uow.cursors.set(name, CURSOR, {"at": newest.isoformat()})
            uow.commit()
    return len(fresh)


def _invisible(ctx: PlatformContext, candidates: list) -> list:  # noqa: ANN401 - (Link, datetime) pairs
    """The candidates whose shop account is in step with the ERP row and not recorded yet."""
    if not candidates:
        return []
    numbers = [lk.erp_number for lk, _ in candidates]
    addresses = ctx.erp.get_addresses(numbers)
    present = [addresses[n] for n in numbers if n in addresses]
    links = {lk.erp_number: lk.shop_id for lk, _ in candidates}
    differs = ctx.shop.compare(present, links) if present else {}
    known = {(n, at) for n, at in evidence_of(ctx.state, ctx.platform.name, numbers,
                                              HistoryEvent.PASSWORD_CHANGED_IN_SHOP)}
    return [(lk, at) for lk, at in candidates if lk.erp_number in addresses
            and lk.erp_number not in differs and (lk.erp_number, at) not in known]


def _job_activity(ctx: PlatformContext, numbers: Iterable[int]) -> dict[int, datetime]:
    """ERP number -> the last step of its credential jobs (the shop password syncd set)."""
    numbers = list(numbers)
    if not numbers:
        return {}
    t = credential_jobs
    q = (select(t.c.erp_number, func.max(t.c.updated_at))
         .where(t.c.platform == ctx.platform.name, t.c.erp_number.in_(numbers))
         .group_by(t.c.erp_number))
    with ctx.state.connect() as conn:
        return {int(n): _utc(at) for n, at in conn.execute(q) if at is not None}

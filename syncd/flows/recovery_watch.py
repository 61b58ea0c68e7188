"""Own password through the shop's "forgot password": seen as it happens, so the password status
does not have to guess afterwards.

Shopware keeps no password timestamp and never shows the hash. What it does keep, readable by the
Admin API, is the customer's open recovery (``customer_recovery``: created by the storefront's
"forgot password" request, deleted when the customer sets the new password with it, valid 2 h).
Each erp-to-shop cycle reads the recoveries created since its bookmark (cursor
``customer-recovery``, moved back by ``SHOP_CHANGE_OVERLAP``; a handful of rows, never the
customer table) and records, for a linked account, a ``recovery_requested`` history event naming
the row. syncd's own set-password links (link mode) are rows too, with ids syncd derives; they are
left out. ``evidence`` then gives `accounts list`/`export` the newest request per address: when it
came after syncd's newest mail and no recovery is open any more while the account was written
since, the customer set their own password with it (``password_status``), whether or not they
logged in afterwards.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

import structlog
from sqlalchemy import and_, select

from syncd.core.rules import SHOP_CHANGE_OVERLAP, HistoryEvent
from syncd.flows.context import CycleReport, PlatformContext
from syncd.state.db import StateStore
from syncd.state.schema import credential_jobs, history

log = structlog.get_logger("syncd.flows.recovery_watch")

CURSOR = "customer-recovery"
# "(recovery ROW at TIME)" of a request, "(write at TIME)" of a password write (password_writes)
_ROW = re.compile(r"\((?:recovery ([0-9A-Za-z]+) |write )at ([0-9T:+.\-]+)\)$")


def track(ctx: PlatformContext, report: CycleReport) -> int:
    """Record the customers' own recovery requests since the bookmark; returns how many."""
    since_fn = getattr(ctx.shop, "recoveries_since", None)
    if since_fn is None:
        return 0
    name = ctx.platform.name
    with ctx.uow() as uow:
        stored = uow.cursors.get(name, CURSOR)
    since = None
    if stored and stored.get("at"):
        since = datetime.fromisoformat(stored["at"]) - SHOP_CHANGE_OVERLAP
    rows = list(since_fn(since))
    if not rows:
        return 0
    with ctx.uow() as uow:
        linked = {sid: lk for sid, lk in uow.links.get_by_shops(name, {cid for _, cid, _ in rows}).items()}
    numbers = {lk.erp_number for lk in linked.values()}
    ours = _syncd_rows(ctx, numbers)
    seen = {rid for rid, _ in evidence_rows(ctx.state, name, numbers)}
    fresh = [(linked[cid].erp_number, rid, cid, at) for rid, cid, at in rows
             if cid in linked and rid not in ours and rid not in seen]
    with ctx.uow() as uow:
        uow.history.record_many(name, [
            (n, HistoryEvent.RECOVERY_REQUESTED, "the customer asked the shop for a new password "
             f"(recovery {rid} at {at.astimezone(UTC).isoformat()})", cid)
            for n, rid, cid, at in fresh])
        uow.cursors.set(name, CURSOR, {"at": max(at for _, _, at in rows).isoformat()})
        uow.commit()
    for n, _rid, _cid, _at in fresh:
        report.add(n, "recovery-requested")
    if fresh:
        log.info("customer recovery requests recorded", platform=name, accounts=len(fresh))
    return len(fresh)


def _syncd_rows(ctx: PlatformContext, numbers: Iterable[int]) -> set[str]:
    """The recovery row ids of syncd's own set-password links for these addresses (one row per
    link-mode job, its id derived from ``credentials.linkrun.link_key``: "<number>:<job id>")."""
    numbers = list(numbers)
    recovery_id = getattr(ctx.shop, "recovery_id", None)
    if not numbers or recovery_id is None:
        return set()
    t = credential_jobs
    q = select(t.c.erp_number, t.c.id).where(
        and_(t.c.platform == ctx.platform.name, t.c.erp_number.in_(numbers), t.c.mode == "link"))
    with ctx.state.connect() as conn:
        return {recovery_id(f"{n}:{job_id}") for n, job_id in conn.execute(q)}


def evidence_rows(store: StateStore, platform: str, numbers: Iterable[int]) -> list[tuple[str, int]]:
    """(recovery row id, ERP number) of every recorded request of these addresses."""
    return [(rid, n) for n, rid, _at in _events(store, platform, numbers, HistoryEvent.RECOVERY_REQUESTED)
            if rid]


def evidence_of(store: StateStore, platform: str, numbers: Iterable[int], event: HistoryEvent
                ) -> list[tuple[int, datetime]]:
    """(ERP number, time) of every recorded ``event`` of these addresses (its reason ends in
    "(... at TIME)")."""
    return [(n, at) for n, _rid, at in _events(store, platform, numbers, event)]


def _events(store: StateStore, platform: str, numbers: Iterable[int], event: HistoryEvent
            ) -> list[tuple[int, str | None, datetime]]:
    numbers = [int(n) for n in numbers]
    if not numbers:
        return []
    t = history
    q = (select(t.c.erp_number, t.c.reason)
         .where(t.c.platform == platform, t.c.event == str(event), t.c.erp_number.in_(numbers))
         .order_by(t.c.at, t.c.id))
    out = []
    with store.connect() as conn:
        for n, reason in conn.execute(q):
            found = _ROW.search(reason or "")
            if found:
                out.append((int(n), found.group(1), datetime.fromisoformat(found.group(2))))
    return out


def evidence(store: StateStore, platform: str, numbers: Iterable[int]) -> dict[int, datetime]:
    """ERP number -> when the customer last asked the shop for a new password (as recorded)."""
    out: dict[int, datetime] = {}
    for n, at in evidence_of(store, platform, numbers, HistoryEvent.RECOVERY_REQUESTED):
        out[n] = max(out.get(n, at), at)
    return out


def used_since(requested: Mapping[int, datetime], open_rows: Mapping[str, object],
               shop_ids: Mapping[int, str]) -> set[int]:
    """The numbers whose newest request is no longer open: no recovery of the customer is open
    now (Shopware deletes it when the new password is set with it)."""
    return {n for n in requested if shop_ids.get(n) not in open_rows}


def recovered(shop: object, store: StateStore, platform: str,
              wanted: Mapping[int, tuple[object, object, object, str]]) -> dict[int, datetime]:
    """Number -> the customer's own recovery request that is used: no recovery of the account is
    open in the shop any more. One shop look-up for a page's requests (``wanted``: number ->
    (..., shop id), as ``password_status.refine`` takes it)."""
    out: dict[int, datetime] = {}
    for n, at in evidence_of(store, platform, wanted, HistoryEvent.PASSWORD_CHANGED_IN_SHOP):
        out[n] = max(out.get(n, at), at)  # the account page's writes, seen by password_writes
    requested = evidence(store, platform, wanted)
    open_recoveries = getattr(shop, "open_recoveries", None)
    if not requested or open_recoveries is None:
        return out
    ids = {n: wanted[n][3] for n in requested}
    used = used_since(requested, open_recoveries(list(ids.values())), ids)
    for n, at in requested.items():
        if n in used:
            out[n] = max(out.get(n, at), at)
    return out


def writes_examined_until(store: StateStore, platform: str) -> datetime | None:
    """Up to when ``password_writes`` has looked at the shop's writes (its bookmark): a write up
    to then is classified by the evidence, only a newer one is left to the inference."""
    from syncd.state.cursors import Cursors

    stored = Cursors(store).get(platform, "shop-writes")  # password_writes.CURSOR
    return datetime.fromisoformat(stored["at"]) if stored and stored.get("at") else None

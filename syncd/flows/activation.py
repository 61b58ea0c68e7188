"""Activation tracking: did the customer use the account syncd mailed?

Each erp-to-shop cycle reads the shop's last-login times incrementally (Shopware ``lastLogin``,
written by every storefront login): the accounts logged in since the bookmark (cursor
``last-login``, moved back by ``rules.SHOP_CHANGE_OVERLAP`` like every shop bookmark). A linked
account whose login is newer than the one on record gets it recorded (``account_activity``) and
a ``logged_in`` history event, so `accounts list` and `history` show mailed -> logged in, and
the metric ``syncd_accounts_mailed_unused`` counts accounts mailed but never used.
"""

from __future__ import annotations

from itertools import islice

import structlog

from syncd.core.rules import SHOP_CHANGE_OVERLAP, HistoryEvent
from syncd.flows.context import CycleReport, PlatformContext
from syncd.state.activity import AccountActivity, Activity

log = structlog.get_logger("syncd.flows.activation")

CURSOR = "last-login"
PAGE = 200


def track(ctx: PlatformContext, report: CycleReport) -> int:
    """Record new logins; returns how many. A shop without ``logins_since`` is skipped."""
    logins_since = getattr(ctx.shop, "logins_since", None)
    if logins_since is None:
        return 0
    name = ctx.platform.name
    with ctx.uow() as uow:
        stored = uow.cursors.get(name, CURSOR)
    since = None
    if stored and stored.get("at"):
        from datetime import datetime

        since = datetime.fromisoformat(stored["at"]) - SHOP_CHANGE_OVERLAP
    repo = AccountActivity(ctx.state)
    newest = None
    found = 0
    stream = iter(logins_since(since))
    while page := list(islice(stream, PAGE)):
        page_newest = max(at for _, at in page)
        newest = page_newest if newest is None else max(newest, page_newest)
        ids = [sid for sid, _ in page]
        known = repo.get_many(name, ids)
        with ctx.uow() as uow:
            linked = uow.links.get_by_shops(name, ids)
        fresh: list[Activity] = []
        for sid, at in page:
            link = linked.get(sid)
            before = known.get(sid)
            if link is None or (before is not None and at <= before.last_login_at):
                continue
            fresh.append(Activity(sid, link.erp_number, before.first_login_at if before else at, at))
        # The activity first: a crash before the history event loses the event, never the login.
        repo.record(name, fresh)
        with ctx.uow() as uow:
            uow.history.record_many(name, [(a.erp_number, HistoryEvent.LOGGED_IN,
                                            a.last_login_at.isoformat(timespec="seconds"), a.shop_id)
                                           for a in fresh])
            uow.commit()
        for a in fresh:
            report.add(a.erp_number, "logged-in", a.last_login_at.isoformat(timespec="seconds"))
        found += len(fresh)
    if newest is not None:
        with ctx.uow() as uow:
            uow.cursors.set(name, CURSOR, {"at": newest.isoformat()})
            uow.commit()
    if found:
        log.info("logins recorded", platform=name, accounts=found)
    report.mailed_unused = repo.mailed_never_used(name)
    queue_reminders(ctx, report)
    from syncd.flows import password_writes, recovery_watch  # own passwords, read alike

    recovery_watch.track(ctx, report)
    password_writes.track(ctx, report)
    return found


def queue_reminders(ctx: PlatformContext, report: CycleReport) -> int:
    """``activation_reminder``: accounts mailed that long ago and never used get a credentials job
    (reason ``reminder``: a fresh password, the same layout, the same mail budget), at most
    ``activation_reminder_max`` times. Sent by the next run of the credential queue."""
    from datetime import timedelta

    from syncd.flows.credentials import enabled

    a = ctx.platform.addresses
    if not a.activation_reminder or not enabled(ctx):
        return 0
    name = ctx.platform.name
    now = ctx.clock()
    due = AccountActivity(ctx.state).reminder_due(
        name, mailed_before=now - timedelta(seconds=a.activation_reminder),
        max_reminders=a.activation_reminder_max)
    if not due:
        return 0
    with ctx.uow() as uow:
        queued = [(n, sid) for n, sid, email in due
                  if uow.jobs.create(platform=name, erp_number=n, shop_id=sid, email=email, now=now,
                                     reason="reminder") is not None]
        uow.history.record_many(name, [(n, HistoryEvent.REMINDER_QUEUED, "never logged in", sid)
                                       for n, sid in queued])
        uow.commit()
    for n, _sid in queued:
        report.add(n, "reminder-queued")
    return len(queued)

"""Activation tracking (``schema.account_activity``): when each linked shop account was first and
last logged in to, as the shop reports it (Shopware ``lastLogin``), for `accounts list`, the
"mailed but never used" metric and reminders."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, and_, exists, func, select

from syncd.state.db import StateStore, upsert
from syncd.state.jobs import DELIVERED
from syncd.state.schema import account_activity as t
from syncd.state.schema import credential_jobs, links


@dataclass(frozen=True)
class Activity:
    shop_id: str
    erp_number: int
    first_login_at: datetime
    last_login_at: datetime


class AccountActivity:
    def __init__(self, store: StateStore) -> None:
        self.store = store

    def get_many(self, platform: str, shop_ids: Iterable[str] | None = None) -> dict[str, Activity]:
        q = select(t).where(t.c.platform == platform)
        if shop_ids is not None:
            wanted = sorted(set(shop_ids))
            if not wanted:
                return {}
            q = q.where(t.c.shop_id.in_(wanted))
        with self.store.connect() as c:
            return {r.shop_id: Activity(r.shop_id, int(r.erp_number), r.first_login_at, r.last_login_at)
                    for r in c.execute(q)}

    def record(self, platform: str, rows: Iterable[Activity], *, conn: Connection | None = None) -> None:
        rows = list(rows)
        if not rows:
            return
        with self.store.write(conn) as c:
            for a in rows:
                upsert(c, t, {"platform": platform, "shop_id": a.shop_id, "erp_number": a.erp_number,
                              "first_login_at": a.first_login_at, "last_login_at": a.last_login_at},
                       keys=["platform", "shop_id"], update=["last_login_at", "erp_number"])

    def reminder_due(self, platform: str, *, mailed_before: datetime, max_reminders: int,
                     limit: int = 500) -> list[tuple[int, str, str | None]]:
        """(ERP number, shop id, e-mail) of accounts syncd created and mailed, whose newest mail
        went out before ``mailed_before``, never logged in to, with fewer than ``max_reminders``
        reminders and no credentials job in progress; oldest first."""
        j = credential_jobs
        newest = (select(func.max(j.c.finished_at)).where(
            j.c.platform == links.c.platform, j.c.erp_number == links.c.erp_number, DELIVERED)
            .scalar_subquery())
        reminders = (select(func.count()).where(
            j.c.platform == links.c.platform, j.c.erp_number == links.c.erp_number, j.c.reason == "reminder")
            .scalar_subquery())
        busy = exists().where(j.c.platform == links.c.platform, j.c.erp_number == links.c.erp_number,
                              j.c.step.notin_(("done", "failed")))
        used = exists().where(and_(t.c.platform == links.c.platform, t.c.shop_id == links.c.shop_id))
        q = (select(links.c.erp_number, links.c.shop_id, links.c.email)
             .where(links.c.platform == platform, links.c.kind == "erp", links.c.shop_active.is_(True),
                    links.c.erp_blocked.is_(False), newest < mailed_before, reminders < max_reminders,
                    ~busy, ~used)
             .order_by(newest).limit(limit))
        with self.store.connect() as c:
            return [(int(n), sid, email) for n, sid, email in c.execute(q)]

    def mailed_never_used(self, platform: str) -> int:
        """Linked accounts whose credentials were mailed (a done job) and that were never logged
        in to since syncd has tracked logins."""
        j = credential_jobs
        mailed = exists().where(j.c.platform == links.c.platform, j.c.erp_number == links.c.erp_number,
                                DELIVERED)
        used = exists().where(and_(t.c.platform == links.c.platform, t.c.shop_id == links.c.shop_id))
        q = select(func.count()).select_from(links).where(links.c.platform == platform, mailed, ~used)
        with self.store.connect() as c:
            return int(c.execute(q).scalar_one())

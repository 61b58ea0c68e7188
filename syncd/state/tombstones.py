"""Addresses erased on request (`syncd accounts erase`, a GDPR request): a minimal tombstone per
(platform, ERP number) - the number and when, nothing else - so that the ERP -> shop flow does not
create the account again while the ERP row still exists. ``syncd accounts erase --undo`` is not
offered: removing the row (``lift``) is for a new, explicit consent, through the state export.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Connection, delete, select

from syncd.state.db import StateStore, upsert
from syncd.state.schema import account_activity, approvals, mail_bounces
from syncd.state.schema import tombstones as t


class Tombstones:
    def __init__(self, store: StateStore) -> None:
        self.store = store

    def add(self, platform: str, erp_number: int, at: datetime, *, conn: Connection | None = None) -> None:
        with self.store.write(conn) as c:
            upsert(c, t, {"platform": platform, "erp_number": int(erp_number), "erased_at": at},
                   keys=["platform", "erp_number"], update=["erased_at"])

    def forget_traces(self, platform: str, erp_number: int, *, conn: Connection | None = None) -> int:
        """The rest of what syncd keeps about the erased address: its approval (e-mail, the
        operator's reason), its last logins, its bounces (e-mail, the server's diagnostic).
        Order reminders are kept by order, not by address, and stay until the order is done."""
        with self.store.write(conn) as c:
            return sum(c.execute(delete(table).where(table.c.platform == platform,
                                                     table.c.erp_number == int(erp_number))).rowcount or 0
                       for table in (approvals, account_activity, mail_bounces))

    def among(self, platform: str, numbers: Iterable[int]) -> set[int]:
        wanted = sorted({int(n) for n in numbers})
        if not wanted:
            return set()
        with self.store.connect() as c:
            q = select(t.c.erp_number).where(t.c.platform == platform, t.c.erp_number.in_(wanted))
            return {int(n) for (n,) in c.execute(q)}

    def lift(self, platform: str, erp_number: int) -> bool:
        with self.store.begin() as c:
            return bool(c.execute(delete(t).where(t.c.platform == platform,
                                                  t.c.erp_number == int(erp_number))).rowcount)

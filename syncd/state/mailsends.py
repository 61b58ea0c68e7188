"""Mails handed to the mail server, one row each (``schema.mail_sends``): the window behind
``[mail] max_per_minute`` / ``max_per_hour`` and the count of a canary (``syncd.flows.mailbudget``).

Any mail kind records here (``kind``: "credentials", later notifications or reminders), so one
provider limit covers every mail syncd sends. A row holds no recipient and no content.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, delete, func, insert, select

from syncd.state.db import StateStore
from syncd.state.schema import mail_sends as t


class MailSends:
    def __init__(self, store: StateStore) -> None:
        self.store = store

    def record(self, platform: str, kind: str, at: datetime, *, conn: Connection | None = None) -> None:
        with self.store.write(conn) as c:
            c.execute(insert(t).values(platform=platform, kind=kind, at=at))

    def count_since(self, since: datetime, *, platform: str | None = None) -> int:
        q = select(func.count()).select_from(t).where(t.c.at >= since)
        if platform is not None:
            q = q.where(t.c.platform == platform)
        with self.store.connect() as c:
            return int(c.execute(q).scalar_one())

    def prune(self, before: datetime) -> int:
        with self.store.begin() as c:
            return c.execute(delete(t).where(t.c.at < before)).rowcount or 0

"""Cursors: the bookmark of each incremental sync, per (platform, name).

Callers write a cursor only after the records it covers are processed; pass ``conn`` to
write it in the same transaction as that work.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from syncd.core.clock import utcnow
from syncd.state.db import StateStore, chunked, upsert
from syncd.state.schema import cursors as t

# The last main contact seen per company (syncd.flows.contacts), + ERP number:
# {"contact": AspNr | None, "seq": n}. Erasing the company deletes it (syncd.flows.erasure).
MAIN_CONTACT = "main-contact:"


class Cursors:
    def __init__(self, store: StateStore, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.store = store
        self.clock = clock

    def get(self, platform: str, name: str) -> dict[str, Any] | None:
        with self.store.connect() as conn:
            value = conn.execute(
                select(t.c.value).where(t.c.platform == platform, t.c.name == name)
            ).scalar_one_or_none()
        return dict(value) if value is not None else None

    def get_many(self, platform: str, names: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The cursors of ``names`` that exist, by name: one query per 500 names."""
        found: dict[str, dict[str, Any]] = {}
        with self.store.connect() as conn:
            for batch in chunked(sorted(set(names))):
                rows = conn.execute(select(t.c.name, t.c.value).where(t.c.platform == platform,
                                                                      t.c.name.in_(batch)))
                found.update((name, dict(value)) for name, value in rows if value is not None)
        return found

    def set(self, platform: str, name: str, value: dict[str, Any], *, conn: Connection | None = None) -> None:
        if not isinstance(value, dict):
            raise TypeError(f"a cursor value is a dict, got {type(value).__name__}")
        row = {"platform": platform, "name": name, "value": value, "updated_at": self.clock()}
        with self.store.write(conn) as conn:
            upsert(conn, t, row, keys=["platform", "name"], update=["value", "updated_at"])

    def delete(self, platform: str, name: str | None = None) -> int:
        stmt = t.delete().where(t.c.platform == platform)
        if name is not None:
            stmt = stmt.where(t.c.name == name)
        with self.store.begin() as conn:
            return conn.execute(stmt).rowcount

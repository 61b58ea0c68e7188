"""Tenant cache: ERP and shop metadata (columns, layouts, sales channels, groups, countries).

Values are JSON. ``scope`` is ``"erp"`` or a platform name; ``syncd clear-cache`` empties it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select

from syncd.core.clock import utcnow
from syncd.state.db import StateStore, upsert
from syncd.state.schema import cache as t


class Cache:
    def __init__(self, store: StateStore, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.store = store
        self.clock = clock

    def get(self, scope: str, key: str, max_age: float | timedelta | None = None) -> Any | None:
        """The cached value, or None when absent or older than ``max_age`` (seconds)."""
        with self.store.connect() as conn:
            row = conn.execute(
                select(t.c.value, t.c.fetched_at).where(t.c.scope == scope, t.c.key == key)
            ).one_or_none()
        if row is None:
            return None
        if max_age is not None:
            limit = max_age if isinstance(max_age, timedelta) else timedelta(seconds=float(max_age))
            if self.clock() - row.fetched_at > limit:
                return None
        return row.value

    def set(self, scope: str, key: str, value: Any, *, conn: Connection | None = None) -> None:
        row = {"scope": scope, "key": key, "value": value, "fetched_at": self.clock()}
        with self.store.write(conn) as conn:
            upsert(conn, t, row, keys=["scope", "key"], update=["value", "fetched_at"])

    def clear(self, scope: str | None = None) -> int:
        stmt = t.delete()
        if scope is not None:
            stmt = stmt.where(t.c.scope == scope)
        with self.store.begin() as conn:
            return conn.execute(stmt).rowcount

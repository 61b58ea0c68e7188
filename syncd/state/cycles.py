"""Cycles: one row per sync cycle and direction, for `syncd status` and monitoring."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from syncd.core.clock import utcnow
from syncd.core.redaction import redact
from syncd.state.db import StateStore
from syncd.state.schema import cycles as t


@dataclass(frozen=True)
class CycleRow:
    id: int
    platform: str
    direction: str
    started: datetime
    finished: datetime | None
    ok: bool | None  # None while running (or when the process died mid-cycle, until taken over)
    counts: dict[str, Any]
    error: str | None
    holder: str | None


class Cycles:
    def __init__(self, store: StateStore, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.store = store
        self.clock = clock

    def start(
        self, platform: str, direction: str, holder: str | None = None, *, conn: Connection | None = None
    ) -> int:
        with self.store.write(conn) as conn:
            stmt = insert(t).values(
                platform=platform, direction=str(direction), started=self.clock(), holder=holder
            )
            result = conn.execute(stmt)
            return int(result.inserted_primary_key[0])

    def finish(
        self,
        cycle_id: int,
        *,
        ok: bool,
        counts: Mapping[str, Any],
        error: str | None = None,
        conn: Connection | None = None,
    ) -> None:
        values = {
            "finished": self.clock(),
            "ok": ok,
            "counts": dict(counts),
            "error": redact(str(error)) if error is not None else None,
        }
        with self.store.write(conn) as conn:
            if conn.execute(update(t).where(t.c.id == cycle_id).values(**values)).rowcount != 1:
                raise KeyError(f"no cycle with id {cycle_id}")

    def mark_interrupted(self, platform: str, direction: str, reason: str) -> int:
        """Close the record of every cycle of ``platform``/``direction`` still open: called by a
        new holder of that lease, so none of them can still run. ``finished`` stays empty (they
        never finished); ``ok`` false with an error starting "interrupted". The number marked."""
        stmt = (
            update(t)
            .where(t.c.platform == platform, t.c.direction == str(direction), t.c.finished.is_(None),
                   t.c.ok.is_(None))
            .values(ok=False, error=redact(reason))
        )
        with self.store.begin() as conn:
            return int(conn.execute(stmt).rowcount or 0)

    def last(self, platform: str, direction: str | None = None) -> CycleRow | None:
        stmt = select(t).where(t.c.platform == platform).order_by(t.c.started.desc(), t.c.id.desc()).limit(1)
        if direction is not None:
            stmt = stmt.where(t.c.direction == str(direction))
        with self.store.connect() as conn:
            row = conn.execute(stmt).one_or_none()
        if row is None:
            return None
        return CycleRow(
            id=row.id,
            platform=row.platform,
            direction=row.direction,
            started=row.started,
            finished=row.finished,
            ok=row.ok,
            counts=dict(row.counts or {}),
            error=row.error,
            holder=row.holder,
        )

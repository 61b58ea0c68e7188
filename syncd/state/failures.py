"""Per-record permanent failures: what `syncd status` lists, until the record succeeds.

A reason passes ``syncd.core.redaction.redact`` before it is stored: a peer's error text may echo a
password back (I3).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, func, select

from syncd.core.clock import utcnow
from syncd.core.redaction import redact
from syncd.core.text import clip
from syncd.state.db import StateStore, chunked, upsert
from syncd.state.schema import failures as t

MAX_REASON = 4000


@dataclass(frozen=True)
class Failure:
    platform: str
    direction: str
    record: str
    step: str
    reason: str
    code: str | None
    count: int
    first_seen: datetime
    last_seen: datetime
    fingerprint: str | None = None  # ERP -> shop: the ERP row as it failed (migration 0004)


def _clean_reason(reason: str) -> str:
    return clip(redact(str(reason)), MAX_REASON)


class Failures:
    def __init__(self, store: StateStore, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.store = store
        self.clock = clock

    def record(
        self,
        platform: str,
        direction: str,
        record: object,
        step: str,
        reason: str,
        code: str | None = None,
        *,
        fingerprint: str | None = None,
        conn: Connection | None = None,
    ) -> None:
        """Remember that ``record`` failed at ``step``; repeated failures count up. ``fingerprint``:
        the ERP row as it failed, so a row corrected later is evaluated again (``fingerprints``)."""
        now = self.clock()
        row = {
            "platform": platform,
            "direction": str(direction),
            "record": str(record),
            "step": step,
            "reason": _clean_reason(reason),
            "code": code,
            "count": 1,
            "first_seen": now,
            "last_seen": now,
            "fingerprint": fingerprint,
        }
        with self.store.write(conn) as conn:
            upsert(
                conn,
                t,
                row,
                keys=["platform", "direction", "record"],
                update={
                    "step": lambda ex: ex.step,
                    "reason": lambda ex: ex.reason,
                    "code": lambda ex: ex.code,
                    "last_seen": lambda ex: ex.last_seen,
                    "fingerprint": lambda ex: ex.fingerprint,
                    "count": t.c.count + 1,
                },
            )

    def clear(self, platform: str, direction: str, record: object, *, conn: Connection | None = None) -> bool:
        return self.clear_many(platform, direction, [record], conn=conn) > 0

    def clear_many(
        self, platform: str, direction: str, records: Iterable[object], *, conn: Connection | None = None
    ) -> int:
        removed = 0
        keys = sorted({str(r) for r in records})
        with self.store.write(conn) as conn:
            for batch in chunked(keys):
                removed += conn.execute(
                    t.delete().where(
                        t.c.platform == platform, t.c.direction == str(direction), t.c.record.in_(batch)
                    )
                ).rowcount
        return removed

    def among(self, platform: str, direction: str, records: Iterable[object]) -> set[str]:
        """Which of ``records`` have a failure recorded (as stored: text)."""
        keys = sorted({str(r) for r in records})
        found: set[str] = set()
        with self.store.connect() as conn:
            for batch in chunked(keys):
                found.update(conn.execute(select(t.c.record).where(
                    t.c.platform == platform, t.c.direction == str(direction), t.c.record.in_(batch)
                )).scalars())
        return found

    def list(self, platform: str | None = None, *, limit: int | None = None) -> list[Failure]:
        stmt = select(t).order_by(t.c.last_seen.desc(), t.c.record)
        if platform is not None:
            stmt = stmt.where(t.c.platform == platform)
        if limit is not None:
            stmt = stmt.limit(limit)
        with self.store.connect() as conn:
            return [
                Failure(
                    platform=r.platform,
                    direction=r.direction,
                    record=r.record,
                    step=r.step,
                    reason=r.reason,
                    code=r.code,
                    count=r.count,
                    first_seen=r.first_seen,
                    last_seen=r.last_seen,
                    fingerprint=r.fingerprint,
                )
                for r in conn.execute(stmt)
            ]

    def records_with_code(self, platform: str, direction: str, codes: Iterable[str]) -> list[str]:
        """The records of ``platform``/``direction`` whose failure carries one of ``codes``."""
        stmt = select(t.c.record).where(
            t.c.platform == platform, t.c.direction == str(direction), t.c.code.in_(sorted(codes))
        ).order_by(t.c.record)
        with self.store.connect() as conn:
            return [r for (r,) in conn.execute(stmt)]

    def reasons(self, platform: str, direction: str, records: Iterable[object]) -> dict[str, str]:
        """record -> its recorded reason, for those of ``records`` that have a failure."""
        keys = sorted({str(r) for r in records})
        found: dict[str, str] = {}
        with self.store.connect() as conn:
            for batch in chunked(keys):
                rows = conn.execute(select(t.c.record, t.c.reason).where(
                    t.c.platform == platform, t.c.direction == str(direction), t.c.record.in_(batch)
                ))
                found.update((record, reason) for record, reason in rows)
        return found

    def fingerprints(self, platform: str, direction: str) -> dict[str, str]:
        """record -> the fingerprint its failure was recorded with (records without one left out):
        what a cycle compares with the ERP rows as they are now. O(failed records)."""
        stmt = select(t.c.record, t.c.fingerprint).where(
            t.c.platform == platform, t.c.direction == str(direction), t.c.fingerprint.is_not(None)
        ).order_by(t.c.record)
        with self.store.connect() as conn:
            return {r: f for r, f in conn.execute(stmt)}

    def count(self, platform: str, direction: str | None = None) -> int:
        stmt = select(func.count()).select_from(t).where(t.c.platform == platform)
        if direction is not None:
            stmt = stmt.where(t.c.direction == str(direction))
        with self.store.connect() as conn:
            return int(conn.execute(stmt).scalar_one())

"""The reminder schedule: one row per (platform, reminder, order) (table ``reminder_orders``).

States::

    scheduled --(last occurrence queued)--> done
        \\--(order paid / cancelled / returned)--> stopped --(reopened)--> scheduled
        \\--(`syncd reminders cancel ORDER`)--> cancelled (final: never scheduled again)

``next_due`` is set only while ``scheduled``, so the due query (index ``platform, next_due``)
touches due rows only: an idle poll costs one index probe, however many orders are open.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, func, insert, or_, select, update

from syncd.state.jobs import _aware
from syncd.state.schema import reminder_orders as t

if TYPE_CHECKING:
    from syncd.state.db import StateStore

SCHEDULED, DONE, STOPPED, CANCELLED = "scheduled", "done", "stopped", "cancelled"
STATES = (SCHEDULED, DONE, STOPPED, CANCELLED)


@dataclass(frozen=True)
class ReminderRow:
    platform: str
    reminder: str
    order_id: str
    order_number: str | None
    state: str
    anchor_at: datetime
    next_due: datetime | None
    sent: int
    reason: str | None
    context: Mapping[str, Any]
    updated_at: datetime


def _row(r: Any) -> ReminderRow:
    m = r._mapping
    return ReminderRow(
        platform=m["platform"], reminder=m["reminder"], order_id=m["order_id"],
        order_number=m["order_number"],
        state=m["state"], anchor_at=_aware(m["anchor_at"]), next_due=_aware(m["next_due"]), sent=m["sent"],
        reason=m["reason"], context=m["context"] or {}, updated_at=_aware(m["updated_at"]),
    )


class Reminders:
    def __init__(self, store: StateStore) -> None:
        self.store = store

    @contextmanager
    def _conn(self, conn: Connection | None = None) -> Iterator[Connection]:
        if conn is not None:
            yield conn
        else:
            with self.store.begin() as c:
                yield c

    # --- reading --------------------------------------------------------------------------
    def of_orders(self, platform: str, order_ids: list[str]) -> dict[tuple[str, str], ReminderRow]:
        """(reminder, order id) -> row, for the orders of one poll's changes."""
        out: dict[tuple[str, str], ReminderRow] = {}
        with self._conn() as c:
            for start in range(0, len(order_ids), 500):
                chunk = order_ids[start:start + 500]
                for r in c.execute(select(t).where(t.c.platform == platform, t.c.order_id.in_(chunk))):
                    row = _row(r)
                    out[(row.reminder, row.order_id)] = row
        return out

    def due(self, platform: str, now: datetime, *, limit: int,
            reminders: tuple[str, ...] | None = None) -> list[ReminderRow]:
        """Scheduled rows due at ``now``, earliest first; ``reminders``: only those names (a
        reminder removed from the configuration keeps its rows, never sent)."""
        q = select(t).where(t.c.platform == platform, t.c.next_due.is_not(None), t.c.next_due <= now)
        if reminders is not None:
            q = q.where(t.c.reminder.in_(reminders))
        q = q.order_by(t.c.next_due, t.c.order_id, t.c.reminder).limit(limit)
        with self._conn() as c:
            return [_row(r) for r in c.execute(q)]

    def listing(self, platform: str, *, order: str | None = None, states: tuple[str, ...] | None = None,
                limit: int = 1000) -> list[ReminderRow]:
        q = select(t).where(t.c.platform == platform)
        if order is not None:
            q = q.where(or_(t.c.order_id == order, t.c.order_number == order))
        if states:
            q = q.where(t.c.state.in_(states))
        q = q.order_by(t.c.next_due.is_(None), t.c.next_due, t.c.order_number, t.c.reminder).limit(limit)
        with self._conn() as c:
            return [_row(r) for r in c.execute(q)]

    def counts(self, platform: str) -> dict[str, int]:
        with self._conn() as c:
            q = select(t.c.state, func.count()).where(t.c.platform == platform).group_by(t.c.state)
            rows = c.execute(q)
            return {state: n for state, n in rows}

    # --- writing --------------------------------------------------------------------------
    def insert_many(self, rows: list[dict[str, Any]], *, now: datetime,
                    conn: Connection | None = None) -> None:
        """New schedule rows (keys: platform, reminder, order_id, order_number, state, anchor_at,
        next_due, reason, context) in one statement: a first poll schedules 100,000 at once."""
        if not rows:
            return
        values = [{**r, "next_due": r["next_due"] if r["state"] == SCHEDULED else None, "sent": 0,
                   "context": dict(r.get("context") or {}), "updated_at": now} for r in rows]
        with self._conn(conn) as c:
            c.execute(insert(t), values)

    def insert(self, *, now: datetime, conn: Connection | None = None, **row: Any) -> None:
        self.insert_many([row], now=now, conn=conn)

    def change(self, platform: str, reminder: str, order_id: str, *, now: datetime,
               conn: Connection | None = None, **values: Any) -> None:
        """Update one row; a row ``cancelled`` by the operator is never changed again."""
        if values.get("state") not in (None, SCHEDULED):
            values["next_due"] = None
        with self._conn(conn) as c:
            c.execute(update(t).where(t.c.platform == platform, t.c.reminder == reminder,
                                      t.c.order_id == order_id, t.c.state != CANCELLED)
                      .values(updated_at=now, **values))

    def cancel(self, platform: str, order: str, now: datetime, *, reason: str) -> int:
        """Stop every reminder of an order (by id or number); the rows stay, for ``list``."""
        with self._conn() as c:
            return c.execute(
                update(t).where(t.c.platform == platform,
                                or_(t.c.order_id == order, t.c.order_number == order),
                                t.c.state.in_((SCHEDULED, STOPPED, DONE)))
                .values(state=CANCELLED, next_due=None, reason=reason, updated_at=now)).rowcount

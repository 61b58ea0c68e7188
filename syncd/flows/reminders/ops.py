"""The operator's side of reminders: what is due and what was sent (``syncd reminders list``),
and stopping them for one order (``syncd reminders cancel ORDER``). State store only: no shop,
no ERP, nothing sent."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from syncd.state.db import StateStore
from syncd.state.reminders import STATES, Reminders
from syncd.state.schema import messages as mt

JSON_FIELDS = ("platform", "order", "reminder", "state", "sent", "next_due", "messages", "reason")


@dataclass(frozen=True)
class ReminderLine:
    platform: str
    order_id: str
    order: str
    reminder: str
    state: str
    sent: int
    next_due: datetime | None
    messages: str  # per queued message: "channel:step" (sent, failed, pending ...)
    reason: str | None

    def as_json(self) -> dict[str, object]:
        return {"platform": self.platform, "order": self.order, "order_id": self.order_id,
                "reminder": self.reminder, "state": self.state, "sent": self.sent,
                "next_due": self.next_due.isoformat() if self.next_due else None,
                "messages": self.messages, "reason": self.reason}


def list_reminders(store: StateStore, platforms: list[str], *, order: str | None = None,
                   states: tuple[str, ...] | None = None, limit: int = 1000) -> list[ReminderLine]:
    return list(_lines(store, platforms, order=order, states=states, limit=limit))


def _lines(store: StateStore, platforms: list[str], *, order: str | None,
           states: tuple[str, ...] | None, limit: int) -> Iterator[ReminderLine]:
    repo = Reminders(store)
    for platform in platforms:
        rows = repo.listing(platform, order=order, states=states, limit=limit)
        sent = _message_steps(store, platform, [r.order_id for r in rows])
        for r in rows:
            steps = sent.get((r.order_id, r.reminder), [])
            yield ReminderLine(platform, r.order_id, r.order_number or r.order_id, r.reminder, r.state,
                               r.sent, r.next_due, ", ".join(steps), r.reason)


def _message_steps(store: StateStore, platform: str, order_ids: list[str]
                   ) -> dict[tuple[str, str], list[str]]:
    """(order id, reminder) -> "#n channel:step" of its message jobs (occurrence keys start with
    the order id)."""
    out: dict[tuple[str, str], list[str]] = {}
    if not order_ids:
        return out
    with store.connect() as c:
        for start in range(0, len(order_ids), 200):
            chunk = order_ids[start:start + 200]
            q = select(mt.c.occurrence, mt.c.channel, mt.c.step).where(
                mt.c.platform == platform, _prefixes(chunk))
            for occurrence, channel, step in c.execute(q.order_by(mt.c.id)):
                order_id, _, rest = occurrence.partition(":")
                reminder, _, n = rest.rpartition(":")
                out.setdefault((order_id, reminder), []).append(f"#{int(n) + 1} {channel}:{step}")
    return out


def _prefixes(order_ids: list[str]):  # noqa: ANN202 - a SQLAlchemy clause
    from sqlalchemy import or_

    return or_(*(mt.c.occurrence.like(f"{o}:%") for o in order_ids))


def cancel(store: StateStore, platform: str, order: str, now: datetime) -> int:
    return Reminders(store).cancel(platform, order, now,
                                   reason="cancelled by the operator / vom Bediener gestoppt")


__all__ = ["JSON_FIELDS", "STATES", "ReminderLine", "cancel", "list_reminders"]

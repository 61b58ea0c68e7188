"""What happened to each ERP address, for ``syncd history`` (``schema.history``).

One row per event: pushed, created, a mail sent or deferred, imported, deactivated ... with its
time and a reason. It is written in the transaction that makes the event true (``uow.history``),
so the history never claims what the state store does not hold. Never a password, a link or a
mail body: ``reason`` is the operator-facing why (a shop's rejection text, an SMTP reply), and
goes through the one redaction point like every other text the state store keeps.
The daemon prunes rows older than ``[daemon] history_days``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, delete, insert, select

from syncd.core import redaction
from syncd.core.rules import HistoryEvent, contact_keys
from syncd.state.db import StateStore, chunked
from syncd.state.schema import history as t

REASON_LIMIT = 500


@dataclass(frozen=True, slots=True)
class Event:
    platform: str
    erp_number: int
    event: str
    at: datetime
    reason: str | None = None
    shop_id: str | None = None


class History:
    def __init__(self, store: StateStore, clock: Callable[[], datetime]) -> None:
        self.store = store
        self.clock = clock

    def record(self, platform: str, erp_number: int, event: HistoryEvent | str, *,
               reason: str | None = None, shop_id: str | None = None) -> None:
        self.record_many(platform, [(erp_number, event, reason, shop_id)])

    def record_many(self, platform: str,
                    events: Iterable[tuple[int, HistoryEvent | str, str | None, str | None]], *,
                    conn: Connection | None = None) -> None:
        """(ERP number, event, reason, shop id) rows, all at the same ``clock()`` time."""
        now = self.clock()
        rows = [{"platform": platform, "erp_number": int(n), "event": str(HistoryEvent(e)), "at": now,
                 "reason": _reason(reason), "shop_id": shop_id}
                for n, e, reason, shop_id in events]
        if not rows:
            return
        if conn is not None:  # the caller's transaction: the event commits with what it records
            conn.execute(insert(t), rows)
            return
        with self.store.begin() as c:
            c.execute(insert(t), rows)

    def of_address(self, erp_number: int, platform: str | None = None, *,
                   contacts: bool = False) -> list[Event]:
        """Oldest first; every platform unless one is named. ``contacts``: with the events of the
        address's contact persons' accounts (``rules.contact_account``)."""
        n = int(erp_number)
        q = select(t).where(t.c.erp_number == n)
        if contacts and n > 0:
            q = select(t).where((t.c.erp_number == n) | t.c.erp_number.between(*contact_keys(n)))
        if platform is not None:
            q = q.where(t.c.platform == platform)
        with self.store.connect() as conn:
            rows = conn.execute(q.order_by(t.c.at, t.c.id)).mappings().all()
        return [Event(r["platform"], int(r["erp_number"]), r["event"], r["at"], r["reason"], r["shop_id"])
                for r in rows]

    def last_events(self, platform: str, numbers: Iterable[int]) -> dict[int, str]:
        """The latest event of each of ``numbers`` that has one: one query per 500 numbers."""
        last: dict[int, str] = {}
        with self.store.connect() as conn:
            for batch in chunked(sorted({int(n) for n in numbers})):
                rows = conn.execute(select(t.c.erp_number, t.c.event).where(
                    t.c.platform == platform, t.c.erp_number.in_(batch)).order_by(t.c.at, t.c.id))
                last.update((int(n), event) for n, event in rows)
        return last

    def forget(self, platform: str, erp_number: int) -> int:
        """Delete every event of one address on one platform (erasure on request)."""
        with self.store.begin() as conn:
            return conn.execute(delete(t).where(t.c.platform == platform,
                                                t.c.erp_number == int(erp_number))).rowcount or 0

    def prune(self, before: datetime) -> int:
        """Delete events older than ``before``; returns how many."""
        with self.store.begin() as conn:
            return conn.execute(delete(t).where(t.c.at < before)).rowcount or 0


def _reason(text: str | None) -> str | None:
    if text is None:
        return None
    text = redaction.redact(str(text))
    if len(text) <= REASON_LIMIT:
        return text
    # Cut at a word boundary: a reason cut mid-word reads like a different word.
    cut = text.rfind(" ", 0, REASON_LIMIT - 1)
    return text[: cut if cut > REASON_LIMIT // 2 else REASON_LIMIT - 1].rstrip() + "…"

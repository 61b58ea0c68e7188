"""Approval states of shop accounts (``platforms[].addresses.approval``, issue 15).

One row per (platform, shop account): ``in-progress`` while an operator has to decide (approval
= "manual"), ``approved`` or ``rejected`` after. Approved accounts may later be rejected and
rejected ones approved; each change is one ``set_state``, written in the unit of work that also
queues its mail (``syncd.flows.messages``), so a decision and its mail are recorded together.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, func, insert, or_, select, update

from syncd.core.redaction import redact
from syncd.state.jobs import _aware
from syncd.state.schema import approvals as t

if TYPE_CHECKING:
    from syncd.state.db import StateStore

IN_PROGRESS = "in-progress"
APPROVED = "approved"
REJECTED = "rejected"
STATES = (IN_PROGRESS, APPROVED, REJECTED)


@dataclass(frozen=True)
class Approval:
    platform: str
    shop_id: str
    erp_number: int | None
    email: str | None
    state: str
    requested_group: str | None
    reason: str | None
    created_at: datetime
    updated_at: datetime


def _approval(row: Any) -> Approval:
    m = row._mapping
    return Approval(m["platform"], m["shop_id"], None if m["erp_number"] is None else int(m["erp_number"]),
                    m["email"], m["state"], m["requested_group"], m["reason"], _aware(m["created_at"]),
                    _aware(m["updated_at"]))


class Approvals:
    def __init__(self, store: StateStore) -> None:
        self.store = store

    @contextmanager
    def _conn(self) -> Iterator[Connection]:
        with self.store.begin() as c:
            yield c

    def get(self, platform: str, shop_id: str) -> Approval | None:
        with self._conn() as c:
            row = c.execute(select(t).where(t.c.platform == platform, t.c.shop_id == shop_id)).first()
        return _approval(row) if row is not None else None

    def find(self, platform: str, key: str) -> Approval | None:
        """By shop id, or by ERP number when ``key`` is all digits."""
        q = select(t).where(t.c.platform == platform)
        cond = t.c.shop_id == key
        if key.strip().isdigit():
            cond = or_(cond, t.c.erp_number == int(key))
        with self._conn() as c:
            row = c.execute(q.where(cond).order_by(t.c.updated_at.desc())).first()
        return _approval(row) if row is not None else None

    def set_state(self, *, platform: str, shop_id: str, state: str, now: datetime,
                  erp_number: int | None = None, email: str | None = None,
                  requested_group: str | None = None, reason: str | None = None
                  ) -> Approval | None:
        """Record ``state``; returns the previous record (None: the account was new here)."""
        if state not in STATES:
            raise ValueError(f"unknown approval state {state!r}")
        before = self.get(platform, shop_id)
        values: dict[str, Any] = {"state": state, "updated_at": now,
                                  "reason": redact(reason)[:2000] if reason else None}
        if erp_number is not None:
            values["erp_number"] = erp_number
        if email is not None:
            values["email"] = email
        if requested_group is not None:
            values["requested_group"] = requested_group
        with self._conn() as c:
            if before is None:
                c.execute(insert(t).values(platform=platform, shop_id=shop_id, created_at=now, **values))
            else:
                c.execute(update(t).where(t.c.platform == platform, t.c.shop_id == shop_id).values(**values))
        return before

    def of_state(self, platform: str, state: str | None = None) -> list[Approval]:
        q = select(t).where(t.c.platform == platform)
        if state is not None:
            q = q.where(t.c.state == state)
        with self._conn() as c:
            return [_approval(r) for r in c.execute(q.order_by(t.c.created_at, t.c.shop_id))]

    def held(self, platform: str, shop_ids: Iterable[str]) -> set[str]:
        """The accounts among ``shop_ids`` an approval keeps inactive (in progress or rejected):
        the ERP -> shop flow must not reactivate them."""
        wanted = sorted(set(shop_ids))
        if not wanted:
            return set()
        with self._conn() as c:
            rows = c.execute(select(t.c.shop_id).where(t.c.platform == platform, t.c.shop_id.in_(wanted),
                                                       t.c.state.in_((IN_PROGRESS, REJECTED))))
            return {r[0] for r in rows}

    def counts(self, platform: str) -> Counter[str]:
        with self._conn() as c:
            q = select(t.c.state, func.count()).where(t.c.platform == platform).group_by(t.c.state)
            rows = c.execute(q)
            return Counter({s: n for s, n in rows})

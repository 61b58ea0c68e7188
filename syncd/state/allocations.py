"""The per-platform counter of shop -> ERP address numbers (table ``number_allocations``).

A number is *reserved* by advancing the counter past it in one compare-and-set statement, so
two processes sharing a state store (spec §3) never reserve the same number and a number, once
handed out, is never handed out again. Whether the ERP accepts it is the caller's business
(``syncd.flows.numbers``); the only way back is ``release``, which returns a number only while
it is still the newest one reserved and so can never re-issue a number someone else saw after it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from syncd.state.schema import number_allocations as t

if TYPE_CHECKING:
    from syncd.state.db import StateStore

# Compare-and-set rounds before giving up: only lost races against other writers cost a round.
_MAX_ROUNDS = 100


class AllocationContention(RuntimeError):
    """Other writers kept winning the compare-and-set; never expected outside a runaway loop."""


class Allocations:
    def __init__(self, store: StateStore) -> None:
        self._store = store

    def peek(self, platform: str) -> int | None:
        """The next number the counter would hand out, ignoring the configured floor."""
        with self._store.begin() as conn:
            return conn.execute(select(t.c.next_number).where(t.c.platform == platform)).scalar()

    def reserve(self, platform: str, *, floor: int, accept: Callable[[int], None] | None = None) -> int:
        """Hand out ``max(counter, floor)`` and advance the counter past it.

        ``accept(candidate)`` runs before anything is written and may raise to refuse the
        candidate (the debtor-range check): a refused number is not consumed.
        """
        for _ in range(_MAX_ROUNDS):
            try:
                with self._store.begin() as conn:
                    current = conn.execute(
                        select(t.c.next_number).where(t.c.platform == platform)
                    ).scalar()
                    candidate = floor if current is None else max(int(current), floor)
                    if accept is not None:
                        accept(candidate)
                    now = datetime.now(UTC)
                    if current is None:
                        conn.execute(
                            insert(t).values(platform=platform, next_number=candidate + 1, updated_at=now)
                        )
                        return candidate
                    done = conn.execute(
                        update(t)
                        .where(t.c.platform == platform, t.c.next_number == current)
                        .values(next_number=candidate + 1, updated_at=now)
                    )
                    if done.rowcount == 1:
                        return candidate
            except IntegrityError:
                pass  # another process created the row first: read it again
        raise AllocationContention(f"could not reserve an address number for {platform!r}")

    def release(self, platform: str, number: int) -> bool:
        """Give ``number`` back when nothing was reserved after it (its insert failed for
        good). True when the counter moved back."""
        with self._store.begin() as conn:
            done = conn.execute(
                update(t)
                .where(t.c.platform == platform, t.c.next_number == number + 1)
                .values(next_number=number, updated_at=datetime.now(UTC))
            )
            return done.rowcount == 1

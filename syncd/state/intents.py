"""Write-ahead intents of shop creates (``schema.create_intents``).

The push records an intent, committed, before the request that creates an account under
syncd's deterministic id; the flow removes it in the transaction that stores the account's
link and credential job. An intent still present when a later push meets the unlinked account
means: created by syncd, crashed before the link - the account gets its credentials job (I1),
whatever was written to it meanwhile (a retried request, a second process's push). Without
an intent the account is someone else's or predates a lost store, and is adopted (I4).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime

from sqlalchemy import select

from syncd.state.db import StateStore, chunked, upsert
from syncd.state.schema import create_intents as t


class CreateIntents:
    def __init__(self, store: StateStore, clock: Callable[[], datetime]) -> None:
        self.store = store
        self.clock = clock

    def record(self, platform: str, creates: Sequence[tuple[int, str]]) -> None:
        """(ERP number, shop id) of accounts about to be created. Write-ahead: the caller commits
        it (its own unit of work) before it sends the create request."""
        if not creates:
            return
        now = self.clock()
        rows = [{"platform": platform, "erp_number": n, "shop_id": sid, "created_at": now}
                for n, sid in dict(creates).items()]
        with self.store.begin() as conn:
            upsert(conn, t, rows, keys=["platform", "erp_number"], update=["shop_id", "created_at"])

    def pending(self, platform: str, numbers: Iterable[int]) -> set[int]:
        """The ``numbers`` with an intent not yet settled by a link."""
        found: set[int] = set()
        with self.store.connect() as conn:
            for chunk in chunked(sorted(set(numbers))):
                rows = conn.execute(select(t.c.erp_number).where(t.c.platform == platform,
                                                                  t.c.erp_number.in_(chunk)))
                found.update(int(n) for (n,) in rows)
        return found

    def settle(self, platform: str, numbers: Iterable[int]) -> None:
        """The link (and job) of these numbers is recorded, or the shop refused their create. In
        a unit of work (``uow.intents``) this joins the transaction that writes the links."""
        with self.store.begin() as conn:
            for chunk in chunked(sorted(set(numbers))):
                conn.execute(t.delete().where(t.c.platform == platform, t.c.erp_number.in_(chunk)))

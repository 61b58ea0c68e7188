"""The last reconciliation per platform: when it ran and the drift it counted.

Kept in the ``cursors`` table under the name ``reconcile`` (one JSON document per platform), so
it needs no table of its own: `syncd status`, `status --json` and the metrics read it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from syncd.core.clock import utcnow
from syncd.state.cursors import Cursors
from syncd.state.db import StateStore

NAME = "reconcile"
# The counts a reconciliation stores, in the order `syncd status` shows them.
KEYS = (
    "erp_addresses",  # ERP addresses read
    "links",  # links of the platform read
    "unlinked",  # eligible ERP addresses (unblocked, usable) without a shop account
    "missing_in_shop",  # links whose shop account is gone (verified by a second lookup)
    "stale",  # the shop account or the link's fingerprint is out of step with the ERP row
    "blocked_linked",  # linked addresses blocked in the ERP whose link or account did not say so
    "orphaned_links",  # links whose ERP address no longer exists
    "failed_rechecked",  # failed records evaluated again
    "repaired",  # records of the above that the reconciliation brought back in step
    "still_failed",  # failed records (erp-to-shop) after the reconciliation
)


@dataclass(frozen=True)
class DriftReport:
    started: datetime
    finished: datetime
    counts: dict[str, int]


class DriftReports:
    def __init__(self, store: StateStore, *, clock: Callable[[], datetime] = utcnow) -> None:
        self._cursors = Cursors(store, clock=clock)

    @classmethod
    def over(cls, cursors: Cursors) -> DriftReports:
        """Over a unit of work's cursors (``uow.drift``): stored with, and as, the unit's writes."""
        self = cls.__new__(cls)
        self._cursors = cursors
        return self

    def set(self, platform: str, started: datetime, finished: datetime, counts: Mapping[str, int]) -> None:
        self._cursors.set(platform, NAME, {
            "started": started.isoformat(), "finished": finished.isoformat(),
            "counts": {k: int(counts.get(k, 0)) for k in KEYS},
        })

    def get(self, platform: str) -> DriftReport | None:
        value: dict[str, Any] | None = self._cursors.get(platform, NAME)
        if not value:
            return None
        try:
            return DriftReport(
                datetime.fromisoformat(value["started"]), datetime.fromisoformat(value["finished"]),
                {k: int(value.get("counts", {}).get(k, 0)) for k in KEYS},
            )
        except (KeyError, TypeError, ValueError):
            return None  # written by another version: as if never reconciled

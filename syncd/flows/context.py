"""What a flow runs with: the ports for one platform and the state store.

Built by ``syncd.shell.bootstrap`` for the daemon and the CLI, or directly by a test; a flow never
builds an adapter itself, so the same flow runs against the sandbox, SQLite or a real ERP.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from syncd.core.clock import utcnow
from syncd.core.rules import account_label
from syncd.state.uow import SqlUnitOfWork

if TYPE_CHECKING:
    from syncd.config.model import PlatformSettings, Settings
    from syncd.core.ports import ErpPort, LayoutRenderer, MailTransport, ShopPort, SmsPort
    from syncd.state.db import StateStore
    from syncd.state.uow import UnitOfWork


@dataclass
class PlatformContext:
    settings: Settings
    platform: PlatformSettings
    erp: ErpPort
    shop: ShopPort
    state: StateStore
    mail: MailTransport | None = None
    layouts: LayoutRenderer | None = None
    clock: Callable[[], datetime] = utcnow
    sms: SmsPort | None = None  # the SMS channel ([sms]); None: off
    # Called with (done, total | None) after each batch; the CLI draws a progress bar with it.
    progress: Callable[[int, int | None], None] | None = None
    # A new unit of work per call: ``with ctx.uow() as uow: ...; uow.commit()``. Left out, one
    # over ``state`` with ``clock`` (both read at the call); a flow test passes a fake's factory.
    uow: Callable[[], UnitOfWork] = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.uow is None:
            self.uow = lambda: SqlUnitOfWork(self.state, self.clock)


@dataclass(frozen=True)
class ReportItem:
    record: str  # ERP number or shop id
    action: str  # created | linked | updated | mailed | skipped | failed | imported | would-create ...
    detail: str = ""


@dataclass
class CycleReport:
    """What one cycle of one direction did (or, with ``dry_run``, would do)."""

    platform: str
    direction: str
    dry_run: bool = False
    counts: Counter[str] = field(default_factory=Counter)
    items: list[ReportItem] = field(default_factory=list)
    # Work held back by a configuration fault (a refused SMTP login, a mapping target missing in
    # the shop): reason -> records waiting. Kept for later, yet the cycle is not ok.
    config_faults: Counter[str] = field(default_factory=Counter)
    # Set by a reconciliation (``syncd.flows.reconcile``): drift counts, ``syncd.state.drift.KEYS``.
    drift: dict[str, int] | None = None
    # Set by activation tracking (``syncd.flows.activation``): accounts mailed but never logged in.
    mailed_unused: int | None = None

    def add(self, record: Any, action: str, detail: str = "") -> None:
        self.counts[action] += 1
        # An account key reads as people see it: "10001", a contact person's "10001-2".
        numbered = isinstance(record, int) and not isinstance(record, bool)
        shown = account_label(record) if numbered else str(record)
        self.items.append(ReportItem(shown, action, detail))

    def config_fault(self, reason: str) -> None:
        self.config_faults[reason] += 1

    def config_fault_text(self) -> str | None:
        """One line for the cycle record, `syncd sync` and the log; None when there is none."""
        if not self.config_faults:
            return None
        waiting = sum(self.config_faults.values())
        reasons = "; ".join(self.config_faults)
        return (f"deferred by a configuration fault ({waiting} record(s) wait and resume once it is "
                f"fixed): {reasons}")

"""How many mails a run may send now: ``[mail] max_per_minute`` / ``max_per_hour`` (shared by
every platform and mail kind: the provider counts the account, not the shop) and a platform's
canary (``platforms[].addresses.canary``).

One mechanism for every mail kind: a run asks ``MailBudget.open(ctx, kind)`` for its allowance
before it takes work from its queue, takes at most that many jobs (the rest stay queued, in
order, untouched: never deferred, never failed for it), and calls ``sent()`` at each mail's
commit point. Sends are logged in the state store (``syncd.state.mailsends``) only while a limit
or a canary is configured, so a restart, a second instance or ``syncd accounts`` see the same
window. A crash between the mail and its log row can let one mail more through the next window;
it never duplicates or loses a mail (the jobs' own steps decide that).

Canary: the first N mails of a *new mail configuration* go out, the rest wait until the operator
has checked them and runs ``syncd release PLATFORM``. The configuration is what shapes a mail:
the layout name, ``[mail] layouts_dir``, the content of the layouts' template files (an edited
subject or body is a new mail as much as another layout is), the sender, ``credential_mode`` and
the canary size; a change of any starts a new canary (cursor ``canary``: fingerprint, start,
released). Config keys that do not shape a mail (poll interval, rate limits, ERP columns ...) are
left out, so changing them keeps a released canary released.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog

from syncd.flows.context import PlatformContext
from syncd.render.digest import layouts_digest
from syncd.state.cursors import Cursors
from syncd.state.mailsends import MailSends

log = structlog.get_logger("syncd.flows.mailbudget")

CANARY_CURSOR = "canary"


def tracking(ctx: PlatformContext) -> bool:
    m = ctx.settings.mail
    return bool(m.max_per_minute or m.max_per_hour or ctx.platform.addresses.canary)


def canary_layouts(ctx: PlatformContext) -> list[str]:
    """Every layout this platform's mails can be rendered with: the credential purposes and the
    event mails of ``[[notifications]]`` (they count against the same canary)."""
    names = set(ctx.platform.addresses.layouts_in_use().values())
    names.update(n.layout_name for n in ctx.settings.notifications if n.enabled)
    return sorted(names)


def fingerprint(ctx: PlatformContext) -> str:
    a, m = ctx.platform.addresses, ctx.settings.mail
    shape = {"layout": a.email_layout, "layouts_dir": m.layouts_dir,
             "content": layouts_digest(m.layouts_dir, canary_layouts(ctx)),
             "sender": ctx.platform.sender or m.sender, "mode": a.credential_mode, "canary": a.canary}
    return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class CanaryState:
    size: int
    sent: int
    released: bool
    started: datetime

    @property
    def holding(self) -> bool:
        return not self.released and self.sent >= self.size


def canary_state(ctx: PlatformContext, *, start: bool = True) -> CanaryState | None:
    """The platform's canary, None without one. ``start``: record a new configuration's canary
    (a read-only caller passes False and sees a fresh canary as not started: nothing sent)."""
    size = ctx.platform.addresses.canary
    if not size:
        return None
    cursors = Cursors(ctx.state, clock=ctx.clock)
    stored = cursors.get(ctx.platform.name, CANARY_CURSOR)
    now = ctx.clock()
    fp = fingerprint(ctx)
    if stored is None or stored.get("fingerprint") != fp:
        if start:
            cursors.set(ctx.platform.name, CANARY_CURSOR,
                        {"fingerprint": fp, "started": now.isoformat(), "released": False})
            log.info("canary started: a new mail configuration", platform=ctx.platform.name, size=size)
        return CanaryState(size, 0, False, now)
    started = datetime.fromisoformat(stored["started"])
    sent = MailSends(ctx.state).count_since(started, platform=ctx.platform.name)
    return CanaryState(size, sent, bool(stored.get("released")), started)


def release(ctx: PlatformContext) -> CanaryState | None:
    """The operator checked the canary's mails: the rest may go. None when no canary is set."""
    state = canary_state(ctx)
    if state is None:
        return None
    Cursors(ctx.state, clock=ctx.clock).set(ctx.platform.name, CANARY_CURSOR, {
        "fingerprint": fingerprint(ctx), "started": state.started.isoformat(), "released": True,
        "released_at": ctx.clock().isoformat()})
    return CanaryState(state.size, state.sent, True, state.started)


class MailBudget:
    """The allowance of one run. ``remaining`` None: no limit."""

    def __init__(self, ctx: PlatformContext, kind: str, remaining: int | None, why: str | None) -> None:
        self.ctx = ctx
        self.kind = kind
        self.remaining = remaining
        self.why = why  # what limits the run, for the log and the report

    @classmethod
    def open(cls, ctx: PlatformContext, kind: str, *, start: bool = True) -> MailBudget:
        if not tracking(ctx):
            return cls(ctx, kind, None, None)
        now = ctx.clock()
        m = ctx.settings.mail
        sends = MailSends(ctx.state)
        limits: list[tuple[int, str]] = []
        if m.max_per_minute:
            limits.append((m.max_per_minute - sends.count_since(now - timedelta(minutes=1)),
                           f"[mail] max_per_minute = {m.max_per_minute}"))
        if m.max_per_hour:
            limits.append((m.max_per_hour - sends.count_since(now - timedelta(hours=1)),
                           f"[mail] max_per_hour = {m.max_per_hour}"))
        canary = canary_state(ctx, start=start)
        if canary is not None and not canary.released:
            limits.append((canary.size - canary.sent,
                           f"canary of {canary.size} mails: held until `syncd release {ctx.platform.name}`"))
        if not limits:
            return cls(ctx, kind, None, None)
        left, why = min(limits, key=lambda x: x[0])
        return cls(ctx, kind, max(0, left), why)

    @property
    def exhausted(self) -> bool:
        return self.remaining is not None and self.remaining <= 0

    def limit(self, wanted: int) -> int:
        """At most how many of ``wanted`` to fetch from a queue now (``take`` reserves them)."""
        return wanted if self.remaining is None else min(wanted, self.remaining)

    def take(self, n: int) -> None:
        if self.remaining is not None:
            self.remaining -= n


def record_send(ctx: PlatformContext, kind: str) -> None:
    """A mail of ``kind`` reached its commit point (the server may have it from here): it counts
    against the limits and the canary. Nothing is written when neither is configured."""
    if tracking(ctx):
        MailSends(ctx.state).record(ctx.platform.name, kind, ctx.clock())


def describe(ctx: PlatformContext) -> dict[str, Any]:
    """For `syncd status`: the canary and the limits of this platform, read only."""
    out: dict[str, Any] = {}
    canary = canary_state(ctx, start=False)
    if canary is not None:
        out["canary"] = {"size": canary.size, "sent": canary.sent, "released": canary.released,
                         "holding": canary.holding}
    return out

"""Go-live without a mail storm: ``platforms[].addresses.send_credentials_since``.

The day syncd is first pointed at an ERP with thousands of existing customers, each of them
would get an account and, unasked, a credentials mail. With ``send_credentials_since`` set, an
account created for an ERP row *older* than the cut-off still gets its credential job, but the
job is held (``credential_jobs.held = "go-live"``): it is not due, so nothing is written to the
password field or mailed. ``syncd accounts list --never-mailed`` lists these accounts and
``syncd accounts send-credentials ADDRESS…`` releases the job of each named one.

A row's age is its ``[erp.columns] modified_at`` stamp (the ERP has no creation stamp in the
profile; an existing customer is unchanged since before go-live). A row without a stamp, or
without a mapped ``modified_at``, counts as old: the safe side is not to mail. The cut-off:

* a date: midnight at the start of that day, UTC (a naive ERP stamp is read as the syncd host's
  local time, as the ERP and syncd run side by side);
* ``"first-run"``: the start of the platform's first erp-to-shop cycle with the key set, stored
  in the state store (cursor ``go-live``) so a restart keeps the same cut-off.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time

from syncd.core.domain import ErpAddress
from syncd.flows.context import PlatformContext
from syncd.state.cursors import Cursors

CURSOR = "go-live"


def cutoff(ctx: PlatformContext, cursors: Cursors | None = None, *, start: bool = False) -> datetime | None:
    """The cut-off, None without ``send_credentials_since``. ``start``: a first run records
    "now" for ``"first-run"``; a read-only caller (dry run, check) gets "now" without storing it,
    which is what the first run would record."""
    since = ctx.platform.addresses.send_credentials_since
    if since is None:
        return None
    if isinstance(since, date):
        return datetime.combine(since, time(0), tzinfo=UTC)
    cursors = cursors if cursors is not None else Cursors(ctx.state, clock=ctx.clock)
    stored = cursors.get(ctx.platform.name, CURSOR)
    if stored is not None:
        return datetime.fromisoformat(stored["at"])
    now = ctx.clock()
    if start:
        cursors.set(ctx.platform.name, CURSOR, {"at": now.isoformat()})
    return now


def is_old(address: ErpAddress, cut: datetime | None) -> bool:
    """True when the account of ``address`` must not be mailed on its own (held)."""
    if cut is None:
        return False
    stamp = address.modified_at
    if not isinstance(stamp, datetime):
        return True
    if stamp.tzinfo is None:
        return stamp < cut.astimezone().replace(tzinfo=None)
    return stamp < cut

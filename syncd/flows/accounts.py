"""The operator side of customer accounts (`syncd accounts ...`).

* ``list_accounts``: the links table joined with the credential-job history, one
  ``AccountRow`` per linked shop account, filtered; ``write_csv`` renders it with the stable
  header ``CSV_HEADER`` (documented in the README under "Output formats").
* ``send_credentials`` / ``reset_password``: a credential job per address (reason ``resend`` /
  ``reset``) delivered by the same machinery as the flow (fresh password -> ERP field -> shop
  -> mail -> field cleared; ``syncd.flows.credentials.queue_credentials``).
* ``deactivate``: the shop account is set inactive and the link records it.

Addresses that are not linked to a shop account are refused up front (``UnknownAddresses``,
exit 2 in the CLI) before anything is written. No password ever reaches what this module
returns: the flow registers each one with ``syncd.core.redaction`` and keeps it in memory only.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TextIO

from sqlalchemy import select

from syncd.core.errors import SyncdError
from syncd.state.activity import AccountActivity
from syncd.state.jobs import DONE, PENDING
from syncd.state.links import Link, Links
from syncd.state.schema import credential_jobs

if TYPE_CHECKING:
    from syncd.flows.context import PlatformContext
    from syncd.state.db import StateStore

# Password status from the newest delivered credential mail of the address.
INITIAL = "initial"  # syncd mailed the first credentials when it created the account
RESET_BY_STAFF = "reset by staff"  # an operator sent new credentials (send-credentials / reset-password)
NONE = "none"  # syncd never mailed credentials for this account
_STATUS_BY_REASON = {"created": INITIAL, "resend": RESET_BY_STAFF, "reset": RESET_BY_STAFF,
                     "reminder": INITIAL}  # an activation reminder carries syncd's new password

LEASE_WAIT = 60.0  # seconds to wait for a daemon's cycle in flight before giving up

CSV_HEADER = (
    "platform", "address", "shop_id", "email", "kind", "active", "credentials_sent_at", "password_status",
    "last_login_at",
)


@dataclass(frozen=True)
class AccountRow:
    platform: str
    address: int
    shop_id: str
    email: str | None
    kind: str  # erp | email | import | collective (see syncd.state.links)
    active: bool  # the shop account is active (as syncd last set or saw it)
    credentials_sent_at: datetime | None  # newest credentials mail delivered, UTC
    password_status: str  # INITIAL | RESET_BY_STAFF | NONE
    last_login_at: datetime | None = None  # newest shop login syncd saw (activation tracking), UTC

    def csv_values(self) -> list[str]:
        return [
            self.platform,
            str(self.address),
            self.shop_id,
            self.email or "",
            self.kind,
            "true" if self.active else "false",
            iso(self.credentials_sent_at),
            self.password_status,
            iso(self.last_login_at),
        ]


def iso(value: datetime | None) -> str:
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class UnknownAddresses(SyncdError):
    """Addresses an operator named that have no shop account on the platform."""

    def __init__(self, platform: str, reasons: dict[int, str]) -> None:
        self.platform = platform
        self.reasons = reasons
        listed = "; ".join(f"{n}: {why}" for n, why in sorted(reasons.items()))
        super().__init__(f"platform {platform!r}: {listed}")


def _deliveries(store: StateStore, platform: str) -> dict[int, tuple[datetime, str]]:
    """ERP number -> (time, reason) of the newest delivered credentials mail."""
    t = credential_jobs
    q = (
        select(t.c.erp_number, t.c.finished_at, t.c.reason)
        .where(t.c.platform == platform, t.c.step == DONE)
        .order_by(t.c.finished_at, t.c.id)
    )
    out: dict[int, tuple[datetime, str]] = {}
    with store.connect() as conn:
        for number, finished, reason in conn.execute(q):
            if finished is not None:
                out[int(number)] = (finished, reason)  # ascending: the newest wins
    return out


def list_accounts(
    store: StateStore,
    platforms: Iterable[str],
    *,
    inactive: bool = False,
    credentials_sent: bool | None = None,
) -> Iterator[AccountRow]:
    """Linked accounts by platform and shop id. ``inactive``: only deactivated accounts;
    ``credentials_sent``: True only accounts that were mailed credentials, False only those never
    mailed, None both."""
    for platform in platforms:
        sent = _deliveries(store, platform)
        logins = AccountActivity(store).get_many(platform)
        for link in Links(store).iter(platform):
            delivered = sent.get(link.erp_number) if link.kind != "collective" else None
            row = AccountRow(
                platform=platform,
                address=link.erp_number,
                shop_id=link.shop_id,
                email=link.email,
                kind=link.kind,
                active=bool(link.shop_active),
                credentials_sent_at=delivered[0] if delivered else None,
                password_status=_STATUS_BY_REASON.get(delivered[1], RESET_BY_STAFF) if delivered else NONE,
                last_login_at=logins[link.shop_id].last_login_at if link.shop_id in logins else None,
            )
            if inactive and row.active:
                continue
            if credentials_sent is not None and (row.credentials_sent_at is not None) != credentials_sent:
                continue
            yield row


def never_mailed(store: StateStore, platform: str) -> set[int]:
    """ERP numbers whose account's credentials mail was held at go-live (``send_credentials_since``)
    and not sent since: what `accounts list --never-mailed` shows and `send-credentials` releases."""
    t = credential_jobs
    q = select(t.c.erp_number).where(t.c.platform == platform, t.c.step == PENDING, t.c.held.is_not(None))
    with store.connect() as conn:
        return {int(n) for (n,) in conn.execute(q)}


def only_never_mailed(rows: Iterable[AccountRow], store: StateStore) -> Iterator[AccountRow]:
    """The rows of ``never_mailed`` accounts (a filter over any ``list_accounts`` output)."""
    held: dict[str, set[int]] = {}
    for row in rows:
        if row.platform not in held:
            held[row.platform] = never_mailed(store, row.platform)
        if row.address in held[row.platform]:
            yield row


def write_csv(rows: Iterable[AccountRow], out: TextIO, *, excel: bool = False) -> int:
    """RFC 4180 CSV with ``CSV_HEADER``; returns the number of data rows. ``excel``: semicolons
    and a UTF-8 byte-order mark first, so German spreadsheet programs split the columns and show
    umlauts (``out`` must then encode UTF-8)."""
    if excel:
        out.write("\ufeff")
    writer = csv.writer(out, lineterminator="\r\n", delimiter=";" if excel else ",")
    writer.writerow(CSV_HEADER)
    n = 0
    for row in rows:
        writer.writerow(row.csv_values())
        n += 1
    return n


def _linked(ctx: PlatformContext, numbers: Iterable[int]) -> dict[int, Link]:
    """The personal link of each number; UnknownAddresses naming every one without."""
    wanted = sorted({int(n) for n in numbers})
    links = Links(ctx.state, clock=ctx.clock).get_many(ctx.platform.name, wanted)
    missing = {}
    for n in wanted:
        link = links.get(n)
        if link is None:
            missing[n] = "not linked to a shop account (unknown address, or not synced yet)"
        elif link.kind == "collective":
            missing[n] = "is the collective address, not one customer's account"
    if missing:
        raise UnknownAddresses(ctx.platform.name, missing)
    return links


@dataclass(frozen=True)
class AccountAction:
    """What one operator action did to one address (a row of ``syncd accounts`` output)."""

    address: int
    action: str  # mailed | deferred | failed | skipped | deactivated
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.action in ("mailed", "deactivated", "erased")




def send_credentials(
    ctx: PlatformContext, numbers: Iterable[int], *, reason: str = "resend"
) -> list[AccountAction]:
    """New passwords and credential mails for these linked addresses, one outcome per address
    (jobs of other addresses that happen to be due are delivered too, as in a cycle)."""
    from syncd.flows.credentials import queue_credentials
    from syncd.flows.erp_to_shop import settle_password_fields

    wanted = sorted({int(n) for n in numbers})
    _linked(ctx, wanted)
    with credential_lease(ctx):
        # As at a daemon's start: a password field left by a crash is settled before new work.
        settle_password_fields(ctx)
        report = queue_credentials(ctx, wanted, reason=reason)
    last: dict[int, AccountAction] = {}
    for item in report.items:
        try:
            number = int(item.record)
        except ValueError:
            continue
        if number in wanted:
            last[number] = AccountAction(number, item.action, item.detail)
    return [last.get(n, AccountAction(n, "deferred", "queued; the running daemon sends it")) for n in wanted]


@contextmanager
def credential_lease(ctx: PlatformContext, *, wait: float | None = None) -> Iterator[None]:
    """Hold the platform's erp-to-shop lease while delivering: a running daemon's cycle takes
    the same lease, so the two never deliver the same job (two mails, two passwords) at once.
    Waits up to ``wait`` seconds (default ``LEASE_WAIT``) for a cycle in flight to finish."""
    from syncd.shell.scheduler import LeaseKeeper, lease_name
    from syncd.state.leases import Leases, make_holder

    leases = Leases(ctx.state)
    name = lease_name(ctx.platform.name, "erp-to-shop")
    holder = f"{make_holder()}:accounts"
    ttl = float(ctx.settings.daemon.lease_ttl)
    deadline = time.monotonic() + (LEASE_WAIT if wait is None else wait)
    while not leases.acquire(name, holder, ttl):
        if time.monotonic() >= deadline:
            raise SyncdError(
                f"platform {ctx.platform.name!r}: another syncd holds the lease {name} "
                f"({leases.holder_of(name)}) and is delivering credentials; try again when its cycle "
                "is done / ein anderer syncd arbeitet gerade, bitte später erneut versuchen"
            )
        time.sleep(0.5)
    try:
        with LeaseKeeper(leases, name, holder, ttl):
            yield
    finally:
        leases.release(name, holder)


def reset_password(ctx: PlatformContext, number: int) -> AccountAction:
    return send_credentials(ctx, [number], reason="reset")[0]


def erase(ctx: PlatformContext, number: int) -> AccountAction:
    """GDPR erasure of one address: shop account, link, history; a tombstone stays
    (``syncd.flows.erasure``). Under the erp-to-shop lease, so no cycle pushes it meanwhile."""
    from syncd.flows.erasure import erase as erase_one

    with credential_lease(ctx):
        action, detail = erase_one(ctx, int(number))
    return AccountAction(int(number), action, detail)


def deactivate(ctx: PlatformContext, number: int) -> AccountAction:
    """Set the shop account of ``number`` inactive and record it on the link."""
    link = _linked(ctx, [number])[int(number)]
    errors = ctx.shop.set_active([link.shop_id], False) or {}
    problem = errors.get(link.shop_id)
    if problem:
        return AccountAction(int(number), "failed", f"shop refused: {problem}")
    Links(ctx.state, clock=ctx.clock).set_state(ctx.platform.name, int(number), shop_active=False)
    detail = link.shop_id
    address = ctx.erp.get_address(int(number))
    if address is not None and not address.blocked:
        # The ERP -> shop flow reactivates an account whose ERP address is not blocked as soon
        # as that address changes: the operator must know the blocked flag is what keeps it off.
        detail += ("; note: the ERP address is not blocked, so its next change in the ERP reactivates "
                   "the account - set the blocked flag in the ERP to keep it deactivated / Hinweis: "
                   "Adresse im ERP sperren, sonst wird das Konto bei der nächsten Änderung reaktiviert")
    return AccountAction(int(number), "deactivated", detail)

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
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

import structlog
from sqlalchemy import select

from syncd.core.errors import SyncdError
from syncd.core.rules import HistoryEvent, account_label, parse_account
from syncd.flows import password_status as ps
from syncd.flows import recovery_watch
from syncd.state.activity import AccountActivity
from syncd.state.bounces import Bounces
from syncd.state.jobs import DELIVERED, PENDING
from syncd.state.links import Link, Links
from syncd.state.schema import credential_jobs

log = structlog.get_logger("syncd.flows.accounts")

if TYPE_CHECKING:
    from syncd.flows.context import CycleReport, PlatformContext
    from syncd.state.db import StateStore

# Password status: see ``syncd.flows.password_status``.
INITIAL, RESET_BY_STAFF, OWN, NONE = ps.INITIAL, ps.RESET_BY_STAFF, ps.OWN, ps.NONE
_STATUS_BY_REASON = ps.STATUS_BY_REASON

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
    password_status: str  # INITIAL | RESET_BY_STAFF | OWN | NONE
    last_login_at: datetime | None = None  # newest shop login syncd saw (activation tracking), UTC
    bounced_at: datetime | None = None  # an open hard bounce: not mailed until the ERP e-mail changes

    def csv_values(self) -> list[str]:
        return [
            self.platform,
            account_label(self.address),  # "10001-2": a contact person's account
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
        listed = "; ".join(f"{account_label(n)}: {why}" for n, why in sorted(reasons.items()))
        super().__init__(f"platform {platform!r}: {listed}")


def _deliveries(store: StateStore, platform: str) -> dict[int, tuple[datetime, str, str]]:
    """ERP number -> (time, reason, mode) of the newest delivered credentials mail."""
    t = credential_jobs
    q = (
        select(t.c.erp_number, t.c.finished_at, t.c.reason, t.c.mode)
        .where(t.c.platform == platform, DELIVERED)
        .order_by(t.c.finished_at, t.c.id)
    )
    out: dict[int, tuple[datetime, str, str]] = {}
    with store.connect() as conn:
        for number, finished, reason, mode in conn.execute(q):
            if finished is not None:
                out[int(number)] = (finished, reason, mode)  # ascending: the newest wins
    return out


PAGE = 100  # links per shop look-up (one search request)
ShopError = Callable[[str, Exception], None]


def list_accounts(
    store: StateStore,
    platforms: Iterable[str],
    *,
    inactive: bool = False,
    credentials_sent: bool | None = None,
    changed_by_customer: bool = False,
    shops: Mapping[str, Any] | None = None,
    on_shop_error: ShopError | None = None,
) -> Iterator[AccountRow]:
    """Linked accounts by platform and shop id. Active accounts only, unless ``inactive``
    (then inactive ones too); ``credentials_sent``: True only accounts that were mailed
    credentials, False only those never mailed, None both; ``changed_by_customer``: only
    accounts whose customer set a password of their own.

    ``shops`` (platform -> shop port) lets the status tell an own password from the shop's
    customer fields (``password_status``), one search per ``PAGE`` accounts. A shop that fails
    is reported to ``on_shop_error`` and not asked again (the status then comes from the state
    store alone); ``changed_by_customer`` needs the shop, so there the error is raised."""
    for platform in platforms:
        sent = _deliveries(store, platform)
        shop = (shops or {}).get(platform)
        if changed_by_customer and shop is None:
            raise SyncdError(f"platform {platform!r}: --changed-by-customer needs the shop to be reachable")
        logins = AccountActivity(store).get_many(platform)
        bounced = Bounces(store).open_since(platform)
        page: list[Link] = []
        for link in Links(store).iter(platform):
            page.append(link)
            if len(page) == PAGE:
                shop = yield from _page(store, platform, page, sent, logins, shop, on_shop_error, inactive,
                                        credentials_sent, changed_by_customer, bounced)
                page = []
        if page:
            yield from _page(store, platform, page, sent, logins, shop, on_shop_error, inactive,
                             credentials_sent, changed_by_customer, bounced)


def _page(store: StateStore, platform: str, page: list[Link], sent: Mapping[int, tuple[datetime, str, str]],
          logins: Mapping[str, Any], shop: Any, on_shop_error: ShopError | None, inactive: bool,
          credentials_sent: bool | None, changed_by_customer: bool,
          bounced: Mapping[int, datetime]) -> Generator[AccountRow, None, Any]:
    own: dict[int, bool] = {}
    if shop is not None:
        wanted = {lk.erp_number: (sent[lk.erp_number][0], sent[lk.erp_number][2], lk.updated_at, lk.shop_id)
                  for lk in page if lk.erp_number in sent and lk.kind != "collective"}
        try:
            customers = shop.get_customers([w[3] for w in wanted.values()]) if wanted else {}
            own = ps.refine(wanted, customers, recovery_watch.recovered(shop, store, platform, wanted),
                            examined_until=recovery_watch.writes_examined_until(store, platform))
        except Exception as exc:  # the shop is down or refuses: the state store still answers
            if changed_by_customer or on_shop_error is None:
                raise
            on_shop_error(platform, exc)
            shop = None
    for link in page:
        delivered = sent.get(link.erp_number) if link.kind != "collective" else None
        if own.get(link.erp_number):
            status = OWN
        elif delivered:
            status = _STATUS_BY_REASON.get(delivered[1], RESET_BY_STAFF)
        else:
            status = NONE
        row = AccountRow(
            platform=platform,
            address=link.erp_number,
            shop_id=link.shop_id,
            email=link.email,
            kind=link.kind,
            active=bool(link.shop_active),
            credentials_sent_at=delivered[0] if delivered else None,
            password_status=status,
            last_login_at=logins[link.shop_id].last_login_at if link.shop_id in logins else None,
            bounced_at=bounced.get(link.erp_number),
        )
        if not inactive and not row.active:
            continue
        if credentials_sent is not None and (row.credentials_sent_at is not None) != credentials_sent:
            continue
        if changed_by_customer and row.password_status != OWN:
            continue
        yield row
    return shop


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
    action: str  # mailed | deferred | failed | skipped | deactivated | created | linked | deleted
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.action in ("mailed", "deactivated", "created", "linked", "deleted", "erased")




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
        if reason == "reset":
            _reset_notices(ctx, wanted, report)
    last: dict[int, AccountAction] = {}
    for item in report.items:
        number = parse_account(item.record)  # a report names a contact account "10001-2"
        if number in wanted:
            last[number] = AccountAction(number, item.action, item.detail)
    return [last.get(n, AccountAction(n, "deferred", "queued; the running daemon sends it")) for n in wanted]


def _reset_notices(ctx: PlatformContext, numbers: list[int], report: CycleReport) -> None:
    """The ``password_reset`` event of each address whose new credentials were mailed or queued
    (``syncd.flows.account_events``), sent now under the lease the caller holds."""
    from syncd.flows.account_events import password_reset_notice
    from syncd.flows.context import CycleReport
    from syncd.flows.messages import send_due

    done = {item.record for item in report.items if item.action in ("mailed", "deferred")}
    for n in numbers:
        if account_label(n) in done:
            password_reset_notice(ctx, n)
    send_due(ctx, CycleReport(ctx.platform.name, "messages"))


@contextmanager
def credential_lease(ctx: PlatformContext, *, wait: float | None = None) -> Iterator[None]:
    """Hold the platform's erp-to-shop lease while delivering: a running daemon's cycle takes
    the same lease, so the two never deliver the same job (two mails, two passwords) at once.
    Waits up to ``wait`` seconds (default ``LEASE_WAIT``) for a cycle in flight to finish."""
    from syncd.state.leases import LeaseKeeper, Leases, lease_name, make_holder

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
    with ctx.uow() as uow:
        uow.links.set_state(ctx.platform.name, int(number), shop_active=False)
        uow.history.record(ctx.platform.name, int(number), HistoryEvent.DEACTIVATED, shop_id=link.shop_id,
                           reason="by an operator (syncd accounts deactivate)")
        uow.commit()
    detail = link.shop_id
    address = ctx.erp.get_address(int(number))
    if address is not None and not address.blocked:
        # The ERP -> shop flow reactivates an account whose ERP address is not blocked as soon
        # as that address changes: the operator must know the blocked flag is what keeps it off.
        detail += ("; note: the ERP address is not blocked, so its next change in the ERP reactivates "
                   "the account - set the blocked flag in the ERP to keep it deactivated / Hinweis: "
                   "Adresse im ERP sperren, sonst wird das Konto bei der nächsten Änderung reaktiviert")
    return AccountAction(int(number), "deactivated", detail)


# --- accounts create / delete --------------------------------------------------------------------
REAPPEARS = ("the ERP address still exists: its next change (or `syncd sync --full`) creates the account "
             "again - block the address in the ERP to keep it out of the shop / die ERP-Adresse bleibt: "
             "sperren Sie sie im ERP, sonst legt die nächste Änderung das Konto wieder an")


def create(ctx: PlatformContext, number: int) -> AccountAction:
    """Create the shop account of one ERP address now, through the flow's own push (adoption of
    an existing account included, I4) and its credentials mail (or link)."""
    from syncd.flows import credentials
    from syncd.flows.context import CycleReport
    from syncd.flows.erp_to_shop import settle_password_fields
    from syncd.flows.push_addresses import apply_batch

    number = int(number)
    address = ctx.erp.get_address(number)
    if address is None:
        raise UnknownAddresses(ctx.platform.name, {number: "no such ERP address"})
    link = Links(ctx.state, clock=ctx.clock).get_by_erp(ctx.platform.name, number)
    if link is not None and link.kind != "collective":
        return AccountAction(number, "skipped", f"already linked to shop account {link.shop_id}")
    report = CycleReport(ctx.platform.name, "erp-to-shop")
    with credential_lease(ctx):
        settle_password_fields(ctx)
        mail = credentials.enabled(ctx)
        apply_batch(ctx, [address], report, credentials=mail)
        if mail:
            credentials.send_due(ctx, report)
    mine = [i for i in report.items if i.record == account_label(number)]
    pushed = next((i for i in mine if i.action in ("created", "linked", "adopted", "updated", "unchanged",
                                                    "failed", "skipped", "deferred")), None)
    if pushed is None or pushed.action in ("failed", "skipped", "deferred"):
        return AccountAction(number, "failed", pushed.detail if pushed else "nothing was pushed")
    linked = Links(ctx.state, clock=ctx.clock).get_by_erp(ctx.platform.name, number)
    shop_id = linked.shop_id if linked else (pushed.detail or "")
    created = pushed.action == "created"
    # Its history event (created / adopted) was recorded by the push, with the link it made.
    if not created:
        # An account that already existed was linked, untouched (I4): no mail, no new password.
        return AccountAction(number, "linked", f"{shop_id}: the shop account that already existed, "
                                               "untouched, no mail / vorhandenes Konto verknüpft, keine Mail")
    mailed = [i for i in mine if i.action in ("mailed", "deferred", "failed") and i is not pushed]
    if not mail:
        return AccountAction(number, "created", f"{shop_id}; credential mails are off (send_credentials)")
    last = mailed[-1] if mailed else None
    if last is None:
        return AccountAction(number, "created", f"{shop_id}; mail queued for the running daemon")
    if last.action == "mailed":
        return AccountAction(number, "created", f"{shop_id}; mailed to {last.detail}")
    return AccountAction(number, "created", f"{shop_id}; mail {last.action}: {last.detail}")


def delete(ctx: PlatformContext, number: int) -> AccountAction:
    """Delete the shop account of ``number`` and its link; the ERP row stays. A credential job
    still open for it ends as failed (its field is settled first, I2)."""
    from syncd.flows.erp_to_shop import settle_password_fields

    number = int(number)
    link = _linked(ctx, [number])[number]
    with credential_lease(ctx):
        settle_password_fields(ctx)
        try:
            existed = ctx.shop.delete_customer(link.shop_id)
        except SyncdError as exc:
            return AccountAction(number, "failed", f"shop refused: {exc}")
        with ctx.uow() as uow:
            uow.links.delete(ctx.platform.name, link.shop_id)
            for job in uow.jobs.active(ctx.platform.name, [number]):
                uow.jobs.fail(job.id, "the shop account was deleted (syncd accounts delete)", uow.clock())
            why = "syncd accounts delete" + ("" if existed else "; already gone in the shop")
            uow.history.record(ctx.platform.name, number, HistoryEvent.DELETED, shop_id=link.shop_id,
                               reason=why)
            uow.commit()
    log.info("account deleted", platform=ctx.platform.name, address=number, step="delete")
    gone = "" if existed else " (already gone in the shop; link removed)"
    return AccountAction(number, "deleted", f"{link.shop_id}{gone}; note: {REAPPEARS}")

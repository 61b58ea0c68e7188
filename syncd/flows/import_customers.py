"""Shop -> ERP: import shop customers that have no ERP address yet (spec §1 step 4, issue 6).

What is polled: customers changed since the cursor ``shop-to-erp`` minus the overlap (here and
nowhere else: a change committed late in the shop is still seen), with ``only_with_orders`` those
with an order since then (a first order leaves updatedAt), and earlier failures. No guests.

Per customer: linked already (done, resumed, or its shop edits handled), an ERP address that
already belongs to it (adopted), the collective address, or a new ERP address; the link is
recorded before the ERP insert (I4). The steps and the crash-safety argument are in
docs/ARCHITECTURE.md, "The shop -> ERP import".

State goes through one unit of work per batch (``ctx.uow()``), committed at each point that
must be durable before the next shop or ERP call: the link before the ERP insert (the I4 point
above), a failure or its clearing when a customer is done. Between them the unit holds nothing,
so the other direction's cycle never waits on the SQLite lock while this one talks to the ERP or
the shop. The decisions themselves are in ``syncd.flows.import_plan``.

``dry_run`` reads only: it reports the numbers it would allocate (``would-create``) and the
links it would make (``would-link``) and writes nothing anywhere, not even the cursor.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy.exc import IntegrityError

from syncd.config.profiles import platform_columns
from syncd.core.domain import Direction, ShopCustomer
from syncd.core.errors import ConfigError, PermanentError, SyncdError, TransientError
from syncd.core.rules import SHOP_CHANGE_OVERLAP, LinkKind
from syncd.flows.account_events import customer_validated
from syncd.flows.context import CycleReport, PlatformContext
from syncd.flows.fingerprints import address_fingerprint
from syncd.flows.import_plan import (
    Conventions,
    InvalidAddress,  # noqa: F401  (raised by new_address_values; imported from here by callers)
    LinkedMeanwhile,
    SettingMissing,
    WriteBackFailed,
    address_problems,  # noqa: F401  (public name of this module before the split)
    as_number,
    check_address,
    copy_columns,
    email_variants,
    history_event,
    link_done,
    linked_by_someone_else,
    new_address_values,
    same_email,
    sole_candidate,
)
from syncd.flows.numbers import ImportBlocked, NumberAllocator, NumberPolicy
from syncd.flows.shop_changes import ShopChanges
from syncd.state.db import chunked
from syncd.state.links import Link
from syncd.state.uow import UnitOfWork

log = structlog.get_logger("syncd.flows.import_customers")

DIRECTION = Direction.SHOP_TO_ERP.value
CURSOR = "shop-to-erp"
BATCH = 100
# The kill tests name a point here; the process SIGKILLs itself on reaching it.
KILL_ENV = "SYNCD_TEST_KILL_AT"


def checkpoint(name: str) -> None:
    if os.environ.get(KILL_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def run_shop_to_erp(ctx: PlatformContext, *, dry_run: bool = False) -> CycleReport:
    """One cycle of the shop -> ERP import for ``ctx.platform``. Permanent faults of a record
    are recorded and reported, and the others continue; a transient fault that outlived its
    retries ends the cycle (raised) without moving the cursor, so the next cycle redoes it."""
    report = CycleReport(ctx.platform.name, DIRECTION, dry_run=dry_run)
    a = ctx.platform.addresses
    if not a.shop_to_erp and a.collective_address is None and a.shop_changes == "ignore":
        report.add("-", "skipped", "shop_to_erp is off and no collective_address is set")
        return report
    _Import(ctx, report, dry_run).run()
    return report


class _Import:
    """One cycle's worth of state: the batch's unit of work and allocator, and what was read
    once (template values, whether the collective address exists, the dry-run number preview)."""

    uow: UnitOfWork
    allocator: NumberAllocator

    def __init__(self, ctx: PlatformContext, report: CycleReport, dry_run: bool) -> None:
        self.ctx = ctx
        self.report = report
        self.dry_run = dry_run
        self.platform = ctx.platform.name
        self.settings = ctx.platform.addresses
        self.policy = NumberPolicy.from_settings(ctx.settings, ctx.platform)
        self.columns = platform_columns(ctx.settings, ctx.platform.name)
        self.prefix = ctx.platform.customer_number_prefix
        self.conventions = Conventions.of(ctx.settings.erp)
        self.shop_changes = ShopChanges(ctx, report, dry_run)
        self.log = log.bind(platform=self.platform, direction=DIRECTION)
        self._template: dict[str, Any] | None = None
        self._collective_ok = False
        self._preview: Iterator[int] | None = None

    # --- the cycle ---------------------------------------------------------------------------

    def run(self) -> None:
        started = self.ctx.clock()
        with self.ctx.uow() as uow:
            cursor = uow.cursors.get(self.platform, CURSOR)
        # The one place the overlap is applied: the shop port takes ``since`` literally.
        since = datetime.fromisoformat(cursor["since"]) - SHOP_CHANGE_OVERLAP if cursor else None
        self.log.info("import cycle", since=since.isoformat() if since else None, dry_run=self.dry_run)
        done = 0
        for batch in chunked(self._customers(since), BATCH):
            with self.ctx.uow() as uow:
                self.uow = uow
                self.allocator = NumberAllocator(uow.allocations, self.ctx.erp, self.policy,
                                                 settle=uow.commit)
                linked = uow.links.get_by_shops(self.platform, [c.id for c in batch])
                self._settle()
                for customer in batch:
                    blocked = self._one(customer, linked.get(customer.id))
                    if blocked is not None:
                        self.log.warning("imports stopped for this platform until the cause is fixed")
                        if self.dry_run:
                            return
                        # The cursor stays, so the customers not reached are polled again; raising
                        # marks the cycle failed (``syncd status``, metrics) with the reason.
                        blocked.report = self.report  # type: ignore[attr-defined]
                        raise blocked
                uow.commit()
            done += len(batch)
            if self.ctx.progress is not None:
                self.ctx.progress(done, None)
        if not self.dry_run:
            with self.ctx.uow() as uow:
                uow.cursors.set(self.platform, CURSOR, {"since": started.isoformat()})
                uow.commit()

    def _settle(self) -> None:
        """Make what the unit wrote durable and end its transaction, before the next shop or ERP
        call: a unit holds the SQLite write lock while its transaction is open."""
        self.uow.commit()

    def _customers(self, since: datetime | None) -> Iterator[ShopCustomer]:
        """Changed customers, then (only-with-orders) customers with orders since, then the
        ones that failed before; each once. Streamed: only the ids seen are kept."""
        shop = self.ctx.shop
        seen: set[str] = set()
        sources: list[Iterable[ShopCustomer]] = [shop.customers_changed_since(since)]
        if self.settings.only_with_orders and since is not None:
            sources.append(shop.customers_with_orders(since))
        for source in sources:
            for c in source:
                if c.id not in seen:
                    seen.add(c.id)
                    yield c
        with self.ctx.uow() as uow:
            retry = [f.record for f in uow.failures.list(self.platform)
                     if f.direction == DIRECTION and f.record not in seen]
        if not retry:
            return
        again = shop.get_customers(retry)
        gone = [r for r in retry if r not in again]
        if gone and not self.dry_run:
            with self.ctx.uow() as uow:
                uow.failures.clear_many(self.platform, DIRECTION, gone)  # deleted in the shop
                uow.commit()
        yield from again.values()

    def _one(self, c: ShopCustomer, link: Link | None) -> SyncdError | None:
        """Handle one customer; returns the fault when imports must stop for the platform.
        What it wrote is committed when it returns; a raised fault leaves the uncommitted
        rest to the unit's rollback."""
        blocked: SyncdError | None = None
        try:
            with structlog.contextvars.bound_contextvars(shop_id=c.id):
                self._decide(c, link)
        except (ImportBlocked, ConfigError) as exc:
            # Every further customer would meet it too (no number left, a missing template,
            # an unknown ERP column): stop instead of failing them one by one.
            self._failed(c, getattr(exc, "step", "settings"), exc)
            blocked = exc
        except TransientError:
            raise
        except LinkedMeanwhile as exc:
            self.report.add(c.id, "skipped", str(exc))
        except PermanentError as exc:
            self._failed(c, getattr(exc, "step", "import"), exc)
        self._settle()
        return blocked

    def _failed(self, c: ShopCustomer, step: str, exc: SyncdError) -> None:
        reason = str(exc)
        self.report.add(c.id, "failed", reason)
        self.log.error("import failed", step=step, reason=reason)
        if not self.dry_run:
            self.uow.failures.record(self.platform, DIRECTION, c.id, step, reason, getattr(exc, "code", None))

    def _succeeded(self, c: ShopCustomer, action: str, detail: str, number: int | None = None) -> None:
        self.report.add(c.id, action, detail)
        self.log.info("import " + action, detail=detail)
        if not self.dry_run:
            self.uow.failures.clear(self.platform, DIRECTION, c.id)
            if (event := history_event(action, detail, c)) is not None and number is not None:
                self.uow.history.record(self.platform, number, event[0], reason=event[1], shop_id=c.id)

    # --- deciding what a customer needs ----------------------------------------------------

    def _decide(self, c: ShopCustomer, link: Link | None) -> None:
        if c.guest:
            self.report.counts["guest"] += 1
            return
        if link is not None:
            if link_done(c, link, self.prefix):
                if self.shop_changes.enabled and link.kind != LinkKind.COLLECTIVE:
                    self._settle()  # the next call is the ERP's
                    self.shop_changes.handle(self.uow, c, link.erp_number)
                else:
                    self.report.counts["unchanged"] += 1
                if not self.dry_run:
                    self.uow.failures.clear(self.platform, DIRECTION, c.id)
                return
            if link.kind == LinkKind.COLLECTIVE:
                self._write_back(c, link.erp_number, "linked", f"collective address {link.erp_number}")
            else:
                self._resume(c, link)
            return
        if self.settings.only_with_orders and c.order_count < 1:
            self.report.counts["no-orders"] += 1
            return
        if not self.settings.shop_to_erp and self.settings.collective_address is None:
            self.report.counts["not-imported"] += 1  # running for shop_changes only
            return
        own = self._own_address(c)
        if own is not None:
            self._adopt(c, own)
        elif not self.settings.shop_to_erp:
            self._link_collective(c)
        else:
            self._import(c)

    def _own_address(self, c: ShopCustomer) -> int | None:
        """An ERP address that already belongs to ``c`` (see the module docstring, step 2)."""
        erp = self.ctx.erp
        shop_col = self.columns.get("shop_id")
        if shop_col:
            numbers = erp.find_numbers(shop_col, c.id)
            if numbers:
                return min(numbers)
        number = as_number(c.customer_number, self.prefix)
        if (number is not None and erp.number_exists(number) and self._unlinked(number)
                and self._email_matches(number, c.email)):
            return number
        email_col = self.columns.get("email")
        if not email_col:
            return None
        candidates: set[int] = set()
        for value in email_variants(c.email):
            candidates |= set(erp.find_numbers(email_col, value))
        own = sole_candidate(candidates)
        # ... and linked to no other account.
        return own if own is not None and self._unlinked(own) else None

    def _unlinked(self, number: int) -> bool:
        linked = self.uow.links.get_by_erp(self.platform, number)
        self._settle()  # the next call is the ERP's
        return linked is None

    def _email_matches(self, number: int, email: str | None) -> bool:
        col = self.columns.get("email")
        if not col or not email:
            return False
        return same_email(self.ctx.erp.read_columns(number, [col]).get(col), email)

    # --- the four outcomes -----------------------------------------------------------------

    def _link(self, c: ShopCustomer, number: int, kind: LinkKind) -> None:
        """Claim ``c`` and link it to ``number``, durable before the write-back."""
        self._claim(c)
        self.uow.links.upsert(Link(self.platform, c.id, number, kind=kind, email=c.email))
        self._settle()

    def _adopt(self, c: ShopCustomer, number: int) -> None:
        if self.dry_run:
            self.report.add(c.id, "would-link", f"existing ERP address {number} for {c.email}")
            return
        self._link(c, number, LinkKind.IMPORT)
        self._write_back(c, number, "linked", f"existing ERP address {number}")

    def _link_collective(self, c: ShopCustomer) -> None:
        number = self.settings.collective_address
        assert number is not None  # run_shop_to_erp returns early otherwise
        if not self._collective_ok:
            if not self.ctx.erp.number_exists(number):
                raise SettingMissing(
                    f"platform {self.platform}: collective_address {number} does not exist in the ERP; "
                    "create it or correct platforms.addresses.collective_address",
                    code="collective-missing",
                )
            self._collective_ok = True
        if self.dry_run:
            self.report.add(c.id, "would-link", f"collective address {number} for {c.email}")
            return
        self._link(c, number, LinkKind.COLLECTIVE)
        self._write_back(c, number, "linked", f"collective address {number}")

    def _import(self, c: ShopCustomer, replacing: int | None = None) -> None:
        values = self._values(c)
        if self.dry_run:
            if self._preview is None:
                self._preview = self.allocator.preview()
            number = next(self._preview)
            self.report.add(c.id, "would-create", f"ERP address {number} for {c.email}")
            return
        ours = {replacing} if replacing is not None else set()
        uow = self.uow

        def insert(number: int) -> bool:
            self._claim(c, ours)
            ours.add(number)
            try:
                # Linked before the row exists: the ERP -> shop scan must never see it unlinked.
                with uow.savepoint():
                    uow.links.upsert(Link(self.platform, c.id, number, kind=LinkKind.IMPORT, email=c.email))
            except IntegrityError:
                return False  # the number is linked to another shop account already
            self._settle()  # the link (and the number's reservation) before the ERP insert (I4)
            checkpoint("import:after-link")
            return self.ctx.erp.create_address(number, values)

        try:
            number = self.allocator.place(insert)
        except TransientError:
            raise  # outcome unknown: the link stays and the next cycle resumes from it
        except LinkedMeanwhile as exc:
            self.report.add(c.id, "skipped", str(exc))
            return
        except Exception:
            # Nothing of ours was written to the ERP. (A crash - anything that is not an
            # Exception - leaves the link uncommitted-deleted, i.e. in place: outcome unknown.)
            uow.links.delete(self.platform, c.id)
            self._settle()
            raise
        checkpoint("import:after-insert")
        self._remember_as_pushed(c, number)
        self._write_back(c, number, "imported", f"ERP address {number}")

    def _claim(self, c: ShopCustomer, ours: set[int] | None = None) -> None:
        """Refuse to overwrite a link someone else made after this cycle read the links: the
        ERP -> shop flow runs at the same time and links accounts it creates or finds."""
        current = self.uow.links.get_by_shop(self.platform, c.id)
        if linked_by_someone_else(current, ours or ()):
            assert current is not None
            raise LinkedMeanwhile(current)

    def _resume(self, c: ShopCustomer, link: Link) -> None:
        number = link.erp_number
        owner = self._owner(number, c, link)
        if owner is None:  # the crash came before the insert
            values = self._values(c)
            if self.dry_run:
                self.report.add(c.id, "would-create", f"ERP address {number} for {c.email}")
                return
            owner = True if self.ctx.erp.create_address(number, values) else self._owner(number, c, link)
        if owner:
            if link.fingerprint is None:
                self._remember_as_pushed(c, number)
            self._write_back(c, number, "imported", f"ERP address {number} (resumed)")
            return
        self.log.warning("linked number was taken by someone else, importing anew", number=number)
        self._import(c, replacing=number)

    def _owner(self, number: int, c: ShopCustomer, link: Link) -> bool | None:
        """Whether ERP address ``number`` is the row we inserted for ``c``; None: no such row."""
        if not self.ctx.erp.number_exists(number):
            return None
        shop_col = self.columns.get("shop_id")
        if shop_col:
            return self.ctx.erp.read_columns(number, [shop_col]).get(shop_col) == c.id
        return self._email_matches(number, link.email)

    def _remember_as_pushed(self, c: ShopCustomer, number: int) -> None:
        """The new ERP row holds what the shop account holds: its fingerprint on the link, as a push
        records, so the ERP -> shop scan finds the row unchanged instead of writing it back."""
        address = self.ctx.erp.get_address(number)  # inserted a moment ago
        self.uow.links.upsert(Link(self.platform, c.id, number, kind=LinkKind.IMPORT, email=c.email,
                                   fingerprint=address_fingerprint(address) if address else None))
        self._settle()

    def _write_back(self, c: ShopCustomer, number: int, action: str, detail: str) -> None:
        if self.dry_run:
            self.report.add(c.id, "would-write-back", detail)
            return
        if c.customer_number != self.prefix + str(number):
            try:
                self.ctx.shop.set_customer_number(c.id, self.prefix + str(number))
            except PermanentError as exc:
                raise WriteBackFailed(
                    f"writing customer number {number} to the shop failed: {exc}", code=exc.code
                ) from exc
        checkpoint("import:after-write-back")
        self._succeeded(c, action, detail, number)
        if action == "imported" and not self.dry_run:  # the customer is an ERP customer now
            customer_validated(self.ctx, self.uow, c, number, self._values(c), self.columns)

    # --- the new address -------------------------------------------------------------------

    def _values(self, c: ShopCustomer) -> dict[str, Any]:
        check_address(c)
        return new_address_values(c, self.columns, self._template_values(), self.conventions)

    def _template_values(self) -> dict[str, Any]:
        if self._template is None:
            number = self.settings.template_address
            copy = copy_columns(self.columns, self.settings.copy_fields)
            if number is None or not copy:
                self._template = {}
            elif not self.ctx.erp.number_exists(number):
                raise SettingMissing(
                    f"platform {self.platform}: template_address {number} does not exist in the ERP; "
                    "create it or correct platforms.addresses.template_address",
                    code="template-missing",
                )
            else:
                self._template = dict(self.ctx.erp.read_columns(number, copy))
        return self._template

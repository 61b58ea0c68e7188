"""Contact persons of company addresses (issue 18) and their main-contact events (issue 15).

* ``accounts_per = "contact"``: each contact person with an e-mail of a business address the
  cycle delivers gets its own shop account, pushed beside the address's own (``apply_batch``:
  adoption, intents, links, link-mode credential jobs; keyed by ``rules.contact_account``, so
  every state table keeps its key and every invariant holds per contact). A contact without an
  e-mail is skipped with its reason (history once per address change, report every cycle).
  Contacts changed without their address are found by the contacts' own stamp
  (``changed_alone``, cursor ``erp-to-shop:contacts``).
* The main contact: the last one seen per company is kept in ``cursors`` (``main-contact:N``,
  with a sequence number). When the ERP names another one, the same unit of work records the
  new main contact, the history rows and the ``new_main_contact`` / ``former_main_contact``
  messages, whose dedup key is the sequence number: detecting the change again (an overlap
  re-read, a crash before the cursor moved) finds it on record and queues nothing. The first
  sighting of a company records its main contact without an event (go-live is no change).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import structlog

from syncd.config.contacts import MAIN_CONTACT_EVENTS
from syncd.core.domain import ErpAddress
from syncd.core.rules import HistoryEvent, account_label, account_parts, contact_account
from syncd.flows.context import CycleReport, PlatformContext
from syncd.flows.messages import Occurrence, notify
from syncd.flows.push_addresses import apply_batch
from syncd.state.cursors import MAIN_CONTACT

log = structlog.get_logger("syncd.flows.contacts")

CURSOR = "erp-to-shop:contacts"
MAIN = MAIN_CONTACT
NO_EMAIL = "contact person has no e-mail address: no shop account / Ansprechpartner ohne E-Mail: kein Konto"


def _accounts(ctx: PlatformContext) -> bool:
    return ctx.platform.addresses.accounts_per == "contact"


def _events(ctx: PlatformContext) -> bool:
    return any(n.event in MAIN_CONTACT_EVENTS and n.enabled for n in ctx.settings.notifications)


def active(ctx: PlatformContext) -> bool:
    """Whether the cycle reads contact persons at all."""
    return getattr(ctx.erp, "contacts", None) is not None and (_accounts(ctx) or _events(ctx))


def follow(ctx: PlatformContext, chunk: Sequence[ErpAddress], report: CycleReport, *,
           credentials: bool) -> None:
    """After ``chunk`` was pushed: push its business addresses' contact accounts and record
    main-contact changes."""
    if not active(ctx):
        return
    companies = _companies(ctx, chunk)
    if not companies:
        return
    found = ctx.erp.contact_addresses(companies)
    if _accounts(ctx):
        _push(ctx, [c for items in found.values() for c in items], report, credentials=credentials)
    by_number = {a.number: a for a in companies}
    with ctx.uow() as uow:
        stored = uow.cursors.get_many(ctx.platform.name, [MAIN + str(n) for n in found])  # one read
        for number, items in found.items():
            _main_changed(ctx, uow, by_number[number], items, report, stored.get(MAIN + str(number)))
        uow.commit()


def accounts_of(ctx: PlatformContext, chunk: Sequence[ErpAddress]) -> list[ErpAddress]:
    """The contact accounts (with an e-mail) of ``chunk``'s business addresses; none unless
    ``accounts_per = "contact"``. For the dry run, which plans them like any address."""
    if not (active(ctx) and _accounts(ctx)):
        return []
    found = ctx.erp.contact_addresses(_companies(ctx, chunk))
    return [c for items in found.values() for c in items if (c.email or "").strip()]


def _companies(ctx: PlatformContext, chunk: Sequence[ErpAddress]) -> list[ErpAddress]:
    """The business addresses of ``chunk`` whose contacts are read: not an erased company (GDPR,
    ``syncd accounts erase``), whose contacts get no account, nor main-contact record, again."""
    companies = [a for a in chunk if a.business and a.number > 0]
    if not companies:
        return []
    with ctx.uow() as uow:
        erased = uow.tombstones.among(ctx.platform.name, [a.number for a in companies])
    return [a for a in companies if a.number not in erased]


def _push(ctx: PlatformContext, accounts: list[ErpAddress], report: CycleReport, *,
          credentials: bool) -> None:
    with_mail = [a for a in accounts if (a.email or "").strip()]
    skipped = [a for a in accounts if not (a.email or "").strip()]
    for a in skipped:
        report.add(account_label(a.number), "skipped", NO_EMAIL)
    if skipped:
        with ctx.uow() as uow:
            last = uow.history.last_events(ctx.platform.name, [a.number for a in skipped])
            new = [a.number for a in skipped if last.get(a.number) != HistoryEvent.CONTACT_SKIPPED]  # once
            uow.history.record_many(ctx.platform.name, [(n, HistoryEvent.CONTACT_SKIPPED, NO_EMAIL, None)
                                                        for n in new])
            uow.commit()
    for start in range(0, len(with_mail), ctx.platform.batch_size):
        apply_batch(ctx, with_mail[start:start + ctx.platform.batch_size], report, credentials=credentials)


def _main_changed(ctx: PlatformContext, uow: Any, company: ErpAddress, contacts: list[ErpAddress],
                  report: CycleReport, stored: dict[str, Any] | None) -> None:
    name, number = ctx.platform.name, company.number
    main = ctx.erp.main_contact(company)
    if stored is not None and stored.get("contact") == main:
        return
    seq = int(stored.get("seq", 0)) + 1 if stored is not None else 0
    uow.cursors.set(name, MAIN + str(number), {"contact": main, "seq": seq})
    if stored is None:
        return  # first sighting: nothing changed that syncd saw
    old = stored.get("contact")
    by_contact = {account_parts(c.number)[1]: c for c in contacts}
    key = f"{number}:{seq}"
    for event, contact, role in (("new_main_contact", main, "new"), ("former_main_contact", old, "former")):
        if contact is None:
            continue
        account = contact_account(number, int(contact))
        person = by_contact.get(int(contact))
        uow.history.record(name, account, HistoryEvent.MAIN_CONTACT,
                           reason=f"{role} main contact of {number}")
        values = {"company": company.company, "customer_number": account_label(account),
                  "company_number": str(number), "previous": _label(number, old),
                  "current": _label(number, main)}
        if person is not None:  # kept with the message: a contact deleted by then is still named
            values.update(first_name=person.first_name, last_name=person.last_name,
                          salutation=person.salutation)
        email = person.email if person is not None else _linked_email(uow, name, account)
        ids = notify(ctx, Occurrence(event=event, key=key, erp_number=account, group=company.customer_group,
                                     email=email, values=values), uow=uow)
        report.add(account_label(account), "queued" if ids else "unchanged", event)
    log.info("main contact changed", platform=name, address=number, former=old, new=main)


def _linked_email(uow: Any, platform: str, account: int) -> str | None:
    """A contact deleted with the change: the login of its account, if it had one."""
    link = uow.links.get_by_erp(platform, account)
    return link.email if link is not None else None


def _label(number: int, contact: Any) -> str | None:
    return None if contact is None else account_label(contact_account(number, int(contact)))


def changed_alone(ctx: PlatformContext, report: CycleReport, *, credentials: bool) -> None:
    """Addresses whose contact persons changed since the last cycle (their own stamp, minus
    ``[erp] overlap``): followed like a delivered address (the address itself is not pushed)."""
    if not active(ctx):
        return
    name = ctx.platform.name
    with ctx.uow() as uow:
        cursor = uow.cursors.get(name, CURSOR) or {}
    since = cursor.get("stamp")
    bound = datetime.fromisoformat(since) - timedelta(seconds=ctx.settings.erp.overlap) if since else None
    numbers, newest = ctx.erp.contacts_changed(bound)
    numbers = sorted(numbers)
    for start in range(0, len(numbers), ctx.platform.batch_size):
        found = ctx.erp.get_addresses(numbers[start:start + ctx.platform.batch_size])
        follow(ctx, [found[n] for n in sorted(found)], report, credentials=credentials)
    if isinstance(newest, datetime) and newest.isoformat() != since:
        with ctx.uow() as uow:
            uow.cursors.set(name, CURSOR, {"stamp": newest.isoformat()})
            uow.commit()

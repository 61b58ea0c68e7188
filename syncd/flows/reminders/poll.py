"""One reminder poll of a platform: read the shop's order changes, update the schedule, queue
what is due as message jobs (sent by ``syncd.flows.messages``: e-mail and SMS runs).

Costs O(changes): the shop is asked for new orders and state changes since the bookmark
(cursor ``reminders``, shop timestamps, re-read with ``SHOP_CHANGE_OVERLAP``), the schedule
rows of just those orders are read, and the due query is an index probe on ``next_due``. An idle
poll writes nothing.

Once per (order, reminder, occurrence), across crashes: an occurrence's message is queued under
the dedup key ``<order id>:<reminder>:<occurrence>`` in the same transaction that advances the
schedule past it, so a crash before the commit queues it again (the same key), after it never.
The send itself has the message machinery's bound: at most one resend of a message whose outcome
a crash left unknown.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any

import structlog

from syncd.config.messaging import ReminderSettings
from syncd.config.model import PlatformSettings, Settings
from syncd.config.profiles import effective_columns
from syncd.core.channels import ChannelName, ChannelProblem, parse_channel, plan_channels
from syncd.core.domain import ErpAddress, ShopOrder
from syncd.core.errors import ConfigurationFault, SyncdError, TransientError
from syncd.core.redaction import redact
from syncd.core.rules import SHOP_CHANGE_OVERLAP, HistoryEvent
from syncd.flows.context import CycleReport, PlatformContext
from syncd.flows.push_addresses import checkpoint
from syncd.flows.reminders.schedule import decide, due_at, lookback
from syncd.state import reminders as rs
from syncd.state.messages import SMS

log = structlog.get_logger("syncd.flows.reminders")

CURSOR = "reminders"
BATCH = 500


def reminders_for(settings: Settings, platform: PlatformSettings) -> tuple[ReminderSettings, ...]:
    return tuple(r for r in settings.reminders if r.platform in (None, platform.name))


def poll(ctx: PlatformContext, report: CycleReport) -> None:
    reminders = reminders_for(ctx.settings, ctx.platform)
    if not reminders:
        return
    try:
        read_changes(ctx, reminders, report)
    except SyncdError as exc:
        # The shop's order API away or refusing: the address sync of this cycle must not wait
        # for it. The bookmark did not move; the next cycle reads the same changes again.
        log.warning("reminders: order changes not read", platform=ctx.platform.name, error=str(exc))
        report.add(ctx.platform.name, "deferred", redact(f"reminders: {exc}"))
        if isinstance(exc, ConfigurationFault):
            report.config_fault(redact(str(exc)))
    queue_due(ctx, reminders, report)


# --- changes -> schedule ------------------------------------------------------------------


def _since(cursor: Mapping[str, Any] | None, start: datetime) -> dict[str, datetime]:
    if not cursor:
        return {"orders": start, "states": start}
    return {k: datetime.fromisoformat(str(cursor[k])) - SHOP_CHANGE_OVERLAP for k in ("orders", "states")}


def read_changes(ctx: PlatformContext, reminders: tuple[ReminderSettings, ...], report: CycleReport) -> int:
    if not hasattr(ctx.shop, "order_changes"):  # a shop without orders (test doubles)
        return 0
    name = ctx.platform.name
    now = ctx.clock()
    with ctx.uow() as uow:
        cursor = uow.cursors.get(name, CURSOR)
    skip = set((cursor or {}).get("seen") or ())
    changes = ctx.shop.order_changes(_since(cursor, now - lookback(reminders)), skip)
    count = 0
    for batch in _batches(changes.orders, BATCH):
        count += len(batch)
        with ctx.uow() as uow:
            rows = uow.reminders.of_orders(name, [o.id for o in batch])
            new: list[dict[str, Any]] = []
            for order in batch:
                for reminder in reminders:
                    _apply(uow, name, order, reminder, rows.get((reminder.name, order.id)), now, new)
            uow.reminders.insert_many(new, now=now)
            uow.commit()
    # The bookmark moves only forward, and only after the orders it covers are scheduled. The
    # rows inside the next read's overlap window are remembered, so it skips them: an idle
    # poll fetches no order and writes nothing.
    newest: dict[str, Any] = {k: str(v) for k, v in changes.cursor.items()}
    if cursor:
        newest = {k: max(newest[k], str(cursor[k]), key=datetime.fromisoformat) for k in newest}
    edge = {k: datetime.fromisoformat(v) - SHOP_CHANGE_OVERLAP for k, v in newest.items()}
    newest["seen"] = {key: stamp for key, stamp in changes.seen.items()
                      if datetime.fromisoformat(stamp) >= edge["orders" if key[0] == "o" else "states"]}
    if newest != (cursor or {}):
        with ctx.uow() as uow:
            uow.cursors.set(name, CURSOR, newest)
            uow.commit()
    if count:
        report.add(name, "reminders", f"{count} order change(s)")
    return count


def _batches(items: Iterable[ShopOrder], size: int) -> Iterator[list[ShopOrder]]:
    batch: list[ShopOrder] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _context(order: ShopOrder) -> dict[str, Any]:
    return {"order_number": order.number, "order_date": order.placed_at.isoformat(),
            "amount": order.amount, "first_name": order.first_name, "last_name": order.last_name,
            "company": order.company, "customer_email": order.email, "customer_id": order.customer_id}


def _apply(uow: Any, platform: str, order: ShopOrder, reminder: ReminderSettings,
           row: rs.ReminderRow | None, now: datetime, new: list[dict[str, Any]]) -> None:
    """Bring one schedule row in line with the order; a new row is appended to ``new``."""
    decision = decide(order, reminder)
    repo: rs.Reminders = uow.reminders
    key = (platform, reminder.name, order.id)
    if row is None:
        if decision.active:
            assert decision.anchor is not None
            new.append({"platform": platform, "reminder": reminder.name, "order_id": order.id,
                        "order_number": order.number, "state": rs.SCHEDULED, "anchor_at": decision.anchor,
                        "next_due": due_at(reminder, decision.anchor, 0), "reason": None,
                        "context": _context(order)})
        return
    if row.state in (rs.CANCELLED, rs.DONE):
        return
    if not decision.active:
        if row.state == rs.SCHEDULED and decision.reason:
            repo.change(*key, now=now, state=rs.STOPPED, reason=decision.reason)
        return
    assert decision.anchor is not None
    anchor = row.anchor_at if row.sent else decision.anchor  # a moved trigger counts until the first send
    if row.sent == 0:
        due = due_at(reminder, anchor, 0)
    elif row.state == rs.SCHEDULED:
        due = row.next_due  # set when the last one was queued; other changes do not postpone it
    else:  # resumed (a payment reopened): the next one by the schedule, not before now
        nxt = due_at(reminder, anchor, row.sent)
        due = max(nxt, now) if nxt is not None else None
    state = rs.SCHEDULED if due is not None else rs.DONE
    if row.state != state or row.next_due != due or row.anchor_at != anchor:
        repo.change(*key, now=now, state=state, anchor_at=anchor, next_due=due, reason=None,
                    context=_context(order))


# --- due -> message jobs ------------------------------------------------------------------


def queue_due(ctx: PlatformContext, reminders: tuple[ReminderSettings, ...], report: CycleReport) -> int:
    by_name = {r.name: r for r in reminders}
    name = ctx.platform.name
    queued = 0
    while True:
        now = ctx.clock()
        with ctx.uow() as uow:
            due = uow.reminders.due(name, now, limit=BATCH, reminders=tuple(by_name))
        if not due:
            return queued
        try:
            contacts = _contacts(ctx, due)
        except TransientError as exc:  # the ERP is away: the reminders stay due for the next poll
            log.warning("reminders wait for the ERP", platform=name, error=str(exc))
            return queued
        with ctx.uow() as uow:
            for row in due:
                queued += _queue_one(ctx, uow, by_name[row.reminder], row, contacts, now, report)
            checkpoint("reminders_before_commit")
            uow.commit()


def _contacts(ctx: PlatformContext, rows: Iterable[rs.ReminderRow]) -> dict[str, ErpAddress]:
    """Shop customer id -> the linked ERP address (mobile number and preferred channel live there)."""
    ids = [str(r.context.get("customer_id")) for r in rows if r.context.get("customer_id")]
    if not ids:
        return {}
    with ctx.uow() as uow:
        links = uow.links.get_by_shops(ctx.platform.name, ids)
    numbers = {link.erp_number: shop_id for shop_id, link in links.items() if link.erp_number is not None}
    if not numbers:
        return {}
    addresses = ctx.erp.get_addresses(list(numbers))
    return {numbers[n]: a for n, a in addresses.items()}


def _column(ctx: PlatformContext, address: ErpAddress | None, logical: str) -> Any:
    column = effective_columns(ctx.settings.erp).get(logical)
    if address is None or not column:
        return None
    row = address.row
    return row.get(column, next((v for k, v in row.items() if str(k).lower() == column.lower()), None))


def wanted_channel(ctx: PlatformContext, reminder: ReminderSettings, address: ErpAddress | None
                   ) -> tuple[ChannelName, str | None]:
    """The channel of one message, and a note when the customer's value could not be read."""
    if reminder.channel != "preferred":
        return reminder.channel, None  # type: ignore[return-value]
    default: ChannelName = ctx.settings.messages.default_channel
    try:
        return parse_channel(_column(ctx, address, "preferred_channel")) or default, None
    except ChannelProblem as exc:
        return default, f"{exc}; using {default}"


def _queue_one(ctx: PlatformContext, uow: Any, reminder: ReminderSettings, row: rs.ReminderRow,
               contacts: Mapping[str, ErpAddress], now: datetime, report: CycleReport) -> int:
    platform = ctx.platform.name
    values = dict(row.context)
    address = contacts.get(str(values.get("customer_id")))
    wanted, note = wanted_channel(ctx, reminder, address)
    email = (address.email if address is not None and address.email else None) or values.get("customer_email")
    plan = plan_channels(
        wanted=wanted, email=email, mobile=_column(ctx, address, "mobile"),
        country=address.country if address is not None else None,
        default_region=ctx.settings.messages.default_region, sms_enabled=ctx.settings.sms.enabled,
        fallback_to_email=ctx.settings.messages.fallback_to_email,
    )
    occurrence = f"{row.order_id}:{reminder.name}:{row.sent}"
    values.update(reminder=reminder.name, occurrence=row.sent + 1, max_messages=reminder.max_messages,
                  role="customer", customer_email=email)
    erp_number = address.number if address is not None else None
    queued = 0
    for delivery in plan.deliveries:
        new = uow.messages.enqueue(
            platform=platform, kind=reminder.kind, occurrence=occurrence, recipient=delivery.to,
            erp_number=erp_number, channel=delivery.channel, layout=reminder.layout, now=now,
            context={**values, "fallback": delivery.fallback},
        )
        if new is not None:
            queued += 1
            if erp_number is not None:
                uow.history.record(platform, erp_number, HistoryEvent.MESSAGE_QUEUED,
                                   reason=f"{reminder.kind} -> {delivery.channel} (order {row.order_number})")
    problems = [p for p in plan.problems if p.startswith("sms")] if wanted != "none" else []
    if problems and not any(d.channel == SMS for d in plan.deliveries):
        # The SMS this customer wanted is on record as failed, with the reason.
        failed = uow.messages.enqueue(
            platform=platform, kind=reminder.kind, occurrence=occurrence, recipient="(no usable number)",
            erp_number=erp_number, channel=SMS, layout=reminder.layout, now=now, context=values)
        if failed is not None:
            uow.messages.fail(failed, "; ".join(problems), now)
            report.add(row.order_number or row.order_id, "failed", "; ".join(problems))
    reason = "; ".join(p for p in (note, plan.reason if not plan.deliveries else None) if p) or None
    after = due_at(reminder, row.anchor_at, row.sent + 1, now)
    uow.reminders.change(platform, reminder.name, row.order_id, now=now, sent=row.sent + 1,
                         state=rs.SCHEDULED if after is not None else rs.DONE, next_due=after, reason=reason)
    report.add(row.order_number or row.order_id, "reminder", f"{reminder.name} #{row.sent + 1}")
    return queued

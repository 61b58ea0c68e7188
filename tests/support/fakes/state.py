"""In-memory state: fakes of the repositories of ``syncd.state`` and of ``SqlUnitOfWork``.

For flow tests that need no database: plain dicts, same methods, same answers. The fakes take
(and ignore) the ``conn=`` arguments the real repositories take. ``tests/unit/test_state_contract.py``
runs the repository tests on these and on a real SQLite store, so the two cannot drift apart.

    state = FakeState(clock)                  # the "database"
    uow = FakeUnitOfWork(state)               # what ctx.uow() would return
    with uow:
        uow.links.upsert(...)
        uow.commit()
    assert uow.committed == 1

A ``FakeUnitOfWork`` snapshots the state when entered and after each commit; ``rollback()`` and
leaving the block without a commit restore the snapshot. Writes are visible to everyone sharing
the ``FakeState`` at once (the fakes model one process, not isolation between connections).
"""

from __future__ import annotations

import contextlib
import copy
import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from typing import Any, Self

from sqlalchemy.exc import IntegrityError

from syncd.core.clock import Clock, utcnow
from syncd.core.rules import HistoryEvent, LinkKind, contact_keys
from syncd.state import jobs as steps
from syncd.state.approvals import Approval
from syncd.state.drift import DriftReports
from syncd.state.failures import Failure, _clean_reason
from syncd.state.history import Event, _reason
from syncd.state.jobs import CredentialJob, _error_text
from syncd.state.links import KINDS, Link, _prefer_own


def _unique_violation(what: str) -> IntegrityError:
    # The real repositories let the database's IntegrityError through; flows catch that type.
    return IntegrityError(f"fake: UNIQUE constraint failed: {what}", None, Exception(what))


class _Fake:
    """Snapshot/restore of a fake's data (everything but its clock) for the unit of work."""

    _DATA: tuple[str, ...] = ()

    def _snapshot(self) -> dict[str, Any]:
        return {name: copy.deepcopy(getattr(self, name)) for name in self._DATA}

    def _restore(self, snapshot: dict[str, Any]) -> None:
        for name, value in snapshot.items():
            setattr(self, name, copy.deepcopy(value))


# ---------------------------------------------------------------------------------------- links
class FakeLinks(_Fake):
    _DATA = ("rows",)

    def __init__(self, *, clock: Clock = utcnow) -> None:
        self.clock = clock
        self.rows: dict[tuple[str, str], Link] = {}

    def get_by_erp(self, platform: str, number: int) -> Link | None:
        return self.get_many(platform, [number]).get(int(number))

    def get_many(self, platform: str, numbers: Iterable[int]) -> dict[int, Link]:
        wanted = {int(n) for n in numbers}
        return _prefer_own(x for x in self.rows.values() if x.platform == platform and x.erp_number in wanted)

    def of_contacts(self, platform: str, number: int) -> list[Link]:
        low, high = contact_keys(number)
        return [x for x in self.rows.values() if x.platform == platform and low <= x.erp_number <= high]

    def get_by_shop(self, platform: str, shop_id: str) -> Link | None:
        return self.rows.get((platform, shop_id))

    def get_by_shops(self, platform: str, shop_ids: Iterable[str]) -> dict[str, Link]:
        return {s: self.rows[(platform, s)] for s in set(shop_ids) if (platform, s) in self.rows}

    def email_owners(self, platform: str, keys: Iterable[str]) -> dict[str, int]:
        wanted = {k for k in keys if k}
        owners: dict[str, int] = {}
        for link in sorted(self.rows.values(), key=lambda x: x.erp_number):
            if link.platform == platform and link.kind != LinkKind.COLLECTIVE and link.email is not None:
                key = link.email.lower()
                if key in wanted:
                    owners.setdefault(key, link.erp_number)
        return owners

    def upsert(self, link: Link | None = None, /, *, conn: object = None, **values: Any) -> Link:
        if link is None:
            link = Link(**values)
        elif values:
            link = replace(link, **values)
        return self.upsert_many([link])[0]

    def upsert_many(self, items: Iterable[Link], *, conn: object = None) -> list[Link]:
        now = self.clock()
        prepared = []
        for link in items:
            if link.kind not in KINDS:
                raise ValueError(f"link kind must be one of {', '.join(KINDS)}, got {link.kind!r}")
            prepared.append(replace(link, erp_number=int(link.erp_number), created_at=now, updated_at=now))
        rows = dict(self.rows)  # all or nothing, like the real one's transaction
        for x in prepared:
            old = rows.get((x.platform, x.shop_id))
            if old is not None:
                x = replace(x, created_at=old.created_at)
            # the partial unique index: one personal link per (platform, number), checked per row
            if x.kind != LinkKind.COLLECTIVE and any(
                o.platform == x.platform and o.erp_number == x.erp_number and o.kind != LinkKind.COLLECTIVE
                and o.shop_id != x.shop_id for o in rows.values()
            ):
                raise _unique_violation("links.platform, links.erp_number")
            rows[(x.platform, x.shop_id)] = x
        self.rows = rows
        return [rows[(x.platform, x.shop_id)] for x in prepared]

    def set_state(self, platform: str, number: int, *, erp_blocked: bool | None = None,
                  shop_active: bool | None = None, fingerprint: str | None = None,
                  conn: object = None) -> int:
        values: dict[str, Any] = {}
        if erp_blocked is not None:
            values["erp_blocked"] = erp_blocked
        if shop_active is not None:
            values["shop_active"] = shop_active
        if fingerprint is not None:
            values["fingerprint"] = fingerprint
        if not values:
            return 0
        values["updated_at"] = self.clock()
        hits = [k for k, x in self.rows.items()
                if x.platform == platform and x.erp_number == int(number) and x.kind != LinkKind.COLLECTIVE]
        for k in hits:
            self.rows[k] = replace(self.rows[k], **values)
        return len(hits)

    def delete(self, platform: str, shop_id: str, *, conn: object = None) -> bool:
        return self.rows.pop((platform, shop_id), None) is not None

    def count(self, platform: str, kind: str | None = None) -> int:
        return sum(1 for x in self.rows.values()
                   if x.platform == platform and (kind is None or x.kind == kind))

    def iter(self, platform: str, *, after: str | None = None,
             page_size: int | None = None) -> Iterator[Link]:
        found = sorted((x for x in self.rows.values() if x.platform == platform
                        and (after is None or x.shop_id > after)), key=lambda x: x.shop_id)
        yield from found if page_size is None else found[:page_size]


# ---------------------------------------------------------------------------------------- credential jobs
class FakeCredentialJobs(_Fake):
    _DATA = ("rows", "_next_id")

    def __init__(self) -> None:
        self.rows: dict[int, CredentialJob] = {}
        self._next_id = 1

    def _active(self, ids: Iterable[int]) -> list[int]:
        """Like ``WHERE id IN (...) AND step IN ACTIVE_STEPS``: each row once."""
        return [i for i in dict.fromkeys(ids) if i in self.rows and self.rows[i].step in steps.ACTIVE_STEPS]

    def _set(self, ids: Iterable[int], **values: Any) -> None:
        for i in ids:
            self.rows[i] = replace(self.rows[i], **values)

    def create(self, *, platform: str, erp_number: int, shop_id: str | None, email: str | None, now: datetime,
               reason: str = "created", mode: str = "password", held: str | None = None,
               conn: object = None) -> int | None:
        if self.active(platform, [erp_number]):
            return None
        job_id, self._next_id = self._next_id, self._next_id + 1
        self.rows[job_id] = CredentialJob(
            id=job_id, platform=platform, erp_number=int(erp_number), shop_id=shop_id, email=email, mode=mode,
            reason=reason, step=steps.PENDING, attempts=0, send_attempts=0, last_error=None,
            next_attempt_at=None, created_at=now, updated_at=now, finished_at=None, held=held,
        )
        return job_id

    def get(self, job_id: int, *, conn: object = None) -> CredentialJob | None:
        return self.rows.get(job_id)

    def active(self, platforms: str | Iterable[str], numbers: Iterable[int] | None = None, *,
               conn: object = None) -> list[CredentialJob]:
        names = {platforms} if isinstance(platforms, str) else set(platforms)
        wanted = None if numbers is None else {int(n) for n in numbers}
        return [j for _, j in sorted(self.rows.items()) if j.platform in names and j.active
                and (wanted is None or j.erp_number in wanted)]

    def due(self, platform: str, now: datetime, *, limit: int, after_id: int = 0) -> list[CredentialJob]:
        return [j for _, j in sorted(self.rows.items())
                if j.platform == platform and j.step == steps.PENDING and j.id > after_id and j.held is None
                and (j.next_attempt_at is None or j.next_attempt_at <= now)][:limit]

    def count_due(self, platform: str, now: datetime) -> int:
        return len(self.due(platform, now, limit=len(self.rows) + 1))

    def held(self, platform: str, *, conn: object = None) -> list[CredentialJob]:
        return [j for _, j in sorted(self.rows.items())
                if j.platform == platform and j.step == steps.PENDING and j.held is not None]

    def release(self, platform: str, numbers: Iterable[int], now: datetime, *,
                conn: object = None) -> set[int]:
        wanted = {int(n) for n in numbers}
        found = [j for j in self.held(platform) if j.erp_number in wanted]
        self._set([j.id for j in found], held=None, next_attempt_at=None, updated_at=now)
        return {j.erp_number for j in found}

    def forget(self, platform: str, erp_number: int, *, conn: object = None) -> int:
        ids = [i for i, j in self.rows.items() if j.platform == platform and j.erp_number == int(erp_number)]
        for i in ids:
            del self.rows[i]
        return len(ids)

    def ever_had(self, platform: str, erp_number: int, *, conn: object = None) -> bool:
        return any(j.platform == platform and j.erp_number == erp_number for j in self.rows.values())

    def counts(self, platform: str) -> Counter[str]:
        return Counter(j.step for j in self.rows.values() if j.platform == platform)

    def failed(self, platform: str) -> list[CredentialJob]:
        return [j for _, j in sorted(self.rows.items()) if j.platform == platform and j.step == steps.FAILED]

    def set_step(self, ids: Iterable[int], step: str, now: datetime, *, conn: object = None) -> None:
        values: dict[str, Any] = {"step": step, "updated_at": now}
        if step in steps.FINAL_STEPS:
            values["finished_at"] = now
        self._set(self._active(ids), **values)

    def start_sending(self, ids: int | Iterable[int], now: datetime, *, conn: object = None) -> None:
        for i in self._active([ids] if isinstance(ids, int) else ids):
            self._set([i], step=steps.SENDING, send_attempts=self.rows[i].send_attempts + 1, updated_at=now)

    @contextlib.contextmanager
    def ledger(self) -> Iterator[FakeSendLedger]:
        yield FakeSendLedger(self)

    def refused(self, job_id: int, now: datetime) -> None:
        job = self.rows.get(job_id)
        if job is not None and job.send_attempts > 0:
            self._set([job_id], send_attempts=job.send_attempts - 1, updated_at=now)

    def retry_later(self, ids: Iterable[int], *, error: object, next_attempt_at: datetime, now: datetime,
                    conn: object = None) -> None:
        for i in self._active(ids):
            self._set([i], step=steps.PENDING, send_attempts=0, sms_step=None, sms_attempts=0,
                      attempts=self.rows[i].attempts + 1,
                      last_error=_error_text(error), next_attempt_at=next_attempt_at, updated_at=now)

    def restart(self, ids: Iterable[int], now: datetime, *, conn: object = None) -> None:
        self._set(self._active(ids), step=steps.PENDING, send_attempts=0, sms_step=None, sms_attempts=0,
                  next_attempt_at=None, updated_at=now)

    def set_channel(self, ids: Iterable[int], channel: str, now: datetime) -> None:
        self._set([i for i in ids if i in self.rows], channel=channel, updated_at=now)

    def sms_sending(self, job_id: int, now: datetime) -> None:
        for i in self._active([job_id]):
            self._set([i], sms_step=steps.SENDING, sms_attempts=self.rows[i].sms_attempts + 1, updated_at=now)

    def sms_done(self, job_id: int, step: str, now: datetime, *, job_sent: bool = False) -> None:
        values: dict[str, Any] = {"sms_step": step, "updated_at": now}
        if job_sent:
            values["step"] = steps.SENT
        self._set(self._active([job_id]), **values)

    def sms_refused(self, job_id: int, now: datetime) -> None:
        job = self.rows.get(job_id)
        if job is not None and job.sms_attempts > 0:
            self._set([job_id], sms_attempts=job.sms_attempts - 1, updated_at=now)

    def fail(self, job_id: int, error: object, now: datetime, *, conn: object = None) -> None:
        self._set(self._active([job_id]), step=steps.FAILED, last_error=_error_text(error), updated_at=now,
                  finished_at=now)


# ---------------------------------------------------------------------------------------- failures
class FakeFailures(_Fake):
    _DATA = ("rows",)

    def __init__(self, *, clock: Clock = utcnow) -> None:
        self.clock = clock
        self.rows: dict[tuple[str, str, str], Failure] = {}

    def record(self, platform: str, direction: str, record: object, step: str, reason: str,
               code: str | None = None, *, fingerprint: str | None = None, conn: object = None) -> None:
        now = self.clock()
        key = (platform, str(direction), str(record))
        old = self.rows.get(key)
        self.rows[key] = Failure(
            platform=platform, direction=str(direction), record=str(record), step=step,
            reason=_clean_reason(reason), code=code, count=old.count + 1 if old else 1,
            first_seen=old.first_seen if old else now, last_seen=now, fingerprint=fingerprint,
        )

    def clear(self, platform: str, direction: str, record: object, *, conn: object = None) -> bool:
        return self.clear_many(platform, direction, [record]) > 0

    def clear_many(self, platform: str, direction: str, records: Iterable[object], *,
                   conn: object = None) -> int:
        keys = [(platform, str(direction), str(r)) for r in {str(r) for r in records}]
        return sum(self.rows.pop(k, None) is not None for k in keys)

    def among(self, platform: str, direction: str, records: Iterable[object]) -> set[str]:
        return {str(r) for r in records if (platform, str(direction), str(r)) in self.rows}

    def list(self, platform: str | None = None, *, limit: int | None = None) -> list[Failure]:
        found = [f for f in self.rows.values() if platform is None or f.platform == platform]
        found.sort(key=lambda f: f.record)
        found.sort(key=lambda f: f.last_seen, reverse=True)
        return found if limit is None else found[:limit]

    def records_with_code(self, platform: str, direction: str, codes: Iterable[str]) -> list[str]:
        wanted = set(codes)
        return sorted(f.record for f in self.rows.values()
                      if f.platform == platform and f.direction == str(direction) and f.code in wanted)

    def reasons(self, platform: str, direction: str, records: Iterable[object]) -> dict[str, str]:
        keys = {str(r) for r in records}
        return {f.record: f.reason for f in self.rows.values()
                if f.platform == platform and f.direction == str(direction) and f.record in keys}

    def fingerprints(self, platform: str, direction: str) -> dict[str, str]:
        return {f.record: f.fingerprint for f in sorted(self.rows.values(), key=lambda f: f.record)
                if f.platform == platform and f.direction == str(direction) and f.fingerprint is not None}

    def count(self, platform: str, direction: str | None = None) -> int:
        return sum(1 for f in self.rows.values()
                   if f.platform == platform and (direction is None or f.direction == str(direction)))


# ---------------------------------------------------------------------------------------- cursors
class FakeCursors(_Fake):
    _DATA = ("rows",)

    def __init__(self, *, clock: Clock = utcnow) -> None:
        self.clock = clock
        self.rows: dict[tuple[str, str], str] = {}  # stored as JSON text, like the JSON column

    def get(self, platform: str, name: str) -> dict[str, Any] | None:
        value = self.rows.get((platform, name))
        return dict(json.loads(value)) if value is not None else None

    def get_many(self, platform: str, names: Iterable[str]) -> dict[str, dict[str, Any]]:
        return {n: v for n in names if (v := self.get(platform, n)) is not None}

    def set(self, platform: str, name: str, value: dict[str, Any], *, conn: object = None) -> None:
        if not isinstance(value, dict):
            raise TypeError(f"a cursor value is a dict, got {type(value).__name__}")
        self.rows[(platform, name)] = json.dumps(value)

    def delete(self, platform: str, name: str | None = None) -> int:
        hits = [k for k in self.rows if k[0] == platform and (name is None or k[1] == name)]
        for k in hits:
            del self.rows[k]
        return len(hits)


# ---------------------------------------------------------------------------------------- allocations
class FakeAllocations(_Fake):
    _DATA = ("next_number",)

    def __init__(self) -> None:
        self.next_number: dict[str, int] = {}

    def peek(self, platform: str) -> int | None:
        return self.next_number.get(platform)

    def reserve(self, platform: str, *, floor: int, accept: Callable[[int], None] | None = None) -> int:
        current = self.next_number.get(platform)
        candidate = floor if current is None else max(current, floor)
        if accept is not None:
            accept(candidate)
        self.next_number[platform] = candidate + 1
        return candidate

    def release(self, platform: str, number: int) -> bool:
        if self.next_number.get(platform) != number + 1:
            return False
        self.next_number[platform] = number
        return True


# ---------------------------------------------------------------------------------------- create intents
class FakeCreateIntents(_Fake):
    _DATA = ("rows",)

    def __init__(self, clock: Clock = utcnow) -> None:
        self.clock = clock
        self.rows: dict[tuple[str, int], str] = {}  # (platform, ERP number) -> shop id

    def record(self, platform: str, creates: Sequence[tuple[int, str]]) -> None:
        for number, shop_id in creates:
            self.rows[(platform, int(number))] = shop_id

    def pending(self, platform: str, numbers: Iterable[int]) -> set[int]:
        return {int(n) for n in numbers if (platform, int(n)) in self.rows}

    def settle(self, platform: str, numbers: Iterable[int]) -> None:
        for n in numbers:
            self.rows.pop((platform, int(n)), None)


# ---------------------------------------------------------------------------------------- history
class FakeHistory(_Fake):
    _DATA = ("events",)

    def __init__(self, clock: Clock = utcnow) -> None:
        self.clock = clock
        self.events: list[Event] = []

    def record(self, platform: str, erp_number: int, event: str, *, reason: str | None = None,
               shop_id: str | None = None) -> None:
        self.record_many(platform, [(erp_number, event, reason, shop_id)])

    def record_many(self, platform: str, events: Iterable[tuple[int, str, str | None, str | None]]) -> None:
        now = self.clock()
        self.events.extend(Event(platform, int(n), str(HistoryEvent(e)), now, _reason(r), sid)
                           for n, e, r, sid in events)

    def of_address(self, erp_number: int, platform: str | None = None, *,
                   contacts: bool = False) -> list[Event]:
        low, high = contact_keys(int(erp_number)) if contacts and int(erp_number) > 0 else (0, -1)
        return [e for e in self.events if platform in (None, e.platform)
                and (e.erp_number == int(erp_number) or low <= e.erp_number <= high)]

    def last_events(self, platform: str, numbers: Iterable[int]) -> dict[int, str]:
        wanted = {int(n) for n in numbers}
        return {e.erp_number: e.event for e in self.events
                if e.platform == platform and e.erp_number in wanted}

    def forget(self, platform: str, erp_number: int) -> int:
        kept = [e for e in self.events if not (e.platform == platform and e.erp_number == int(erp_number))]
        gone, self.events = len(self.events) - len(kept), kept
        return gone

    def prune(self, before: datetime) -> int:
        kept = [e for e in self.events if e.at >= before]
        pruned, self.events = len(self.events) - len(kept), kept
        return pruned


# ---------------------------------------------------------------------------------------- messages
class FakeMessages(_Fake):
    """``syncd.state.messages.Messages``' enqueue side (what flows write in their units)."""

    _DATA = ("rows",)

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def enqueue(self, *, platform: str, kind: str, occurrence: str, recipient: str, layout: str,
                now: datetime, erp_number: int | None = None, channel: str = "email",
                sender: str | None = None, context: Any = None, conn: Any = None) -> int | None:
        key = (platform, kind, occurrence[:128], recipient.strip())
        if any((r["platform"], r["kind"], r["occurrence"], r["recipient"]) == key for r in self.rows):
            return None
        self.rows.append({"id": len(self.rows) + 1, "platform": platform, "kind": kind,
                          "occurrence": occurrence[:128], "recipient": recipient.strip(),
                          "erp_number": erp_number, "channel": channel, "layout": layout, "sender": sender,
                          "context": dict(context or {}), "step": "pending", "created_at": now})
        return len(self.rows)

    def counts(self, platform: str) -> Counter[str]:
        return Counter(r["step"] for r in self.rows if r["platform"] == platform)

    def forget(self, platform: str, erp_number: int, *, conn: Any = None) -> int:
        kept = [r for r in self.rows if not (r["platform"] == platform and r["erp_number"] == int(erp_number)
                                             and r["step"] != "sending")]
        gone, self.rows = len(self.rows) - len(kept), kept
        return gone


class FakeApprovals(_Fake):
    """``syncd.state.approvals.Approvals`` in memory."""

    _DATA = ("rows",)

    def __init__(self, clock: Clock = utcnow) -> None:
        self.clock = clock
        self.rows: dict[tuple[str, str], Approval] = {}

    def get(self, platform: str, shop_id: str) -> Approval | None:
        return self.rows.get((platform, shop_id))

    def find(self, platform: str, key: str) -> Approval | None:
        found = [a for (p, _), a in self.rows.items() if p == platform and (
            a.shop_id == key or (key.strip().isdigit() and a.erp_number == int(key)))]
        return max(found, key=lambda a: a.updated_at) if found else None

    def set_state(self, *, platform: str, shop_id: str, state: str, now: datetime,
                  erp_number: int | None = None, email: str | None = None,
                  requested_group: str | None = None, reason: str | None = None) -> Approval | None:
        before = self.rows.get((platform, shop_id))
        base = before or Approval(platform, shop_id, None, None, state, None, None, now, now)
        self.rows[(platform, shop_id)] = replace(
            base, state=state, updated_at=now, reason=reason,
            erp_number=erp_number if erp_number is not None else base.erp_number,
            email=email if email is not None else base.email,
            requested_group=requested_group if requested_group is not None else base.requested_group)
        return before

    def of_state(self, platform: str, state: str | None = None) -> list[Approval]:
        return sorted((a for (p, _), a in self.rows.items() if p == platform and state in (None, a.state)),
                      key=lambda a: (a.created_at, a.shop_id))

    def held(self, platform: str, shop_ids: Iterable[str]) -> set[str]:
        return {s for s in shop_ids if (a := self.rows.get((platform, s))) is not None
                and a.state in ("in-progress", "rejected")}

    def counts(self, platform: str) -> Counter[str]:
        return Counter(a.state for (p, _), a in self.rows.items() if p == platform)


class FakeTombstones(_Fake):
    _DATA = ("rows",)

    def __init__(self) -> None:
        self.rows: dict[tuple[str, int], datetime] = {}

    def add(self, platform: str, erp_number: int, at: datetime, *, conn: object = None) -> None:
        self.rows[(platform, int(erp_number))] = at

    def among(self, platform: str, numbers: Iterable[int]) -> set[int]:
        return {int(n) for n in numbers if (platform, int(n)) in self.rows}

    def lift(self, platform: str, erp_number: int) -> bool:
        return self.rows.pop((platform, int(erp_number)), None) is not None

    def forget_traces(self, platform: str, erp_number: int, *, conn: object = None) -> int:
        return 0  # the fakes keep no approvals by address, logins or bounces


# ---------------------------------------------------------------------------------------- unit of work
class FakeState:
    """The in-memory "database": one fake of each repository, shared by every unit over it."""

    def __init__(self, clock: Clock = utcnow) -> None:
        self.clock = clock
        self.links = FakeLinks(clock=clock)
        self.jobs = FakeCredentialJobs()
        self.failures = FakeFailures(clock=clock)
        self.cursors = FakeCursors(clock=clock)
        self.allocations = FakeAllocations()
        self.intents = FakeCreateIntents(clock)
        self.history = FakeHistory(clock)
        self.messages = FakeMessages()
        self.approvals = FakeApprovals(clock)
        self.tombstones = FakeTombstones()

    def repositories(self) -> tuple[_Fake, ...]:
        return (self.links, self.jobs, self.failures, self.cursors, self.allocations, self.intents,
                self.history, self.messages, self.approvals, self.tombstones)

    def snapshot(self) -> list[dict[str, Any]]:
        return [r._snapshot() for r in self.repositories()]

    def restore(self, snapshot: list[dict[str, Any]]) -> None:
        for repo, data in zip(self.repositories(), snapshot, strict=True):
            repo._restore(data)


class FakeUnitOfWork:
    """``SqlUnitOfWork`` in memory. ``committed`` counts commits, ``rolled_back`` rollbacks
    (``rollback()``, or leaving the block with uncommitted changes)."""

    def __init__(self, state: FakeState | None = None, clock: Clock | None = None) -> None:
        self.state = state if state is not None else FakeState(clock or utcnow)
        self.clock = clock or self.state.clock
        self.links = self.state.links
        self.jobs = self.state.jobs
        self.failures = self.state.failures
        self.cursors = self.state.cursors
        self.allocations = self.state.allocations
        self.intents = self.state.intents
        self.history = self.state.history
        self.messages = self.state.messages
        self.approvals = self.state.approvals
        self.tombstones = self.state.tombstones
        self.drift = DriftReports.over(self.cursors)
        self.committed = 0
        self.rolled_back = 0
        self._saved: list[dict[str, Any]] | None = None

    def __enter__(self) -> Self:
        if self._saved is not None:
            raise RuntimeError("this unit of work is already open")
        self._saved = self.state.snapshot()
        return self

    def __exit__(self, *exc: object) -> None:
        saved, self._saved = self._saved, None
        if saved is not None and self.state.snapshot() != saved:
            self.state.restore(saved)
            self.rolled_back += 1

    def commit(self) -> None:
        self._open()
        self._saved = self.state.snapshot()
        self.committed += 1

    def rollback(self) -> None:
        self.state.restore(self._open())
        self.rolled_back += 1

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        saved = self.state.snapshot()
        try:
            yield
        except BaseException:
            self.state.restore(saved)
            raise

    def _open(self) -> list[dict[str, Any]]:
        if self._saved is None:
            raise RuntimeError("the unit of work is not open (use it in a with block)")
        return self._saved


class FakeSendLedger:
    """``CredentialJobs.ledger()``'s writer: the mail before (if any) sent, this one sending."""

    def __init__(self, jobs: FakeCredentialJobs) -> None:
        self._jobs = jobs

    def advance(self, *, sent: int | None, sending: int, now: datetime) -> None:
        if sent is not None:
            self._jobs.set_step([sent], steps.SENT, now)
        self._jobs.start_sending([sending], now)

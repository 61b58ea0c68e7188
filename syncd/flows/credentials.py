"""Credential mails (spec §1 step 3) and the start-up sweep (I2).

A batch of jobs moves through: generate passwords -> write all fields in one ERP transaction ->
set all passwords in one shop call -> re-read the rows -> render -> count the sends durably
(``SEND_WINDOW`` mails per state write, always before SMTP is spoken), send over one SMTP
session -> clear all fields in one statement -> done.

Transient faults (ERP, shop, SMTP 4xx after the retry budget) put the job back to ``pending``
with a backoff and clear its field: the next attempt uses a fresh password, so no password sits
in the ERP while nothing is in flight. Permanent ones (SMTP 5xx, shop rejection, a vanished
address, a broken layout) end the job as ``failed`` with the reason, recorded for
``syncd status`` under direction ``credentials``.

The password exists only in memory (registered with ``syncd.redaction`` while it lives), in the
ERP field, in the shop call and in the mail. Every state change is recorded *before* the field
is cleared, so that after a crash at any instruction the sweep can tell what to do:

* field set, job active and not yet sent -> finish with the field's password (I1, I2);
  ``send_attempts`` caps resends at one (I5);
* field set, job sent or no job -> clear it;
* field empty, job not yet sent -> start over with a fresh password (no mail carried the old
  one: a mail is only sent while the field holds its password);
* field empty, job sent -> done.
"""

from __future__ import annotations

import contextvars
from collections import deque
from collections.abc import Iterable, Mapping
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog

from syncd.domain import ErpAddress, OutgoingMail
from syncd.errors import ConfigurationFault, DeliveryUnknown, PermanentError, SyncdError, TransientError
from syncd.flows.context import CycleReport, PlatformContext
from syncd.flows.passwords import generate_password
from syncd.flows.push_addresses import checkpoint, clear_failures, email_problem, record_failure
from syncd.gcpause import gc_paused
from syncd.ports import MailSession
from syncd.redaction import redact, register, sensitive, unregister
from syncd.retry import call_with_retry
from syncd.state import jobs as steps
from syncd.state.jobs import CredentialJob, CredentialJobs

log = structlog.get_logger("syncd.flows.credentials")

MAX_SENDS = 2  # the first send plus at most one after a crash with unknown outcome (I5)
# Mails counted as "sending" per durable write (see ``_send``): the most a crash can make the
# sweep send twice. 1 = one extra mail at most per crash, at two state transactions per mail.
SEND_WINDOW = 20
STEP = "credentials"
# Batches whose passwords the shop sets while the oldest one is mailed. The shop hashes every
# password (bcrypt), which costs about as much as mailing it; two calls in flight keep it from
# being the bottleneck. Each adds a batch's time to how long a password sits in its field.
SHOP_CALLS_AHEAD = 2


def enabled(ctx: PlatformContext) -> bool:
    a = ctx.platform.addresses
    return bool(a.erp_to_shop and a.send_credentials and a.credential_mode == "password" and a.password_field)


def backoff(attempts: int) -> timedelta:
    """Delay before a job that met a transient fault is tried again: 30 s doubling, max 1 h."""
    return timedelta(seconds=min(3600, 30 * 2 ** min(attempts, 7)))


@dataclass
class _Item:
    job: CredentialJob
    password: str
    mail: OutgoingMail | None = None
    result: str = ""  # sent | failed | retry | skip


# ---------------------------------------------------------------------------------------- new work
def send_due(ctx: PlatformContext, report: CycleReport) -> None:
    """Run every due pending job of the platform, batch by batch.

    Batches overlap: while the oldest is re-read, rendered, mailed and cleared here, worker
    threads wait for the shop to set the passwords of up to ``SHOP_CALLS_AHEAD`` later ones (the
    shop hashes each password, which costs about as much as mailing it). Only those HTTP calls
    leave this thread; every ERP, state and SMTP step stays here, in the order of the module
    docstring, so each job's record tells the sweep what to do after a crash exactly as in a
    sequential run. (Preparing whole batches in a worker was tried: its SQLite writes queued
    on this thread's locks.)
    """
    if not enabled(ctx):
        return
    if ctx.mail is None or ctx.layouts is None:
        # The jobs are durable: they wait for a context that can send.
        log.warning("credential jobs wait: no mail transport or layouts in this context",
                    platform=ctx.platform.name)
        return
    repo = CredentialJobs(ctx.state)
    size = ctx.settings.mail.batch_size
    a = ctx.platform.addresses
    size_limit = field_length(ctx.erp)
    after_id = 0
    exhausted = False
    ahead: deque[_Started] = deque()  # fields written, shop call running or done, oldest first
    if not repo.due(ctx.platform.name, ctx.clock(), limit=1):
        return
    with (
        gc_paused(),
        ThreadPoolExecutor(max_workers=SHOP_CALLS_AHEAD, thread_name_prefix=f"passwords-{ctx.platform.name}")
        as shop_calls,
        ExitStack() as open_session,
    ):
        # Opened before any field is written or password set: a mail server refusing the login
        # defers the whole queue at the cost of one attempt, not a shop call per customer.
        try:
            session: MailSession | None = _open_session(ctx, open_session, now=True)
        except ConfigurationFault as exc:
            _defer_queue(ctx, report, exc)
            return
        try:
            while True:
                jobs = [] if exhausted else repo.due(ctx.platform.name, ctx.clock(), limit=size,
                                                     after_id=after_id)
                if jobs:
                    after_id = jobs[-1].id
                    passwords = {j.erp_number: generate_password(a.password_length, a.password_alphabet,
                                                                 field_length=size_limit) for j in jobs}
                    started = start(ctx, jobs, passwords, report, field_written=False, pool=shop_calls)
                    if started is not None:
                        ahead.append(started)
                else:
                    exhausted = True
                if ahead and (exhausted or len(ahead) > SHOP_CALLS_AHEAD):
                    if session is None:
                        try:
                            session = _open_session(ctx, open_session)
                        except ConfigurationFault:
                            session = None  # each batch then defers its own jobs with the reason
                    ahead.popleft().complete(ctx, report, session)
                if exhausted and not ahead:
                    return
        finally:
            for batch in ahead:  # an error ended the loop: their fields wait for the next settle
                batch.abandon()


def _open_session(ctx: PlatformContext, stack: ExitStack, *, now: bool = False) -> MailSession | None:
    """The run's shared session; None when it cannot be opened now, so that each batch tries
    its own and defers its jobs with the reason (see ``_send``). A ConfigurationFault (a
    refused login) is raised: retrying it per batch cannot succeed. ``now``: connect at once."""
    assert ctx.mail is not None
    try:
        session = stack.enter_context(ctx.mail.session())
        if now and hasattr(session, "open"):
            session.open()
        return session
    except ConfigurationFault:
        raise
    except TransientError:
        return None


def _defer_queue(ctx: PlatformContext, report: CycleReport, fault: ConfigurationFault) -> None:
    """Every due job waits for the operator's fix; nothing was written for them."""
    repo = CredentialJobs(ctx.state)
    after_id = 0
    while jobs := repo.due(ctx.platform.name, ctx.clock(), limit=ctx.settings.mail.batch_size,
                           after_id=after_id):
        after_id = jobs[-1].id
        _retry(ctx, [_Item(j, "") for j in jobs], f"mail server: {fault}", report, cause=fault)


def queue_credentials(ctx: PlatformContext, numbers: Iterable[int], *, reason: str = "resend") -> CycleReport:
    """New passwords and credential mails for linked ERP addresses chosen by an operator
    (``syncd accounts send-credentials``): a job per address, then the normal delivery."""
    from syncd.state.links import Links

    report = CycleReport(ctx.platform.name, "credentials")
    if not enabled(ctx):
        for n in numbers:
            report.add(n, "failed", "credential mails are off for this platform (send_credentials)")
        return report
    wanted = sorted({int(n) for n in numbers})
    links = Links(ctx.state, clock=ctx.clock).get_many(ctx.platform.name, wanted)
    addresses = ctx.erp.get_addresses(wanted)
    repo = CredentialJobs(ctx.state)
    for n in wanted:
        link, address = links.get(n), addresses.get(n)
        if address is None:
            report.add(n, "failed", "no such ERP address")
        elif link is None or link.kind == "collective":
            report.add(n, "failed", "no shop account is linked to this ERP address")
        elif address.blocked or not link.shop_active:
            report.add(n, "failed", "the address is blocked / the shop account is inactive")
        elif (problem := email_problem(address.email)) is not None:
            report.add(n, "failed", problem)
        elif repo.create(platform=ctx.platform.name, erp_number=n, shop_id=link.shop_id,
                         email=(address.email or "").strip(), now=ctx.clock(), reason=reason) is None:
            report.add(n, "skipped", "a credentials mail for this address is already in progress")
    send_due(ctx, report)
    return report


# ---------------------------------------------------------------------------------------- one batch
@dataclass
class _Batch:
    items: list[_Item]
    ready: list[_Item]  # rendered, to be sent


class _Started:
    """A batch whose fields are written and whose shop call may still be running. Its passwords
    stay registered with the redaction point until ``complete`` (or ``abandon``) ends it."""

    def __init__(self, items: list[_Item], passwords: Mapping[int, str]) -> None:
        self.items = items
        self.call: Future[Any] | None = None
        self.written = True  # False: the field write failed as a whole; nothing to finish or clear
        self._passwords = list(passwords.values())
        register(*self._passwords)

    def complete(self, ctx: PlatformContext, report: Any, session: MailSession | None = None) -> None:
        """The rest of step c, then d-f: take the shop's answer, re-read and render, send, clear."""
        try:
            if not self.written:
                return
            live = _take_shop_result(ctx, self.items, self.call, report)
            checkpoint("after_set_passwords")
            if live:
                _render(ctx, live, report)
            checkpoint("after_render")
            ready = [i for i in live if i.mail is not None and not i.result]
            finish(ctx, _Batch(self.items, ready), report, session)
        finally:
            self.abandon()

    def abandon(self) -> None:
        if self.call is not None:
            self.call.cancel()
            self.call = None
        unregister(*self._passwords)
        self._passwords = []


def deliver(
    ctx: PlatformContext,
    jobs: list[CredentialJob],
    passwords: Mapping[int, str],
    report: Any,
    *,
    field_written: bool,
) -> None:
    """Take ``jobs`` from their current step to done/failed/retry with ``passwords`` (ERP number ->
    password), as one batch on its own. ``field_written``: the fields already hold these
    passwords (the sweep)."""
    started = start(ctx, jobs, passwords, report, field_written=field_written)
    if started is not None:
        started.complete(ctx, report)


def start(
    ctx: PlatformContext,
    jobs: list[CredentialJob],
    passwords: Mapping[int, str],
    report: Any,
    *,
    field_written: bool,
    pool: Executor | None = None,
) -> _Started | None:
    """Step b and the start of c: write the fields, then ask the shop to set the passwords, in
    ``pool`` when given (the caller goes on with another batch meanwhile), else right here.
    None when there are no jobs."""
    repo = CredentialJobs(ctx.state)
    items = [_Item(j, passwords[j.erp_number]) for j in jobs]
    if not items:
        return None
    started = _Started(items, passwords)
    try:
        # b. the field becomes the one durable place of the password
        if not field_written:
            try:
                ctx.erp.write_password_fields(dict(passwords))
            except TransientError as exc:
                _retry(ctx, items, exc, report)  # nothing written (one transaction): no field to clear
                started.written = False
                return started
            except PermanentError as exc:
                # One bad record (say, an address deleted meanwhile) refuses the whole transaction:
                # write the batch record by record so the others still get their mail.
                _write_one_by_one(ctx, items, exc, report)
            checkpoint("after_field_write")
            repo.set_step([i.job.id for i in items if not i.result], steps.FIELD_WRITTEN, ctx.clock())
            checkpoint("after_field_written")

        # c. the shop account gets the field's value
        for i in items:
            if not i.result and not i.job.shop_id:
                _fail(ctx, i, "no shop account id recorded for this job", report)
        by_shop = {i.job.shop_id: i.password for i in items if not i.result}
        if by_shop:
            started.call = _submit(pool, ctx.shop.set_passwords, by_shop)
    except BaseException:
        started.abandon()
        raise
    return started


def _submit(pool: Executor | None, fn: Any, arg: Any) -> Future[Any]:
    if pool is not None:
        # The caller's bound log context (platform, cycle) follows the call into the worker.
        return pool.submit(contextvars.copy_context().run, fn, arg)
    done: Future[Any] = Future()
    try:
        done.set_result(fn(arg))
    except Exception as exc:  # handed over exactly as a worker's future would
        done.set_exception(exc)
    return done


def finish(ctx: PlatformContext, batch: _Batch, report: Any, session: MailSession | None = None) -> None:
    """Steps e-f: send over one session, clear every field in one statement, done."""
    repo = CredentialJobs(ctx.state)
    if batch.ready:
        _send(ctx, batch.ready, report, session)

    # after each job's outcome is recorded; a mail whose delivery is unknown keeps its field
    ctx.erp.clear_password_fields([i.job.erp_number for i in batch.items if i.result != "unknown"])
    checkpoint("after_clear")
    sent = [i for i in batch.items if i.result == "sent"]
    repo.set_step([i.job.id for i in sent], steps.DONE, ctx.clock())
    clear_failures(ctx, [i.job.erp_number for i in sent], step=STEP)
    for i in sent:
        report.add(i.job.erp_number, "mailed", i.job.email or "")
        log.info("credentials sent", platform=ctx.platform.name, address=i.job.erp_number, step="done")


def _write_one_by_one(ctx: PlatformContext, items: list[_Item], error: PermanentError,
                      report: CycleReport) -> None:
    if len(items) == 1:
        _fail(ctx, items[0], f"cannot write the ERP password field: {error}", report, code=error.code)
        return
    for i in items:
        try:
            ctx.erp.write_password_fields({i.job.erp_number: i.password})
        except TransientError as exc:
            _retry(ctx, [i], exc, report)
        except PermanentError as exc:
            _fail(ctx, i, f"cannot write the ERP password field: {exc}", report, code=exc.code)


def _take_shop_result(ctx: PlatformContext, items: list[_Item], call: Future[Any] | None,
                      report: CycleReport) -> list[_Item]:
    """Wait for the bulk call; returns the items whose account now has the password."""
    pending = [i for i in items if not i.result]
    if not pending or call is None:
        return []
    try:
        errors = call.result()
    except TransientError as exc:
        _retry(ctx, pending, exc, report)
        return []
    except PermanentError as exc:
        for i in pending:
            _fail(ctx, i, f"shop refused the password: {exc}", report, code=exc.code)
        return []
    live = []
    for i in pending:
        reason = (errors or {}).get(i.job.shop_id)
        if reason:
            _fail(ctx, i, f"shop refused the password: {reason}", report)
        else:
            live.append(i)
    return live


def _render(ctx: PlatformContext, items: list[_Item], report: CycleReport) -> None:
    field = ctx.platform.addresses.password_field or ""
    try:
        rows = ctx.erp.get_addresses([i.job.erp_number for i in items])
    except TransientError as exc:
        _retry(ctx, items, exc, report)
        return
    for i in items:
        address = rows.get(i.job.erp_number)
        if address is None:
            _fail(ctx, i, "the address no longer exists in the ERP", report)
            continue
        if _field_value(address, field) != i.password:
            # Someone else wrote the field between our write and this read: start over rather
            # than mail a password the shop does not have.
            _retry(ctx, [i], "the password field changed while the mail was prepared", report)
            continue
        problem = email_problem(address.email)
        if problem:
            _fail(ctx, i, problem, report, code="email")
            continue
        try:
            i.mail = build_mail(ctx, address, i.job)
        except SyncdError as exc:
            _fail(ctx, i, f"layout {ctx.platform.addresses.email_layout!r}: {exc}", report, code="layout")
        except Exception as exc:  # a template error must end this job, not the batch
            _fail(ctx, i, f"layout {ctx.platform.addresses.email_layout!r}: {type(exc).__name__}: {exc}",
                  report, code="layout")


def _send(ctx: PlatformContext, items: list[_Item], report: CycleReport, shared: MailSession | None) -> None:
    """Send over one session. Sends are counted durably a window at a time, before SMTP is
    spoken: the write that records window k as sent also counts window k+1, so the state store
    sees two transactions per window instead of two per mail. A crash inside a window makes the
    sweep resend that window once, with the same passwords (I5)."""
    repo = CredentialJobs(ctx.state)
    assert ctx.mail is not None
    for i in items:
        if i.job.send_attempts >= MAX_SENDS:
            _fail(ctx, i, "delivery unknown after an interrupted resend; not sent again (use "
                  "`syncd accounts send-credentials` to send new credentials)", report)
    todo = [i for i in items if not i.result]
    accepted: list[_Item] = []  # accepted by SMTP, not yet recorded as sent
    try:
        with nullcontext(shared) if shared is not None else ctx.mail.session() as session:
            for start in range(0, len(todo), SEND_WINDOW):
                window = todo[start:start + SEND_WINDOW]
                repo.advance(sent=[i.job.id for i in accepted], sending=[i.job.id for i in window],
                             now=ctx.clock())
                _mark_sent(accepted)
                for i in window:
                    checkpoint("before_smtp")
                    mail = i.mail
                    assert mail is not None
                    try:
                        call_with_retry(lambda m=mail: session.send(m), what="send credentials mail")
                    except DeliveryUnknown as exc:
                        # The server may have the mail. The job stays "sending" with its field
                        # kept: the next cycle's settle resends once with the same password, and
                        # a second unknown outcome ends the job (I5).
                        i.result = "unknown"
                        report.add(i.job.erp_number, "deferred", redact(f"delivery unknown: {exc}"))
                        log.warning("credentials delivery unknown", platform=ctx.platform.name,
                                    address=i.job.erp_number, step=steps.SENDING)
                        continue
                    except TransientError as exc:
                        repo.refused(i.job.id, ctx.clock())
                        _retry(ctx, [i], f"mail server: {exc}", report, cause=exc)
                        continue
                    except PermanentError as exc:
                        repo.refused(i.job.id, ctx.clock())
                        _fail(ctx, i, f"mail server refused: {exc}", report, code=exc.code)
                        continue
                    accepted.append(i)
                    checkpoint("after_smtp")
    except TransientError as exc:  # the session could not be opened (or re-opened)
        _retry(ctx, [i for i in todo if not i.result and i not in accepted], f"mail server: {exc}", report,
               cause=exc)
    finally:
        # What the server accepted is recorded before anything else happens to these jobs.
        if accepted:
            repo.set_step([i.job.id for i in accepted], steps.SENT, ctx.clock())
            _mark_sent(accepted)
    checkpoint("after_sent")


def _mark_sent(accepted: list[_Item]) -> None:
    for i in accepted:
        i.result = "sent"
    accepted.clear()


# ---------------------------------------------------------------------------------------- outcomes
def _retry(ctx: PlatformContext, items: Iterable[_Item], error: object, report: CycleReport, *,
           cause: BaseException | None = None) -> None:
    items = [i for i in items if not i.result]
    if not items:
        return
    now = ctx.clock()
    repo = CredentialJobs(ctx.state)
    fault = next((e for e in (error, cause) if isinstance(e, ConfigurationFault)), None)
    for i in items:
        # A configuration fault is not waited out: the job is due again as soon as the fix may
        # be in (the transport itself spaces out attempts at a refused login).
        due = now if fault is not None else now + backoff(i.job.attempts)
        repo.retry_later([i.job.id], error=error, next_attempt_at=due, now=now)
        i.result = "retry"
        report.add(i.job.erp_number, "deferred", redact(str(error)))
        if fault is not None:  # the job waits as after any transient fault, but the cycle is not ok
            report.config_fault(redact(str(fault)))
        log.warning("credentials deferred", platform=ctx.platform.name, address=i.job.erp_number,
                    step=i.job.step, error=str(error))


def _fail(ctx: PlatformContext, item: _Item, reason: str, report: CycleReport, *, code: str | None = None
          ) -> None:
    repo = CredentialJobs(ctx.state)
    repo.fail(item.job.id, reason, ctx.clock())
    record_failure(ctx, item.job.erp_number, step=STEP, reason=reason, code=code)
    item.result = "failed"
    report.add(item.job.erp_number, "failed", redact(reason))
    log.warning("credentials failed", platform=ctx.platform.name, address=item.job.erp_number,
                step=STEP, reason=reason)


# ---------------------------------------------------------------------------------------- rendering
def _field_value(address: ErpAddress, field: str) -> str | None:
    value = address.row.get(field)
    if value is None:
        # Column names may come back in another case from some drivers.
        lowered = field.lower()
        value = next((v for k, v in address.row.items() if str(k).lower() == lowered), None)
    return None if value is None else str(value).strip()


def render_context(ctx: PlatformContext, address: ErpAddress) -> dict[str, Any]:
    """The layout context of spec §2 (erp by column, address by logical name, shop, customer)."""
    from syncd.layouts import build_context

    return build_context(address, platform=ctx.platform, shop=ctx.shop, sender=_sender(ctx))


def _sender(ctx: PlatformContext) -> str:
    return ctx.platform.sender or ctx.settings.mail.sender


def field_length(erp: Any) -> int | None:
    """The ERP password field's size, when the connector can tell: passwords never exceed it."""
    known = getattr(erp, "password_field_length", None)
    if isinstance(known, int):
        return known
    try:  # connectors.erp.SqlErp keeps it in its resolved layout
        column = erp.layout.write.column(erp.password_field)
        return int(column.length) if column is not None and column.length else None
    except Exception:  # any other adapter: the ERP refuses an over-long value itself
        return None


def build_mail(ctx: PlatformContext, address: ErpAddress, job: CredentialJob) -> OutgoingMail:
    assert ctx.layouts is not None
    rendered = ctx.layouts.render(ctx.platform.addresses.email_layout, render_context(ctx, address))
    name = " ".join(p for p in (address.first_name, address.last_name) if p) or address.company
    return OutgoingMail(
        to_addr=address.email or "",
        to_name=name or None,
        sender=_sender(ctx),
        subject=rendered.subject,
        text=rendered.text,
        html=rendered.html,
        key=f"{ctx.platform.name}:{job.erp_number}:{job.id}",
    )


# ---------------------------------------------------------------------------------------- the sweep
def sharing_platforms(ctx: PlatformContext) -> list[str]:
    """Platforms that use the same ERP password field: a field one of them owns is not stray."""
    field = (ctx.platform.addresses.password_field or "").lower()
    return [p.name for p in ctx.settings.platforms if (p.addresses.password_field or "").lower() == field]


def settle(ctx: PlatformContext, report: CycleReport, *, full: bool) -> None:
    """Finish or clear every in-flight password of the platform (I2).

    ``full``: look at every non-empty field in the ERP (start-up). Otherwise only at the fields of
    this platform's unfinished jobs (each cycle: cheap, O(active jobs)).
    """
    if not enabled(ctx):
        return
    repo = CredentialJobs(ctx.state)
    now = ctx.clock()
    active = repo.active(ctx.platform.name)
    if not full and not active:
        return
    if full:
        holding = set(ctx.erp.numbers_with_password())
        owned_elsewhere = {j.erp_number for j in repo.active([p for p in sharing_platforms(ctx)
                                                             if p != ctx.platform.name], holding)}
    else:
        holding, owned_elsewhere = set(), set()
    numbers = holding | {j.erp_number for j in active}
    values = ctx.erp.read_password_fields(sorted(numbers))
    values = {n: (v.strip() if isinstance(v, str) else v) for n, v in values.items()}
    with sensitive(*[v for v in values.values() if v]):
        by_number = {j.erp_number: j for j in active}
        stray = sorted(n for n in numbers
                       if values.get(n) and n not in by_number and n not in owned_elsewhere)
        finish: list[CredentialJob] = []
        restart: list[int] = []
        done: list[int] = []
        clear: list[int] = []
        for n, job in by_number.items():
            value = values.get(n)
            if job.step == steps.SENT:
                done.append(job.id)
                if value:
                    clear.append(n)
            elif value:
                finish.append(job)
            elif job.step != steps.PENDING:
                restart.append(job.id)  # a pending job with an empty field just waits its turn
        if stray:
            log.warning("clearing password fields no job owns", platform=ctx.platform.name, addresses=stray)
        if clear or stray:
            ctx.erp.clear_password_fields(clear + stray)
            for n in stray:
                report.add(n, "field-cleared", "password field held a value no job owns")
        repo.set_step(done, steps.DONE, now)
        clear_failures(ctx, [j.erp_number for j in active if j.id in done], step=STEP)
        repo.restart(restart, now)
        for j in active:
            if j.id in restart:
                report.add(j.erp_number, "restarted", f"interrupted at {j.step} before the field was written")
        if finish:
            log.info("finishing interrupted credential jobs", platform=ctx.platform.name,
                     addresses=[j.erp_number for j in finish])
            for start in range(0, len(finish), ctx.settings.mail.batch_size):
                chunk = finish[start:start + ctx.settings.mail.batch_size]
                deliver(ctx, chunk, {j.erp_number: str(values[j.erp_number]) for j in chunk}, report,
                        field_written=True)

"""One batch of credential jobs through spec §1 step 3, a to f, in order, on one thread.

a. ``a_generate``: a fresh password per job, from ``secrets``, never longer than the field.
b. ``b_write_field``: all fields in one ERP transaction; from here until f the field is the one
   durable place of the password (job step ``field_written``).
c. ``c_set_shop_password``: one bulk shop call sets the field's values; ``c_shop_answer`` takes
   its answer (the pipeline runs the call on a worker meanwhile; here it runs at once).
d. ``d_render``: re-read the rows and render the layout from them, as an ERP-side layout would.
e. ``e_send``: over one SMTP session; at each mail's commit point (right before the end-of-data
   terminator, when the server first could accept it) one state write records the mail before
   it as ``sent`` and counts this one as ``sending``.
f. ``f_clear_field``: one statement clears every field whose outcome is known; ``done``.

Transient faults (ERP, shop, SMTP 4xx after the retry budget) put a job back to ``pending`` with
a backoff and clear its field: the next attempt uses a fresh password, so no password sits in
the ERP while nothing is in flight. Permanent ones (SMTP 5xx, shop rejection, a vanished address,
a broken layout) end it as ``failed`` with the reason (``outcomes``).

Every step is recorded *before* the field is cleared, so after a crash at any instruction the
sweep can tell what to do from the job and the field (see ``sweep``). At any instant one SMTP
session has at most one job ``sending`` whose mail the server may or may not hold: that is all a
crash can make the sweep send twice, whatever the batch size or pipeline depth (I5). A crash
before a mail's commit point costs no send: nothing can have been delivered, so the job keeps
its step and the sweep just sends it again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from contextlib import nullcontext
from functools import partial
from typing import Any

import structlog

from syncd.core.errors import DeliveryUnknown, PermanentError, SyncdError, TransientError
from syncd.core.ports import MailSession
from syncd.core.redaction import redact, register, unregister
from syncd.core.retry import call_with_retry
from syncd.flows.context import CycleReport, PlatformContext
from syncd.flows.credentials import smsleg
from syncd.flows.credentials.mail import build_mail, field_length, field_value, render_context
from syncd.flows.credentials.outcomes import Item, delivery_unknown, done, fail, retry
from syncd.flows.credentials.policy import KIND, MAX_SENDS
from syncd.flows.mailbudget import record_send
from syncd.flows.passwords import generate_password
from syncd.flows.push_addresses import checkpoint
from syncd.state import jobs as steps
from syncd.state.jobs import CredentialJob, CredentialJobs

log = structlog.get_logger("syncd.flows.credentials")

# Runs the shop call of step c: at once (``run_now``), or on a worker (the pipeline's submit).
Submit = Callable[[Callable[[Any], Any], Any], "Future[Any]"]


def run_now(fn: Callable[[Any], Any], arg: Any) -> Future[Any]:
    done: Future[Any] = Future()
    try:
        done.set_result(fn(arg))
    except Exception as exc:  # handed over exactly as a worker's future would
        done.set_exception(exc)
    return done


class Batch:
    """Jobs that go through b-f together. Their passwords stay registered with the redaction
    point until ``close``."""

    def __init__(self, jobs: Iterable[CredentialJob], passwords: Mapping[int, str]) -> None:
        self.items = [Item(j, passwords[j.erp_number]) for j in jobs]
        self.call: Future[Any] | None = None  # step c's shop call, running or done
        self.written = True  # False: the field write failed as a whole; nothing to finish or clear
        self._passwords = [i.password for i in self.items]
        register(*self._passwords)

    def pending(self) -> list[Item]:
        return [i for i in self.items if not i.result]

    def close(self) -> None:
        if self.call is not None:
            self.call.cancel()
            self.call = None
        unregister(*self._passwords)
        self._passwords = []


# ---------------------------------------------------------------------------------------- a-f
def a_generate(ctx: PlatformContext, jobs: Iterable[CredentialJob]) -> dict[int, str]:
    a = ctx.platform.addresses
    size = field_length(ctx.erp)
    return {j.erp_number: generate_password(a.password_length, a.password_alphabet, field_length=size)
            for j in jobs}


def b_write_field(ctx: PlatformContext, batch: Batch, report: CycleReport) -> None:
    try:
        ctx.erp.write_password_fields({i.job.erp_number: i.password for i in batch.items})
    except TransientError as exc:
        retry(ctx, batch.items, exc, report)  # nothing written (one transaction): no field to clear
        batch.written = False
        return
    except PermanentError as exc:
        # One bad record (say, an address deleted meanwhile) refuses the whole transaction:
        # write the batch record by record so the others still get their mail.
        _write_one_by_one(ctx, batch.items, exc, report)
    checkpoint("after_field_write")
    CredentialJobs(ctx.state).set_step([i.job.id for i in batch.pending()], steps.FIELD_WRITTEN, ctx.clock())
    checkpoint("after_field_written")


def _write_one_by_one(ctx: PlatformContext, items: list[Item], error: PermanentError,
                      report: CycleReport) -> None:
    if len(items) == 1:
        fail(ctx, items[0], f"cannot write the ERP password field: {error}", report, code=error.code)
        return
    for i in items:
        try:
            ctx.erp.write_password_fields({i.job.erp_number: i.password})
        except TransientError as exc:
            retry(ctx, [i], exc, report)
        except PermanentError as exc:
            fail(ctx, i, f"cannot write the ERP password field: {exc}", report, code=exc.code)


def c_set_shop_password(ctx: PlatformContext, batch: Batch, report: CycleReport, *,
                        submit: Submit = run_now) -> None:
    for i in batch.pending():
        if not i.job.shop_id:
            fail(ctx, i, "no shop account id recorded for this job", report)
    by_shop = {i.job.shop_id: i.password for i in batch.pending()}
    if by_shop:
        batch.call = submit(ctx.shop.set_passwords, by_shop)


def c_shop_answer(ctx: PlatformContext, batch: Batch, report: CycleReport) -> list[Item]:
    """Wait for the bulk call; returns the items whose account now has the password."""
    pending = batch.pending()
    if not pending or batch.call is None:
        return []
    try:
        errors = batch.call.result()
    except TransientError as exc:
        retry(ctx, pending, exc, report)
        return []
    except PermanentError as exc:
        for i in pending:
            fail(ctx, i, f"shop refused the password: {exc}", report, code=exc.code)
        return []
    live = []
    for i in pending:
        reason = (errors or {}).get(i.job.shop_id)
        if reason:
            fail(ctx, i, f"shop refused the password: {reason}", report)
        else:
            live.append(i)
    return live


def d_render(ctx: PlatformContext, items: list[Item], report: CycleReport) -> list[Item]:
    """Re-read the rows and render each mail; returns the items ready to send."""
    if not items:
        return []
    field = ctx.platform.addresses.password_field or ""
    try:
        rows = ctx.erp.get_addresses([i.job.erp_number for i in items])
    except TransientError as exc:
        retry(ctx, items, exc, report)
        return []
    for i in items:
        address = rows.get(i.job.erp_number)
        if address is None:
            fail(ctx, i, "the address no longer exists in the ERP", report)
            continue
        if field_value(address, field) != i.password:
            # Someone else wrote the field between our write and this read: start over rather
            # than mail a password the shop does not have.
            retry(ctx, [i], "the password field changed while the mail was prepared", report)
            continue
        layout = ctx.platform.addresses.layout_for(i.job.reason)
        try:
            smsleg.prepare(ctx, i, address, layout=layout, context=partial(render_context, ctx, address),
                           build=partial(build_mail, ctx, address, i.job), carries_password=True,
                           report=report)
        except SyncdError as exc:
            fail(ctx, i, f"layout {layout!r}: {exc}", report, code="layout")
        except Exception as exc:  # a template error must end this job, not the batch
            fail(ctx, i, f"layout {layout!r}: {type(exc).__name__}: {exc}", report, code="layout")
    smsleg.record_channels(ctx, items)
    return smsleg.ready(items)


def e_send(ctx: PlatformContext, items: list[Item], report: CycleReport, shared: MailSession | None = None
           ) -> None:
    """Send over one session (``shared``, else one of its own). The one state write per mail runs
    at the mail's commit point (the transport's ``on_commit``, right before the server can accept
    it): it records the mail before it as sent and counts this one's send (I5). A crash before
    that point leaves the job in its pre-send step, so the sweep sends again with the same password,
    uncounted: nothing was delivered. A send whose outcome is unknown keeps its job ``sending``
    and its field, for the sweep to resend once."""
    repo = CredentialJobs(ctx.state)
    assert ctx.mail is not None
    for i in items:
        if i.job.send_attempts >= MAX_SENDS:
            why = ("delivery unknown after an interrupted resend; not sent again (use "
                   "`syncd accounts send-credentials` to send new credentials)")
            if i.sms_delivered:
                smsleg.mail_leg_failed(ctx, i, why, report)
            else:
                fail(ctx, i, why, report)
    todo = [i for i in items if not i.result]
    accepted: Item | None = None  # the server has it; recorded as sent by the next write
    try:
        with nullcontext(shared) if shared is not None else ctx.mail.session() as session, \
                repo.ledger() as ledger:
            for i in todo:
                counted = False  # this mail reached its commit point: its send is on record

                def commit(i: Item = i) -> None:
                    # Once per mail: a retry after the server refused the end of the data
                    # (its outcome known) must not count the same send twice.
                    nonlocal accepted, counted
                    if counted:
                        return
                    checkpoint("before_commit")  # content sent, nothing deliverable yet
                    ledger.advance(sent=accepted.job.id if accepted else None, sending=i.job.id,
                                   now=ctx.clock())
                    counted = True
                    record_send(ctx, KIND)  # the rate window and the canary count it from here
                    if accepted is not None:
                        accepted.result, accepted = "sent", None
                    checkpoint("before_smtp")

                mail = i.mail
                assert mail is not None
                try:
                    call_with_retry(lambda m=mail, c=commit: session.send(m, on_commit=c),
                                    what="send credentials mail")
                except DeliveryUnknown as exc:
                    # The server may have the mail. The job stays "sending" with its field kept:
                    # the next cycle's settle resends once with the same password, and a second
                    # unknown outcome ends the job (I5).
                    i.result = "unknown"
                    delivery_unknown(ctx, i, exc)
                    report.add(i.job.erp_number, "deferred", redact(f"delivery unknown: {exc}"))
                    log.warning("credentials delivery unknown", platform=ctx.platform.name,
                                address=i.job.erp_number, step=steps.SENDING)
                    continue
                except TransientError as exc:
                    if counted:
                        repo.refused(i.job.id, ctx.clock())
                    if i.sms_delivered:
                        smsleg.mail_leg_failed(ctx, i, f"mail server: {exc}", report)
                    else:
                        retry(ctx, [i], f"mail server: {exc}", report, cause=exc)
                    continue
                except PermanentError as exc:
                    if counted:
                        repo.refused(i.job.id, ctx.clock())
                    if i.sms_delivered:
                        smsleg.mail_leg_failed(ctx, i, f"mail server refused: {exc}", report)
                    else:
                        fail(ctx, i, f"mail server refused: {exc}", report, code=exc.code)
                    continue
                accepted = i
                checkpoint("after_smtp")
    except TransientError as exc:  # the session could not be opened (or re-opened)
        left = [i for i in todo if not i.result and i is not accepted]
        for i in left:
            if i.sms_delivered:
                smsleg.mail_leg_failed(ctx, i, f"mail server: {exc}", report)
        retry(ctx, left, f"mail server: {exc}", report, cause=exc)
    finally:
        # What the server accepted is recorded before anything else happens to the job.
        if accepted is not None:
            repo.set_step([accepted.job.id], steps.SENT, ctx.clock())
            accepted.result = "sent"
    checkpoint("after_sent")


def f_clear_field(ctx: PlatformContext, batch: Batch, report: CycleReport) -> None:
    """After each job's outcome is recorded; a mail whose delivery is unknown keeps its field."""
    ctx.erp.clear_password_fields([i.job.erp_number for i in batch.items if i.result != "unknown"])
    checkpoint("after_clear")
    smsleg.withheld(ctx, batch.items)
    sent = [i for i in batch.items if i.result == "sent"]
    done(ctx, [i.job for i in sent], smsleg.via(sent))
    for i in sent:
        report.add(i.job.erp_number, "mailed", i.job.email or "")
        log.info("credentials sent", platform=ctx.platform.name, address=i.job.erp_number, step="done")


# ---------------------------------------------------------------------------------------- a batch
def start(ctx: PlatformContext, jobs: list[CredentialJob], passwords: Mapping[int, str], report: CycleReport,
          *, field_written: bool, submit: Submit = run_now) -> Batch | None:
    """Steps b and c's call. ``field_written``: the fields already hold ``passwords`` (the sweep).
    None when there are no jobs."""
    if not jobs:
        return None
    batch = Batch(jobs, passwords)
    try:
        if not field_written:
            b_write_field(ctx, batch, report)
        if batch.written:
            c_set_shop_password(ctx, batch, report, submit=submit)
    except BaseException:
        batch.close()
        raise
    return batch


def finish(ctx: PlatformContext, batch: Batch, report: CycleReport, session: MailSession | None = None
           ) -> None:
    """c's answer, then d-f; the batch is closed afterwards, whatever happens."""
    try:
        if not batch.written:
            return
        live = c_shop_answer(ctx, batch, report)
        checkpoint("after_set_passwords")
        ready = d_render(ctx, live, report)
        checkpoint("after_render")
        smsleg.send(ctx, ready, report)
        mails = [i for i in ready if i.mail is not None and not i.result]
        if mails:
            e_send(ctx, mails, report, session)
        f_clear_field(ctx, batch, report)
    finally:
        batch.close()


def deliver(ctx: PlatformContext, jobs: list[CredentialJob], passwords: Mapping[int, str],
            report: CycleReport, *, field_written: bool, session: MailSession | None = None) -> None:
    """Take ``jobs`` from their current step to done/failed/retry with ``passwords`` (ERP number ->
    password), as one batch on its own."""
    batch = start(ctx, jobs, passwords, report, field_written=field_written)
    if batch is not None:
        finish(ctx, batch, report, session)

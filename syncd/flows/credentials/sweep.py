"""The sweep: every in-flight password of a platform is finished or cleared (I2).

What a job and its ERP field say after a crash at any instruction:

* field set, job active and not yet sent -> finish with the field's password (I1, I2);
  ``send_attempts`` counts only sends that reached the transport's commit point (a job still
  ``field_written`` was never delivered: resending it costs nothing) and caps resends at one (I5);
* field set, job sent or no job -> clear it;
* field empty, job not yet sent -> start over with a fresh password (no mail carried the old
  one: a mail is only sent while the field holds its password);
* field empty, job sent -> done.
"""

from __future__ import annotations

import structlog

from syncd.core.redaction import sensitive
from syncd.flows.context import CycleReport, PlatformContext
from syncd.flows.credentials import linkrun, outcomes
from syncd.flows.credentials.jobrun import deliver
from syncd.flows.credentials.policy import enabled, link_mode
from syncd.state import jobs as steps
from syncd.state.jobs import CredentialJob, CredentialJobs

log = structlog.get_logger("syncd.flows.credentials")


def worth_masking(ctx: PlatformContext, value: str, owned: bool) -> bool:
    """A field value to register with the redaction: one a job of ours owns (the password in
    flight), or a stray one that could be a password syncd generated (a job lost with its state
    store). Other text in the field ("connection", "ja", a note) is no password of ours: masking
    it would replace that word in every log line of the sweep, protecting nothing."""
    if owned:
        return True
    a = ctx.platform.addresses
    alphabet = set(a.password_alphabet)
    return 8 <= len(value) <= 128 and set(value) <= alphabet


def sharing_platforms(ctx: PlatformContext) -> list[str]:
    """Platforms that use the same ERP password field: a field one of them owns is not stray."""
    field = (ctx.platform.addresses.password_field or "").lower()
    return [p.name for p in ctx.settings.platforms if (p.addresses.password_field or "").lower() == field]


def settle(ctx: PlatformContext, report: CycleReport, *, full: bool) -> None:
    """Finish or clear every in-flight password of the platform.

    ``full``: look at every non-empty field in the ERP (start-up). Otherwise only at the fields of
    this platform's unfinished jobs (each cycle: cheap, O(active jobs)).
    """
    if not enabled(ctx):
        return
    if link_mode(ctx):  # no ERP field holds anything: the shop's recovery rows tell what to do
        linkrun.settle(ctx, report)
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
    by_number = {j.erp_number: j for j in active}
    ours = by_number.keys() | owned_elsewhere
    masked = [str(v) for n, v in values.items() if v and worth_masking(ctx, str(v), n in ours)]
    with sensitive(*masked):
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
        outcomes.done(ctx, [j for j in active if j.id in done])
        repo.restart(restart, now)
        for j in active:
            if j.id in restart:
                report.add(j.erp_number, "restarted", f"interrupted at {j.step} before the field was written")
        if finish:
            log.info("finishing interrupted credential jobs", platform=ctx.platform.name,
                     addresses=[j.erp_number for j in finish])
            size = ctx.settings.mail.batch_size
            for start in range(0, len(finish), size):
                chunk = finish[start:start + size]
                deliver(ctx, chunk, {j.erp_number: str(values[j.erp_number]) for j in chunk}, report,
                        field_written=True)

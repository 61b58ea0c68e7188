"""The start-up sweep (I2) on states a crash or an operator can leave behind, in process, with
the real ERP table, sandbox, SMTP server and state store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from syncd.flows.erp_to_shop import settle_password_fields
from syncd.state import jobs as steps
from syncd.state.failures import Failures
from syncd.state.jobs import CredentialJobs
from tests.support.flow_harness import PLATFORM, Harness, password_of
from tests.support.mailserver import smtp_server, smtp_server_factory, smtp_tls_files  # noqa: F401
from tests.support.shops import shop  # noqa: F401


def _person(n: int) -> dict:
    return {"number": n, "email": f"kunde{n}@example.com", "last_name": f"Weiß-{n}", "first_name": "Anna",
            "street": "Allee 3", "zip": "80331", "city": "München", "country": "DE"}


@pytest.fixture
def harness(tmp_path: Path, shop, smtp_server) -> Iterator[Harness]:  # noqa: F811
    """Every sweep case runs for each platform kind (``shop``: Shopware 6, WooCommerce)."""
    h = Harness(tmp_path, f"sqlite:///{tmp_path / 'erp.db'}", "adressen", shop, smtp_server)
    try:
        yield h
    finally:
        h.close()


def _created(h: Harness, numbers: list[int]) -> None:
    """Accounts exist and jobs are done, as after a normal first cycle."""
    h.insert([_person(n) for n in numbers])
    h.run()
    assert CredentialJobs(h.state).counts(PLATFORM) == {"done": len(numbers)}
    h.smtp.clear()


def test_stray_field_is_cleared_without_mail(harness: Harness) -> None:
    _created(harness, [10001, 10002])
    ctx = harness.context()
    ctx.erp.write_password_fields({10001: "Leftover9xyz"})
    report = settle_password_fields(ctx)
    assert report.counts["field-cleared"] == 1
    assert harness.password_fields() == {}
    assert harness.smtp.messages == []


def test_sent_job_with_a_set_field_is_cleared_not_resent(harness: Harness) -> None:
    _created(harness, [10001])
    jobs = CredentialJobs(harness.state)
    ctx = harness.context()
    job_id = jobs.create(platform=PLATFORM, erp_number=10001, shop_id="x" * 32,
                         email="kunde10001@example.com", now=ctx.clock(), reason="resend")
    jobs.set_step([job_id], steps.SENT, ctx.clock())
    ctx.erp.write_password_fields({10001: "AlreadyMailed7"})
    settle_password_fields(ctx)
    assert harness.password_fields() == {}
    assert harness.smtp.messages == []
    assert jobs.get(job_id).step == steps.DONE


def test_in_flight_job_is_finished_with_the_fields_password(harness: Harness) -> None:
    _created(harness, [10001])
    shop_id = harness.accounts_by_number()["10001"][0].id
    jobs = CredentialJobs(harness.state)
    ctx = harness.context()
    job_id = jobs.create(platform=PLATFORM, erp_number=10001, shop_id=shop_id, email="kunde10001@example.com",
                         now=ctx.clock(), reason="resend")
    jobs.set_step([job_id], steps.FIELD_WRITTEN, ctx.clock())
    ctx.erp.write_password_fields({10001: "InFlight42abc"})
    report = settle_password_fields(ctx)
    assert report.counts["mailed"] == 1
    [mail] = harness.mails_to("kunde10001@example.com")
    assert password_of(mail) == "InFlight42abc"
    assert harness.kit.login("kunde10001@example.com", "InFlight42abc")
    assert harness.password_fields() == {}
    assert jobs.get(job_id).step == steps.DONE


def test_second_interrupted_send_is_not_repeated(harness: Harness) -> None:
    """Two sends with unknown outcome already: no third mail (I5); the job fails visibly."""
    _created(harness, [10001])
    shop_id = harness.accounts_by_number()["10001"][0].id
    jobs = CredentialJobs(harness.state)
    ctx = harness.context()
    job_id = jobs.create(platform=PLATFORM, erp_number=10001, shop_id=shop_id, email="kunde10001@example.com",
                         now=ctx.clock(), reason="resend")
    jobs.start_sending(job_id, ctx.clock())
    jobs.start_sending(job_id, ctx.clock())
    ctx.erp.write_password_fields({10001: "TwiceUnknown5"})
    settle_password_fields(ctx)
    assert harness.smtp.messages == []
    assert harness.password_fields() == {}
    job = jobs.get(job_id)
    assert job.step == steps.FAILED and "send-credentials" in job.last_error
    [failure] = Failures(harness.state).list(PLATFORM)
    assert failure.record == "10001" and failure.step == "credentials"


def test_job_interrupted_before_the_field_was_written_starts_over(harness: Harness) -> None:
    harness.insert([_person(10001)])
    from syncd.flows.push_addresses import checkpoint

    class Crash(BaseException):
        pass

    def crash(name: str) -> None:
        if name == "after_link":
            raise Crash

    checkpoint.hook = crash
    try:
        with pytest.raises(Crash):
            harness.run()
    finally:
        checkpoint.hook = None
    [job] = CredentialJobs(harness.state).active(PLATFORM)
    assert job.step == steps.PENDING and harness.password_fields() == {}
    report = harness.run()
    assert report.counts["mailed"] == 1 and not report.counts["created"]
    [mail] = harness.mails_to("kunde10001@example.com")
    assert harness.kit.login("kunde10001@example.com", password_of(mail))


def test_operator_sends_new_credentials(harness: Harness) -> None:
    from syncd.flows.credentials import queue_credentials

    harness.insert([_person(10001), _person(10002)])
    harness.run()
    [first] = harness.mails_to("kunde10001@example.com")
    old = password_of(first)
    report = queue_credentials(harness.context(), [10001, 99999])
    assert report.counts["mailed"] == 1
    assert [i.detail for i in report.items if i.record == "99999"] == ["no such ERP address"]
    mails = harness.mails_to("kunde10001@example.com")
    assert len(mails) == 2 and password_of(mails[1]) != old
    assert harness.kit.login("kunde10001@example.com", password_of(mails[1]))
    assert not harness.kit.login("kunde10001@example.com", old)
    assert harness.password_fields() == {}
    assert len(harness.mails_to("kunde10002@example.com")) == 1


class FlakyErp:
    """The real ERP port, except that chosen methods fail with a TransientError (as the ERP
    connector raises once its own retries are used up) the next ``n`` times."""

    def __init__(self, inner, **failures: int) -> None:
        self._inner = inner
        self.failures = dict(failures)

    def __getattr__(self, name: str):
        attr = getattr(self._inner, name)
        if self.failures.get(name, 0) <= 0:
            return attr

        def failing(*_a, **_k):
            from syncd.core.errors import TransientError

            self.failures[name] -= 1
            raise TransientError(f"erp {name}: connection lost (injected)")

        return failing


def test_erp_lost_while_writing_fields_defers_without_a_trace(harness: Harness) -> None:
    from syncd.flows.erp_to_shop import run_erp_to_shop

    harness.insert([_person(10001), _person(10002)])
    ctx = harness.context()
    ctx.erp = FlakyErp(ctx.erp, write_password_fields=1)
    report = run_erp_to_shop(ctx)
    assert report.counts["created"] == 2 and report.counts["deferred"] == 2
    assert harness.password_fields() == {} and harness.smtp.messages == []
    jobs = CredentialJobs(harness.state).active(PLATFORM)
    later = max(j.next_attempt_at for j in jobs)
    ctx.clock = lambda: later
    assert run_erp_to_shop(ctx).counts["mailed"] == 2
    for n in (10001, 10002):
        [mail] = harness.mails_to(f"kunde{n}@example.com")
        assert harness.kit.login(f"kunde{n}@example.com", password_of(mail))


def test_erp_lost_while_clearing_fields_is_settled_next_cycle(harness: Harness) -> None:
    from syncd.core.errors import TransientError
    from syncd.flows.erp_to_shop import run_erp_to_shop

    harness.insert([_person(10001)])
    ctx = harness.context()
    ctx.erp = FlakyErp(ctx.erp, clear_password_fields=1)
    with pytest.raises(TransientError):
        run_erp_to_shop(ctx)
    assert list(harness.password_fields()) == [10001]  # the mail went out; the field is still set
    assert [j.step for j in CredentialJobs(harness.state).active(PLATFORM)] == [steps.SENT]
    report = run_erp_to_shop(ctx)  # the next cycle first finishes what the last one left
    assert not report.counts["mailed"]
    assert harness.password_fields() == {}
    assert CredentialJobs(harness.state).counts(PLATFORM) == {"done": 1}
    assert len(harness.mails_to("kunde10001@example.com")) == 1


def test_one_vanished_address_does_not_stop_the_batch(harness: Harness) -> None:
    """The ERP refuses the batch's field write as a whole when one address is gone; the others
    still get their mail, the gone one fails with the reason."""
    import sqlalchemy as sa

    from syncd.flows.push_addresses import checkpoint

    harness.insert([_person(10001), _person(10002), _person(10003)])

    def delete_one(name: str) -> None:
        if name == "after_link":
            engine = sa.create_engine(harness.erp_url)
            with engine.begin() as conn:
                conn.execute(sa.text('DELETE FROM adressen WHERE "AdrNr" = 10002'))
            engine.dispose()

    checkpoint.hook = delete_one
    try:
        report = harness.run()
    finally:
        checkpoint.hook = None
    assert report.counts["mailed"] == 2 and report.counts["failed"] == 1
    assert harness.mails_to("kunde10002@example.com") == []
    for n in (10001, 10003):
        [mail] = harness.mails_to(f"kunde{n}@example.com")
        assert harness.kit.login(f"kunde{n}@example.com", password_of(mail))
    [failed] = CredentialJobs(harness.state).failed(PLATFORM)
    assert failed.erp_number == 10002 and "10002" in failed.last_error
    assert harness.password_fields() == {}

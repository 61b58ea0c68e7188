"""Crash safety of the ERP -> shop flow: a cycle runs in a subprocess (``tests/support/kill_runner.py``)
and is SIGKILLed at every step boundary and at random moments (with shop latency to widen the
windows); a restart (start-up sweep, then a cycle) must leave I1, I2, I4, I5 and I3 intact.

The sandbox, the SMTP server and the ERP/state files live in the test process and outlive the
killed runner.
"""

from __future__ import annotations

import json
import random
import signal
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from syncd.state.jobs import CredentialJobs
from tests.support.flow_harness import PLATFORM, Harness, password_of
from tests.support.kill_scaffold import Runner, check_mailed_once, person
from tests.support.mailserver import smtp_server, smtp_server_factory, smtp_tls_files  # noqa: F401
from tests.support.shops import shop  # noqa: F401

pytestmark = pytest.mark.slow


@pytest.fixture
def harness(tmp_path: Path, shop, smtp_server) -> Iterator[Harness]:  # noqa: F811
    """Every kill test runs for each platform kind (``shop``: Shopware 6, WooCommerce)."""
    h = Harness(tmp_path, f"sqlite:///{tmp_path / 'erp.db'}", "adressen", shop, smtp_server)
    try:
        yield h
    finally:
        h.close()


def check_invariants(h: Harness, numbers: list[int], runner: Runner) -> None:
    check_mailed_once(h, numbers, runner, secret_of=password_of,
                      works=lambda _n, email, password: h.kit.login(email, password))


BOUNDARIES = [
    "after_push", "after_link", "after_field_write", "after_field_written", "after_set_passwords",
    "after_render", "before_smtp", "before_smtp:3", "after_smtp", "after_smtp:3", "after_sent", "after_clear",
]


@pytest.mark.parametrize("point", BOUNDARIES)
def test_kill_at_each_step_boundary(harness: Harness, runner: Runner, point: str) -> None:
    numbers = list(range(10001, 10006))
    harness.insert([person(n) for n in numbers])
    assert runner.run(SYNCD_KILL_AT=point) == -signal.SIGKILL, runner.output[-1]
    assert runner.run() == 0, runner.output[-1]
    check_invariants(harness, numbers, runner)


# Mail batches of 2 for 7 addresses: four batches, with the shop setting the passwords of up to
# two of them while the oldest is mailed (credentials.pipeline.SHOP_CALLS_AHEAD), so a kill finds several
# batches at different steps at once.
IN_FLIGHT = [
    "after_field_written:3",  # three batches written, none mailed
    "after_set_passwords:2",  # batch 1 mailed, batch 2 about to render, 3 and 4 written
    "before_smtp:3",  # batch 2 counted as sending, batches 3 and 4 waiting on the shop
    "after_smtp:5",  # batch 3 half sent
    "after_clear:3",  # batch 3 done but for its final state write, batch 4 written
]


@pytest.mark.parametrize("point", IN_FLIGHT)
def test_kill_with_several_batches_in_flight(harness: Harness, runner: Runner, point: str) -> None:
    harness.mail_batch_size = 2
    runner.config = harness.config_file()
    numbers = list(range(10001, 10008))
    harness.insert([person(n) for n in numbers])
    assert runner.run(SYNCD_KILL_AT=point) == -signal.SIGKILL, runner.output[-1]
    assert runner.run() == 0, runner.output[-1]
    check_invariants(harness, numbers, runner)


def test_field_holds_the_password_only_in_flight(harness: Harness, runner: Runner) -> None:
    """Paused at the commit point (content sent, terminator not): the field holds the password
    the shop has; the job counts the send. Killed there, the restart sends the same password
    once more."""
    numbers = [10001, 10002]
    harness.insert([person(n) for n in numbers])
    proc = runner.start(SYNCD_PAUSE_AT="before_smtp")
    assert proc.stdout.readline().strip() == "READY"
    assert proc.stdout.readline().strip() == "PAUSED before_smtp"
    fields = harness.password_fields()
    assert sorted(fields) == numbers
    for n, pw in fields.items():
        assert harness.kit.login(f"kunde{n}@example.com", pw)
    jobs = {j.erp_number: j for j in CredentialJobs(harness.state).active(PLATFORM)}
    assert jobs[10001].step == "sending" and jobs[10001].send_attempts == 1
    proc.kill()
    runner.finish(proc)
    assert runner.run() == 0
    check_invariants(harness, numbers, runner)
    assert password_of(harness.mails_to("kunde10001@example.com")[0]) == fields[10001]


def test_two_crashes_in_a_row(harness: Harness, runner: Runner) -> None:
    numbers = list(range(10001, 10005))
    harness.insert([person(n) for n in numbers])
    assert runner.run(SYNCD_KILL_AT="after_set_passwords") == -signal.SIGKILL
    # the restart's sweep finishes the jobs with the fields' passwords; kill it after one mail
    assert runner.run(SYNCD_KILL_AT="after_smtp:1") == -signal.SIGKILL
    assert runner.run() == 0
    check_invariants(harness, numbers, runner)
    # and a further run changes nothing
    mails = len(harness.smtp.messages)
    assert runner.run() == 0
    assert len(harness.smtp.messages) == mails
    check_invariants(harness, numbers, runner)


def test_kill_at_random_moments_with_shop_latency(harness: Harness, runner: Runner) -> None:
    rng = random.Random(20261123)
    harness.sandbox.faults.latency = harness.kit.kill_latency
    numbers: list[int] = []
    interrupted = 0
    for trial in range(6):
        new = [20000 + trial * 20 + i for i in range(12)]
        harness.insert([person(n) for n in new])
        numbers += new
        proc = runner.start()
        assert proc.stdout.readline().strip() == "READY"
        time.sleep(rng.uniform(0.05, 1.0))  # a cycle of 12 addresses takes about 2 s here
        proc.send_signal(signal.SIGKILL)
        killed = runner.finish(proc) == -signal.SIGKILL
        assert runner.run() == 0, runner.output[-1]
        resumed = json.loads(runner.output[-2].strip().splitlines()[-1])
        interrupted += killed and bool(resumed)
        check_invariants(harness, numbers, runner)
    print(f"random kills that cut into the work: {interrupted} of 6")
    # the timings must really cut into the work, not only kill finished runners
    assert interrupted >= 3, interrupted


def test_two_kills_inside_data_cost_no_mail(harness: Harness, runner: Runner) -> None:
    """Killed twice while the same mail was in DATA (content sent, terminator not): the server
    discards both, nothing was delivered, so the third start mails everyone exactly once instead
    of failing the job as 'delivery unknown' (I1)."""
    numbers = [41007, 41013, 41029]
    harness.insert([person(n) for n in numbers])
    assert runner.run(SYNCD_KILL_AT="before_commit") == -signal.SIGKILL, runner.output[-1]
    assert runner.run(SYNCD_KILL_AT="before_commit") == -signal.SIGKILL, runner.output[-1]
    assert harness.smtp.messages == []
    assert runner.run() == 0, runner.output[-1]
    check_invariants(harness, numbers, runner)
    assert [len(harness.mails_to(f"kunde{n}@example.com")) for n in numbers] == [1, 1, 1]


@pytest.mark.parametrize(("batch_size", "accepted"), [(100, 30), (7, 45)])
def test_a_kill_right_after_an_smtp_acceptance_resends_that_one_mail(
        harness: Harness, runner: Runner, batch_size: int, accepted: int) -> None:
    """Killed right after the server accepted mail ``accepted`` of a 60-mail run: the mails
    accepted before it are on record, so the restart resends only that one (same password),
    whatever the mail batch size."""
    harness.mail_batch_size = batch_size
    runner.config = harness.config_file()
    numbers = list(range(30001, 30061))
    harness.insert([person(n) for n in numbers])
    assert runner.run(SYNCD_KILL_AT=f"after_smtp:{accepted}") == -signal.SIGKILL, runner.output[-1]
    assert len(harness.smtp.messages) == accepted
    assert runner.run() == 0, runner.output[-1]
    check_invariants(harness, numbers, runner)
    per_address = sorted(len(harness.mails_to(f"kunde{n}@example.com")) for n in numbers)
    assert per_address == [1] * 59 + [2]


@pytest.mark.parametrize("point", ["after_field_written:1", "before_smtp:2", "after_smtp:2", "after_sent:1",
                                   "after_clear:2"])
def test_kill_during_a_rate_limited_queue_loses_and_duplicates_nothing(
        harness: Harness, runner: Runner, point: str) -> None:
    """[mail] max_per_minute = 3 over a queue of 9 (batches of 2): killed inside a limited run,
    then run again as minutes pass. Every address gets its mail, the queue keeps its order, no job
    fails for the limit, and the only extra mail is I5's resend of the one in flight."""
    import sqlalchemy as sa

    from syncd.state.schema import mail_sends

    harness.mail = {"max_per_minute": 3}
    harness.mail_batch_size = 2
    runner.config = harness.config_file()
    numbers = list(range(50001, 50010))
    harness.insert([person(n) for n in numbers])
    assert runner.run(SYNCD_KILL_AT=point) == -signal.SIGKILL, runner.output[-1]
    assert len(harness.smtp.messages) <= 3
    for _ in range(8):
        assert runner.run() == 0, runner.output[-1]
        with harness.state.begin() as conn:  # a minute passes for the rate window
            for row_id, at in conn.execute(sa.select(mail_sends.c.id, mail_sends.c.at)).all():
                conn.execute(sa.update(mail_sends).where(mail_sends.c.id == row_id)
                             .values(at=at - timedelta(minutes=2)))
        if not CredentialJobs(harness.state).active(PLATFORM):
            break
    check_invariants(harness, numbers, runner)
    per_address = [len(harness.mails_to(f"kunde{n}@example.com")) for n in numbers]
    assert sum(per_address) <= len(numbers) + 1, per_address
    first = []
    for m in harness.smtp.messages:
        n = int(m.rcpt_tos[0].split("@")[0].removeprefix("kunde"))
        if n not in first:
            first.append(n)
    assert first == numbers  # the queue kept its order

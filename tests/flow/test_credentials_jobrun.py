"""The resend bound of the credential run, with in-memory ports and the real state store.

A crash may cost one extra mail per open SMTP transaction (I5): the mail the server accepted
while the run died before recording it. The bound must not grow with the mail batch size or
the pipeline depth, so the run records each acceptance in the same state write that counts the
next send, before that next mail is spoken.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime

import pytest

from syncd.core.domain import OutgoingMail
from syncd.flows.context import CycleReport
from syncd.flows.credentials import pipeline, send_due, settle
from syncd.state import jobs as steps
from syncd.state.jobs import CredentialJobs
from tests.support.dbs import state_store
from tests.support.fakes.credentials import PLATFORM, Crash, FakeErp, FakeMail, FakeShop, address, context

N = 50
NUMBERS = list(range(30001, 30001 + N))
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
_PASSWORD = re.compile(r"^\s*Passwort:\s*(\S+)\s*$", re.MULTILINE)


@pytest.fixture
def store(tmp_path):
    with state_store("sqlite", tmp_path) as s:
        yield s


def _queue(store) -> dict[int, int]:
    repo = CredentialJobs(store)
    return {n: repo.create(platform=PLATFORM, erp_number=n, shop_id=f"{n:032x}", email=address(n).email,
                           now=NOW) for n in NUMBERS}


def _number(mail: OutgoingMail) -> int:
    return int(mail.key.split(":")[1])  # "platform:number:job"


def _password(mail: OutgoingMail) -> str:
    [found] = _PASSWORD.findall(mail.text)
    return found


def _ctx(store, erp: FakeErp, shop: FakeShop, mail: FakeMail, batch_size: int):
    ctx = context(store, erp, shop, mail, batch_size=batch_size)
    ctx.clock = lambda: NOW
    return ctx


@pytest.mark.parametrize("k", [1, 8, 21, 50])
@pytest.mark.parametrize("batch_size", [1, 7, 200])
def test_a_crash_after_an_acceptance_leaves_one_job_sending(store, batch_size: int, k: int) -> None:
    ids = _queue(store)
    erp, shop = FakeErp(address(n) for n in NUMBERS), FakeShop()
    first = FakeMail(crash_after=k)
    with pytest.raises(Crash):
        send_due(_ctx(store, erp, shop, first, batch_size), CycleReport(PLATFORM, "erp-to-shop"))
    repo = CredentialJobs(store)
    crashed = _number(first.accepted[-1])
    sending = [j.erp_number for j in repo.active(PLATFORM) if j.step == steps.SENDING]
    assert sending == [crashed]
    # every mail the server accepted before it is on record, so the sweep will not send it again
    for mail in first.accepted[:-1]:
        assert repo.get(ids[_number(mail)]).step in (steps.SENT, steps.DONE)

    # the restart: the sweep settles every field, then the queue runs on
    again = FakeMail()
    ctx = _ctx(store, erp, shop, again, batch_size)
    report = CycleReport(PLATFORM, "erp-to-shop")
    settle(ctx, report, full=True)
    send_due(ctx, report)
    mails = first.accepted + again.accepted
    per_address = Counter(_number(m) for m in mails)
    assert per_address.pop(crashed) == 2
    assert set(per_address.values()) == {1} and len(per_address) == N - 1
    twice = [_password(m) for m in mails if _number(m) == crashed]
    assert twice[0] == twice[1]  # the resend carries the password the first mail did
    for m in mails:  # the newest mailed password is the account's
        assert shop.passwords[f"{_number(m):032x}"] == _password(m)
    assert erp.fields == {}
    assert repo.counts(PLATFORM) == {"done": N}


@pytest.mark.parametrize(("batch_size", "ahead"), [(1, 2), (7, 1), (7, 4), (200, 2)])
def test_while_a_mail_is_spoken_only_its_job_is_sending(store, monkeypatch, batch_size: int, ahead: int
                                                         ) -> None:
    """At the instant each mail reaches the server, the state store counts exactly that one send
    as open, and every mail accepted before it as sent: whatever the batch size or the number of
    shop calls ahead, a crash there resends one mail."""
    monkeypatch.setattr(pipeline, "SHOP_CALLS_AHEAD", ahead)
    ids = _queue(store)
    repo = CredentialJobs(store)
    mail = FakeMail()
    spoken: list[int] = []

    def probe(m: OutgoingMail) -> None:
        number = _number(m)
        open_sends = [j.erp_number for j in repo.active(PLATFORM) if j.step == steps.SENDING]
        assert open_sends == [number]
        assert repo.get(ids[number]).send_attempts == 1
        earlier = {repo.get(ids[n]).step for n in spoken}
        assert earlier <= {steps.SENT, steps.DONE}, earlier
        spoken.append(number)

    mail.on_send = probe
    erp = FakeErp(address(n) for n in NUMBERS)
    report = CycleReport(PLATFORM, "erp-to-shop")
    send_due(_ctx(store, erp, FakeShop(), mail, batch_size), report)
    assert sorted(spoken) == NUMBERS and report.counts["mailed"] == N
    assert repo.counts(PLATFORM) == {"done": N} and erp.fields == {}


# ------------------------------------------------------------------ crashes around the commit point
FEW = [71234, 80502, 99001]


def _daemon_start(store, erp: FakeErp, shop: FakeShop, mail: FakeMail) -> None:
    """What a (re)start does for this flow: settle every field first, then the queue."""
    ctx = _ctx(store, erp, shop, mail, batch_size=5)
    report = CycleReport(PLATFORM, "erp-to-shop")
    settle(ctx, report, full=True)
    send_due(ctx, report)


def _queue_few(store) -> dict[int, int]:
    repo = CredentialJobs(store)
    return {n: repo.create(platform=PLATFORM, erp_number=n, shop_id=f"{n:032x}", email=address(n).email,
                           now=NOW) for n in FEW}


def test_crashes_inside_data_before_the_terminator_cost_no_send(store) -> None:
    """Killed twice while the same mail was in DATA, before the end-of-data terminator: nothing
    was ever delivered, so neither attempt counts. The third start mails the field's password
    once and the job is done (I1), not failed as "delivery unknown"."""
    ids = _queue_few(store)
    erp, shop = FakeErp(address(n) for n in FEW), FakeShop()
    repo = CredentialJobs(store)
    cut: list[OutgoingMail] = []
    written: dict[int, str] = {}
    for _ in range(2):
        mail = FakeMail(crash_in_data=1)
        with pytest.raises(Crash):
            _daemon_start(store, erp, shop, mail)
        assert mail.accepted == []
        cut += mail.interrupted
        written = written or dict(erp.fields)
        victim = repo.get(ids[_number(cut[-1])])
        assert victim.send_attempts == 0 and victim.step == steps.FIELD_WRITTEN
    assert _number(cut[0]) == _number(cut[1])  # the same mail both times
    assert erp.fields == written  # the sweep kept the field's password

    last = FakeMail()
    _daemon_start(store, erp, shop, last)
    assert sorted(_number(m) for m in last.accepted) == FEW  # exactly one mail each
    for m in last.accepted:
        assert _password(m) == written[_number(m)] == shop.passwords[f"{_number(m):032x}"]
    assert repo.counts(PLATFORM) == {"done": len(FEW)} and erp.fields == {}


def test_a_crash_after_the_terminator_still_costs_one_resend(store) -> None:
    """A crash inside DATA (uncounted), then one after the server accepted the resend but before
    the next write: the sweep sends once more, so two mails with the same password (I5)."""
    ids = _queue_few(store)
    erp, shop = FakeErp(address(n) for n in FEW), FakeShop()
    repo = CredentialJobs(store)
    first = FakeMail(crash_in_data=1)
    with pytest.raises(Crash):
        _daemon_start(store, erp, shop, first)
    victim = _number(first.interrupted[0])
    second = FakeMail(crash_after=1)  # the server's 250 for the first mail, then the kill
    with pytest.raises(Crash):
        _daemon_start(store, erp, shop, second)
    assert [_number(m) for m in second.accepted] == [victim]
    job = repo.get(ids[victim])
    assert job.step == steps.SENDING and job.send_attempts == 1

    third = FakeMail()
    _daemon_start(store, erp, shop, third)
    mails = second.accepted + third.accepted
    per_address = Counter(_number(m) for m in mails)
    assert per_address == {victim: 2, **{n: 1 for n in FEW if n != victim}}
    twice = [_password(m) for m in mails if _number(m) == victim]
    assert twice[0] == twice[1] == shop.passwords[f"{victim:032x}"]
    assert repo.counts(PLATFORM) == {"done": len(FEW)} and erp.fields == {}


def test_two_crashes_after_the_terminator_end_the_job_after_two_mails(store) -> None:
    """The bound still holds when both sends may have been delivered: no third mail."""
    ids = _queue_few(store)
    erp, shop = FakeErp(address(n) for n in FEW), FakeShop()
    mails: list[OutgoingMail] = []
    for _ in range(2):
        mail = FakeMail(crash_after=1)
        with pytest.raises(Crash):
            _daemon_start(store, erp, shop, mail)
        mails += mail.accepted
    victim = _number(mails[0])
    assert [_number(m) for m in mails] == [victim, victim]
    last = FakeMail()
    _daemon_start(store, erp, shop, last)
    assert victim not in {_number(m) for m in last.accepted}
    job = CredentialJobs(store).get(ids[victim])
    assert job.step == steps.FAILED and "not sent again" in (job.last_error or "")
    assert erp.fields == {}

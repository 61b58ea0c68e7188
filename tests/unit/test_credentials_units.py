"""The pure and repository parts of the credentials flow: password generation, the job
repository on a real SQLite state store, and the per-batch plan of the ERP -> shop push."""

from __future__ import annotations

import string
from datetime import UTC, datetime, timedelta

import pytest

from syncd.config.model import DEFAULT_ALPHABET, AddressSettings
from syncd.core.domain import ErpAddress
from syncd.core.errors import ConfigError
from syncd.flows.fingerprints import address_fingerprint
from syncd.flows.passwords import generate_password
from syncd.flows.push_addresses import email_problem, plan_batch
from syncd.state import jobs as steps
from syncd.state.jobs import CredentialJobs
from syncd.state.links import Link
from tests.support.dbs import state_store

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


# ---------------------------------------------------------------------------------------- passwords
def test_password_respects_length_alphabet_and_field_size() -> None:
    seen = set()
    for _ in range(200):
        pw = generate_password(12, DEFAULT_ALPHABET)
        assert len(pw) == 12 and set(pw) <= set(DEFAULT_ALPHABET)
        # lower, upper and digit each present: shops with a password policy accept it
        assert set(pw) & set(string.ascii_lowercase) and set(pw) & set(string.ascii_uppercase)
        assert set(pw) & set(string.digits)
        seen.add(pw)
    assert len(seen) == 200  # secrets, not a constant
    assert len(generate_password(20, DEFAULT_ALPHABET, field_length=10)) == 10


def test_password_field_too_small_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="password_field"):
        generate_password(12, DEFAULT_ALPHABET, field_length=6)


# ---------------------------------------------------------------------------------------- jobs
@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.realdb)])
def store(request, tmp_path):
    with state_store(request.param, tmp_path) as s:
        yield s


def test_due_walks_the_queue_once_by_id(store) -> None:
    jobs = CredentialJobs(store)
    ids = [jobs.create(platform="shop", erp_number=10001 + n, shop_id=f"{n:032x}", email="x@example.com",
                       now=NOW) for n in range(5)]
    first = jobs.due("shop", NOW, limit=2)
    assert [j.id for j in first] == ids[:2]
    # A job of the first page deferred without backoff is back to pending, yet not offered again.
    jobs.retry_later([ids[0]], error="no backoff", next_attempt_at=NOW, now=NOW)
    rest = jobs.due("shop", NOW, limit=10, after_id=first[-1].id)
    assert [j.id for j in rest] == ids[2:]
    assert [j.id for j in jobs.due("shop", NOW, limit=10)][0] == ids[0]  # next cycle: due again


def test_one_active_job_per_address_and_steps(store) -> None:
    jobs = CredentialJobs(store)
    first = jobs.create(platform="shop", erp_number=10001, shop_id="a" * 32, email="x@example.com", now=NOW)
    assert first is not None
    again = jobs.create(platform="shop", erp_number=10001, shop_id="a" * 32, email="x@example.com", now=NOW)
    assert again is None
    # other platform: its own job
    assert jobs.create(platform="other", erp_number=10001, shop_id="b" * 32, email="x@example.com", now=NOW)

    assert [j.id for j in jobs.due("shop", NOW, limit=10)] == [first]
    jobs.set_step([first], steps.FIELD_WRITTEN, NOW)
    assert jobs.due("shop", NOW, limit=10) == []
    jobs.start_sending(first, NOW)
    jobs.start_sending(first, NOW)
    jobs.refused(first, NOW)
    job = jobs.get(first)
    assert job.step == steps.SENDING and job.send_attempts == 1

    jobs.retry_later([first], error="451 try later", next_attempt_at=NOW + timedelta(minutes=1), now=NOW)
    assert jobs.due("shop", NOW, limit=10) == []
    assert [j.id for j in jobs.due("shop", NOW + timedelta(minutes=2), limit=10)] == [first]
    assert jobs.get(first).attempts == 1

    jobs.set_step([first], steps.DONE, NOW)
    assert jobs.get(first).finished_at == NOW
    # done is final: a late step change does not revive it
    jobs.set_step([first], steps.SENDING, NOW)
    assert jobs.get(first).step == steps.DONE
    # and a new job for the address may start
    assert jobs.create(platform="shop", erp_number=10001, shop_id="a" * 32, email="x@example.com", now=NOW)
    assert jobs.ever_had("shop", 10001) and not jobs.ever_had("shop", 10002)


def test_job_errors_are_redacted(store) -> None:
    from syncd.core.redaction import sensitive

    jobs = CredentialJobs(store)
    job_id = jobs.create(platform="shop", erp_number=1, shop_id="c" * 32, email="y@example.com", now=NOW)
    with sensitive("Secr3tPassw0rd"):
        jobs.fail(job_id, "server echoed Secr3tPassw0rd back", NOW)
    assert "Secr3tPassw0rd" not in (jobs.get(job_id).last_error or "")
    assert jobs.get(job_id).step == steps.FAILED


# ---------------------------------------------------------------------------------------- the plan
def _addr(n: int, email: str | None = "a{n}@example.com", **kw) -> ErpAddress:
    return ErpAddress(number=n, email=email.format(n=n) if email else email, last_name=f"N{n}", **kw)


def _link(a: ErpAddress, **kw) -> Link:
    values = dict(platform="shop", shop_id=f"{a.number:032d}", erp_number=a.number,
                  fingerprint=address_fingerprint(a), email=a.email)
    values.update(kw)
    return Link(**values)


def test_plan_decides_per_address() -> None:
    settings = AddressSettings(skip_blocked=True, deactivate_blocked=True)
    new = _addr(1)
    blocked_new = _addr(2, blocked=True)
    blocked_linked = _addr(3, blocked=True)
    unblocked = _addr(4)
    unchanged = _addr(5)
    changed = _addr(6)
    no_mail = _addr(7, email=None)
    bad_mail = _addr(8, email="not an address")
    dup_a = _addr(9, email="same@example.com")
    dup_b = _addr(10, email="Same@Example.com")
    problem = _addr(11, problems=("street: longer than 255 characters",))
    taken = _addr(12, email="owner@example.com")
    links = {
        3: _link(blocked_linked),
        4: _link(unblocked, shop_active=False, erp_blocked=True),
        5: _link(unchanged),
        6: _link(changed, fingerprint="old"),
    }
    plan = plan_batch(
        [new, blocked_new, blocked_linked, unblocked, unchanged, changed, no_mail, bad_mail, dup_a, dup_b,
         problem, taken],
        links, {"owner@example.com": 99}, settings,
    )
    assert [a.number for a in plan.push] == [1, 6, 9]
    assert [a.number for a, _ in plan.deactivate] == [3]
    assert [a.number for a, _ in plan.reactivate] == [4]
    assert [a.number for a, _ in plan.skip] == [2]
    assert [a.number for a in plan.unchanged] == [5]
    failed = {a.number: reason for a, reason, _ in plan.fail}
    assert failed[7] == "no e-mail address"
    assert "invalid e-mail" in failed[8]
    assert "also used by ERP address 9" in failed[10]
    assert "longer than 255" in failed[11]
    assert "also used by ERP address 99" in failed[12]


def test_plan_transfers_blocked_when_skip_blocked_is_off() -> None:
    settings = AddressSettings(skip_blocked=False, deactivate_blocked=False)
    plan = plan_batch([_addr(1, blocked=True)], {}, {}, settings)
    assert [a.number for a in plan.push] == [1] and not plan.skip


@pytest.mark.parametrize("email,ok", [
    ("max@example.com", True), ("müller@exämple.de", True), ("a@b", False), ("a b@example.com", False),
    ("x@example.com\r\nBcc: evil@example.com", False), ("", False), ("a@@example.com", False),
])
def test_email_problem(email: str, ok: bool) -> None:
    assert (email_problem(email) is None) is ok


def test_the_index_keeps_one_active_job_even_when_two_instances_race(store) -> None:
    """The select-then-insert in ``create`` can race between instances; the partial unique index
    is the real guard, and the losing transaction rolls back as a whole."""
    from sqlalchemy import insert
    from sqlalchemy.exc import IntegrityError

    from syncd.state.schema import credential_jobs

    jobs = CredentialJobs(store)
    jobs.create(platform="shop", erp_number=7, shop_id="d" * 32, email="r@example.com", now=NOW)
    with pytest.raises(IntegrityError), store.begin() as conn:
        conn.execute(insert(credential_jobs).values(
            platform="shop", erp_number=7, step="pending", created_at=NOW, updated_at=NOW))
    assert len(jobs.active("shop", [7])) == 1


def test_plan_frees_an_email_its_owner_gave_up_in_the_same_batch() -> None:
    settings = AddressSettings()
    moved = _addr(1, email="new@example.com")
    taker = _addr(2, email="old@example.com")
    plan = plan_batch([moved, taker], {1: _link(moved, email="old@example.com", fingerprint="x")},
                      {"old@example.com": 1}, settings)
    assert [a.number for a in plan.push] == [1, 2] and not plan.fail


def test_the_send_ledger_records_the_previous_mail_with_the_next_send(store) -> None:
    jobs = CredentialJobs(store)
    a, b, c = (jobs.create(platform="p", erp_number=n, shop_id="s", email="e@x.de", now=NOW)
               for n in (61001, 61002, 61003))
    jobs.fail(c, "refused for good", NOW)
    with jobs.ledger() as ledger:
        ledger.advance(sent=None, sending=a, now=NOW)
        assert (jobs.get(a).step, jobs.get(a).send_attempts) == (steps.SENDING, 1)
        ledger.advance(sent=a, sending=b, now=NOW + timedelta(seconds=1))
        ledger.advance(sent=b, sending=c, now=NOW + timedelta(seconds=2))  # c is final: untouched
    assert [(j.step, j.send_attempts) for j in map(jobs.get, (a, b, c))] == [
        (steps.SENT, 1), (steps.SENT, 1), (steps.FAILED, 0)]
    assert jobs.get(b).updated_at == NOW + timedelta(seconds=2)

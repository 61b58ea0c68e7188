"""The ERP -> shop flow end to end: a real ERP table (SQLite file; PostgreSQL when configured),
the shop sandbox of each platform kind over HTTP (``shop`` fixture: Shopware 6, WooCommerce), a
real SMTP server, the shipped layouts, a SQLite state store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from syncd.flows.failures import DIRECTION, MAIL_DIRECTION
from syncd.state.failures import Failures
from syncd.state.jobs import CredentialJobs
from syncd.state.links import Links
from tests.support.dbs import mariadb_url, pg_url, unique_name
from tests.support.flow_harness import PLATFORM, Harness, password_of
from tests.support.mailserver import smtp_server, smtp_server_factory, smtp_tls_files  # noqa: F401
from tests.support.shops import shop  # noqa: F401


def _person(n: int, **kw) -> dict:
    row = {"number": n, "email": f"kunde{n}@example.com", "salutation": "Herr", "first_name": "Jürgen",
           "last_name": f"Müller-{n}", "street": "Königsallee 1", "zip": "40212", "city": "Düsseldorf",
           "country": "DE"}
    row.update(kw)
    return row


# 50 addresses: what each is and what must happen to it.
GOOD = list(range(10001, 10031))  # 30 plain ones, with umlauts
CRLF = [10031, 10032]  # CR/LF in the names: created, mailed, no header injection
COMPANY = [10033]  # a company without a person's name
BLOCKED = [10034, 10035, 10036, 10037]
NO_MAIL = [10038, 10039, 10040]
BAD_MAIL = [10041, 10042, 10043]
DUP_FIRST, DUP_SECOND = [10044, 10046], [10045, 10047]
TOO_LONG = [10048, 10049, 10050]
CREATED = GOOD + CRLF + COMPANY + DUP_FIRST


def fifty() -> list[dict]:
    rows = [_person(n) for n in GOOD]
    rows += [_person(10031, first_name="Eve\r\nBcc: spy@example.org", last_name="Injection\r\nX-Evil: 1"),
             _person(10032, last_name="Zeilen\numbruch")]
    rows += [_person(10033, salutation="Firma", first_name=None, last_name=None,
                     company="Bäckerei Größe & Söhne GmbH")]
    rows += [_person(n, blocked=True) for n in BLOCKED]
    rows += [_person(10038, email=None), _person(10039, email=""), _person(10040, email="   ")]
    rows += [_person(10041, email="kein-at-zeichen.example.com"), _person(10042, email="zwei@@example.com"),
             _person(10043, email="leer zeichen@example.com")]
    rows += [_person(10044, email="familie@example.com"), _person(10045, email="Familie@example.com"),
             _person(10046, email="buero@example.com"), _person(10047, email="buero@example.com")]
    # fit the ERP column (60) but not the shop's firstName (50 since 6.6.4)
    rows += [_person(10048, first_name="Ä" * 51), _person(10049, first_name="J" * 55),
             _person(10050, first_name="Maximilian-Ferdinand Alexander von und zu Großenhaus")]
    assert len(rows) == 50
    return rows


def email_of(n: int) -> str:
    return {10044: "familie@example.com", 10046: "buero@example.com"}.get(n, f"kunde{n}@example.com")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.realdb),
                        pytest.param("mariadb", marks=pytest.mark.realdb)])
def harness(request, tmp_path: Path, shop, smtp_server) -> Iterator[Harness]:  # noqa: F811
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'erp.db'}"
    elif request.param == "postgresql":
        url = pg_url()
    else:  # MariaDB over ODBC: the reference path of a real büro+-style installation
        url = mariadb_url()
    h = Harness(tmp_path, url, unique_name("erp_flow"), shop, smtp_server)
    try:
        yield h
    finally:
        h.close()
        h.drop()


def assert_no_secret_leak(h: Harness, passwords: list[str], *texts: str) -> None:
    state_bytes = b"".join(p.read_bytes() for p in h.tmp.glob("state.db*"))
    for pw in passwords:
        assert pw.encode() not in state_bytes, "a password reached the state store"
        for text in texts:
            assert pw not in text, "a password reached the logs"


def test_fifty_addresses_end_to_end(harness: Harness, shop, smtp_server, captured_logs) -> None:  # noqa: F811
    h = harness
    h.insert(fifty())
    report = h.run()

    # exactly the right accounts, one each, without the shop's own registration mail; WooCommerce
    # has no name length cap, so the long names are created there
    created = CREATED + ([] if shop.caps_names else TOO_LONG)
    by_number = h.accounts_by_number()
    assert sorted(int(n) for n in by_number) == sorted(created)
    assert all(len(v) == 1 for v in by_number.values())
    assert shop.own_mails() == []

    # exactly one mail per created account, and its password logs in
    assert sum(h.mail_counts().values()) == len(created)
    passwords = []
    for n in created:
        mails = h.mails_to(email_of(n))
        assert len(mails) == 1, n
        pw = password_of(mails[0])
        assert len(pw) == 12
        assert shop.login(email_of(n), pw), f"mailed password of {n} does not log in"
        passwords.append(pw)
    assert len(set(passwords)) == len(passwords)
    for m in h.mails_to(email_of(10031)):  # CR/LF in the name: one recipient, no injected header
        assert m.rcpt_tos == [email_of(10031)]
        assert "X-Evil" not in m and "Bcc" not in m
    company_mail = h.mails_to(email_of(10033))[0].get_body(("plain",)).get_content()
    assert "Bäckerei Größe & Söhne GmbH" in company_mail

    # every field empty again; every job done
    assert h.password_fields() == {}
    jobs = CredentialJobs(h.state)
    assert jobs.counts(PLATFORM) == {"done": len(created)}

    # failures listed with reasons; skipped ones are not failures
    failures = {int(f.record): f for f in Failures(h.state).list(PLATFORM)}
    expected_failed = NO_MAIL + BAD_MAIL + DUP_SECOND + (TOO_LONG if shop.caps_names else [])
    assert sorted(failures) == sorted(expected_failed)
    assert all(f.direction == DIRECTION for f in failures.values())
    for n in NO_MAIL:
        assert failures[n].reason == "no e-mail address"
    for n in BAD_MAIL:
        assert "invalid e-mail address" in failures[n].reason
    assert "10044" in failures[10045].reason and "10046" in failures[10047].reason
    for n in TOO_LONG if shop.caps_names else []:
        assert "50" in failures[n].reason and failures[n].step == "push", failures[n]
    assert report.counts["created"] == len(created)
    assert report.counts["mailed"] == len(created)
    assert report.counts["skipped"] == len(BLOCKED)
    assert report.counts["failed"] == len(expected_failed)
    assert_no_secret_leak(h, passwords, captured_logs.text, repr(report))

    # a rerun creates and mails nothing
    again = h.run()
    assert not again.counts["created"] and not again.counts["mailed"]
    assert sum(h.mail_counts().values()) == len(created)
    assert len(shop.accounts()) == len(created)

    # unblocking creates the account and mails it once
    h.update(BLOCKED[0], blocked=False)
    unblocked = h.run()
    assert unblocked.counts["created"] == 1 and unblocked.counts["mailed"] == 1
    mails = h.mails_to(email_of(BLOCKED[0]))
    assert len(mails) == 1
    assert shop.login(email_of(BLOCKED[0]), password_of(mails[0]))

    # a changed address is updated without a mail
    h.update(GOOD[0], city="München")
    changed = h.run()
    assert changed.counts["updated"] == 1 and not changed.counts["mailed"]
    assert h.accounts_by_number()[str(GOOD[0])][0].city == "München"
    assert len(h.mails_to(email_of(GOOD[0]))) == 1

    if not shop.deactivates:  # WooCommerce: no active flag; deactivate_blocked is off (check refuses it)
        h.update(GOOD[1], blocked=True)
        blocked = h.run()
        assert not blocked.counts["deactivated"] and blocked.counts["skipped"] == 1
        assert shop.login(email_of(GOOD[1]), password_of(h.mails_to(email_of(GOOD[1]))[0]))
        h.update(GOOD[1], blocked=False)
        assert not h.run().counts["mailed"]
        assert len(h.mails_to(email_of(GOOD[1]))) == 1
        assert h.password_fields() == {}
        assert_no_secret_leak(h, passwords, captured_logs.text)
        return
    # blocking a linked address deactivates it; unblocking reactivates it, without a second mail
    h.update(GOOD[1], blocked=True)
    assert h.run().counts["deactivated"] == 1
    assert h.accounts_by_number()[str(GOOD[1])][0].active is False
    assert not shop.login(email_of(GOOD[1]), password_of(h.mails_to(email_of(GOOD[1]))[0]))
    h.update(GOOD[1], blocked=False)
    assert h.run().counts["reactivated"] == 1
    assert h.accounts_by_number()[str(GOOD[1])][0].active is True
    assert len(h.mails_to(email_of(GOOD[1]))) == 1
    assert h.password_fields() == {}
    assert_no_secret_leak(h, passwords, captured_logs.text)


@pytest.mark.parametrize("harness", ["sqlite"], indirect=True)
def test_dry_run_writes_nothing_anywhere(harness: Harness, shop, smtp_server) -> None:  # noqa: F811
    h = harness
    h.insert(fifty())
    before_rows = h.password_fields()
    report = h.run(dry_run=True)
    assert report.dry_run
    # the dry run maps like the push, so it knows the shop's field limits (over-long names)
    capped = TOO_LONG if shop.caps_names else []
    assert report.counts["would-create"] == len(CREATED) + len(TOO_LONG) - len(capped)
    assert report.counts["would-mail"] == report.counts["would-create"]
    assert report.counts["would-skip"] == len(BLOCKED)
    assert report.counts["would-fail"] == len(NO_MAIL + BAD_MAIL + DUP_SECOND + capped)
    assert shop.accounts() == [] and smtp_server.messages == []
    assert h.password_fields() == before_rows == {}
    # the shop was only read (searches, token), never written
    assert shop.writes() == []
    assert Links(h.state).count(PLATFORM) == 0
    assert CredentialJobs(h.state).counts(PLATFORM) == {}
    assert Failures(h.state).list(PLATFORM) == []
    from syncd.state.cursors import Cursors

    assert Cursors(h.state).get(PLATFORM, "erp-to-shop") is None
    # and the real run afterwards does what the dry run announced
    real = h.run()
    assert real.counts["created"] == len(CREATED + ([] if shop.caps_names else TOO_LONG))


@pytest.mark.parametrize("harness", ["sqlite"], indirect=True)
def test_smtp_451_then_250(harness: Harness, shop, smtp_server) -> None:  # noqa: F811
    h = harness
    h.insert([_person(n) for n in GOOD[:5]])
    smtp_server.fail_next(1, 451)
    report = h.run()
    assert report.counts["mailed"] == 5
    for n in GOOD[:5]:
        mails = h.mails_to(email_of(n))
        assert len(mails) == 1
        assert shop.login(email_of(n), password_of(mails[0]))
    assert h.password_fields() == {}


@pytest.mark.parametrize("harness", ["sqlite"], indirect=True)
def test_a_run_of_several_batches_mails_over_one_connection(harness: Harness, shop, smtp_server  # noqa: F811
                                                            ) -> None:
    h = harness
    h.mail_batch_size = 2
    h.insert([_person(n) for n in GOOD[:7]])
    before = smtp_server.connections
    report = h.run()
    assert report.counts["mailed"] == 7
    assert smtp_server.connections - before == 1
    for n in GOOD[:7]:
        assert shop.login(email_of(n), password_of(h.mails_to(email_of(n))[0]))
    assert h.password_fields() == {}


@pytest.mark.parametrize("harness", ["sqlite"], indirect=True)
def test_a_shop_error_echoing_passwords_in_a_worker_call_leaks_nothing(
    harness: Harness, shop, smtp_server, captured_logs, monkeypatch  # noqa: F811
) -> None:
    """The shop's password calls run in worker threads while another batch is mailed. One of
    them fails with an error that quotes the request (as a proxy or a buggy shop may): the
    batch is deferred, the others are mailed, and no password reaches the logs (worker threads
    included), the report, the jobs' errors or the state DB."""
    from syncd.core.errors import TransientError
    from syncd.flows.erp_to_shop import run_erp_to_shop

    h = harness
    h.mail_batch_size = 2
    h.insert([_person(n) for n in GOOD[:7]])
    ShopClass = shop.shop_class()  # noqa: N806
    real = ShopClass.set_passwords
    echoed: list[str] = []
    calls = 0

    def echoing(self, passwords):  # the second batch's call fails, quoting its body
        nonlocal calls
        calls += 1
        if calls == 2:
            echoed.extend(passwords.values())
            raise TransientError(f"502 from upstream for body {{'password': {list(passwords.values())}}}")
        return real(self, passwords)

    monkeypatch.setattr(ShopClass, "set_passwords", echoing)
    report = h.run()
    assert len(echoed) == 2
    assert report.counts["mailed"] == 5 and report.counts["deferred"] == 2
    assert h.password_fields() == {}
    deferred = [j for j in CredentialJobs(h.state).active(PLATFORM) if j.step == "pending"]
    assert len(deferred) == 2 and all("502 from upstream" in (j.last_error or "") for j in deferred)
    assert "credentials deferred" in captured_logs
    # the deferred ones are mailed, with fresh passwords, once their backoff has passed
    monkeypatch.setattr(ShopClass, "set_passwords", real)
    ctx = h.context()
    later = max(j.next_attempt_at for j in deferred)
    ctx.clock = lambda: later
    assert run_erp_to_shop(ctx).counts["mailed"] == 2

    mailed = []
    for n in GOOD[:7]:
        mails = h.mails_to(email_of(n))
        assert len(mails) == 1
        mailed.append(password_of(mails[0]))
        assert shop.login(email_of(n), mailed[-1])
    assert not set(echoed) & set(mailed)  # the echoed passwords were never mailed
    details = "\n".join(item.detail for item in report.items)
    assert_no_secret_leak(h, echoed + mailed, captured_logs.text, details)


@pytest.mark.parametrize("harness", ["sqlite"], indirect=True)
def test_smtp_outage_defers_with_backoff_then_completes(harness: Harness, shop, smtp_server) -> None:  # noqa: F811
    h = harness
    h.insert([_person(n) for n in GOOD[:3]])
    smtp_server.fail_next(100, 451)
    report = h.run()
    assert report.counts["deferred"] == 3 and not report.counts["mailed"]
    assert h.password_fields() == {}  # the password is not kept while nothing is in flight
    jobs = CredentialJobs(h.state).active(PLATFORM)
    assert {j.step for j in jobs} == {"pending"} and all(j.next_attempt_at for j in jobs)
    assert all("451" in (j.last_error or "") for j in jobs)
    smtp_server.reset_faults()
    # not due yet: nothing happens
    assert not h.run().counts["mailed"]
    later = max(j.next_attempt_at for j in jobs)
    ctx = h.context()
    ctx.clock = lambda: later
    from syncd.flows.erp_to_shop import run_erp_to_shop

    assert run_erp_to_shop(ctx).counts["mailed"] == 3
    for n in GOOD[:3]:
        mails = h.mails_to(email_of(n))
        assert len(mails) == 1
        assert shop.login(email_of(n), password_of(mails[0]))
    assert h.password_fields() == {}


@pytest.mark.parametrize("harness", ["sqlite"], indirect=True)
def test_smtp_550_for_one_recipient(harness: Harness, shop, smtp_server) -> None:  # noqa: F811
    h = harness
    h.insert([_person(n) for n in GOOD[:4]])
    smtp_server.reject_recipient(email_of(GOOD[1]), 550)
    report = h.run()
    assert report.counts["mailed"] == 3 and report.counts["failed"] == 1
    assert h.mails_to(email_of(GOOD[1])) == []
    for n in (GOOD[0], GOOD[2], GOOD[3]):
        assert shop.login(email_of(n), password_of(h.mails_to(email_of(n))[0]))
    assert h.password_fields() == {}
    failed = CredentialJobs(h.state).failed(PLATFORM)
    assert [j.erp_number for j in failed] == [GOOD[1]] and "550" in failed[0].last_error
    failures = Failures(h.state).list(PLATFORM)
    expected = [(str(GOOD[1]), MAIL_DIRECTION, "credentials")]
    assert [(f.record, f.direction, f.step) for f in failures] == expected
    # a rerun does not retry a permanent failure
    assert not h.run().counts["mailed"]
    assert h.mails_to(email_of(GOOD[1])) == []


@pytest.mark.parametrize("harness", ["sqlite"], indirect=True)
def test_shop_5xx_and_429_bursts(harness: Harness, shop, smtp_server) -> None:  # noqa: F811
    from syncd.core import retry

    h = harness
    h.insert([_person(n) for n in GOOD[:6]])
    # a burst longer than the test suite's default 4 attempts, still inside the budget
    previous = retry.set_policy(retry.RetryPolicy(attempts=10, max_total=20, initial=0.001, maximum=0.01))
    try:
        shop.sandbox.faults.fail_next(3, 503)
        shop.sandbox.faults.rate_limit = 3
        shop.sandbox.faults.retry_after = 0
        report = h.run()
    finally:
        retry.set_policy(previous)
    assert len([r for r in shop.sandbox.request_log if r.status in (429, 503)]) == 6
    assert report.counts["created"] == 6 and report.counts["mailed"] == 6
    assert sorted(int(n) for n in h.accounts_by_number()) == GOOD[:6]
    for n in GOOD[:6]:
        mails = h.mails_to(email_of(n))
        assert len(mails) == 1
        assert shop.login(email_of(n), password_of(mails[0]))
    assert h.password_fields() == {}


@pytest.mark.parametrize("harness", ["sqlite"], indirect=True)
def test_shop_outage_leaves_work_for_the_next_cycle(harness: Harness, shop, smtp_server) -> None:  # noqa: F811
    from syncd.core.errors import TransientError

    h = harness
    h.insert([_person(n) for n in GOOD[:3]])
    shop.sandbox.faults.error_rate_5xx = 1.0
    with pytest.raises(TransientError):
        h.run()
    shop.sandbox.faults.reset()
    assert shop.accounts() == [] and smtp_server.messages == []
    report = h.run()  # the cursor did not move: the same addresses come again
    assert report.counts["created"] == 3 and report.counts["mailed"] == 3


@pytest.mark.parametrize("harness", ["sqlite"], indirect=True)
def test_progress_is_reported_per_batch(harness: Harness) -> None:
    from syncd.flows.erp_to_shop import run_erp_to_shop

    h = harness
    h.erp_settings = h.erp_settings.model_copy(update={"batch_size": 4})
    h.insert([_person(n) for n in GOOD[:10]])
    seen: list[tuple[int, int | None]] = []
    ctx = h.context()
    ctx.progress = lambda done, total: seen.append((done, total))
    report = run_erp_to_shop(ctx)
    assert report.counts["mailed"] == 10
    assert [d for d, _ in seen] == [4, 8, 10]


@pytest.mark.parametrize("harness", ["sqlite"], indirect=True)
def test_unknown_delivery_is_resent_once_with_the_same_password(harness, shop, smtp_server,  # noqa: F811
                                                                  captured_logs):
    h = harness
    h.insert([_person(n) for n in GOOD[:3]])
    smtp_server.drop_next(1, stage="data")  # the first mail's connection breaks after its content
    first = h.run()
    assert first.counts["mailed"] == 2
    kept = h.password_fields()
    assert list(kept) == [GOOD[0]]  # in flight: the field keeps the password for the resend
    [job] = CredentialJobs(h.state).active(PLATFORM)
    assert job.step == "sending" and job.send_attempts == 1

    h.run()  # the next start settles it first: resent once, with the same password
    mails = h.mails_to(email_of(GOOD[0]))
    assert len(mails) == 1 and password_of(mails[0]) == kept[GOOD[0]]
    assert shop.login(email_of(GOOD[0]), kept[GOOD[0]])
    assert h.password_fields() == {}
    # the deferred report, the warning and the job's error text carry no password (I3)
    report_text = " ".join(f"{i.record} {i.action} {i.detail}" for i in first.items)
    assert_no_secret_leak(h, [kept[GOOD[0]], *(password_of(m) for m in smtp_server.messages)],
                          captured_logs.text, report_text)


@pytest.mark.parametrize("harness", ["sqlite"], indirect=True)
def test_a_second_unknown_delivery_ends_the_job_without_a_third_send(harness, shop, smtp_server):  # noqa: F811
    h = harness
    h.insert([_person(GOOD[0])])
    smtp_server.drop_next(2, stage="data")
    h.run()
    assert len(h.password_fields()) == 1
    report = h.run()  # resent once at start-up, unknown again: no third send, the job fails
    assert report.counts["failed"] == 1 and not report.counts["mailed"]
    assert h.password_fields() == {}
    [job] = CredentialJobs(h.state).failed(PLATFORM)
    assert "delivery unknown" in (job.last_error or "")
    h.run()
    assert h.mails_to(email_of(GOOD[0])) == []


@pytest.mark.parametrize("harness", ["sqlite"], indirect=True)
def test_a_linked_account_deleted_in_the_shop_is_replaced_and_mailed(harness, shop, smtp_server):  # noqa: F811
    h = harness
    own = shop.register(email_of(GOOD[0]), "Selbst-Registriert-1")
    h.insert([_person(GOOD[0]), _person(GOOD[1])])
    first = h.run()
    assert first.counts["linked"] == 1 and first.counts["created"] == 1
    assert h.mails_to(email_of(GOOD[0])) == []  # the customer's own account: no mail

    shop.delete(own)
    h.update(GOOD[0], city="Köln")
    second = h.run()  # must not fail the cycle on the old link
    assert second.counts["created"] == 1 and second.counts["mailed"] == 1
    link = Links(h.state).get_by_erp(PLATFORM, GOOD[0])
    assert link is not None and link.shop_id != own and link.kind == "erp"
    assert Links(h.state).get_by_shop(PLATFORM, own) is None
    [mail] = h.mails_to(email_of(GOOD[0]))
    assert shop.login(email_of(GOOD[0]), password_of(mail))
    assert h.password_fields() == {}

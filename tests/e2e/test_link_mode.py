"""``credential_mode = "link"`` end to end: an ERP table, the Shopware sandbox over HTTP, a real
SMTP server (aiosmtpd), the shipped ``set_password_link`` layouts, SQLite and PostgreSQL state.

The customer receives one mail with a link to the shop's recover page, sets a password through
the Store API confirm route with the hash from that mail and logs in with it. No password is
generated, the ERP field is never written, and the link appears in no log, no state row and no
CLI output.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from syncd.flows import accounts
from syncd.state.jobs import CredentialJobs
from tests.support.dbs import pg_schema_url, unique_name
from tests.support.flow_harness import PLATFORM, Harness, link_of
from tests.support.mailserver import smtp_server, smtp_server_factory, smtp_tls_files  # noqa: F401
from tests.support.shop_fixtures import store_login
from tests.support.shops import shop  # noqa: F401 - the fixture
from tests.support.wired_env import shopware_only

# WooCommerce: connectors/woocommerce/shop.py NO_LINK_MODE, the reason ``check`` gives.
NO_LINK = ('credential_mode = "link" is refused by check for WooCommerce: no REST route mails a '
           "set-password link")
pytestmark = shopware_only(NO_LINK)


def _person(n: int, **kw) -> dict:
    row = {"number": n, "email": f"kunde{n}@example.com", "salutation": "Frau", "first_name": "Ärzte",
           "last_name": f"Öztürk-{n}", "street": "Weg 1", "zip": "01067", "city": "Dresden", "country": "DE"}
    row.update(kw)
    return row


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.realdb)])
def harness(request, tmp_path: Path, shop, smtp_server) -> Iterator[Harness]:  # noqa: F811
    def build(state_url: str = "") -> Harness:
        h = Harness(tmp_path, f"sqlite:///{tmp_path / 'erp.db'}", unique_name("adr"), shop, smtp_server,
                    addresses={"credential_mode": "link"}, state_url=state_url, mail_batch_size=2)
        return h

    if request.param == "sqlite":
        h = build()
        try:
            yield h
        finally:
            h.close()
        return
    with pg_schema_url("syncd_link") as url:
        h = build(url)
        try:
            yield h
        finally:
            h.close()


def confirm(sandbox, recovery_hash: str, password: str) -> requests.Response:
    """What the sandbox's recover page does with the hash of the link: the Store API confirm route."""
    return requests.post(
        f"{sandbox.url}/store-api/account/recovery-password-confirm",
        json={"hash": recovery_hash, "newPassword": password, "newPasswordConfirm": password},
        headers={"sw-access-key": sandbox.access_key, "Accept": "application/json"},
        timeout=10,
    )


def state_text(h: Harness) -> str:
    """Every value of every state table, as text (SQLite and PostgreSQL alike)."""
    engine = h.state.engine
    out = []
    with engine.connect() as conn:
        for table in sa.inspect(engine).get_table_names():
            for row in conn.execute(sa.text(f'SELECT * FROM "{table}"')):
                out.append(" ".join(str(v) for v in row))
    return "\n".join(out)


NUMBERS = list(range(10001, 10006))  # five addresses, mail batches of two: three batches


def test_link_mail_sets_a_password_that_logs_in(harness: Harness, captured_logs) -> None:
    harness.insert([_person(n) for n in NUMBERS])
    report = harness.run()
    assert sorted(int(i.record) for i in report.items if i.action == "mailed") == NUMBERS
    assert harness.password_fields() == {}  # never written
    hashes = []
    for n in NUMBERS:
        [mail] = harness.mails_to(f"kunde{n}@example.com")
        url, recovery_hash = link_of(mail)
        assert url.startswith(harness.sandbox.storefront_url + "/account/recover/password?hash=")
        text = mail.get_body(("plain",)).get_content()
        assert "gültig bis" in text and "Passwort:" not in text
        hashes.append(recovery_hash)
        [customer] = harness.customers_by_number()[str(n)]
        assert not harness.sandbox.has_password(customer["id"])  # no password was generated
    assert set(harness.sandbox.recovery_hashes) == set(hashes)
    assert CredentialJobs(harness.state).counts(PLATFORM) == {"done": 5}
    # the customer sets a password through the mailed link and logs in with it
    assert confirm(harness.sandbox, hashes[0], "mein-eigenes-passwort").status_code == 200
    assert store_login(harness.sandbox, "kunde10001@example.com", "mein-eigenes-passwort")
    again = confirm(harness.sandbox, hashes[0], "noch-ein-passwort")  # one-time
    assert again.status_code == 410
    # the link is a secret: in no log line and no state row
    logged, stored = captured_logs.text, state_text(harness)
    for h in hashes:
        assert h not in logged and h not in stored
    # a second cycle mails nobody again
    harness.run()
    assert len(harness.smtp.messages) == 5


def test_expired_link_is_sent_anew_with_send_credentials(harness: Harness, captured_logs, capsys) -> None:
    harness.insert([_person(10001)])
    harness.run()
    [first] = harness.mails_to("kunde10001@example.com")
    _, old = link_of(first)
    harness.sandbox.age_recovery(old, 2 * 3600 + 1)
    assert confirm(harness.sandbox, old, "zu-spaet-gesetzt").status_code == 410
    [outcome] = accounts.send_credentials(harness.context(), [10001])
    assert outcome.action == "mailed", outcome
    second = harness.mails_to("kunde10001@example.com")[-1]
    _, new = link_of(second)
    assert new != old and harness.sandbox.recovery_hashes == {new: harness.customers()[0]["id"]}
    assert confirm(harness.sandbox, new, "jetzt-rechtzeitig").status_code == 200
    assert store_login(harness.sandbox, "kunde10001@example.com", "jetzt-rechtzeitig")
    jobs = CredentialJobs(harness.state)
    assert jobs.counts(PLATFORM) == {"done": 2}
    printed = capsys.readouterr()
    for h in (old, new):
        assert h not in captured_logs.text and h not in state_text(harness)
        assert h not in printed.out + printed.err


def test_a_link_the_shop_refuses_fails_that_job_only(harness: Harness) -> None:
    """One address whose shop account vanished: its link cannot be written, the others are mailed."""
    harness.insert([_person(n) for n in NUMBERS])
    harness.addresses = {"credential_mode": "link", "send_credentials": False}
    harness.run()  # accounts only
    harness.addresses = {"credential_mode": "link"}
    gone = harness.customers_by_number()["10003"][0]["id"]
    harness.sandbox.lose_customers([gone])
    outcomes = accounts.send_credentials(harness.context(), NUMBERS)
    by_number = {o.address: o for o in outcomes}
    assert by_number[10003].action == "failed" and "link" in by_number[10003].detail
    assert sorted(n for n, o in by_number.items() if o.action == "mailed") == [10001, 10002, 10004, 10005]


def test_account_operations_on_this_state_store(harness: Harness) -> None:
    """Export filters, own password after the link was used, create and delete, with the state
    store of the parameter (SQLite or PostgreSQL)."""
    from syncd.state.history import History

    harness.insert([_person(n) for n in NUMBERS])
    ctx = harness.context()
    outcome = accounts.create(ctx, 10001)
    assert outcome.action == "created" and "mailed to kunde10001@example.com" in outcome.detail
    assert [c["customerNumber"] for c in harness.customers()] == ["10001"]
    harness.run()  # the others through a cycle
    assert len(harness.smtp.messages) == 5

    def rows(**filters) -> dict[int, str]:
        found = accounts.list_accounts(harness.state, [PLATFORM], shops={PLATFORM: ctx.shop}, **filters)
        return {r.address: r.password_status for r in found}

    assert rows() == dict.fromkeys(NUMBERS, "initial")
    _, link_hash = link_of(harness.mails_to("kunde10002@example.com")[0])
    assert confirm(harness.sandbox, link_hash, "selbst-gewaehlt").status_code == 200
    assert store_login(harness.sandbox, "kunde10002@example.com", "selbst-gewaehlt")
    assert rows(changed_by_customer=True) == {10002: "own password"}
    assert accounts.deactivate(ctx, 10003).action == "deactivated"
    assert 10003 not in rows() and rows(inactive=True)[10003] == "initial"
    assert sorted(rows(credentials_sent=True)) == [10001, 10002, 10004, 10005]
    assert rows(credentials_sent=False) == {}
    deleted = accounts.delete(ctx, 10004)
    assert deleted.action == "deleted"
    assert "10004" not in harness.customers_by_number() and 10004 not in rows(inactive=True)
    events = [e.event for e in History(harness.state, clock=lambda: None).of_address(10004)]
    assert events[-1] == "deleted"
    # created by the push, its set-password link mailed (syncd history)
    events = [e.event for e in History(harness.state, clock=lambda: None).of_address(10001)]
    assert events == ["created", "mail_sent"]


def test_link_mails_through_smtp_and_shop_faults(harness: Harness, captured_logs) -> None:
    """SMTP 451 is retried, 550 fails only its address (with the server's reason); shop 503/429
    and a 502 after the write are retried; every mailed link works, none is logged or stored."""
    harness.insert([_person(n) for n in NUMBERS])
    harness.smtp.reject_recipient("kunde10004@example.com", 550, "mailbox unavailable")
    harness.smtp.fail_next(1, 451)
    harness.sandbox.faults.rate_limit = 1
    harness.sandbox.faults.fail_next(1, 503)
    report = harness.run()
    assert ("10004", "failed") in {(str(i.record), i.action) for i in report.items}
    harness.sandbox.faults.fail_next(1, 502, after_write=True)
    with harness.state.engine.begin() as conn:  # the deferred mail is due again at once
        conn.execute(sa.text("UPDATE credential_jobs SET next_attempt_at = NULL WHERE step = 'pending'"))
    harness.run()
    for n in NUMBERS:
        mails = harness.mails_to(f"kunde{n}@example.com")
        if n == 10004:
            assert mails == []
            continue
        assert len(mails) == 1, n
        _, link_hash = link_of(mails[0])
        assert confirm(harness.sandbox, link_hash, f"eigenes-{n}").status_code == 200
        assert store_login(harness.sandbox, f"kunde{n}@example.com", f"eigenes-{n}")
    counts = CredentialJobs(harness.state).counts(PLATFORM)
    assert counts == {"done": 4, "failed": 1}
    assert "mailbox unavailable" in str(CredentialJobs(harness.state).failed(PLATFORM)[0].last_error)
    for h in harness.sandbox.recovery_hashes:
        assert h not in captured_logs.text and h not in state_text(harness)

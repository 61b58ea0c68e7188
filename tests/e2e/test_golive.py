"""Issue 18, go-live without a mail storm: ``send_credentials_since`` holds the mails of existing
customers, ``[mail] max_per_minute`` / ``max_per_hour`` and a canary keep the rest in order, and
``syncd sync --dry-run`` / ``check`` say what the next cycle sends. Real ERP table (SQLite), the
sandbox over HTTP, a real SMTP server, SQLite and PostgreSQL state stores."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from syncd.flows import accounts, mailbudget
from syncd.shell.status import collect_status, render_status_table
from syncd.state.history import History
from syncd.state.jobs import CredentialJobs
from syncd.state.schema import mail_sends
from tests.support.flow_harness import PLATFORM, STATE_STORES, Harness, harness_on, password_of
from tests.support.mailserver import smtp_server, smtp_server_factory, smtp_tls_files  # noqa: F401
from tests.support.shops import shop  # noqa: F401 - the fixture
from tests.support.wired_env import shopware_only

OLD = datetime(2020, 3, 1, 8, 0)  # naive, like the ERP's stamps


def _person(n: int, **kw) -> dict:
    row = {"number": n, "email": f"kunde{n}@example.com", "first_name": "Jörg", "last_name": f"Kühn-{n}",
           "street": "Weg 1", "zip": "01067", "city": "Dresden", "country": "DE"}
    row.update(kw)
    return row


@pytest.fixture(params=STATE_STORES)
def harness(request, tmp_path: Path, shop, smtp_server) -> Iterator[Harness]:  # noqa: F811
    """Each case for each platform kind (``shop``) and state store."""
    with harness_on(request.param, tmp_path, shop, smtp_server) as h:
        yield h


def _mailed(h: Harness) -> list[int]:
    """ERP numbers mailed, in the order the SMTP server received them."""
    out = []
    for m in h.smtp.messages:
        for r in m.rcpt_tos:
            out.append(int(r.split("@")[0].removeprefix("kunde")))
    return out


def _age_send_log(h: Harness, by: timedelta) -> None:
    """Let time pass for the rate window: every logged send moves ``by`` into the past."""
    with h.state.begin() as conn:
        for row_id, at in conn.execute(sa.select(mail_sends.c.id, mail_sends.c.at)).all():
            conn.execute(sa.update(mail_sends).where(mail_sends.c.id == row_id).values(at=at - by))


# ---------------------------------------------------------------------------------------- go-live
def test_old_rows_get_accounts_without_mail_until_asked(harness: Harness) -> None:
    harness.addresses = {"send_credentials_since": "2024-01-01"}
    old, new = [10001, 10002, 10003], [10004, 10005]
    harness.insert([_person(n, modified_at=OLD) for n in old] + [_person(n) for n in new])

    forecast = harness.run(dry_run=True)
    assert forecast.counts["would-mail"] == 2 and forecast.counts["would-hold"] == 3

    report = harness.run()
    assert sorted(int(n) for n in harness.accounts_by_number()) == old + new
    assert sorted(_mailed(harness)) == new  # no surprise for existing customers
    assert harness.password_fields() == {}
    assert accounts.never_mailed(harness.state, PLATFORM) == set(old)
    assert report.counts["mailed"] == 2

    status = collect_status(harness.state, harness.settings)["platforms"][0]
    assert status["held"] == 3 and status["pending"] == 0
    assert "held at go-live" in render_status_table({"platforms": [status]}, lang="en")
    rows = list(accounts.only_never_mailed(accounts.list_accounts(harness.state, [PLATFORM]), harness.state))
    assert sorted(r.address for r in rows) == old

    # Nothing changes by itself on the next cycles, and the dry run agrees.
    harness.run()
    assert sorted(_mailed(harness)) == new
    assert harness.run(dry_run=True).counts.get("would-mail", 0) == 0

    # The operator sends one of them: it gets a working password, the others stay listed.
    outcome = accounts.send_credentials(harness.context(), [10002])
    assert [o.action for o in outcome] == ["mailed"]
    mails = harness.mails_to("kunde10002@example.com")
    assert len(mails) == 1 and harness.kit.login("kunde10002@example.com", password_of(mails[0]))
    assert accounts.never_mailed(harness.state, PLATFORM) == {10001, 10003}
    events = [e.event for e in History(harness.state, harness.context().clock).of_address(10002)]
    assert events == ["created", "mail_held", "mail_released", "mail_sent"]


def test_first_run_holds_what_the_first_cycle_finds(harness: Harness) -> None:
    harness.addresses = {"send_credentials_since": "first-run"}
    harness.insert([_person(n) for n in (10001, 10002)])  # stamped "now": before the first run
    harness.run()
    assert _mailed(harness) == []
    assert accounts.never_mailed(harness.state, PLATFORM) == {10001, 10002}
    # A customer the ERP gets after go-live is mailed as usual; the cut-off survives restarts.
    harness.close()
    later = datetime.now(UTC).replace(tzinfo=None) + timedelta(seconds=2)
    harness.insert([_person(10003, modified_at=later)])
    harness.run()
    assert _mailed(harness) == [10003]
    assert accounts.never_mailed(harness.state, PLATFORM) == {10001, 10002}


def test_without_the_key_every_new_account_is_mailed(harness: Harness) -> None:
    harness.insert([_person(10001, modified_at=OLD)])
    harness.run()
    assert _mailed(harness) == [10001]
    assert accounts.never_mailed(harness.state, PLATFORM) == set()


# ---------------------------------------------------------------------------------------- rate limits
def _state_text(h: Harness) -> str:
    """Every row of every state table, as text: on SQLite and on PostgreSQL alike."""
    from syncd.state.schema import metadata

    with h.state.engine.connect() as conn:
        return "\n".join(repr(row) for t in metadata.sorted_tables for row in conn.execute(sa.select(t)))


def test_rate_limit_keeps_the_rest_queued_in_order(harness: Harness, captured_logs) -> None:
    harness.mail = {"max_per_minute": 2, "max_per_hour": 5}
    numbers = list(range(10001, 10008))
    harness.insert([_person(n) for n in numbers])
    forecast = harness.run(dry_run=True)
    assert forecast.counts["would-mail"] == 2 and forecast.counts["would-wait"] == 5

    harness.run()
    assert _mailed(harness) == [10001, 10002]
    jobs = CredentialJobs(harness.state)
    waiting = jobs.active(PLATFORM)
    assert [j.erp_number for j in waiting] == numbers[2:]
    assert all(j.step == "pending" and j.attempts == 0 and j.last_error is None for j in waiting)
    status = collect_status(harness.state, harness.settings)["platforms"][0]
    assert status["pending"] == 5 and status["failed"] == []
    assert harness.password_fields() == {}

    harness.run()  # the same minute: nothing more
    assert len(harness.smtp.messages) == 2
    _age_send_log(harness, timedelta(minutes=2))
    harness.run()
    assert _mailed(harness) == [10001, 10002, 10003, 10004]
    _age_send_log(harness, timedelta(minutes=2))
    harness.run()  # the hour allows one more of five
    assert _mailed(harness) == [10001, 10002, 10003, 10004, 10005]
    _age_send_log(harness, timedelta(hours=2))
    harness.run()
    _age_send_log(harness, timedelta(minutes=2))
    harness.run()
    assert _mailed(harness) == numbers  # each once, in ERP order
    assert set(jobs.counts(PLATFORM)) == {"done"}
    passwords = []
    for n in numbers:
        mail = harness.mails_to(f"kunde{n}@example.com")[0]
        passwords.append(password_of(mail))
        assert harness.kit.login(f"kunde{n}@example.com", passwords[-1])
    # I3 across waits in the queue: no mailed password in the logs or any state table
    state, logs = _state_text(harness), captured_logs.text
    assert "kunde10007@example.com" in state  # the dump does see the jobs
    assert not [pw for pw in passwords if pw in state or pw in logs]


@shopware_only("credential_mode = \"link\" is refused by check for WooCommerce (no recovery link)")
def test_link_mode_keeps_to_the_rate_limit_too(harness: Harness) -> None:
    # Link jobs run their own loop (syncd.flows.credentials.linkrun): the budget applies there as well.
    harness.addresses = {"credential_mode": "link"}
    harness.mail = {"max_per_minute": 2}
    numbers = list(range(10001, 10006))
    harness.insert([_person(n) for n in numbers])
    harness.run()
    assert _mailed(harness) == [10001, 10002]
    waiting = CredentialJobs(harness.state).active(PLATFORM)
    assert [j.erp_number for j in waiting] == numbers[2:] and all(j.step == "pending" for j in waiting)
    _age_send_log(harness, timedelta(minutes=2))
    harness.run()
    assert _mailed(harness) == [10001, 10002, 10003, 10004]


# ---------------------------------------------------------------------------------------- canary
def test_canary_sends_the_first_mails_and_holds_the_rest_until_release(harness: Harness) -> None:
    harness.addresses = {"canary": 2}
    numbers = list(range(10001, 10006))
    harness.insert([_person(n) for n in numbers])
    harness.run()
    assert _mailed(harness) == [10001, 10002]
    harness.run()
    assert len(harness.smtp.messages) == 2
    status = collect_status(harness.state, harness.settings)["platforms"][0]
    assert status["canary"] == {"size": 2, "sent": 2, "released": False, "holding": True}
    assert status["pending"] == 3
    assert "syncd release shop" in render_status_table({"platforms": [status]}, lang="en")

    mailbudget.release(harness.context())
    harness.run()
    assert _mailed(harness) == numbers
    assert collect_status(harness.state, harness.settings)["platforms"][0]["canary"]["holding"] is False

    # A new mail configuration (another layout) starts a new canary.
    harness.addresses = {"canary": 2, "email_layout": "credentials_en"}
    more = list(range(10006, 10010))
    harness.insert([_person(n) for n in more])
    harness.run()
    assert _mailed(harness) == numbers + more[:2]


def test_editing_a_layout_file_starts_a_new_canary_unrelated_config_does_not(harness: Harness,
                                                                             tmp_path: Path) -> None:
    """The operator's layout folder is part of the mail configuration by content: an edited
    subject re-arms a released canary; a config change that shapes no mail keeps it released."""
    import shutil

    from syncd.render.store import shipped_root

    layouts = tmp_path / "layouts"
    own = layouts / "credentials"
    own.mkdir(parents=True)
    for file in ("subject.txt.j2", "body.txt.j2"):
        shutil.copyfile(str(shipped_root() / "credentials" / file), own / file)
    harness.mail = {"layouts_dir": str(layouts)}
    harness.addresses = {"canary": 1}
    harness.insert([_person(n) for n in (10001, 10002)])
    harness.run()
    assert _mailed(harness) == [10001]
    mailbudget.release(harness.context())
    harness.run()
    assert _mailed(harness) == [10001, 10002]

    # Unrelated keys (rate limit, poll batch) and a touched but unchanged file: still released.
    (own / "body.txt.j2").touch()
    harness.mail = {"layouts_dir": str(layouts), "max_per_hour": 1000}
    harness.insert([_person(n) for n in (10003, 10004)])
    harness.run()
    assert _mailed(harness) == [10001, 10002, 10003, 10004]

    # The subject edited in place: a new configuration, one mail, the rest held.
    subject = own / "subject.txt.j2"
    subject.write_text("Ihr neuer Zugang / your new access\n", encoding="utf-8")
    harness.insert([_person(n) for n in (10005, 10006, 10007)])
    harness.run()
    assert _mailed(harness) == [10001, 10002, 10003, 10004, 10005]
    assert harness.smtp.messages[-1]["Subject"] == "Ihr neuer Zugang / your new access"
    status = collect_status(harness.state, harness.settings)["platforms"][0]
    assert status["canary"] == {"size": 1, "sent": 1, "released": False, "holding": True}

"""kill -9 during a contact person's credentials mail and during a main-contact event mail, with
the kill runner of ``test_kill`` on a büro+-shaped ERP with contact persons: after a restart
every contact with an e-mail has one account and its link mail, at most one extra carrying the
same link (I5), the link sets a password that logs in (I1); an event mail is neither lost nor
sent more than twice, and never again afterwards."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import requests

from syncd.state.jobs import CredentialJobs
from tests.support.contact_world import ContactWorld
from tests.support.dbs import pg_schema_url
from tests.support.flow_harness import PLATFORM, link_of
from tests.support.kill_scaffold import Runner
from tests.support.mailserver import smtp_server, smtp_server_factory, smtp_tls_files  # noqa: F401
from tests.support.shop_fixtures import sandbox, store_login  # noqa: F401

pytestmark = pytest.mark.slow

CONTACTS = {
    10001: [(1, "Herr", "Jörg", "Müller", "jm@mueller.example"),
            (2, "Frau", "Anja", "Schäfer", "as@mueller.example"), (3, "Herr", "Ölaf", "Ohne", None)],
    10002: [(1, "Frau", "Eva", "Groß", "eg@gross.example"), (4, "Herr", "Uwe", "Weiß", "uw@gross.example")],
}
EMAILS = ["jm@mueller.example", "as@mueller.example", "eg@gross.example", "uw@gross.example",
          "info-10001@firma.example", "info-10002@firma.example"]


@pytest.fixture(params=["sqlite", "postgresql"])
def world(request, tmp_path: Path, sandbox, smtp_server) -> Iterator[ContactWorld]:  # noqa: F811
    with ExitStack() as stack:
        state_url = stack.enter_context(pg_schema_url()) if request.param == "postgresql" else ""
        w = ContactWorld("sqlite", tmp_path, sandbox, smtp_server, state_url=state_url)
        for number, contacts in CONTACTS.items():
            w.company(number, f"Firma {number}", contacts, main=1)
        try:
            yield w
        finally:
            w.close()


@pytest.fixture
def runner(world: ContactWorld) -> Iterator[Runner]:
    r = Runner(world.config_file())
    try:
        yield r
    finally:
        r.close()


def _links_work(w: ContactWorld, runner: Runner) -> None:
    shop = w.customers()
    mailed: set[str] = set()
    assert sorted(shop) == ["10001", "10001-1", "10001-2", "10002", "10002-1", "10002-4"]
    for email in EMAILS:
        mails = w.mails_to(email)
        assert 1 <= len(mails) <= 2, f"{len(mails)} mails to {email}"
        hashes = {link_of(m)[1] for m in mails}
        assert len(hashes) == 1, f"two different links mailed to {email}"
        mailed |= hashes
        resp = requests.post(
            f"{w.kit.sandbox.url}/store-api/account/recovery-password-confirm",
            json={"hash": hashes.pop(), "newPassword": "eigenes-pw", "newPasswordConfirm": "eigenes-pw"},
            headers={"sw-access-key": w.kit.sandbox.access_key}, timeout=10)
        assert resp.status_code == 200, resp.text
        assert store_login(w.kit.sandbox, email, "eigenes-pw")
    assert set(CredentialJobs(w.state).counts(PLATFORM)) <= {"done"}
    # I3: no link in the state store (SQLite file) or anything the runners printed
    state_bytes = b"".join(p.read_bytes() for p in w.tmp.glob("state.db*"))
    printed = "\n".join(runner.output)
    assert not [h for h in mailed if h.encode() in state_bytes or h in printed]


@pytest.mark.parametrize("point", ["after_link", "before_smtp:3", "after_smtp:3", "after_sent:4"])
def test_kill_during_a_contacts_credentials_mail(world: ContactWorld, runner: Runner, point: str) -> None:
    assert runner.run(SYNCD_KILL_AT=point) == -signal.SIGKILL, runner.output[-1]
    assert runner.run() == 0, runner.output[-1]
    _links_work(world, runner)
    sent = len(world.smtp.messages)
    assert runner.run() == 0
    assert len(world.smtp.messages) == sent


@pytest.mark.parametrize("point", ["message_before_smtp", "message_after_smtp", "message_after_smtp:2"])
def test_kill_during_a_main_contact_event_mail(world: ContactWorld, runner: Runner, point: str) -> None:
    assert runner.run() == 0, runner.output[-1]
    world.smtp.clear()
    world.set_main(10001, 2)
    assert runner.run(SYNCD_KILL_AT=point) == -signal.SIGKILL, runner.output[-1]
    assert runner.run() == 0, runner.output[-1]
    new, former = world.mails_to("as@mueller.example"), world.mails_to("jm@mueller.example")
    assert 1 <= len(new) <= 2 and 1 <= len(former) <= 2 and len(new) + len(former) <= 3
    assert all("nicht mehr" in m["Subject"] for m in former)
    sent = len(world.smtp.messages)
    assert runner.run() == 0
    assert len(world.smtp.messages) == sent

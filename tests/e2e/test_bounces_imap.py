"""Issue 18, bounces over IMAP: the reader logs in to a loopback IMAP server (pymap, a child
process), reads unseen messages without marking them, moves or deletes a processed bounce, and
only flags other mail seen. SQLite state; the bounce is a Postfix DSN appended over IMAP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from syncd.config.bounces import BounceSettings
from syncd.config.model import MailSettings, Settings
from syncd.core.clock import utcnow
from syncd.core.errors import ConfigurationFault
from syncd.core.returnpath import envelope_sender, make_tag
from syncd.shell.bounces import check_bounces
from syncd.state.bounces import Bounces
from syncd.state.db import StateStore, open_state
from syncd.state.jobs import CredentialJobs
from tests.support import bounce_samples as samples
from tests.support.imapserver import PASSWORD, USER, ImapServer, imap_server

RP = "bounces@example.com"


@pytest.fixture
def imap(tmp_path: Path) -> Iterator[ImapServer]:
    with imap_server(tmp_path / "imap") as server:
        yield server


@pytest.fixture
def state(tmp_path: Path) -> Iterator[StateStore]:
    store = open_state(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        yield store
    finally:
        store.close()


def _settings(imap: ImapServer, **bounces) -> Settings:
    values = {"enabled": True, "return_path": RP, "source": "imap",
              "imap": {"host": imap.host, "port": imap.port, "security": "none", "username": USER,
                       "password": "env:SYNCD_TEST_IMAP_PASSWORD"}, **bounces}
    return Settings(erp={"url": "sqlite:///unused.db"}, mail=MailSettings(bounces=BounceSettings(**values)),
                    platforms=[{"name": "shop", "url": "https://shop.example/", "client_id": "x",
                                "client_secret": "env:X"}])


def _bounce_for(state: StateStore, number: int, email: str) -> bytes:
    jobs = CredentialJobs(state)
    job = jobs.create(platform="shop", erp_number=number, shop_id=None, email=email, now=utcnow())
    assert job is not None
    key = Bounces(state).tag_key(utcnow())
    assert key is not None
    return samples.postfix_dsn(envelope_sender(RP, make_tag(key, "c", job, email)), email,
                               message_id=f"<dsn-{number}@mx.example.net>")


@pytest.mark.parametrize("processed", ["move", "delete"])
def test_imap_bounce_is_recorded_and_moved_or_deleted(imap: ImapServer, state: StateStore, monkeypatch,
                                                      processed: str) -> None:
    monkeypatch.setenv("SYNCD_TEST_IMAP_PASSWORD", PASSWORD)
    imap.append(_bounce_for(state, 10001, "kunde@example.org"), samples.unrelated())
    settings = _settings(imap, processed=processed)
    report = check_bounces(settings, state, lambda name: None)
    assert report.counts["read"] == 2 and report.counts["hard"] == 1 and report.counts["not-ours"] == 1
    [b] = Bounces(state).open("shop")
    assert (b.erp_number, b.email, b.status) == (10001, "kunde@example.org", "5.1.1")
    [(_, flags)] = imap.folder("INBOX")  # the newsletter stays, seen
    assert b"\\Seen" in flags
    moved = imap.folder("syncd-processed")
    assert len(moved) == (1 if processed == "move" else 0)
    assert check_bounces(settings, state, lambda name: None).counts["read"] == 0  # nothing unseen


def test_imap_wrong_password_is_a_configuration_fault_naming_the_key(imap: ImapServer, state: StateStore,
                                                                      monkeypatch) -> None:
    monkeypatch.setenv("SYNCD_TEST_IMAP_PASSWORD", "wrong")
    with pytest.raises(ConfigurationFault) as err:
        check_bounces(_settings(imap), state, lambda name: None)
    assert err.value.key == "mail.bounces.imap.password" and "wrong" not in str(err.value)


def test_check_names_the_bounce_mailbox(imap: ImapServer, monkeypatch, tmp_path) -> None:
    from syncd.shell.bounces import check_mailbox

    monkeypatch.setenv("SYNCD_TEST_IMAP_PASSWORD", PASSWORD)
    [item] = check_mailbox(_settings(imap))
    assert item.ok and f"IMAP {USER}@127.0.0.1:{imap.port} folder INBOX readable" in item.detail
    monkeypatch.setenv("SYNCD_TEST_IMAP_PASSWORD", "wrong")
    [item] = check_mailbox(_settings(imap))
    assert not item.ok and "IMAP login as 'bounces'" in item.detail and "wrong" not in item.detail
    missing = _settings(imap).model_copy(update={"mail": MailSettings(bounces=BounceSettings(
        enabled=True, return_path=RP, maildir=str(tmp_path / "nope")))})
    [item] = check_mailbox(missing)
    assert not item.ok and "not a maildir folder" in item.detail

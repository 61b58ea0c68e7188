"""Issue 18, bounces over IMAP with TLS, as operators run it: implicit TLS (``security = "ssl"``,
port 993 style) and STARTTLS, against a certificate of a private test CA. With ``ca_file`` the
check reads and moves the bounce; without it the check fails with the key to fix, and nothing is
recorded or marked. pymap serves STARTTLS itself; implicit TLS goes through the fixture's TLS
terminator in front of pymap (pymap has no implicit TLS). SQLite state."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from syncd.config.bounces import BounceSettings
from syncd.config.model import MailSettings, Settings
from syncd.core.clock import utcnow
from syncd.core.errors import ConfigurationFault
from syncd.core.returnpath import envelope_sender, make_tag
from syncd.shell.bounces import check_bounces, check_mailbox
from syncd.state.bounces import Bounces
from syncd.state.db import StateStore, open_state
from syncd.state.jobs import CredentialJobs
from tests.support import bounce_samples as samples
from tests.support.imapserver import PASSWORD, USER, ImapServer, imap_server
from tests.support.mailserver import TlsFiles, smtp_tls_files  # noqa: F401 - the fixture

RP = "bounces@example.com"


@pytest.fixture(params=["ssl", "starttls"])
def imap(request, tmp_path: Path, smtp_tls_files: TlsFiles) -> Iterator[ImapServer]:  # noqa: F811
    with imap_server(tmp_path / "imap", request.param, smtp_tls_files) as server:
        yield server


@pytest.fixture
def state(tmp_path: Path, monkeypatch) -> Iterator[StateStore]:
    monkeypatch.setenv("SYNCD_TEST_IMAP_PASSWORD", PASSWORD)
    store = open_state(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        yield store
    finally:
        store.close()


def _settings(imap: ImapServer, security: str | None = None, **tls) -> Settings:
    values = {"enabled": True, "return_path": RP, "source": "imap",
              "imap": {"host": imap.host, "port": imap.port, "security": security or imap.security,
                       "username": USER, "password": "env:SYNCD_TEST_IMAP_PASSWORD", "timeout": "10s", **tls}}
    return Settings(erp={"url": "sqlite:///unused.db"}, mail=MailSettings(bounces=BounceSettings(**values)),
                    platforms=[{"name": "shop", "url": "https://shop.example/", "client_id": "x",
                                "client_secret": "env:X"}])


def _bounce_for(state: StateStore, number: int, email: str) -> bytes:
    job = CredentialJobs(state).create(platform="shop", erp_number=number, shop_id=None, email=email,
                                       now=utcnow())
    key = Bounces(state).tag_key(utcnow())
    assert job is not None and key is not None
    return samples.postfix_dsn(envelope_sender(RP, make_tag(key, "c", job, email)), email,
                               message_id=f"<dsn-{number}@mx.example.net>")


def test_tls_with_the_test_ca_reads_and_moves_the_bounce(imap: ImapServer, state: StateStore) -> None:
    imap.append(_bounce_for(state, 10001, "kunde@example.org"), samples.unrelated())
    settings = _settings(imap, verify_tls=True, ca_file=imap.ca_file)
    before = imap.handshakes()
    report = check_bounces(settings, state, lambda name: None)
    assert imap.handshakes() == before + 1  # the reader's session was encrypted
    assert (report.counts["read"], report.counts["hard"], report.counts["not-ours"]) == (2, 1, 1)
    [b] = Bounces(state).open("shop")
    assert (b.erp_number, b.email) == (10001, "kunde@example.org")
    assert len(imap.folder("syncd-processed")) == 1
    [item] = check_mailbox(settings)
    assert item.ok, item.detail


def test_tls_without_the_ca_fails_naming_the_key_and_marks_nothing(imap: ImapServer,
                                                                   state: StateStore) -> None:
    imap.append(_bounce_for(state, 10001, "kunde@example.org"))
    settings = _settings(imap, verify_tls=True)  # the system CAs do not know the test CA
    with pytest.raises(ConfigurationFault) as err:
        check_bounces(settings, state, lambda name: None)
    assert err.value.key == "mail.bounces.imap.ca_file"
    assert "not trusted: unable to get local issuer certificate" in str(err.value)
    assert PASSWORD not in str(err.value)
    assert Bounces(state).open() == []
    [(_, flags)] = imap.folder("INBOX")  # still unseen, not moved: read again once the CA is set
    assert b"\\Seen" not in flags and imap.folder("syncd-processed") == []
    [item] = check_mailbox(settings)
    assert not item.ok and "mail.bounces.imap.ca_file" in item.detail


def test_verify_tls_false_accepts_the_unknown_ca(imap: ImapServer, state: StateStore) -> None:
    imap.append(_bounce_for(state, 10001, "kunde@example.org"))
    assert check_bounces(_settings(imap, verify_tls=False), state, lambda name: None).counts["hard"] == 1


def test_a_missing_ca_file_is_a_config_error_naming_key_and_value(imap: ImapServer, state: StateStore,
                                                                   tmp_path: Path) -> None:
    from syncd.core.errors import ConfigError

    missing = str(tmp_path / "no-such-ca.pem")
    with pytest.raises(ConfigError) as err:
        check_bounces(_settings(imap, ca_file=missing), state, lambda name: None)
    assert err.value.key == "mail.bounces.imap.ca_file" and missing in str(err.value)


def test_starttls_against_a_server_without_it_refuses_clear_text(tmp_path: Path, state: StateStore) -> None:
    with imap_server(tmp_path / "plain") as plain:
        settings = _settings(plain, "starttls")
        with pytest.raises(ConfigurationFault) as err:
            check_bounces(settings, state, lambda name: None)
    assert err.value.key == "mail.bounces.imap.security" and "STARTTLS" in str(err.value)

"""SMTP and outbox transports against a real aiosmtpd server on loopback."""

from __future__ import annotations

import os
import threading
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from syncd.config.model import MailSettings
from syncd.connectors.mail import DeliveryUnknown, OutboxTransport, SmtpTransport, open_transport
from syncd.core.domain import OutgoingMail
from syncd.core.errors import ConfigError, PermanentError, TransientError

pytest_plugins = ["tests.support.mailserver"]


def _settings(server, **kw) -> MailSettings:
    base = dict(host=server.host, port=server.port, security=server.security, timeout="5s",
                sender="Möbelhaus Süd <shop@moebel.example>", ca_file=server.ca_file)
    base.update(kw)
    return MailSettings(**base)


def _mail(to: str = "kunde@example.com", n: int = 0, **kw) -> OutgoingMail:
    base = dict(to_addr=to, to_name="Jürgen Müller", sender="Möbelhaus Süd <shop@moebel.example>",
                subject=f"Zugangsdaten {n}", text=f"Hallo {n}, Ihr Passwort: äöü{n}", key=f"shop/{10000 + n}")
    base.update(kw)
    return OutgoingMail(**base)


def test_plain_smtp_batch_uses_one_connection(smtp_server):
    transport = open_transport(_settings(smtp_server))
    assert isinstance(transport, SmtpTransport)
    with transport.session() as session:
        for n in range(5):
            session.send(_mail(n=n, html=f"<p>Hallo {n}</p>"))
    msgs = smtp_server.wait_for(5)
    assert smtp_server.connections == 1
    assert [m["Subject"] for m in msgs] == [f"Zugangsdaten {n}" for n in range(5)]
    assert msgs[0].mail_from == "shop@moebel.example"
    assert msgs[0].rcpt_tos == ["kunde@example.com"]
    assert msgs[0].get_content_type() == "multipart/alternative"
    assert "äöü0" in msgs[0].get_body(("plain",)).get_content()
    assert smtp_server.wait_idle()  # the session said goodbye


def test_empty_session_opens_no_connection(smtp_server):
    with open_transport(_settings(smtp_server)).session():
        pass
    assert smtp_server.connections == 0


def test_starttls_verified_against_the_test_ca_with_auth(smtp_server_factory):
    server = smtp_server_factory("starttls", users={"shop": "Pa55wört"})
    transport = open_transport(_settings(server, username="shop"), password="Pa55wört")
    with transport.session() as session:
        session.send(_mail())
    assert len(server.wait_for(1)) == 1
    assert all(item.ok for item in transport.check()), transport.check()


def test_starttls_refuses_an_untrusted_certificate(smtp_server_factory, captured_logs):
    server = smtp_server_factory("starttls")
    transport = open_transport(_settings(server, ca_file=None))  # system CAs do not know the test CA
    with pytest.raises(TransientError, match="not trusted"):
        transport.send(_mail())
    assert server.accepted == 0
    check = {i.name: i for i in transport.check()}
    assert not check["smtp"].ok and "ca_file" in check["smtp"].detail
    # verify_tls = false is the operator's explicit opt-out
    open_transport(_settings(server, ca_file=None, verify_tls=False)).send(_mail())
    assert server.accepted == 1
    assert "smtp.tls_unverified" in captured_logs.text


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_non_ascii_credentials(smtp_server_factory, mechanism):
    # smtplib alone would die with a UnicodeEncodeError holding the password.
    server = smtp_server_factory("starttls", users={"bür0": "Pässwört€"}, auth_mechanisms=(mechanism,))
    transport = open_transport(_settings(server, username="bür0"), password="Pässwört€")
    transport.send(_mail())
    assert server.wait_for(1)
    wrong = open_transport(_settings(server, username="bür0"), password="Pässwort€")
    with pytest.raises(TransientError, match="authentication") as err:
        wrong.send(_mail())
    assert "Pässwort€" not in str(err.value)


def test_auth_without_tls_works_but_warns(smtp_server_factory, captured_logs):
    server = smtp_server_factory("none", users={"relay": "geheim123"})
    transport = open_transport(_settings(server, username="relay"), password="geheim123")
    transport.send(_mail())
    transport.send(_mail())
    assert server.wait_for(2)
    assert captured_logs.text.count("smtp.auth_cleartext") == 1
    assert "geheim123" not in captured_logs.text


def test_implicit_ssl_with_auth(smtp_server_factory):
    server = smtp_server_factory("ssl", users={"shop": "geheim123"})
    transport = open_transport(_settings(server, username="shop"), password="geheim123")
    transport.send(_mail())
    assert server.wait_for(1)[0]["Subject"] == "Zugangsdaten 0"


def test_starttls_without_server_support_is_refused(smtp_server):
    transport = open_transport(_settings(smtp_server, security="starttls"))
    with pytest.raises(TransientError, match="STARTTLS"):
        transport.send(_mail())
    assert smtp_server.accepted == 0


def test_auth_failure_is_transient_and_reported_by_check(smtp_server_factory):
    server = smtp_server_factory("starttls", users={"shop": "right"})
    transport = open_transport(_settings(server, username="shop"), password="wrong")
    with pytest.raises(TransientError, match="authentication as 'shop'") as err:
        transport.send(_mail())
    assert "wrong" not in str(err.value)
    items = {i.name: i for i in transport.check()}
    assert not items["smtp"].ok and "535" in items["smtp"].detail
    assert server.accepted == 0


def test_451_is_transient_and_the_connection_stays_usable(smtp_server):
    smtp_server.fail_next(1, code=451)
    with open_transport(_settings(smtp_server)).session() as session:
        with pytest.raises(TransientError, match="451"):
            session.send(_mail(n=1))
        session.send(_mail(n=2))
    assert [m["Subject"] for m in smtp_server.wait_for(1)] == ["Zugangsdaten 2"]
    assert smtp_server.connections == 1


@pytest.mark.parametrize("stage", ["mail", "rcpt", "data"])
def test_4xx_at_each_stage_is_transient(smtp_server, stage):
    smtp_server.fail_next(1, code=450, stage=stage)
    transport = open_transport(_settings(smtp_server))
    with pytest.raises(TransientError):
        transport.send(_mail())
    transport.send(_mail())
    assert smtp_server.wait_for(1)


def test_550_for_one_recipient_is_permanent_and_the_batch_goes_on(smtp_server):
    smtp_server.reject_recipient("gone@example.com", code=550)
    sent, failed = [], []
    with open_transport(_settings(smtp_server)).session() as session:
        for n, to in enumerate(["a@example.com", "gone@example.com", "b@example.com"]):
            try:
                session.send(_mail(to=to, n=n))
                sent.append(to)
            except PermanentError as exc:
                failed.append((to, exc.code, str(exc)))
    assert sent == ["a@example.com", "b@example.com"]
    assert failed[0][:2] == ("gone@example.com", "550")
    assert "gone@example.com" in failed[0][2]
    assert [m.rcpt_tos for m in smtp_server.wait_for(2)] == [["a@example.com"], ["b@example.com"]]
    assert smtp_server.connections == 1


def test_5xx_after_data_is_permanent(smtp_server):
    smtp_server.fail_next(1, code=554, stage="data")
    with pytest.raises(PermanentError) as err:
        open_transport(_settings(smtp_server)).send(_mail())
    assert err.value.code == "554"


def test_connection_dropped_while_idle_is_reopened_once(smtp_server):
    with open_transport(_settings(smtp_server)).session() as session:
        session.send(_mail(n=1))
        smtp_server.disconnect_all()  # e.g. the server's idle timeout
        session.send(_mail(n=2))
        session.send(_mail(n=3))
        assert session.connections == 2
    assert len(smtp_server.wait_for(3)) == 3
    assert smtp_server.connections == 2


def test_connection_dropped_before_content_is_reopened(smtp_server):
    with open_transport(_settings(smtp_server)).session() as session:
        session.send(_mail(n=1))
        smtp_server.drop_next(1, stage="rcpt")
        session.send(_mail(n=2))
    assert [m["Subject"] for m in smtp_server.wait_for(2)] == ["Zugangsdaten 1", "Zugangsdaten 2"]


def test_reconnect_happens_only_once(smtp_server):
    with open_transport(_settings(smtp_server)).session() as session:
        session.send(_mail(n=1))
        smtp_server.drop_next(2, stage="mail")
        with pytest.raises(TransientError, match="again"):
            session.send(_mail(n=2))
        session.send(_mail(n=3))  # the next mail gets a fresh connection
    assert [m["Subject"] for m in smtp_server.wait_for(2)] == ["Zugangsdaten 1", "Zugangsdaten 3"]


def test_drop_after_content_is_not_resent(smtp_server):
    with open_transport(_settings(smtp_server)).session() as session:
        session.send(_mail(n=1))
        smtp_server.drop_next(1, stage="data")
        with pytest.raises(DeliveryUnknown, match="delivery unknown"):
            session.send(_mail(n=2))
        session.send(_mail(n=3))
    assert [m["Subject"] for m in smtp_server.wait_for(2)] == ["Zugangsdaten 1", "Zugangsdaten 3"]


def test_drop_before_the_terminator_is_not_delivered_and_not_unknown(smtp_server):
    """The server closes the connection at the DATA command: it never saw the end of the mail,
    so it cannot deliver it. That is a plain transient fault, not an unknown outcome."""
    commits: list[int] = []
    with open_transport(_settings(smtp_server)).session() as session:
        smtp_server.drop_next(1, stage="content")
        with pytest.raises(TransientError, match="not delivered") as err:
            session.send(_mail(n=1), on_commit=lambda: commits.append(1))
        assert not isinstance(err.value, DeliveryUnknown)
        assert commits == []  # the commit point was never reached
        session.send(_mail(n=2), on_commit=lambda: commits.append(smtp_server.accepted))
    assert [m["Subject"] for m in smtp_server.wait_for(1)] == ["Zugangsdaten 2"]
    assert commits == [0]  # called before the server could accept mail 2


def test_drop_after_the_terminator_is_delivery_unknown(smtp_server):
    commits: list[str] = []
    with open_transport(_settings(smtp_server)).session() as session:
        smtp_server.drop_next(1, stage="data")
        with pytest.raises(DeliveryUnknown):
            session.send(_mail(n=1), on_commit=lambda: commits.append("1"))
    assert commits == ["1"]


def test_4xx_to_the_data_command_is_transient_before_the_commit_point(smtp_server):
    smtp_server.fail_next(1, code=452, stage="content")
    commits: list[int] = []
    with open_transport(_settings(smtp_server)).session() as session:
        with pytest.raises(TransientError, match="452") as err:
            session.send(_mail(n=1), on_commit=lambda: commits.append(1))
        assert not isinstance(err.value, DeliveryUnknown)
        session.send(_mail(n=2))
    assert commits == []
    assert [m["Subject"] for m in smtp_server.wait_for(1)] == ["Zugangsdaten 2"]


class _Killed(BaseException):
    pass


def test_a_crash_at_the_commit_point_delivers_nothing(smtp_server):
    """The caller dies in ``on_commit`` (content sent, terminator not): the transport drops the
    connection, so the server discards the half-received mail."""
    text = "Zeile 1\n.Punkt am Anfang\r\n..zwei\rEnde"

    def die() -> None:
        raise _Killed()

    with open_transport(_settings(smtp_server)).session() as session:
        with pytest.raises(_Killed):
            session.send(_mail(n=1, text=text), on_commit=die)
        session.send(_mail(n=2, text=text))
    [received] = smtp_server.wait_for(1)
    assert received["Subject"] == "Zugangsdaten 2"
    assert smtp_server.accepted == 1 and smtp_server.connections == 2
    # dot-stuffing and line ends as smtplib's data() does them: the text arrives unchanged
    assert received.get_content().replace("\r\n", "\n").rstrip("\n") == text.replace("\r\n", "\n").replace(
        "\r", "\n")


def test_unreachable_server_is_transient():
    from tests.support.mailserver import free_port

    settings = MailSettings(host="127.0.0.1", port=free_port(), security="none", timeout="2s")
    transport = open_transport(settings)
    with pytest.raises(TransientError, match="cannot connect"):
        transport.send(_mail())
    items = {i.name: i for i in transport.check()}
    assert not items["smtp"].ok


def test_invalid_recipient_is_permanent_without_talking_to_the_server(smtp_server):
    with pytest.raises(PermanentError, match="CR/LF"):
        open_transport(_settings(smtp_server)).send(_mail(to="a@example.com\r\nRCPT TO:<x@evil.example>"))
    assert smtp_server.connections == 0


def test_per_mail_sender_overrides_settings(smtp_server):
    open_transport(_settings(smtp_server)).send(_mail(sender="Zweitshop <b2b@zweit.example>"))
    (msg,) = smtp_server.wait_for(1)
    assert msg.mail_from == "b2b@zweit.example"
    assert msg["Message-ID"].endswith("@zweit.example>")


# --------------------------------------------------------------------------- outbox


def test_outbox_writes_complete_eml_files(tmp_path):
    transport = open_transport(MailSettings(transport="outbox", outbox_dir=str(tmp_path / "out")))
    assert isinstance(transport, OutboxTransport)
    with transport.session() as session:
        first = session.send(_mail(n=1, key="shop/10001"))
        second = session.send(_mail(n=2, key="shop/10001"))
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert files == sorted([first.name, second.name]) and len(set(files)) == 2
    assert all(f.endswith("-shop_10001.eml") or "-shop_10001-" in f for f in files)
    msg = message_from_bytes(first.read_bytes(), policy=policy.default)
    assert msg["Subject"] == "Zugangsdaten 1"
    assert "äöü1" in msg.get_content()
    assert first.stat().st_mode & 0o077 == 0  # the mail may carry a password: owner only


def test_outbox_never_shows_a_partial_file(tmp_path, monkeypatch):
    out = tmp_path / "out"
    transport = OutboxTransport(out)
    real_fsync = os.fsync
    seen: list[list[str]] = []

    def spy(fd):
        seen.append(sorted(p.name for p in out.iterdir() if p.suffix == ".eml"))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    transport.send(_mail())
    assert seen[0] == []  # while the bytes are flushed, no .eml exists yet
    assert [p.suffix for p in out.iterdir()] == [".eml"]  # and no temp file is left behind


def test_outbox_failure_is_transient_and_leaves_nothing(tmp_path, monkeypatch):
    out = tmp_path / "out"
    transport = OutboxTransport(out)

    def boom(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(TransientError, match="No space left"):
        transport.send(_mail())
    assert list(out.iterdir()) == []


def test_outbox_commit_point_is_the_rename(tmp_path):
    out = tmp_path / "out"
    transport = OutboxTransport(out)
    seen: list[list[str]] = []
    transport.send(_mail(n=1), on_commit=lambda: seen.append(sorted(p.suffix for p in out.iterdir())))
    assert seen == [[".tmp"]]  # content on disk under its temporary name, not yet visible

    def die() -> None:
        raise _Killed()

    with pytest.raises(_Killed):
        transport.send(_mail(n=2), on_commit=die)
    assert [p.suffix for p in out.iterdir()] == [".eml"]  # only mail 1; no temp file left


def test_outbox_parallel_writers_do_not_clobber(tmp_path):
    transport = OutboxTransport(tmp_path)
    threads = [threading.Thread(target=lambda: [transport.send(_mail(key="same")) for _ in range(10)])
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(list(Path(tmp_path).glob("*.eml"))) == 40


def test_outbox_check_and_config_errors(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    items = OutboxTransport(blocker / "sub").check()
    assert not [i for i in items if i.name == "outbox"][0].ok
    assert all(i.ok for i in OutboxTransport(tmp_path / "ok", sender="a@example.com").check())
    bad = MailSettings.model_construct(transport="pigeon")
    with pytest.raises(ConfigError, match="mail.transport"):
        open_transport(bad)


def test_nothing_of_the_mail_reaches_logs_or_errors(smtp_server, captured_logs):
    secret = "Zq8PwSecret"
    smtp_server.reject_recipient("gone@example.com")
    transport = open_transport(_settings(smtp_server))
    errors = []
    with transport.session() as session:
        message_id = session.send(_mail(text=f"Passwort: {secret}", subject=f"S {secret}"))
        smtp_server.disconnect_all()
        session.send(_mail(text=f"Passwort: {secret}"))  # reconnect is logged
        for fault in ("gone", "451", "drop"):
            if fault == "451":
                smtp_server.fail_next(1, code=451)
            if fault == "drop":
                smtp_server.drop_next(1, stage="data")
            try:
                session.send(_mail(to="gone@example.com" if fault == "gone" else "a@example.com",
                                   text=f"Passwort: {secret}"))
            except (TransientError, PermanentError) as exc:
                errors.append(str(exc))
    assert len(errors) == 3
    assert "smtp.reconnect" in captured_logs.text
    assert secret not in captured_logs.text and not any(secret in e for e in errors)
    assert smtp_server.wait_for(2)[0]["Message-ID"] == message_id


def test_check_probes_the_senders_without_sending(smtp_server):
    transport = open_transport(_settings(smtp_server))
    smtp_server.fail_next(1, code=553, stage="mail", text="Sender address not allowed")
    items = transport.check(senders=("Zweitshop <b2b@zweit.example>", "broken\r\nBcc: x"))
    assert [i.ok for i in items if i.name == "smtp"] == [True]
    senders = [i for i in items if i.name == "sender"]
    assert any(not i.ok and "broken" in i.detail for i in senders)
    assert any(not i.ok and "553" in i.detail and "shop@moebel.example" in i.detail for i in senders)
    assert any(i.ok and "b2b@zweit.example" in i.detail for i in senders)
    assert smtp_server.accepted == 0


def test_silent_server_times_out_as_transient():
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)  # accepts the TCP connection, never greets
    try:
        port = listener.getsockname()[1]
        settings = MailSettings(host="127.0.0.1", port=port, security="none", timeout="0.3s")
        with pytest.raises(TransientError, match="cannot connect"):
            open_transport(settings).send(_mail())
    finally:
        listener.close()

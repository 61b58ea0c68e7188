"""The VERP tag (``syncd.core.returnpath``), reading real bounce formats
(``syncd.connectors.mail.bounces.read_bounce``) and the ``[mail.bounces]`` settings."""

from __future__ import annotations

import pytest

from syncd.config.bounces import BounceSettings
from syncd.config.loader import parse_settings
from syncd.connectors.mail.bounces import read_bounce
from syncd.core.errors import ConfigError
from syncd.core.returnpath import ReturnPaths, envelope_sender, find_tags, make_tag, tag_of_key, verify
from tests.support import bounce_samples as samples

KEY = bytes(range(32))
RP = "bounces@example.com"


def test_tag_round_trip_and_what_it_refuses() -> None:
    tag = make_tag(KEY, "c", 4711, "Kunde@Example.org")
    address = envelope_sender(RP, tag)
    assert address.startswith("bounces+c4711-") and address.endswith("@example.com")
    assert "kunde" not in address.lower()  # no e-mail in the tag
    [found] = find_tags(RP, f"Delivered-To: {address.upper()}")  # servers may change the case
    assert verify(KEY, found, "kunde@example.org")
    assert not verify(KEY, found, "other@example.org")  # made for another recipient
    assert not verify(b"another store's key" * 2, found, "kunde@example.org")
    forged = make_tag(KEY, "c", 4712, "kunde@example.org")
    assert not verify(KEY, type(found)("c", 4712, found.mac), "kunde@example.org")
    assert forged.mac != found.mac
    assert find_tags(RP, "bounces+c4711-zzzz@example.com other+c1-abcdefghijkl@example.com") == []


def test_mail_keys_name_their_job() -> None:
    assert tag_of_key("shop:10001:17") == ("c", 17)
    assert tag_of_key("shop:a:b:message:9") == ("m", 9)
    assert tag_of_key("") is None and tag_of_key("shop:10001:x") is None
    paths = ReturnPaths(RP, KEY)
    assert paths.envelope_sender("", "k@example.org") == RP  # no job: the plain return path
    assert paths.envelope_sender("shop:1:5", "k@example.org").startswith("bounces+c5-")
    assert "KEY" not in repr(paths) and KEY.hex() not in repr(paths)


@pytest.mark.parametrize("make, severity, status", [
    (lambda rt: samples.postfix_dsn(rt, "kunde@example.org"), "hard", "5.1.1"),
    (lambda rt: samples.exim_bounce(rt, "kunde@example.org"), "hard", "5.1.1"),
    (lambda rt: samples.postfix_dsn(rt, "kunde@example.org", status="4.2.2", action="delayed",
                                    diagnostic="smtp; 452 4.2.2 Mailbox full"), "soft", "4.2.2"),
    (lambda rt: samples.auto_reply(rt), None, None),
])
def test_real_bounce_formats(make, severity, status) -> None:
    rt = envelope_sender(RP, make_tag(KEY, "m", 3, "kunde@example.org"))
    read = read_bounce(make(rt), RP, "ref")
    assert [str(t) for t in read.tags] == [rt.split("+", 1)[1].split("@")[0]]
    assert read.severity == severity and read.status == status
    if severity == "hard":
        assert read.permanent == {"kunde@example.org"} and "5.1.1" in (read.diagnostic or "")
    if severity == "soft":
        assert read.temporary == {"kunde@example.org"} and read.diagnostic == "452 4.2.2 Mailbox full"


def test_messages_not_for_syncd_read_as_nothing() -> None:
    assert read_bounce(samples.unrelated(), RP, "r").tags == []
    assert read_bounce(b"\xff\xfe\x00 garbage", RP, "r").tags == []
    assert read_bounce(samples.unrelated(), RP, "r").source_id == "<newsletter-7@example.org>"


BASE = """
[erp]
url = "sqlite:///erp.db"
[[platforms]]
name = "shop"
url = "https://shop.example.com/"
client_id = "id"
client_secret = "env:SHOP_SECRET"
[mail.bounces]
enabled = true
"""


@pytest.mark.parametrize("extra, key", [
    ('maildir = "/x"', "mail.bounces.return_path"),
    ('return_path = "bounces+x@example.com"\nmaildir = "/x"', "mail.bounces.return_path"),
    (f'return_path = "{RP}"', "mail.bounces.maildir"),
    (f'return_path = "{RP}"\nsource = "imap"', "mail.bounces.imap.username"),
    (f'return_path = "{RP}"\nmaildir = "/x"\nprocessed = "archive"', "mail.bounces.processed"),
    (f'return_path = "{RP}"\nmaildir = "/x"\npoll_interval = "5s"', "mail.bounces.poll_interval"),
])
def test_settings_refuse_what_cannot_work_naming_the_key(extra, key) -> None:
    with pytest.raises(ConfigError) as err:
        parse_settings(BASE + extra + "\n", file="/etc/syncd/x.toml")
    assert err.value.key == key and err.value.file == "/etc/syncd/x.toml"


def test_settings_defaults_are_off() -> None:
    s = BounceSettings()
    assert not s.enabled and s.processed == "move" and s.poll_interval == 900.0
    assert s.erp_text == "E-Mail unzustellbar"

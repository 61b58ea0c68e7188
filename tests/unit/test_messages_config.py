"""Configuration of the SMS channel, per-platform mail accounts, reminders and the SMS layout check."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.config.loader import parse_settings
from syncd.config.model import platform_mail, platform_sender
from syncd.core.errors import ConfigError
from syncd.render.store import LayoutStore

BASE = """
[erp]
url = "sqlite:///erp.db"
[mail]
sender = "Haupt <haupt@example.com>"
[[platforms]]
name = "shop"
url = "https://shop.example.com/"
client_id = "id"
client_secret = "env:SHOP_SECRET"
"""


def _error(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_settings(text, file="/etc/syncd/x.toml")
    return info.value


def test_platform_mail_account_is_used_with_its_own_server_and_sender():
    s = parse_settings(BASE + 'mail = "outlet"\n[mail.accounts.outlet]\nhost = "smtp.outlet.example"\n'
                       'port = 465\nsecurity = "ssl"\nsender = "Outlet <o@outlet.example>"\n')
    mail = platform_mail(s, s.platforms[0])
    assert (mail.host, mail.port, mail.security) == ("smtp.outlet.example", 465, "ssl")
    assert mail.transport == "smtp"
    assert platform_sender(s, s.platforms[0]) == "Outlet <o@outlet.example>"


def test_platform_without_account_uses_mail():
    s = parse_settings(BASE)
    assert platform_mail(s, s.platforms[0]) is s.mail
    assert platform_sender(s, s.platforms[0]) == "Haupt <haupt@example.com>"


def test_unknown_platform_mail_account_is_refused_naming_key_and_value():
    err = _error(BASE + 'mail = "outlet"\n[mail.accounts.other]\nhost = "h"\nsender = "o@x.example"\n')
    assert err.key == "platforms[0].mail" and err.value == "outlet"
    assert "no mail account 'outlet'" in str(err) and "other" in str(err)


def test_sms_provider_needs_its_credentials():
    err = _error(BASE + '[sms]\nenabled = true\nprovider = "lox24"\npassword = "env:K"\n')
    assert err.key == "sms.username"
    err = _error(BASE + '[sms]\nenabled = true\nprovider = "http"\n')
    assert err.key == "sms.url"


def test_sms_sender_id_is_checked():
    err = _error(BASE + '[sms]\nsender_id = "Viel zu langer Absender"\n')
    assert err.key == "sms.sender_id"


def test_sms_password_value_is_never_echoed():
    err = _error(BASE + '[sms]\npassword = 12345678\n')
    assert "12345678" not in str(err)


def test_reminder_rules():
    ok = parse_settings(BASE + '[[reminders]]\nname = "pp"\nkind = "prepayment"\ndelay = "3d"\n'
                        'repeat = "7d"\nmax_messages = 3\nlayout = "x"\n')
    assert ok.reminders[0].repeat == 7 * 86400
    err = _error(BASE + '[[reminders]]\nname = "pp"\nkind = "prepayment"\nmax_messages = 3\nlayout = "x"\n')
    assert err.key == "reminders[0].repeat"
    err = _error(BASE + '[[reminders]]\nname = "s"\nkind = "shipping_confirmation"\nrepeat = "1d"\n'
                 'max_messages = 2\nlayout = "x"\n')
    assert err.key == "reminders[0].max_messages"
    err = _error(BASE + '[[reminders]]\nname = "s"\nkind = "shipping_confirmation"\nlayout = "x"\n'
                 'platform = "nope"\n')
    assert err.key == "reminders[0].platform"
    err = _error(BASE + '[[reminders]]\nname = "s"\nkind = "invoice"\nlayout = "x"\n')
    assert err.key == "reminders[0].kind"


def _layout(root: Path, name: str, sms: str | None) -> None:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "subject.txt.j2").write_text("Zugang", "utf-8")
    (folder / "body.txt.j2").write_text("Passwort: {{ erp.PW }}", "utf-8")
    if sms is not None:
        (folder / "sms.txt.j2").write_text(sms, "utf-8")


def test_credentials_sms_with_password_is_refused_unless_allowed(tmp_path):
    _layout(tmp_path, "cred", "Ihr Passwort: {{ erp.PW }}")
    store = LayoutStore(tmp_path)
    refused = [i for i in store.check("cred", "PW", sms=True) if not i.ok]
    assert refused and "plain text" in refused[0].detail
    assert all(i.ok for i in store.check("cred", "PW", sms=True, allow_password_by_sms=True))


def test_link_mode_sms_is_allowed(tmp_path):
    folder = tmp_path / "link"
    folder.mkdir()
    (folder / "subject.txt.j2").write_text("Zugang", "utf-8")
    (folder / "body.txt.j2").write_text("{{ link }}", "utf-8")
    (folder / "sms.txt.j2").write_text("Passwort setzen: {{ link }}", "utf-8")
    assert all(i.ok for i in LayoutStore(tmp_path).check("link", None, mode="link", sms=True))


def test_sms_layout_missing_when_sms_may_be_chosen(tmp_path):
    _layout(tmp_path, "nosms", None)
    failed = [i for i in LayoutStore(tmp_path).check("nosms", None, sms=True) if not i.ok]
    assert failed and "sms.txt.j2 is missing" in failed[0].detail


def test_render_sms_trims(tmp_path):
    _layout(tmp_path, "r", "\n  Hallo {{ address.first_name }}!  \n")
    from syncd.core.domain import ErpAddress
    from syncd.render.context import build_context

    ctx = build_context(ErpAddress(number=1, first_name="Jörg", row={"PW": "x"}), password_column=None)
    assert LayoutStore(tmp_path).render_sms("r", ctx) == "Hallo Jörg!"


def test_run_refuses_a_missing_reminder_layout_and_accepts_the_shipped_ones():
    from syncd.shell.bootstrap import _reminder_layouts

    ok = parse_settings(BASE + '[sms]\nenabled = true\npassword = "env:K"\n'
                        '[messages]\ndefault_channel = "sms"\n'
                        '[[reminders]]\nname = "s"\nkind = "shipping_confirmation"\n'
                        'layout = "shipping_confirmation"\n'
                        '[[reminders]]\nname = "p"\nkind = "prepayment"\nlayout = "prepayment_reminder_en"\n')
    _reminder_layouts(ok, LayoutStore(), "/etc/syncd/x.toml")  # shipped, with sms.txt.j2
    bad = parse_settings(BASE + '[[reminders]]\nname = "s"\nkind = "shipping_confirmation"\n'
                         'layout = "versand"\n')
    with pytest.raises(ConfigError) as info:
        _reminder_layouts(bad, LayoutStore(), "/etc/syncd/x.toml")
    assert info.value.key == "reminders[0].layout" and info.value.value == "versand"
    assert "not found" in str(info.value)

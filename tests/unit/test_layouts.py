"""Layouts: shipped ones, operator overrides, strictness, the AST password check, escaping."""

from __future__ import annotations

import os
import time
from datetime import datetime
from pathlib import Path

import pytest

from syncd.config.model import PlatformSettings
from syncd.core.domain import ErpAddress
from syncd.core.errors import ConfigError
from syncd.render.context import build_context
from syncd.render.store import LayoutError, LayoutStore

PW_COL = "KU_PASSWORT"
PASSWORD = "Qz7<b>&Kx9"


def _platform(**kw) -> PlatformSettings:
    base = dict(name="shop", url="https://shop.example.com/", client_id="id", client_secret="secret",
                sender="Möbelhaus Süd <shop@moebel.example>",
                addresses={"password_field": PW_COL, "send_credentials": True})
    base.update(kw)
    return PlatformSettings(**base)


def _address(**kw) -> ErpAddress:
    row = {"KU_NR": 10001, "KU_EMAIL": "juergen@example.com", PW_COL: PASSWORD, "KU_FIRMA": "Möbel & Söhne",
           "KU_ORT": None}
    base = dict(number=10001, email="juergen@example.com", salutation="Herr", first_name="Jürgen",
                last_name="Müller", company="Möbel & Söhne", row=row)
    base.update(kw)
    return ErpAddress(**base)


def _layout(root: Path, name: str, subject: str, text: str, html: str | None = None) -> Path:
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "subject.txt.j2").write_text(subject, "utf-8")
    (folder / "body.txt.j2").write_text(text, "utf-8")
    if html is not None:
        (folder / "body.html.j2").write_text(html, "utf-8")
    return folder


# --------------------------------------------------------------------------- shipped layouts


def test_shipped_layouts_are_listed():
    assert {"credentials", "credentials_en", "set_password_link", "set_password_link_en"} <= set(
        LayoutStore().names()
    )


@pytest.mark.parametrize("name", ["credentials", "credentials_en"])
def test_shipped_credentials_layouts_carry_everything(name):
    store = LayoutStore()
    out = store.render(name, build_context(_address(), platform=_platform()))
    for part in (out.text, out.html):
        assert "Müller" in part
        assert "Möbelhaus Süd" in part
        assert "https://shop.example.com/account/login" in part
        assert "juergen@example.com" in part
        assert "10001" in part
    assert PASSWORD in out.text  # text is not escaped
    assert "Qz7&lt;b&gt;&amp;Kx9" in out.html and PASSWORD not in out.html  # HTML is
    assert "\n" not in out.subject and "Möbelhaus Süd" in out.subject
    if name == "credentials":
        assert out.text.startswith("Sehr geehrter Herr Müller,")
        assert "ändern Sie dieses Passwort" in out.text
    else:
        assert out.text.startswith("Dear Mr Müller,")
        assert "change this password" in out.text
    assert store.check(name, PW_COL)[0].ok


@pytest.mark.parametrize(
    "kw,de,en",
    [
        (dict(salutation="Frau", first_name="Anna", last_name="Schäfer"), "Sehr geehrte Frau Schäfer,",
         "Dear Ms Schäfer,"),
        (dict(salutation=None, first_name="Anna", last_name="Schäfer"), "Guten Tag Anna Schäfer,",
         "Dear Anna Schäfer,"),
        (dict(salutation="Firma", first_name=None, last_name=None, company="Möbel & Söhne"),
         "Sehr geehrte Damen und Herren,", "Dear Möbel & Söhne team,"),
        (dict(salutation=None, first_name=None, last_name=None, company=None),
         "Sehr geehrte Damen und Herren,", "Dear Sir or Madam,"),
    ],
)
def test_greetings(kw, de, en):
    store = LayoutStore()
    ctx = build_context(_address(**kw), platform=_platform())
    german = store.render("credentials", ctx).text
    assert german.startswith(de)
    assert "None" not in german
    if kw.get("company") and not kw.get("last_name"):
        assert "für Möbel & Söhne haben wir" in german
    assert store.render("credentials_en", ctx).text.startswith(en)


@pytest.mark.parametrize("name", ["set_password_link", "set_password_link_en"])
def test_shipped_link_layouts(name):
    store = LayoutStore()
    link = "https://shop.example.com/account/recover/password?hash=abc&x=1"
    ctx = build_context(_address(), platform=_platform(), link=link, link_expires=datetime(2030, 1, 2, 3, 4))
    out = store.render(name, ctx)
    assert link in out.text
    assert 'href="https://shop.example.com/account/recover/password?hash=abc&amp;x=1"' in out.html
    assert "2030" in out.text and PASSWORD not in out.text
    assert store.check(name, None, mode="link")[-1].ok
    refused = store.check("credentials", None, mode="link")
    assert not refused[0].ok and "link" in refused[0].detail


# --------------------------------------------------------------------------- operator layouts


def test_operator_folder_overrides_shipped_by_name(tmp_path):
    _layout(tmp_path, "credentials", "Eigener Betreff {{ shop.name }}", "Eigenes {{ erp.KU_PASSWORT }}\n")
    _layout(tmp_path, "welcome", "Hallo", "Neu {{ erp['KU_PASSWORT'] }}")
    store = LayoutStore(tmp_path)
    out = store.render("credentials", build_context(_address(), platform=_platform()))
    assert out.subject == "Eigener Betreff shop"
    assert out.text == f"Eigenes {PASSWORD}\n"
    assert out.html is None  # the whole folder replaces the shipped one, not file by file
    assert store.render("credentials_en", build_context(_address(), platform=_platform())).html
    assert "welcome" in store.names() and "credentials_en" in store.names()
    assert str(tmp_path) in store.origin("credentials")


def test_operator_edits_take_effect_without_restart(tmp_path):
    folder = _layout(tmp_path, "mine", "S", "Version 1 {{ erp.KU_PASSWORT }}")
    store = LayoutStore(tmp_path)
    ctx = build_context(_address(), platform=_platform())
    assert store.render("mine", ctx).text.startswith("Version 1")
    time.sleep(0.01)
    (folder / "body.txt.j2").write_text("Version 2 {{ erp.KU_PASSWORT }}", "utf-8")
    _touch_later(folder / "body.txt.j2")
    assert store.render("mine", ctx).text.startswith("Version 2")


def test_override_added_or_removed_while_running(tmp_path):
    store = LayoutStore(tmp_path)
    ctx = build_context(_address(), platform=_platform())
    assert store.render("credentials", ctx).html is not None  # shipped
    folder = _layout(tmp_path, "credentials", "Neu", "Eigenes {{ erp.KU_PASSWORT }}")
    assert store.render("credentials", ctx).subject == "Neu"
    for file in folder.iterdir():
        file.unlink()
    folder.rmdir()
    assert store.render("credentials", ctx).subject.startswith("Ihre Zugangsdaten")


def _touch_later(path: Path, seconds: int = 5) -> None:
    """Move the mtime on: an edit within the file system's timestamp resolution looks unchanged."""
    st = path.stat()
    os.utime(path, (st.st_atime, st.st_mtime + seconds))


def test_html_body_added_or_removed_while_running(tmp_path):
    folder = _layout(tmp_path, "mine", "S", "Text {{ erp.KU_PASSWORT }}")
    store = LayoutStore(tmp_path)
    ctx = build_context(_address(), platform=_platform())
    assert store.render("mine", ctx).html is None
    (folder / "body.html.j2").write_text("<p>{{ erp.KU_PASSWORT }}</p>", "utf-8")
    assert store.render("mine", ctx).html == "<p>Qz7&lt;b&gt;&amp;Kx9</p>"
    (folder / "body.html.j2").unlink()
    assert store.render("mine", ctx).html is None


def test_required_file_removed_while_running(tmp_path):
    folder = _layout(tmp_path, "mine", "S", "Text {{ erp.KU_PASSWORT }}")
    store = LayoutStore(tmp_path)
    ctx = build_context(_address(), platform=_platform())
    assert store.render("mine", ctx).text.startswith("Text")
    (folder / "body.txt.j2").unlink()
    with pytest.raises(LayoutError, match="has no body.txt.j2"):
        store.render("mine", ctx)
    (folder / "body.txt.j2").write_text("Wieder da {{ erp.KU_PASSWORT }}", "utf-8")
    assert store.render("mine", ctx).text.startswith("Wieder da")


def test_a_fixed_syntax_error_is_picked_up(tmp_path):
    folder = _layout(tmp_path, "mine", "S", "{% if %}")
    store = LayoutStore(tmp_path)
    ctx = build_context(_address(), platform=_platform())
    for _ in range(2):  # the error is not remembered in place of a template
        with pytest.raises(LayoutError, match="body.txt.j2 line 1"):
            store.render("mine", ctx)
    (folder / "body.txt.j2").write_text("Repariert {{ erp.KU_PASSWORT }}", "utf-8")
    _touch_later(folder / "body.txt.j2")
    assert store.render("mine", ctx).text.startswith("Repariert")


def test_templates_are_compiled_once_per_change(tmp_path, monkeypatch):
    folder = _layout(tmp_path, "mine", "S {{ shop.name }}", "T {{ erp.KU_PASSWORT }}", "<p>H</p>")
    store = LayoutStore(tmp_path)
    loads: list[str] = []
    real = store.env.loader.get_source

    def counting(environment, template):
        loads.append(template)
        return real(environment, template)

    monkeypatch.setattr(store.env.loader, "get_source", counting)
    ctx = build_context(_address(), platform=_platform())
    for _ in range(5):
        assert store.render("mine", ctx).text == f"T {PASSWORD}"
    assert sorted(loads) == ["mine/body.html.j2", "mine/body.txt.j2", "mine/subject.txt.j2"]
    loads.clear()
    (folder / "body.txt.j2").write_text("T2 {{ erp.KU_PASSWORT }}", "utf-8")
    _touch_later(folder / "body.txt.j2")
    for _ in range(3):
        assert store.render("mine", ctx).text == f"T2 {PASSWORD}"
    assert loads == ["mine/body.txt.j2"]  # only the edited file is read again


def test_jinja_globals_are_available(tmp_path):
    body = ("{% set ns = namespace(n=0) %}{% for i in range(3) %}{% set ns.n = ns.n + i %}{% endfor %}"
            "{{ ns.n }} {{ dict(a=1)['a'] }} {% set c = cycler('x', 'y') %}{{ c.next() }}{{ c.next() }}")
    _layout(tmp_path, "globals", "S", body, f"<p>{body}</p>")
    out = LayoutStore(tmp_path).render("globals", build_context(_address()))
    assert out.text == "3 1 xy" and out.html == "<p>3 1 xy</p>"


def test_missing_layouts_dir_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="mail.layouts_dir"):
        LayoutStore(tmp_path / "nope")


def test_unknown_layout_names_what_exists(tmp_path):
    store = LayoutStore(tmp_path)
    for name in ("nope", "../credentials", "credentials/../x", ""):
        with pytest.raises(LayoutError) as err:
            store.render(name, {})
        assert "not found" in str(err.value) and "credentials" in str(err.value)
    item = store.check("nope", PW_COL)[0]
    assert not item.ok and "'nope' not found" in item.detail


def test_incomplete_layout(tmp_path):
    folder = tmp_path / "half"
    folder.mkdir()
    (folder / "body.txt.j2").write_text("{{ erp.KU_PASSWORT }}")
    store = LayoutStore(tmp_path)
    with pytest.raises(LayoutError, match="subject.txt.j2"):
        store.render("half", build_context(_address()))
    assert any("subject.txt.j2 is missing" in i.detail for i in store.check("half", PW_COL))


# --------------------------------------------------------------------------- strictness, escaping


def test_strict_undefined_names_layout_file_and_variable(tmp_path):
    _layout(tmp_path, "typo", "S", "Zeile 1\n{{ erp.KU_PASWORT }}\n")
    store = LayoutStore(tmp_path)
    with pytest.raises(LayoutError) as err:
        store.render("typo", build_context(_address()))
    text = str(err.value)
    assert "'typo'" in text and "body.txt.j2" in text and "KU_PASWORT" in text and "line 2" in text
    assert err.value.layout == "typo" and err.value.file == "body.txt.j2" and err.value.code == "layout"
    _layout(tmp_path, "toplevel", "{{ kunde }}", "x")
    with pytest.raises(LayoutError, match="subject.txt.j2.*'kunde' is undefined"):
        store.render("toplevel", build_context(_address()))


def test_none_renders_empty(tmp_path):
    _layout(tmp_path, "none", "S", "Ort: [{{ erp.KU_ORT }}] [{{ address.city }}]")
    assert LayoutStore(tmp_path).render("none", build_context(_address())).text == "Ort: [] []"


def test_autoescape_in_html_only(tmp_path):
    body = "{{ address.company }} {{ erp.KU_PASSWORT }}"
    _layout(tmp_path, "esc", "{{ address.company }}", body, f"<p>{body}</p>")
    out = LayoutStore(tmp_path).render("esc", build_context(_address(company="<script>x</script> & Co")))
    assert out.text == f"<script>x</script> & Co {PASSWORD}"
    assert out.subject == "<script>x</script> & Co"
    assert out.html == "<p>&lt;script&gt;x&lt;/script&gt; &amp; Co Qz7&lt;b&gt;&amp;Kx9</p>"


def test_subject_is_one_line(tmp_path):
    _layout(tmp_path, "multi", "Zeile 1\r\nBcc: x@evil.example\n{{ address.last_name }}\u2028!", "x")
    out = LayoutStore(tmp_path).render("multi", build_context(_address()))
    assert out.subject == "Zeile 1 Bcc: x@evil.example Müller !"


def test_sandbox_blocks_unsafe_access(tmp_path):
    _layout(tmp_path, "evil", "S", "{{ erp.__class__.__mro__[1].__subclasses__() }}")
    with pytest.raises(LayoutError, match="evil"):
        LayoutStore(tmp_path).render("evil", build_context(_address()))


def test_layouts_cannot_change_the_context(tmp_path):
    _layout(tmp_path, "mutate", "S", "{{ erp.clear() }}{{ erp.update({'KU_PASSWORT': 'x'}) }}")
    ctx = build_context(_address())
    with pytest.raises(LayoutError, match="mutate"):
        LayoutStore(tmp_path).render("mutate", ctx)
    assert ctx["erp"][PW_COL] == PASSWORD


def test_umlauts_in_templates_and_data(tmp_path):
    _layout(tmp_path, "umlaut", "Grüße für {{ address.last_name }}", "Ä Ö Ü ß € {{ address.first_name }}")
    out = LayoutStore(tmp_path).render("umlaut", build_context(_address()))
    assert out.subject == "Grüße für Müller" and out.text == "Ä Ö Ü ß € Jürgen"


# --------------------------------------------------------------------------- the AST check


@pytest.mark.parametrize(
    "body",
    [
        "{{ erp.KU_PASSWORT }}",
        "{{ erp['KU_PASSWORT'] }}",
        "{{ erp[password_column] }}",
        "{% if erp.KU_PASSWORT %}Passwort: {{ erp.KU_PASSWORT | trim }}{% endif %}",
        "{% set pw = erp['KU_PASSWORT'] %}{{ pw }}",
    ],
)
def test_check_accepts_layouts_that_read_the_password(tmp_path, body):
    _layout(tmp_path, "ok", "S", body)
    items = LayoutStore(tmp_path).check("ok", PW_COL)
    assert [i.ok for i in items] == [True], items
    assert "KU_PASSWORT" in items[0].detail


def test_column_names_are_case_insensitive(tmp_path):
    _layout(tmp_path, "lower", "S", "{{ erp.ku_passwort }} {{ erp['Ku_Firma'] }}")
    store = LayoutStore(tmp_path)
    assert store.check("lower", PW_COL)[0].ok
    out = store.render("lower", build_context(_address()))
    assert out.text == f"{PASSWORD} Möbel & Söhne"
    _layout(tmp_path, "typo", "S", "{{ erp.ku_passwort2 }}")
    with pytest.raises(LayoutError, match="ku_passwort2"):
        store.render("typo", build_context(_address()))


def test_check_accepts_the_password_in_the_subject(tmp_path):
    _layout(tmp_path, "subj", "Ihr Passwort {{ erp.KU_PASSWORT }}", "Text")
    assert LayoutStore(tmp_path).check("subj", PW_COL)[0].ok


@pytest.mark.parametrize(
    "body",
    [
        "Kein Passwort hier, nur {{ erp.KU_EMAIL }}",
        "{{ erp.KU_PASSWORT2 }}",
        "{{ address.email }} erp.KU_PASSWORT",
        "{# {{ erp.KU_PASSWORT }} #}",
        "{{ other.KU_PASSWORT }}",
    ],
)
def test_check_refuses_layouts_that_do_not_read_the_password(tmp_path, body):
    _layout(tmp_path, "bad", "S", body)
    items = LayoutStore(tmp_path).check("bad", PW_COL)
    assert not all(i.ok for i in items)
    detail = " ".join(i.detail for i in items if not i.ok)
    assert "'KU_PASSWORT'" in detail and "body.txt.j2" in detail and str(tmp_path / "bad") in detail


def test_check_with_columns_finds_unknown_erp_columns(tmp_path):
    body = "{{ erp[password_column] }} {{ erp['ku_ort'] }} {{ erp.KU_VORNAM }}"
    _layout(tmp_path, "cols", "{{ erp.KU_NAME }}", body)
    store = LayoutStore(tmp_path)
    columns = ["KU_NR", "KU_NAME", "KU_ORT", PW_COL]
    details = [i.detail for i in store.check("cols", PW_COL, columns=columns) if not i.ok]
    expected = f"{tmp_path / 'cols'}: body.txt.j2: erp.KU_VORNAM: the ERP row has no column 'KU_VORNAM'"
    assert details == [expected]
    assert store.check("cols", PW_COL)[0].ok  # without columns nothing is known about the row
    assert store.check("credentials", PW_COL, columns=columns)[0].ok  # shipped: erp[password_column] only


def test_check_refuses_password_only_in_html(tmp_path):
    _layout(tmp_path, "htmlonly", "S", "Text", "<p>{{ erp.KU_PASSWORT }}</p>")
    (item,) = LayoutStore(tmp_path).check("htmlonly", PW_COL)
    assert not item.ok and "only body.html.j2" in item.detail


def test_check_refuses_html_without_password(tmp_path):
    _layout(tmp_path, "textonly", "S", "{{ erp.KU_PASSWORT }}", "<p>Kein Passwort</p>")
    (item,) = LayoutStore(tmp_path).check("textonly", PW_COL)
    assert not item.ok and "body.html.j2 does not read" in item.detail


def test_check_reports_syntax_errors_and_unknown_names(tmp_path):
    _layout(tmp_path, "broken", "S", "{{ erp.KU_PASSWORT }}\n{% if %}\n")
    items = LayoutStore(tmp_path).check("broken", PW_COL)
    assert any("body.txt.j2 line 2" in i.detail for i in items if not i.ok)
    body = "{{ erp.KU_PASSWORT }} {{ address.vorname }} {{ shop.nme }}"
    _layout(tmp_path, "names", "{{ kunde.name }}", body)
    details = [i.detail for i in LayoutStore(tmp_path).check("names", PW_COL) if not i.ok]
    assert any("unknown variable 'kunde'" in d and "subject.txt.j2" in d for d in details)
    assert any("address.vorname" in d for d in details)
    assert any("shop.nme" in d for d in details)


# --------------------------------------------------------------------------- context and preview


def test_build_context_defaults():
    ctx = build_context(_address(), platform=_platform())
    assert ctx["password_column"] == PW_COL
    assert ctx["shop"] == {"name": "shop", "display_name": "Möbelhaus Süd", "url": "https://shop.example.com",
                           "login_url": "https://shop.example.com/account/login"}
    assert ctx["customer"] == {"email": "juergen@example.com", "number": "10001"}
    assert ctx["address"]["first_name"] == "Jürgen"
    assert ctx["erp"][PW_COL] == PASSWORD

    class Shop:
        name = "shop"
        login_url = "https://shop.example.com/konto"

    ctx = build_context(_address(), {"kennwort": "x"}, _platform(sender=None), "K-77", "other@example.com",
                        shop=Shop(), password_column="KENNWORT")
    assert ctx["password_column"] == "kennwort"  # the row's own spelling
    assert ctx["shop"]["login_url"] == "https://shop.example.com/konto"
    assert ctx["shop"]["display_name"] == "shop.example.com"
    assert ctx["customer"] == {"email": "other@example.com", "number": "K-77"}


def test_display_name_follows_each_sender():
    cases = [
        (dict(sender="Möbelhaus Süd <shop@moebel.example>"), "Möbelhaus Süd"),
        (dict(sender="Küchenstudio <k@kueche.example>"), "Küchenstudio"),
        (dict(sender="k@kueche.example", url="https://kueche.example/"), "kueche.example"),
        (dict(sender=None, url="https://b2b.example.com"), "b2b.example.com"),
    ]
    for kw, display in cases * 2:  # twice: the per-sender cache must not mix them up
        assert build_context(_address(), platform=_platform(**kw))["shop"]["display_name"] == display
    assert build_context(_address(), platform=_platform(), sender="Anders <a@b.example>")["shop"][
        "display_name"] == "Anders"
    assert build_context(_address(), platform={"name": "shop", "url": ""})["shop"]["display_name"] == "shop"


def test_preview_uses_the_placeholder_and_writes_nothing():
    address = _address()
    before = dict(address.row)
    out = LayoutStore().preview("credentials", address, PW_COL, platform=_platform())
    assert "••••••••••" in out.text and PASSWORD not in out.text and PASSWORD not in (out.html or "")
    assert dict(address.row) == before


def test_rendered_layout_goes_through_smtp_intact(smtp_server):
    from syncd.config.model import MailSettings
    from syncd.connectors.mail import open_transport
    from syncd.core.domain import OutgoingMail

    out = LayoutStore().render("credentials", build_context(_address(), platform=_platform()))
    settings = MailSettings(host=smtp_server.host, port=smtp_server.port, security="none",
                            sender="Möbelhaus Süd <shop@moebel.example>")
    open_transport(settings).send(OutgoingMail(
        to_addr="juergen@example.com", to_name="Jürgen Müller", sender=settings.sender,
        subject=out.subject, text=out.text, html=out.html,
    ))
    (msg,) = smtp_server.wait_for(1)
    assert msg["Subject"] == "Ihre Zugangsdaten für Möbelhaus Süd"
    assert msg.get_content_type() == "multipart/alternative"
    assert PASSWORD in msg.get_body(("plain",)).get_content()
    assert "Bitte ändern Sie dieses Passwort" in msg.get_body(("plain",)).get_content()
    assert "Qz7&lt;b&gt;&amp;Kx9" in msg.get_body(("html",)).get_content()


pytest_plugins = ["tests.support.mailserver"]

import keyring
import pytest
from keyring.backends import fail, null

from syncd.config.loader import parse_settings
from syncd.config.secrets import keyring_backend, resolve_all, resolve_secret
from syncd.core import redaction
from syncd.core.errors import ConfigError

CONFIG = """
[erp]
url = "mssql+pyodbc://sa:UrlPw-1234@erp-dsn"
password = "env:ERP_PW"
[mail]
password = "keyring:syncd/smtp"
[[platforms]]
name = "shop"
url = "https://shop.example.com"
client_id = "id"
client_secret = "credential:shop-secret"
"""


def test_env_reference(monkeypatch):
    monkeypatch.setenv("MY_SECRET", "from-env-123")
    assert resolve_secret("env:MY_SECRET", file="f.toml", key="erp.password") == "from-env-123"
    assert redaction.redact("x from-env-123 y") == f"x {redaction.MASK} y"


def test_missing_env_names_reference_and_key(monkeypatch):
    monkeypatch.delenv("NOPE_SECRET", raising=False)
    with pytest.raises(ConfigError) as info:
        resolve_secret("env:NOPE_SECRET", file="f.toml", key="mail.password")
    e = info.value
    assert (e.file, e.key, e.value) == ("f.toml", "mail.password", "env:NOPE_SECRET")
    assert "not set" in e.message


def test_keyring_reference(memory_keyring):
    memory_keyring.set_password("syncd", "erp", "kr-secret-999")
    assert resolve_secret("keyring:syncd/erp", file=None, key="erp.password") == "kr-secret-999"
    assert "kr-secret-999" not in redaction.redact("kr-secret-999")


def test_missing_keyring_entry_tells_how_to_store_it():
    with pytest.raises(ConfigError) as info:
        resolve_secret("keyring:syncd/shop", file="f.toml", key="platforms[0].client_secret")
    assert info.value.value == "keyring:syncd/shop"
    assert "syncd secrets set shop" in info.value.allowed


@pytest.mark.parametrize("backend", [fail.Keyring(), null.Keyring()])
def test_unusable_keyring_backends_are_refused(backend):
    keyring.set_keyring(backend)
    with pytest.raises(ConfigError) as info:
        resolve_secret("keyring:syncd/erp", file="f.toml", key="erp.password")
    assert "PYTHON_KEYRING_BACKEND" in info.value.allowed
    assert "credential:" in info.value.allowed


def test_plaintext_keyring_is_refused(tmp_path, monkeypatch):
    file_backend = pytest.importorskip("keyrings.alt.file")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    keyring.set_keyring(file_backend.PlaintextKeyring())
    with pytest.raises(ConfigError, match="plain text"):
        keyring_backend()


def test_chainer_with_plaintext_member_is_refused(tmp_path, monkeypatch):
    file_backend = pytest.importorskip("keyrings.alt.file")
    from keyring.backends import chainer

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    monkeypatch.setattr(chainer.ChainerBackend, "backends", [file_backend.PlaintextKeyring()])
    keyring.set_keyring(chainer.ChainerBackend())
    with pytest.raises(ConfigError, match="includes PlaintextKeyring"):
        keyring_backend()


def test_env_var_backend_selection_is_honoured(monkeypatch):
    # keyring's own selection: PYTHON_KEYRING_BACKEND names the null backend -> refused.
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.null.Keyring")
    keyring.core._keyring_backend = None
    keyring.core.init_backend()
    with pytest.raises(ConfigError, match="null"):
        keyring_backend()


def test_credential_reference(tmp_path, monkeypatch):
    (tmp_path / "shop-secret").write_text("cred-value-42\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    assert resolve_secret("credential:shop-secret", file=None, key="k") == "cred-value-42"
    with pytest.raises(ConfigError, match="cannot read"):
        resolve_secret("credential:other", file=None, key="k")
    with pytest.raises(ConfigError, match="malformed"):
        resolve_secret("credential:../etc/passwd", file=None, key="k")
    monkeypatch.delenv("CREDENTIALS_DIRECTORY")
    with pytest.raises(ConfigError, match="CREDENTIALS_DIRECTORY"):
        resolve_secret("credential:shop-secret", file=None, key="k")


def test_plain_text_secret_works_with_a_warning_naming_the_key_only(captured_logs):
    assert resolve_secret("PlainPw-777", file="f.toml", key="mail.password") == "PlainPw-777"
    events = captured_logs.events()
    assert events[0]["level"] == "warning" and events[0]["key"] == "mail.password"
    assert "PlainPw-777" not in captured_logs.text


def test_typo_in_scheme_is_an_error_not_a_plain_password():
    with pytest.raises(ConfigError) as info:
        resolve_secret("keyrnig:syncd/erp", file=None, key="erp.password")
    assert "did you mean 'keyring'" in info.value.message
    # a password that merely contains a colon is still a (plain) password
    assert resolve_secret("ab:cd efg", file=None, key="k") == "ab:cd efg"


def test_empty_reference_is_none():
    assert resolve_secret(None, file=None, key="k") is None
    assert resolve_secret("", file=None, key="k") is None


def test_resolve_all(tmp_path, monkeypatch, memory_keyring, captured_logs):
    (tmp_path / "shop-secret").write_text("ClientSecret-ABC")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    monkeypatch.setenv("ERP_PW", "ErpPw-xyz9")
    memory_keyring.set_password("syncd", "smtp", "SmtpPw-555")
    settings = parse_settings(CONFIG)
    secrets = resolve_all(settings, "/etc/syncd/config.toml")
    assert secrets.erp_password == "ErpPw-xyz9"
    assert secrets.mail_password == "SmtpPw-555"
    assert secrets.client_secret("shop") == "ClientSecret-ABC"
    with pytest.raises(KeyError):
        secrets.client_secret("other")
    for value in ("ErpPw-xyz9", "SmtpPw-555", "ClientSecret-ABC", "UrlPw-1234"):
        assert value not in repr(secrets)
        assert redaction.redact(value) == redaction.MASK
    # the password inside the ERP URL is flagged by key, never shown
    assert any(e.get("key") == "erp.url" for e in captured_logs.events())
    assert "UrlPw-1234" not in captured_logs.text


def test_resolve_all_stops_at_missing_secret(monkeypatch):
    monkeypatch.delenv("ERP_PW", raising=False)
    with pytest.raises(ConfigError) as info:
        resolve_all(parse_settings(CONFIG), "c.toml")
    assert (info.value.key, info.value.value) == ("erp.password", "env:ERP_PW")


def test_odbc_connect_password_is_registered():
    settings = parse_settings(
        CONFIG.replace(
            "mssql+pyodbc://sa:UrlPw-1234@erp-dsn",
            "mssql+pyodbc:///?odbc_connect=DRIVER%3DX%3BUID%3Dsa%3BPWD%3DOdbcPw-31337",
        ).replace('password = "env:ERP_PW"\n', "", 1)
    )
    from syncd.config.secrets import _register_url_passwords

    _register_url_passwords(settings, None)
    assert redaction.redact("OdbcPw-31337") == redaction.MASK

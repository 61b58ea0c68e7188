import subprocess
import sys
from pathlib import Path

import keyring
import pytest

from syncd.core import redaction
from syncd.shell.cli import run_cli
from syncd.shell.logs import reset_logging

VERBS = ["run", "sync", "check", "clear-cache", "status", "accounts", "layouts", "secrets", "demo", "service"]


@pytest.fixture(autouse=True)
def _reset_logging():
    yield
    reset_logging()


@pytest.fixture
def cfg(tmp_path, monkeypatch):
    """A valid config whose state store lives in tmp_path; returns (write, state_db)."""
    state_db = tmp_path / "state" / "state.db"
    monkeypatch.setenv("SHOP_SECRET", "Shop-Secret-4242")
    monkeypatch.delenv("SYNCD_CONFIG", raising=False)
    base = f"""
[daemon]
state_url = "sqlite:///{state_db}"
[erp]
url = "sqlite:///{tmp_path / 'erp.db'}"
profile = "bueroplus"
[[platforms]]
name = "shop"
url = "https://shop.example.com"
client_id = "id"
client_secret = "env:SHOP_SECRET"
"""

    def write(extra: str = "", *, replace: tuple[str, str] | None = None) -> Path:
        text = base.replace(*replace) if replace else base
        path = tmp_path / "config.toml"
        path.write_text(text + extra)
        return path

    return write, state_db


def _run(capsys, *args):
    code = run_cli([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_help_lists_every_verb(capsys):
    code, out, _ = _run(capsys, "--help")
    assert code == 0
    for verb in VERBS:
        assert f"\n  {verb} " in out, verb
    for group, subs in {
        "accounts": ["list", "export", "send-credentials", "reset-password", "deactivate"],
        "layouts": ["list", "preview"],
        "secrets": ["set"],
        "service": ["install", "remove", "start", "stop"],
    }.items():
        code, out, _ = _run(capsys, group, "--help")
        assert code == 0
        for sub in subs:
            assert f"\n  {sub} " in out, (group, sub)
    code, out, _ = _run(capsys, "sync", "--help")
    assert "--platform" in out and "erp-to-shop" in out and "--dry-run" in out
    code, out, _ = _run(capsys, "layouts", "preview", "--help")
    assert "--address" in out


def test_python_dash_m_works():
    result = subprocess.run([sys.executable, "-m", "syncd", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "clear-cache" in result.stdout
    result = subprocess.run([sys.executable, "-m", "syncd", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and "syncd" in result.stdout


def test_usage_errors_exit_2(capsys):
    assert _run(capsys, "no-such-verb")[0] == 2
    assert _run(capsys, "--log-level", "loud", "status")[0] == 2
    assert _run(capsys, "sync", "--direction", "sideways")[0] == 2
    assert _run(capsys, "layouts", "preview", "credentials")[0] == 2  # --address missing


BAD_INPUTS = {
    "broken toml": (('client_id = "id"', "client_id = id"), "", "platforms[0].client_id", "client_id = id"),
    "wrong type": (None, "[mail]\nport = \"smtp\"\n", "mail.port", "'smtp'"),
    "unknown key": (None, "[platforms.addresses]\nskip_blokced = true\n", "skip_blokced", "True"),
    "duplicate platform": (
        None,
        '[[platforms]]\nname = "shop"\nurl = "https://b"\nclient_id = "x"\nclient_secret = "env:X"\n',
        "platforms[1].name",
        "'shop'",
    ),
    "password field is a mapped column": (
        None,
        '[platforms.addresses]\nsend_credentials = true\npassword_field = "EMail1"\n',
        "platforms[0].addresses.password_field",
        "'EMail1'",
    ),
    "next number outside debtor range": (
        None,
        "[platforms.addresses]\nnext_address_number = 99999\n",
        "platforms[0].addresses.next_address_number",
        "99999",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
@pytest.mark.parametrize("verb", [["check"], ["run"], ["sync", "--dry-run"], ["status"]])
def test_bad_input_exits_2_naming_file_key_value_and_writes_nothing(cfg, capsys, case, verb):
    write, state_db = cfg
    replace, extra, key, value = BAD_INPUTS[case]
    path = write(extra, replace=replace)
    code, out, err = _run(capsys, "--config", path, *verb)
    assert code == 2, (out, err)
    assert str(path) in err and key in err and value in err
    assert "Traceback" not in err + out
    assert not state_db.exists() and not state_db.parent.exists()


def test_absent_config_file_exits_2(tmp_path, capsys):
    missing = tmp_path / "missing.toml"
    code, _, err = _run(capsys, "--config", missing, "run")
    assert code == 2 and str(missing) in err and "does not exist" in err


def test_config_from_environment_variable(cfg, capsys, monkeypatch):
    write, _ = cfg
    path = write("[mail]\nport = \"x\"\n")
    monkeypatch.setenv("SYNCD_CONFIG", str(path))
    code, _, err = _run(capsys, "status")
    assert code == 2 and str(path) in err


def test_missing_secret_is_a_config_error_naming_the_reference(cfg, capsys, monkeypatch):
    write, state_db = cfg
    monkeypatch.delenv("SHOP_SECRET")
    code, _, err = _run(capsys, "--config", write(), "run")
    assert code == 2
    assert "platforms[0].client_secret" in err and "env:SHOP_SECRET" in err
    assert not state_db.exists()


def test_unknown_platform_is_a_usage_error(cfg, capsys):
    write, _ = cfg
    code, _, err = _run(capsys, "--config", write(), "sync", "--platform", "nope")
    assert code == 2 and "nope" in err and "shop" in err


def test_check_passes_and_prints_table(cfg, capsys, monkeypatch):
    # Only the rows this module owns (config, secrets, state store); the connector checks run
    # against a real ERP and the sandbox in test_cli_wired.py.
    monkeypatch.setattr("syncd.shell.cli.check.collect_checks", lambda loaded, secrets, missing=None: [])
    write, state_db = cfg
    code, out, err = _run(capsys, "--config", write(), "check")
    assert code == 0, err
    assert "platforms[0].client_secret" in out and "env:SHOP_SECRET" in out
    assert "Shop-Secret-4242" not in out + err
    assert not state_db.exists()


def test_check_lists_every_failed_secret_and_exits_2(cfg, capsys, monkeypatch):
    write, _ = cfg
    monkeypatch.delenv("SHOP_SECRET")
    path = write('[mail]\npassword = "keyring:syncd/smtp"\n')
    code, out, err = _run(capsys, "--config", path, "check")
    assert code == 2
    assert "mail.password" in out and "platforms[0].client_secret" in out
    # The two secrets, and the ERP file (missing here), which is checked although secrets failed.
    assert "3 check(s) failed" in err and "skipped: secret" in " ".join(out.split())


def test_check_hook_items_are_shown_and_decide_the_exit_code(cfg, capsys, monkeypatch):
    from syncd.core.domain import CheckItem

    write, _ = cfg
    monkeypatch.setattr(
        "syncd.shell.cli.check.collect_checks",
        lambda loaded, secrets, missing=None: [
            CheckItem("erp", "password field", False, "Sel9 is 8 characters")
        ],
    )
    code, out, _ = _run(capsys, "--config", write(), "check")
    assert code == 2 and "Sel9 is 8 characters" in out


def test_secrets_set_from_stdin(memory_keyring, capsys, monkeypatch):
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("Stdin-Secret-88\n"))
    code, out, err = _run(capsys, "secrets", "set", "smtp", "--stdin")
    assert code == 0, err
    assert memory_keyring.get_password("syncd", "smtp") == "Stdin-Secret-88"
    assert 'password = "keyring:syncd/smtp"' in out
    assert "Stdin-Secret-88" not in out + err


def test_secrets_set_prompts_without_echo(memory_keyring, capsys, monkeypatch):
    prompts = []

    def fake_prompt(text, hide_input=False, confirmation_prompt=False, **kw):
        prompts.append((hide_input, confirmation_prompt))
        return "Prompted-Secret-1"

    monkeypatch.setattr("click.prompt", fake_prompt)
    code, _, _ = _run(capsys, "secrets", "set", "erp")
    assert code == 0 and prompts == [(True, True)]
    assert memory_keyring.get_password("syncd", "erp") == "Prompted-Secret-1"


def test_secrets_set_refuses_plaintext_backend_and_bad_input(tmp_path, capsys, monkeypatch):
    import io

    from keyring.backends import null

    monkeypatch.setattr("sys.stdin", io.StringIO("x\n"))
    keyring.set_keyring(null.Keyring())
    code, _, err = _run(capsys, "secrets", "set", "erp", "--stdin")
    assert code == 2 and "PYTHON_KEYRING_BACKEND" in err
    assert _run(capsys, "secrets", "set", "bad/name", "--stdin")[0] == 2


def test_secrets_set_empty_value(memory_keyring, capsys, monkeypatch):
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("\n"))
    assert _run(capsys, "secrets", "set", "erp", "--stdin")[0] == 2
    assert memory_keyring.store == {}


def test_unexpected_error_is_one_redacted_line_exit_1(cfg, capsys, monkeypatch):
    write, _ = cfg

    def boom(*a, **k):
        raise RuntimeError("shop said no to Shop-Secret-4242")

    monkeypatch.setattr("syncd.shell.cli.run.run_daemon", boom)
    code, out, err = _run(capsys, "--config", write(), "--log-format", "json", "run")
    assert code == 1
    assert "Shop-Secret-4242" not in out + err
    assert "RuntimeError" in err and redaction.MASK in err


def test_runtime_syncd_error_exits_1(cfg, capsys, monkeypatch):
    from syncd.core.errors import TransientError

    write, _ = cfg
    monkeypatch.setattr(
        "syncd.shell.cli.run.run_daemon",
        lambda *a, **k: (_ for _ in ()).throw(TransientError("ERP unreachable")),
    )
    code, _, err = _run(capsys, "--config", write(), "run")
    assert code == 1 and "ERP unreachable" in err


def test_service_verbs_explain_on_linux(cfg, capsys):
    if sys.platform == "win32":
        pytest.skip("Linux behaviour")
    write, _ = cfg
    code, _, err = _run(capsys, "--config", write(), "service", "install")
    assert code == 2 and "systemd" in err


def test_german_messages(cfg, capsys, monkeypatch):
    write, _ = cfg
    monkeypatch.setenv("LANG", "de_DE.UTF-8")
    monkeypatch.delenv("LC_ALL", raising=False)
    monkeypatch.delenv("LC_MESSAGES", raising=False)
    code, _, err = _run(capsys, "--config", write("[mail]\nport = \"x\"\n"), "status")
    assert code == 2 and "Konfigurationsfehler" in err


def test_check_reports_the_state_store_without_creating_it(cfg, capsys, monkeypatch):
    monkeypatch.setattr("syncd.shell.cli.check.collect_checks", lambda loaded, secrets, missing=None: [])
    write, state_db = cfg
    code, out, _ = _run(capsys, "--config", write(), "check")
    assert code == 0 and "daemon.state_url" in out and "will be created" in out
    assert not state_db.parent.exists()


def test_check_fails_on_a_store_from_a_newer_syncd(cfg, capsys):
    from sqlalchemy import text

    from syncd.state.db import open_state

    write, state_db = cfg
    with open_state(f"sqlite:///{state_db}") as store, store.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'ffff'"))
    code, out, _ = _run(capsys, "--config", write(), "check")
    assert code == 2 and "newer syncd" in out

"""No configuration error ever echoes a secret (issue 14): not through the secret keys, not
through a misspelt secret key, not through an unknown key in a table that holds secrets.

Parametrised from the model (``secret_key_paths``), so a secret key added later is covered."""

import tomllib

import pytest

from syncd.config.loader import parse_settings
from syncd.config.model import Settings, secret_key_paths
from syncd.core.errors import ConfigError

SECRET = "Sup3r-Geheim-Wert-77"
BASE = """
[erp]
url = "sqlite:///erp.db"
[[platforms]]
name = "shop"
url = "https://shop.example.com/"
client_id = "id"
client_secret = "env:SHOP_SECRET"
"""
PATHS = secret_key_paths()


def _toml(data: dict, prefix: str = "") -> str:
    """A tiny TOML writer for the shapes of a syncd config (scalars, tables, arrays of tables)."""
    lines, tables = [], []
    for key, value in data.items():
        if isinstance(value, dict):
            tables.append((f"[{prefix}{key}]", value, f"{prefix}{key}."))
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            tables += [(f"[[{prefix}{key}]]", item, f"{prefix}{key}.") for item in value]
        else:
            lines.append(f"{key} = {_scalar(value)}")
    out = "\n".join(lines) + "\n"
    for header, table, sub in tables:
        out += f"{header}\n{_toml(table, sub)}"
    return out


def _scalar(value) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_scalar(v) for v in value) + "]"
    return str(value)


def _with(path, value) -> str:
    data = tomllib.loads(BASE)
    table = data
    for part in path[:-1]:
        table = table[part] if isinstance(part, int) else table.setdefault(part, {})
    table[path[-1]] = value
    return _toml(data)


def _error(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_settings(text, file="/etc/syncd/config.toml")
    return str(info.value)


def _typos(name: str) -> list[str]:
    """A dropped letter, two letters swapped, a letter doubled, a German spelling or a plural."""
    swapped = name[0] + name[2] + name[1] + name[3:]
    other = name.replace("word", "wort") if "word" in name else name + "s"
    return [name[:2] + name[3:], swapped, name[:3] + name[2] + name[3:], other]


def _ids(path) -> str:
    return ".".join(str(p) for p in path)


def test_the_model_has_the_known_secret_keys():
    # A guard for the walk itself: these three exist today; more may come.
    assert {("erp", "password"), ("mail", "password"), ("platforms", 0, "client_secret")} <= set(PATHS)
    assert all(len(p) >= 2 for p in PATHS)
    Settings.model_validate(tomllib.loads(BASE))


@pytest.mark.parametrize("path", PATHS, ids=_ids)
def test_a_secret_key_with_a_wrong_type_is_not_echoed(path):
    err = _error(_with(path, 982734561234))
    assert "982734561234" not in err


@pytest.mark.parametrize("path", PATHS, ids=_ids)
def test_a_secret_key_with_broken_toml_is_not_echoed(path):
    text = _with(path, SECRET).replace(f'"{SECRET}"', f'"{SECRET}')
    err = _error(text)
    assert SECRET not in err and SECRET[:8] not in err


@pytest.mark.parametrize("path", PATHS, ids=_ids)
@pytest.mark.parametrize("typo", range(4))
def test_a_misspelt_secret_key_is_not_echoed_but_its_length_is(path, typo):
    name = _typos(str(path[-1]))[typo]
    text = _with((*path[:-1], name), SECRET)
    err = _error(text)
    assert SECRET not in err
    assert f"<hidden: {len(SECRET)} characters>" in err
    assert "unknown key" in err and name in err
    # Broken TOML on that line hides it too.
    err = _error(text.replace(f'"{SECRET}"', f'"{SECRET}'))
    assert SECRET not in err and SECRET[:8] not in err


@pytest.mark.parametrize("path", PATHS, ids=_ids)
@pytest.mark.parametrize("typo", range(4))
def test_a_misspelt_secret_key_in_a_table_without_secrets_is_not_echoed(path, typo):
    name = _typos(str(path[-1]))[typo]
    err = _error(_with(("daemon", name), SECRET))
    assert SECRET not in err and f"<hidden: {len(SECRET)} characters>" in err


@pytest.mark.parametrize("path", PATHS, ids=_ids)
def test_any_unknown_key_in_a_table_with_secrets_shows_only_a_length(path):
    # A secret under a name that resembles nothing (a wrong key, pasted in the wrong line).
    err = _error(_with((*path[:-1], "hots"), SECRET))
    assert SECRET not in err and f"<hidden: {len(SECRET)} characters>" in err


def test_an_unknown_key_elsewhere_still_shows_its_value():
    err = _error(_with(("platforms", 0, "addresses", "skip_blokced"), True))
    assert "(got True)" in err


def test_check_does_not_print_a_misspelt_mail_password(tmp_path, capsys, monkeypatch):
    from syncd.shell.cli import run_cli

    monkeypatch.setenv("SHOP_SECRET", "x" * 12)
    path = tmp_path / "config.toml"
    path.write_text(BASE + f'[mail]\npasword = "{SECRET}"\n')
    code = run_cli(["--config", str(path), "check"])
    out, err = capsys.readouterr()
    assert code == 2
    assert SECRET not in out + err
    assert "mail.pasword" in err and f"<hidden: {len(SECRET)} characters>" in err

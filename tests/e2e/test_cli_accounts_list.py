"""`syncd accounts list`: by ERP number, with name and e-mail, one language per run, table / CSV /
JSON. A SQLite ERP, the sandbox of each platform kind (``shop`` fixture), the outbox; rows inserted
out of number order."""

from __future__ import annotations

import csv
import io
import json

import pytest

from syncd.shell.cli.accounts import LIST_FIELDS
from tests.support import wired_env as wired
from tests.support.wired_env import SAMPLE, Env, make_env

shop = wired.shop  # fixture: a sandbox of each platform kind

EXTRA = [
    {"number": 10020, "company": "Zeta GmbH", "street": "Allee 20", "zip": "50667", "city": "Köln",
     "country": "DE", "email": "info@zeta.example.com"},
    {"number": 10005, "company": "Äpfel & Birnen KG", "first_name": "Jörg", "last_name": "Öztürk",
     "salutation": "Herr", "street": "Markt 5", "zip": "04109", "city": "Leipzig", "country": "DE",
     "email": "joerg@aepfel.example.com"},
    {"number": 10010, "first_name": "Xaver", "last_name": "Xu", "street": "Platz 10", "zip": "01067",
     "city": "Dresden", "country": "DE", "email": "xaver@example.com"},
]


@pytest.fixture
def synced(tmp_path, shop, monkeypatch, capsys) -> Env:  # noqa: F811
    monkeypatch.delenv("LC_ALL", raising=False)
    monkeypatch.delenv("LC_MESSAGES", raising=False)
    monkeypatch.setenv("LANG", "C.UTF-8")
    e = make_env(tmp_path, shop.sandbox, monkeypatch, rows=list(reversed(EXTRA + SAMPLE)))
    code, _, err = e.cli(capsys, "sync", "--direction", "erp-to-shop")
    assert code == 0, err
    return e


EXPECTED = [
    (10001, "Anna Adler", "anna@example.com"),
    (10002, "Bernd Bauer", "bernd@example.com"),
    (10005, "Äpfel & Birnen KG, Jörg Öztürk", "joerg@aepfel.example.com"),
    (10010, "Xaver Xu", "xaver@example.com"),
    (10020, "Zeta GmbH", "info@zeta.example.com"),
]


def test_json_is_sorted_by_erp_number_with_name_and_email(synced: Env, capsys):
    code, out, err = synced.cli(capsys, "accounts", "list", "--format", "json")
    assert code == 0, err
    accounts = json.loads(out)["accounts"]
    assert [(a["address"], a["name"], a["email"]) for a in accounts] == EXPECTED
    assert list(accounts[0]) == list(LIST_FIELDS)
    assert accounts[0]["active"] is True and accounts[0]["password_status"] == "initial"
    assert accounts[0]["credentials_sent_at"].endswith("Z")


def test_csv_has_a_stable_header_and_the_same_order(synced: Env, capsys, monkeypatch):
    monkeypatch.setenv("LC_ALL", "de_DE.UTF-8")  # machine output does not change with the locale
    code, out, err = synced.cli(capsys, "accounts", "list", "--format", "csv")
    assert code == 0, err
    assert out.startswith(",".join(LIST_FIELDS) + "\r\n")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(int(r["address"]), r["name"], r["email"]) for r in rows] == EXPECTED
    assert {r["active"] for r in rows} == {"true"} and {r["password_status"] for r in rows} == {"initial"}


@pytest.mark.parametrize("how", ["--lang", "locale"])
def test_the_table_speaks_one_language_per_run(synced: Env, capsys, monkeypatch, how):
    args = ["accounts", "list"]
    if how == "--lang":
        args += ["--lang", "de"]
    else:
        monkeypatch.setenv("LC_ALL", "de_DE.UTF-8")
    code, german, err = synced.cli(capsys, *args)
    assert code == 0, err
    assert "Adresse" in german and "Zugangsdaten" in german and "Erstzugang" in german and " ja " in german
    assert "5 Konto/Konten" in german
    for english in ("account(s)", "Address", "initial", " yes ", "Password"):
        assert english not in german

    code, english_out, err = synced.cli(capsys, "accounts", "list", "--lang", "en")
    assert code == 0, err
    assert "Address" in english_out and "5 account(s)" in english_out and "initial" in english_out
    for word in ("Konto", "Adresse", "Erstzugang", " ja "):
        assert word not in english_out
    # In number order, top to bottom.
    positions = [english_out.index(email) for _n, _name, email in EXPECTED]
    assert positions == sorted(positions)
    assert "Äpfel & Birnen KG" in english_out


def test_names_missing_when_the_erp_cannot_be_read_and_the_list_still_shows(synced: Env, capsys):
    synced.erp_db.unlink()
    code, out, err = synced.cli(capsys, "accounts", "list", "--format", "json", "--lang", "en")
    assert code == 0, err
    assert "names not shown" in err
    accounts = json.loads(out)["accounts"]
    assert [a["address"] for a in accounts] == [n for n, _, _ in EXPECTED]
    assert {a["name"] for a in accounts} == {None}


def test_names_need_only_the_erp_secret(synced: Env, capsys, monkeypatch):
    """Found from a fresh clone: after `syncd demo` the shop's secret (an environment variable of
    the demo run) is gone, and the ERP names were hidden as "ERP not readable" because every
    secret was resolved to open the ERP."""
    monkeypatch.delenv(wired.SECRET_ENV)
    code, out, err = synced.cli(capsys, "accounts", "list", "--format", "json", "--lang", "en")
    assert code == 0, err
    assert "names not shown" not in err and "shop not reachable" in err
    names = [(a["address"], a["name"]) for a in json.loads(out)["accounts"]]
    assert names == [(n, name) for n, name, _ in EXPECTED]


def test_bad_format_or_language_is_a_usage_error(synced: Env, capsys):
    assert synced.cli(capsys, "accounts", "list", "--format", "xml")[0] == 2
    assert synced.cli(capsys, "accounts", "list", "--lang", "fr")[0] == 2

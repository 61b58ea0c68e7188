"""ERP value parsing and the engine factory's URL/error handling, without a database."""

from __future__ import annotations

from decimal import Decimal
from urllib.parse import unquote_plus

import pytest
from sqlalchemy import exc

from syncd.connectors.erp.engine import build_engine, is_transient, translate, url_with_password
from syncd.connectors.erp.values import (
    ValueProblem,
    check_length,
    clean_raw,
    parse_blocked,
    parse_country,
    parse_number,
)
from syncd.core.errors import ConfigError, PermanentError, TransientError


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(10001, 10001), ("10001", 10001), (" 10001  ", 10001), (Decimal("10001"), 10001), (10001.0, 10001)],
)
def test_number_accepts_integers_and_numeric_text(raw, expected):
    assert parse_number(raw) == expected


@pytest.mark.parametrize("raw", ["K-100", "", None, True, 10.5, "١٢", "1e3"])
def test_number_refuses_anything_else(raw):
    with pytest.raises(ValueProblem):
        parse_number(raw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (True, True),
        (False, False),
        (1, True),
        (0, False),
        (None, False),
        ("", False),
        ("  ", False),
        ("J", True),
        ("j", True),
        ("N", False),
        ("X", True),
        ("Y", True),
        ("1", True),
        ("0", False),
        ("ja", True),
        ("nein", False),
        (Decimal("1"), True),
        (-1, True),
    ],
)
def test_blocked_flag_forms(raw, expected):
    assert parse_blocked(raw) is expected


def test_blocked_flag_unknown_value_is_a_problem():
    with pytest.raises(ValueProblem, match="'vielleicht'"):
        parse_blocked("vielleicht")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("DE", "DE"),
        ("de", "DE"),
        ("DEU", "DE"),
        ("Deutschland", "DE"),
        ("Germany", "DE"),
        ("Österreich", "AT"),
        ("oesterreich", "AT"),
        ("Austria", "AT"),
        ("AUT", "AT"),
        ("Schweiz", "CH"),
        ("Switzerland", "CH"),
        ("Frankreich", "FR"),
        ("Vereinigtes Königreich", "GB"),
        ("Niederlande", "NL"),
        (276, "DE"),
        ("276", "DE"),
        (40, "AT"),
        (Decimal("756"), "CH"),
        (None, None),
        ("", None),
    ],
)
def test_country_to_alpha2(raw, expected):
    assert parse_country(raw) == expected


@pytest.mark.parametrize("raw", ["Narnia", "XX", 999, "QQQ"])
def test_unknown_country_is_a_problem_naming_the_value(raw):
    with pytest.raises(ValueProblem, match=str(raw)):
        parse_country(raw)


def test_length_check_and_padding():
    check_length("PLZ", "12345", 5)
    with pytest.raises(ValueProblem, match="PLZ has 6 characters; the column holds 5"):
        check_length("PLZ", "123456", 5)
    with pytest.raises(ValueProblem) as info:
        check_length("Sel5", "topsecret", 4, show_value=False)
    assert "topsecret" not in str(info.value)
    assert clean_raw("Groß      ") == "Groß" and clean_raw(" x ") == " x" and clean_raw(None) is None
    assert clean_raw("€".encode()) == "€"


def test_password_goes_into_url_or_odbc_string():
    url = url_with_password("postgresql+psycopg://erp@db.local/erp", "p@ss;w}rd")
    assert url.password == "p@ss;w}rd"
    odbc = "DRIVER={MariaDB Unicode};SERVER=127.0.0.1;UID=erp;PWD=old;DATABASE=erp"
    url = url_with_password("mysql+pyodbc:///?odbc_connect=" + odbc.replace(";", "%3B"), "a;b}c")
    conn = unquote_plus(url.query["odbc_connect"])
    assert "PWD={a;b}}c}" in conn and "PWD=old" not in conn and "UID=erp" in conn
    assert url_with_password("sqlite:///x.db", None).password is None


def test_display_url_hides_the_password_everywhere():
    from syncd.connectors.erp.engine import display_url

    odbc = "DRIVER={MariaDB Unicode};SERVER=h;UID=erp"
    url = url_with_password("mysql+pyodbc:///?odbc_connect=" + odbc.replace(";", "%3B"), "Sup3r;S}cret")
    shown = display_url(url)
    assert (
        "Sup3r" not in unquote_plus(shown)
        and "PWD=***" in unquote_plus(shown)
        and "UID=erp" in unquote_plus(shown)
    )
    shown = display_url(url_with_password("postgresql+psycopg://erp@h/db", "Sup3rSecret"))
    assert "Sup3rSecret" not in shown and "erp:***@h" in shown


def test_bad_urls_are_config_errors():
    with pytest.raises(ConfigError) as info:
        build_engine("nonsense")
    assert info.value.key == "erp.url"
    with pytest.raises(ConfigError, match="dialect"):
        build_engine("nosuchdb+nodriver://x/y")


class _DriverError(Exception):
    pass


def _wrap(cls, *args):
    return cls("SELECT 1", {}, _DriverError(*args))


def test_error_classification():
    lost = _wrap(exc.OperationalError, "08S01", "Communication link failure")
    assert is_transient(lost) and isinstance(translate(lost, "read"), TransientError)
    locked = _wrap(exc.OperationalError, "database is locked")
    assert is_transient(locked)
    missing = _wrap(exc.OperationalError, "no such table: adressen")
    assert not is_transient(missing) and isinstance(translate(missing, "read"), PermanentError)
    too_long = _wrap(exc.DataError, "22001", "String data, right truncated")
    error = translate(too_long, "write")
    assert isinstance(error, PermanentError) and error.code == "22001"
    gone = _wrap(exc.DBAPIError, 2006, "MySQL server has gone away")
    assert is_transient(gone)
    refused = _wrap(exc.OperationalError, "28000", "Access denied for user 'erp'")
    assert not is_transient(refused) and isinstance(translate(refused, "connect"), PermanentError)
    pg_refused = _wrap(exc.OperationalError, 'FATAL:  password authentication failed for user "erp"')
    assert not is_transient(pg_refused)

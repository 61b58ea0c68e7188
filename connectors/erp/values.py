"""Turning raw ERP values into the logical ones (and back), without I/O.

Every function either returns a clean value or raises ``ValueProblem`` with a reason an
operator can act on; the connector turns that into a per-record ``problems`` entry (reads) or
a ``PermanentError`` (writes). Nothing is truncated or guessed silently.
"""

from __future__ import annotations

import gettext
import unicodedata
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from typing import Any

import pycountry


class ValueProblem(ValueError):
    """A value that cannot be used as it is; the message names what is wrong."""


def clean_raw(value: Any) -> Any:
    """Raw row value as a layout should see it: CHAR padding trimmed, bytes decoded."""
    if type(value) is str:  # the common case first: this runs for every column of every row
        return value.rstrip(" ")
    if isinstance(value, bytes | bytearray | memoryview):
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return bytes(value)
    if isinstance(value, str):
        return value.rstrip(" ")
    return value


def text_or_none(value: Any) -> str | None:
    """Logical text field: trimmed, empty means absent."""
    if value is None:
        return None
    if isinstance(value, Decimal) and value == value.to_integral_value():
        value = int(value)
    text = str(value).strip()
    return text or None


def parse_number(value: Any) -> int:
    """An address number is an integer column or numeric text (büro+ AdrNr is a string)."""
    if isinstance(value, bool) or value is None:
        raise ValueProblem(f"address number {value!r} is not a number")
    if isinstance(value, int):
        return value
    if isinstance(value, float | Decimal):
        if value != int(value):
            raise ValueProblem(f"address number {value!r} is not an integer")
        return int(value)
    text = str(value).strip()
    if text.isdecimal() and text.isascii():
        return int(text)
    raise ValueProblem(f"address number {value!r} is not numeric text")


_TRUE = {"1", "j", "ja", "y", "yes", "x", "true", "t", "wahr", "gesperrt", "-1"}
_FALSE = {"", "0", "n", "nein", "no", "false", "f", "falsch"}


def parse_blocked(value: Any) -> bool:
    """The blocked flag ("Sperrkennzeichen"): bool, 0/1, 'J'/'N', 'X'/empty, 'Y'."""
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int | Decimal | float):
        return value != 0
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueProblem(f"blocked flag {value!r} is not one of 0/1, J/N, X/empty, Y/N, true/false")


def _fold(text: str) -> str:
    """Case- and accent-insensitive key so 'Österreich', 'oesterreich' and 'OSTERREICH' meet."""
    text = text.strip().lower().replace("ß", "ss")
    for umlaut, plain in (("ä", "ae"), ("ö", "oe"), ("ü", "ue")):
        text = text.replace(umlaut, plain)
    text = unicodedata.normalize("NFKD", text)
    return "".join(c for c in text if c.isalnum())


# Names operators actually type that ISO does not list under that spelling.
_EXTRA_NAMES = {
    "deutschland": "DE",
    "brd": "DE",
    "germany": "DE",
    "schweiz": "CH",
    "suisse": "CH",
    "grossbritannien": "GB",
    "england": "GB",
    "uk": "GB",
    "vereinigteskoenigreich": "GB",
    "usa": "US",
    "vereinigtestaaten": "US",
    "holland": "NL",
    "niederlande": "NL",
    "tschechien": "CZ",
    "czechia": "CZ",
    "russland": "RU",
    "suedkorea": "KR",
}


@cache
def _alpha2() -> dict[str, str]:
    return {c.alpha_2: c.alpha_2 for c in pycountry.countries}


@cache
def _country_index() -> dict[str, str]:
    try:
        german = gettext.translation("iso3166-1", pycountry.LOCALES_DIR, languages=["de"])
    except OSError:  # a build of pycountry without locales: English names still work
        german = gettext.NullTranslations()
    index: dict[str, str] = {}
    for country in pycountry.countries:
        code = country.alpha_2
        names = {country.name, getattr(country, "official_name", ""), getattr(country, "common_name", "")}
        for name in list(names):
            if name:
                names.add(german.gettext(name))
        for name in names:
            if name:
                index.setdefault(_fold(name), code)
    for name, code in _EXTRA_NAMES.items():
        index[_fold(name)] = code
    return index


def parse_country(value: Any) -> str | None:
    """ISO 3166 alpha-2 from alpha-2, alpha-3, ISO numeric (büro+ ``Land`` is an integer) or a
    German/English name. Empty means absent; anything else unknown is a problem."""
    if value is None:
        return None
    if type(value) is str and len(value) == 2 and value.isupper():
        found = _alpha2().get(value)  # the common case, without pycountry's slower lookup
        if found:
            return found
    if isinstance(value, int | Decimal) and not isinstance(value, bool):
        found = pycountry.countries.get(numeric=f"{int(value):03d}")
        if found is None:
            raise ValueProblem(f"country {value!r} is not an ISO 3166 numeric code")
        return found.alpha_2
    text = str(value).strip()
    if not text:
        return None
    if text.isdigit():
        return parse_country(int(text))
    if len(text) == 2 and text.isalpha():
        found = pycountry.countries.get(alpha_2=text.upper())
        if found is not None:
            return found.alpha_2
    if len(text) == 3 and text.isalpha():
        found = pycountry.countries.get(alpha_3=text.upper())
        if found is not None:
            return found.alpha_2
    code = _country_index().get(_fold(text))
    if code is None:
        raise ValueProblem(f"country {value!r} is neither an ISO code nor a known country name")
    return code


def check_length(column: str, value: Any, length: int | None, *, show_value: bool = True) -> None:
    """Refuse text longer than the column holds (SQLite and non-strict MySQL would not)."""
    if length is None or not isinstance(value, str):
        return
    if len(value) > length:
        shown = f" {value[:40]!r}..." if show_value else ""
        raise ValueProblem(
            f"value{shown} for column {column} has {len(value)} characters; the column holds {length}"
        )


def json_safe(value: Any) -> Any:
    """A raw value in a form JSON (the state store cache) can hold."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value

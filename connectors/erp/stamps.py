"""Change stamps as the ERP stores them (pure functions, no I/O).

The change scan binds its keyset bounds exactly as the driver returned them: a SQLite
``TIMESTAMP`` column holding ``'2026-11-01 10:00:00'`` is compared with that text, not with the
``'2026-11-01 10:00:00.000000'`` SQLAlchemy would render for a re-typed ``datetime`` (which sorts
after it, so every later page came back empty). Everything that has to be derived from a stamp
here keeps its representation:

- ``shift`` moves a stamp back by the overlap in its own form (text keeps its separator and
  fraction digits, ``yyyymmddhhmmss`` stays such an integer, epoch seconds stay seconds);
- ``encode``/``decode`` carry the Python type through the JSON cursor, so the watermark a
  restarted daemon binds is the value it read;
- ``order_key`` compares raw stamps in Python the way SQLite orders mixed storage classes.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

# An ISO 8601 stamp as text: date, optional time with optional fraction, optional zone suffix.
_ISO = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})"
    r"(?:(?P<sep>[ T])(?P<time>\d{2}:\d{2}(?::\d{2})?)(?:\.(?P<frac>\d{1,9}))?)?"
    r"(?P<zone>Z|[+-]\d{2}(?::?\d{2})?)?$"
)
_EPOCH_S = (10**9, 10**10)  # 2001 .. 2286
_EPOCH_MS = (10**12, 10**13)
_YMDHMS = (10**13, 10**14)  # 14 digits: yyyymmddhhmmss
_YMD = (10**7, 10**8)  # 8 digits: yyyymmdd


def encode(value: Any) -> list[Any] | None:
    """``[type, JSON value]``; ``decode`` gives back an equal value of the same type."""
    if value is None:
        return None
    if isinstance(value, bool):
        return ["int", int(value)]
    if isinstance(value, datetime):
        return ["datetime", value.isoformat()]
    if isinstance(value, date):
        return ["date", value.isoformat()]
    if isinstance(value, int):
        return ["int", value]
    if isinstance(value, float):
        return ["float", value]
    if isinstance(value, Decimal):
        return ["decimal", str(value)]
    if isinstance(value, bytes | bytearray | memoryview):
        return ["bytes", bytes(value).hex()]
    return ["str", str(value)]


def decode(data: Any) -> Any:
    if data is None:
        return None
    kind, value = data
    if kind == "datetime":
        return datetime.fromisoformat(value)
    if kind == "date":
        return date.fromisoformat(value)
    if kind == "decimal":
        return Decimal(value)
    if kind == "bytes":
        return bytes.fromhex(value)
    if kind == "float":
        return float(value)
    if kind == "int":
        return int(value)
    return str(value)


def key(value: Any) -> str:
    """The stamp's text for the cursor's ``seen`` map: distinct stored values stay distinct."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return str(value)


def order_key(value: Any) -> tuple[int, Any]:
    """Python ordering of raw stamps that matches the database's for one column: numbers before
    text before bytes (SQLite's order of storage classes, the only backend that mixes them)."""
    if isinstance(value, bool | int | float | Decimal):
        return (0, value)
    if isinstance(value, datetime):
        return (1, value)
    if isinstance(value, date):
        return (1, datetime(value.year, value.month, value.day))
    if isinstance(value, str):
        return (2, value)
    return (3, bytes(value))


def shift(value: Any, seconds: float) -> Any:
    """``value`` moved back by ``seconds``, in the same representation. A stamp whose form says
    nothing about time (a row version counter, text that is no ISO 8601) is returned unchanged:
    the watermark row itself is then the overlap."""
    if not seconds or value is None:
        return value
    delta = timedelta(seconds=seconds)
    if isinstance(value, datetime):
        return value - delta
    if isinstance(value, date):
        # A late row stamped with yesterday's date must still be inside the window.
        return (datetime(value.year, value.month, value.day) - delta).date()
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return _shift_int(value, seconds)
    if isinstance(value, Decimal):
        if value == value.to_integral_value():
            return Decimal(_shift_int(int(value), seconds))
        return value - Decimal(str(seconds)) if _EPOCH_S[0] <= value < _EPOCH_S[1] else value
    if isinstance(value, float):
        return value - seconds if _EPOCH_S[0] <= value < _EPOCH_S[1] else value
    if isinstance(value, str):
        return _shift_text(value, delta)
    return value


def _shift_int(value: int, seconds: float) -> int:
    if _EPOCH_S[0] <= value < _EPOCH_S[1]:
        return value - int(seconds)
    if _EPOCH_MS[0] <= value < _EPOCH_MS[1]:
        return value - int(seconds * 1000)
    if _YMDHMS[0] <= value < _YMDHMS[1]:
        try:
            stamp = datetime.strptime(str(value), "%Y%m%d%H%M%S")
        except ValueError:
            return value
        return int((stamp - timedelta(seconds=seconds)).strftime("%Y%m%d%H%M%S"))
    if _YMD[0] <= value < _YMD[1]:
        try:
            day = datetime.strptime(str(value), "%Y%m%d")
        except ValueError:
            return value
        return int((day - timedelta(seconds=seconds)).strftime("%Y%m%d"))
    return value


def _shift_text(value: str, delta: timedelta) -> str:
    text = value.rstrip(" ")
    m = _ISO.match(text)
    if m is None:
        return value
    if m.group("time") is None:
        day = date.fromisoformat(m.group("date"))
        moved = (datetime(day.year, day.month, day.day) - delta).date().isoformat()
        return moved + (m.group("zone") or "")
    hms = m.group("time")
    frac = m.group("frac") or ""
    fmt = "%H:%M:%S" if hms.count(":") == 2 else "%H:%M"
    try:
        base = datetime.strptime(f"{m.group('date')} {hms}", f"%Y-%m-%d {fmt}")
    except ValueError:
        return value
    micro = int((frac + "000000")[:6]) if frac else 0
    moved = base + timedelta(microseconds=micro) - delta
    out = moved.strftime(f"%Y-%m-%d{m.group('sep')}{fmt}")
    if frac:
        # Cut to the stored precision: rounds down, so the window gets wider, never narrower.
        out += "." + (f"{moved.microsecond:06d}" + "0" * len(frac))[: len(frac)]
    return out + (m.group("zone") or "")

"""Durations in the config are strings such as "90s", "5m", "1h30m", "250ms"."""

from __future__ import annotations

import re

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: object) -> float:
    """Seconds as float. Bare numbers are refused: "60" could mean seconds or minutes."""
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError('a duration is a string such as "60s", "5m" or "1h30m"')
    text = value.strip().lower().replace(" ", "")
    if not text:
        raise ValueError("empty duration")
    pos, total = 0, 0.0
    for m in _PART.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT[m.group(2)]
        pos = m.end()
    if pos != len(text):
        raise ValueError(f'not a duration: {value!r}; use e.g. "60s", "5m", "1h30m", "250ms"')
    return total

"""The shop's own customer number range, and whether it can hand out syncd's numbers (issue 13).

Shopware numbers storefront registrations from the ``customer`` number range (``number_range``
with ``pattern`` such as "{n}", ``start``; its ``number_range_state.lastValue`` is the last number
handed out); Admin API writes do not use or move it (shopware-notes §2). syncd writes
``customer_number_prefix`` + ERP number. A registration collides with an ERP address when the
range renders numbers without text around ``{n}`` (or with exactly syncd's prefix before it)
and its next number is within ``[erp] debtor_range``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from syncd.core.rules import account_label, parse_account

Search = Callable[[str, dict[str, Any]], Iterator[dict[str, Any]]]


def shop_number(prefix: str, number: int) -> str:
    """The customer number syncd gives ERP address ``number`` (or a contact account) in the shop."""
    return prefix + account_label(number)


def erp_number(prefix: str, text: Any) -> int | None:
    """The ERP number a shop customer number of syncd's form (``prefix`` + digits) names."""
    text = str(text or "").strip()
    if prefix:
        if not text.startswith(prefix):
            return None
        text = text[len(prefix):]
    return parse_account(text) if text[:1].isdigit() else None


@dataclass(frozen=True)
class NumberRange:
    pattern: str
    start: int
    last_value: int | None

    @property
    def next(self) -> int:
        return self.start if self.last_value is None else max(self.last_value + 1, self.start)

    def render(self, value: int) -> str:
        return self.pattern.replace("{n}", str(value))


def customer_range(search: Search) -> NumberRange | None:
    """The global customer number range and its state (None: the shop has none)."""
    types = list(search("number-range-type", {"filter": [
        {"type": "equals", "field": "technicalName", "value": "customer"}], "limit": 10}))
    if not types:
        return None
    ranges = [r for r in search("number-range", {"filter": [
        {"type": "equals", "field": "typeId", "value": types[0]["id"]}], "limit": 100})]
    rng = next((r for r in ranges if r.get("global")), ranges[0] if ranges else None)
    if rng is None:
        return None
    states = list(search("number-range-state", {"filter": [
        {"type": "equals", "field": "numberRangeId", "value": rng["id"]}], "limit": 1}))
    last = states[0].get("lastValue") if states else None
    return NumberRange(str(rng.get("pattern") or "{n}"), int(rng.get("start") or 1),
                       int(last) if last is not None else None)


def overlap(rng: NumberRange, debtor_range: tuple[int, int], prefix: str) -> str | None:
    """Why the shop's next registrations can carry a number syncd gives an ERP address (None:
    they cannot)."""
    before, _, after = rng.pattern.partition("{n}")
    if after or before != prefix:
        return None  # the shop's numbers have text syncd's never have (or lack syncd's prefix)
    lo, hi = debtor_range
    if rng.next > hi:
        return None
    first = max(rng.next, lo)
    return (f"the shop's customer number range (pattern {rng.pattern!r}, next {rng.render(rng.next)}) "
            f"hands out {prefix}{first} and up, which are customer numbers syncd gives ERP addresses "
            f"{lo}-{hi} (erp.debtor_range)")

"""Shop edits waiting for an operator (``shop_changes = "report"``), for ``syncd status``.

Kept in the ``cursors`` table under the name ``shop-changes`` (one JSON document per platform:
ERP number -> shop id, when it was seen and each field's ERP and shop value), like the
reconciliation's counts (``syncd.state.drift``): no table of its own. An entry goes away when
the values agree again (the operator changed the ERP, or the shop edit was undone) or the ERP
side turned out newer. The document holds address data only, never a password.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from syncd.state.cursors import Cursors

NAME = "shop-changes"


class ReportedShopChanges:
    def __init__(self, cursors: Cursors, platform: str) -> None:
        self._cursors = cursors
        self.platform = platform

    def all(self) -> dict[str, dict[str, Any]]:
        value = self._cursors.get(self.platform, NAME)
        return dict(value.get("addresses", {})) if isinstance(value, dict) else {}

    def put(self, number: int, shop_id: str, seen: str, fields: Mapping[str, tuple[Any, Any]]) -> bool:
        """Record the shop edit of ``number``; False when exactly this was recorded already."""
        entries = self.all()
        entry = {"shop_id": shop_id, "fields": {f: [old, new] for f, (old, new) in fields.items()}}
        old = entries.get(str(number))
        if old is not None and {k: old.get(k) for k in entry} == entry:
            return False
        entries[str(number)] = {**entry, "seen": seen}
        self._cursors.set(self.platform, NAME, {"addresses": entries})
        return True

    def drop(self, number: int) -> None:
        entries = self.all()
        if entries.pop(str(number), None) is not None:
            self._cursors.set(self.platform, NAME, {"addresses": entries})


def listed(value: Any) -> list[dict[str, Any]]:
    """The stored document as ``syncd status --json`` lists it, by address number."""
    entries = value.get("addresses", {}) if isinstance(value, dict) else {}
    out = []
    for number, entry in sorted(entries.items(), key=lambda kv: int(kv[0]) if kv[0].isdigit() else 0):
        fields = entry.get("fields") or {}
        out.append({"address": int(number) if number.isdigit() else number, "shop_id": entry.get("shop_id"),
                    "seen": entry.get("seen"),
                    "fields": {f: {"erp": v[0], "shop": v[1]} for f, v in fields.items()}})
    return out

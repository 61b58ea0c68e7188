"""An in-memory ERP address table for flow tests: rows by number, values by column name.

Logical names (``email``) are translated to columns (``EMail``) with the ``columns`` map, as
the SQL connector does with ``[erp.columns]``. ``taken_at_insert`` models another ERP user
taking a number between the flow's existence check and its insert; ``after_insert`` runs once
the row is stored (a test raises from it to "crash" there).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any


class FakeErp:
    def __init__(self, columns: Mapping[str, str],
                 rows: Mapping[int, Mapping[str, Any]] | None = None) -> None:
        self.columns = dict(columns)
        self.rows: dict[int, dict[str, Any]] = {int(n): self._by_column(r) for n, r in (rows or {}).items()}
        self.taken_at_insert: set[int] = set()
        self.after_insert: Callable[[int], None] | None = None
        self.inserts: list[int] = []

    def _by_column(self, values: Mapping[str, Any]) -> dict[str, Any]:
        return {self.columns.get(k, k): v for k, v in values.items()}

    # --- ErpPort, shop -> ERP part -------------------------------------------------------------
    def number_exists(self, number: int) -> bool:
        return int(number) in self.rows

    def create_address(self, number: int, values: Mapping[str, Any]) -> bool:
        if number in self.rows or number in self.taken_at_insert:
            self.taken_at_insert.discard(number)
            self.rows.setdefault(number, {"taken": "by someone else"})
            return False
        self.rows[number] = self._by_column(values)
        self.inserts.append(number)
        if self.after_insert is not None:
            self.after_insert(number)
        return True

    def read_columns(self, number: int, columns: Sequence[str]) -> dict[str, Any]:
        row = self.rows[int(number)]
        return {c: row.get(c) for c in columns}

    def get_address(self, number: int) -> Any:
        """The row by logical name, as the SQL connector normalises it (text fields only)."""
        from dataclasses import fields

        from syncd.core.domain import ErpAddress

        row = self.rows.get(int(number))
        if row is None:
            return None
        names = {f.name for f in fields(ErpAddress)} - {"number", "row", "problems", "blocked", "modified_at"}
        values = {name: row.get(self.columns[name]) for name in names if name in self.columns}
        return ErpAddress(number=int(number), row=dict(row), **values)

    def find_numbers(self, column: str, value: Any) -> list[int]:
        return sorted(n for n, row in self.rows.items() if row.get(column) == value)

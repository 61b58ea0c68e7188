"""The tenant cache when no state store is given (tests, one-off tools): lives as long as the
connector that holds it. Both connectors use it; the interface is ``syncd.core.ports.TenantCache``."""

from __future__ import annotations

from typing import Any


class MemoryCache:
    def __init__(self) -> None:
        self._data: dict[tuple[str, str], Any] = {}

    def get(self, scope: str, key: str) -> Any:
        return self._data.get((scope, key))

    def set(self, scope: str, key: str, value: Any) -> None:
        self._data[(scope, key)] = value

    def clear(self) -> None:
        self._data.clear()

"""Change detection: which addresses are new or changed since the stored cursor.

Watermark mode (a ``modified_at`` column is mapped): each poll reads the rows with
``modified_at >= watermark - overlap`` in keyset pages ordered by (modified_at, number), so its
cost is the rows changed within the overlap window, not the table. The cursor keeps, for that
window, which (number, modified_at) pairs were already delivered, with a hash of each row (so a
second change within one tick of a coarse timestamp is not lost): a row committed late with an
older timestamp, or sharing the watermark's timestamp, is new to that set and is delivered; an
idle poll delivers nothing. Rows changed longer than ``overlap`` before the watermark but
committed after the poll are missed: ``overlap`` must exceed the ERP's longest transaction plus
clock skew. Rows whose ``modified_at`` is NULL are read by the first (full) scan only.

Hash mode (no ``modified_at``): every poll reads the whole table and compares a hash of each
row with the one in the cursor. That is O(table) per poll and keeps one hash per address in the
cursor; map a change timestamp whenever the ERP has one.

Every page is its own short query (keyset pagination), so no ERP connection or transaction is
held open while the flow pushes a batch to the shop, and never more than one page is in memory.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from syncd.domain import ErpAddress

if TYPE_CHECKING:
    from connectors.erp.connector import SqlErp

CURSOR_VERSION = 2


def _encode(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if value is None or isinstance(value, int | float | str):
        return value
    return str(value)  # Decimal: exact as text


def _decode(value: Any, kind: str) -> Any:
    if value is None:
        return None
    if kind == "datetime":
        return datetime.fromisoformat(value)
    if kind == "date":
        return date.fromisoformat(value)
    if kind == "decimal":
        from decimal import Decimal

        return Decimal(value)
    return value


def _number_key(raw: Any) -> str:
    return str(raw).strip()


class WatermarkScan:
    def __init__(
        self, erp: SqlErp, cursor: Mapping[str, Any] | None, batch_size: int, fingerprint: Callable
    ) -> None:
        self._erp = erp
        self._fingerprint = fingerprint
        self._batch = batch_size
        self.rejected: list[tuple[str, str]] = []  # (raw number, reason): rows that are no address
        layout = erp.layout
        self._kind = layout.logical["modified_at"].column.kind
        self._overlap = erp.settings.overlap
        valid = bool(cursor) and cursor.get("mode") == "watermark" and cursor.get("v") == CURSOR_VERSION
        self._start = _decode(cursor.get("watermark"), self._kind) if valid and cursor else None
        seen = cursor.get("seen", {}) if valid and cursor else {}
        self._seen: dict[tuple[str, str], str] = {
            (number, ts): digest for ts, rows in seen.items() for number, digest in rows.items()
        }
        self._max = self._start
        # (modified_at, encoded modified_at, number key, row) of the rows read in the window; the
        # row's digest is computed only for the rows that stay in it (a first scan reads them all)
        self._window: deque[tuple[Any, str, str, Mapping[str, Any]]] = deque()
        # Rows without a stamp are read once, by the first scan; a table whose stamps are all
        # NULL must not be re-delivered on every poll.
        self._nulls_read = self._start is not None or bool(valid and cursor and cursor.get("nulls_read"))

    def _lower(self) -> Any:
        if self._start is None:
            return None
        if self._kind in ("datetime", "date"):
            return self._start - timedelta(seconds=self._overlap)
        return self._start  # a growing number: the watermark row itself is the overlap

    def _note(self, modified: Any, encoded: str, number: str, row: Mapping[str, Any]) -> None:
        if self._max is None or modified > self._max:
            self._max = modified
        self._window.append((modified, encoded, number, row))
        if self._kind in ("datetime", "date"):
            edge = self._max - timedelta(seconds=self._overlap)
        else:
            edge = self._max
        while self._window and self._window[0][0] < edge:
            self._window.popleft()

    def batches(self) -> Iterator[list[ErpAddress]]:
        erp = self._erp
        if not self._nulls_read:
            last: Any = None
            while True:  # rows without a change time, seen on the first scan only
                rows = erp._page_null_modified(last, self._batch)
                if not rows:
                    break
                last = rows[-1][1]
                batch = [a for a in (erp._to_address(r, self.rejected) for r, _n in rows) if a is not None]
                if batch:
                    yield batch
                if len(rows) < self._batch:
                    break
        self._nulls_read = True
        lower, after = self._lower(), None
        while True:
            rows = erp._page_modified(lower, after, self._batch)
            if not rows:
                break
            batch = []
            for row, number, modified in rows:
                key, encoded = _number_key(number), _encode(modified)
                known = self._seen.get((key, encoded))
                # Same number and stamp but other content: an ERP with second-precision stamps
                # changed the row twice within one second. Deliver it again.
                if known is None or known != self._fingerprint(row):
                    address = erp._to_address(row, self.rejected)
                    if address is not None:
                        batch.append(address)
                self._note(modified, encoded, key, row)
            after = (rows[-1][2], rows[-1][1])
            if batch:
                yield batch
            if len(rows) < self._batch:
                break

    def cursor(self) -> dict[str, Any]:
        if self._max is None:
            return {
                "mode": "watermark",
                "v": CURSOR_VERSION,
                "watermark": None,
                "seen": {},
                "nulls_read": self._nulls_read,
            }
        seen: dict[str, dict[str, str]] = {}
        for _m, encoded, number, row in self._window:
            seen.setdefault(encoded, {})[number] = self._fingerprint(row)
        # Pairs of the previous cursor still inside the window were re-read by this scan (the
        # window only moves forward), so the window built here is complete.
        return {
            "mode": "watermark",
            "v": CURSOR_VERSION,
            "watermark": _encode(self._max),
            "seen": seen,
            "nulls_read": True,
        }


class HashScan:
    def __init__(
        self, erp: SqlErp, cursor: Mapping[str, Any] | None, batch_size: int, fingerprint: Callable
    ) -> None:
        self._erp = erp
        self._batch = batch_size
        self._fingerprint = fingerprint
        self.rejected: list[tuple[str, str]] = []  # (raw number, reason): rows that are no address
        valid = bool(cursor) and cursor.get("mode") == "hash" and cursor.get("v") == CURSOR_VERSION
        self._old: dict[str, str] = dict(cursor.get("hashes", {})) if valid and cursor else {}
        self._new: dict[str, str] = {}
        self._complete = False

    def batches(self) -> Iterator[list[ErpAddress]]:
        erp = self._erp
        after: Any = None
        while True:
            rows = erp._page_by_number(after, self._batch)
            if not rows:
                break
            batch = []
            for row, number in rows:
                key = _number_key(number)
                digest = self._fingerprint(row)
                if self._old.get(key) != digest:
                    address = erp._to_address(row, self.rejected)
                    if address is not None:
                        batch.append(address)
                self._new[key] = digest
            after = rows[-1][1]
            if batch:
                yield batch
            if len(rows) < self._batch:
                break
        self._complete = True

    def cursor(self) -> dict[str, Any]:
        if self._complete:  # addresses gone from the ERP drop out of the cursor
            hashes = self._new
        else:
            hashes = {**self._old, **self._new}
        return {"mode": "hash", "v": CURSOR_VERSION, "hashes": hashes}


def row_fingerprint(row: Mapping[str, Any], skip: frozenset[str]) -> str:
    """Stable across runs: the read source's columns come in reflection order, and the repr of
    str/int/Decimal/datetime values does not change between Python versions."""
    data = repr([(k, v) for k, v in row.items() if k not in skip])
    return hashlib.blake2b(data.encode(), digest_size=8).hexdigest()

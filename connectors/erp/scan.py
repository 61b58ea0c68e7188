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

Stamps and numbers are bound exactly as they were read, and the overlap is subtracted in the
stamp's own representation (``syncd.connectors.erp.stamps``): a re-typed bound compares differently
from what the ERP stores. A profile join's own stamp (büro+ ``Anschriften.LtzAend``) is one
more stream of the same kind, with its own watermark and window; an address changed in several
watched tables within one poll is delivered once.

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
from typing import TYPE_CHECKING, Any

from syncd.connectors.erp import stamps
from syncd.core.domain import ErpAddress

if TYPE_CHECKING:
    from syncd.connectors.erp.layout import Bound
    from syncd.connectors.erp.table import AddressTable

CURSOR_VERSION = 3
PRIMARY = "modified_at"  # the stream of the mapped modified_at; joined stamps are "Table.Column"


def _number_key(raw: Any) -> str:
    return str(raw).strip()


def _legacy_state(cursor: Mapping[str, Any], kind: str, sqlite: bool) -> dict[str, Any]:
    """A version 2 cursor (watermark re-typed by the column's kind) as the primary stream's state.
    Its stamp keys may differ from the raw ones read now: the window's rows are delivered once
    more, nothing is missed."""
    value = cursor.get("watermark")
    if value is not None and kind in ("datetime", "date"):
        value = [kind, value]
        if sqlite:  # SQLite stores text: bind text, as the driver would have returned it
            value = ["str", stamps.decode(value).isoformat(" ")]
    elif value is not None:
        value = ["decimal" if kind == "decimal" else "int", value]
    return {"watermark": value, "seen": cursor.get("seen", {})}


class _Stream:
    """One watched stamp column: its watermark (as read, see ``syncd.connectors.erp.stamps``) and the
    (number, stamp) pairs read inside the overlap window, each with the row's hash."""

    def __init__(
        self, bound: Bound, state: Mapping[str, Any] | None, overlap: float, fingerprint: Callable
    ) -> None:
        self.bound = bound
        self._overlap = overlap
        self._fingerprint = fingerprint
        state = state or {}
        self.start = stamps.decode(state.get("watermark"))
        self.seen: dict[tuple[str, str], str] = {
            (number, ts): digest
            for ts, rows in state.get("seen", {}).items()
            for number, digest in rows.items()
        }
        self.max = self.start
        self._edge: Any = None  # order key of shift(max): rows below it leave the window
        # (order key, stamp key, number key, row); hashed only for the rows that stay in it
        self._window: deque[tuple[Any, str, str, Mapping[str, Any]]] = deque()

    def lower(self) -> Any:
        return None if self.start is None else stamps.shift(self.start, self._overlap)

    def known(self, number: str, stamp: str, digest: Callable[[], str]) -> bool:
        """Read before with this content: a second change within one tick of a coarse clock
        keeps (number, stamp) but not the hash, and is delivered again."""
        seen = self.seen.get((number, stamp))
        return seen is not None and seen == digest()

    def note(self, raw: Any, stamp: str, number: str, row: Mapping[str, Any]) -> None:
        order = stamps.order_key(raw)
        if self.max is None or order > stamps.order_key(self.max):
            self.max = raw
            self._edge = stamps.order_key(stamps.shift(raw, self._overlap))
        elif self._edge is None:
            self._edge = stamps.order_key(stamps.shift(self.max, self._overlap))
        self._window.append((order, stamp, number, row))
        while self._window and self._window[0][0] < self._edge:
            self._window.popleft()

    def state(self) -> dict[str, Any]:
        seen: dict[str, dict[str, str]] = {}
        if self.max is not None:
            for _o, stamp, number, row in self._window:
                seen.setdefault(stamp, {})[number] = self._fingerprint(row)
        # Pairs of the previous cursor still inside the window were re-read by this scan (the
        # window only moves forward), so the window built here is complete.
        return {"watermark": stamps.encode(self.max), "seen": seen}


class WatermarkScan:
    def __init__(
        self,
        table: AddressTable,
        password_field: str | None,
        cursor: Mapping[str, Any] | None,
        batch_size: int,
        fingerprint: Callable,
    ) -> None:
        self._table = table
        self._field = password_field
        self._fingerprint = fingerprint
        self._batch = batch_size
        self.rejected: list[tuple[str, str]] = []  # (raw number, reason): rows that are no address
        layout = table.layout
        overlap = table.settings.overlap
        cursor = cursor or {}
        version = cursor.get("v") if cursor.get("mode") == "watermark" else None
        if version == CURSOR_VERSION:
            states = dict(cursor.get("streams") or {})
        elif version == 2:
            sqlite = table.engine.dialect.name == "sqlite"
            states = {PRIMARY: _legacy_state(cursor, layout.logical[PRIMARY].column.kind, sqlite)}
        else:
            states = {}
        primary = layout.logical[PRIMARY]
        self._streams = [_Stream(primary, states.get(PRIMARY), overlap, fingerprint)]
        for bound in layout.joined_stamps:
            name = f"{bound.table.name}.{bound.column.name}"
            stream = _Stream(bound, states.get(name), overlap, fingerprint)
            first = self._streams[0]
            if name not in states and first.start is not None and bound.column.kind == primary.column.kind:
                # A stamp watched since this version: one clock stamps both tables, so start
                # where the address table's watermark is instead of re-reading the whole table.
                stream.start = stream.max = first.start
            self._streams.append(stream)
        self._names = [PRIMARY] + [f"{b.table.name}.{b.column.name}" for b in layout.joined_stamps]
        # Rows without a stamp are read once, by the first scan; a table whose stamps are all
        # NULL must not be re-delivered on every poll.
        self._first = self._streams[0].start is None
        self._nulls_read = not self._first or bool(version and cursor.get("nulls_read"))
        # number -> hash of what this scan delivered, so a row changed in two watched tables goes
        # out once. Only for incremental scans, where it holds the changes, not the table.
        self._delivered: dict[str, str] = {}

    def batches(self) -> Iterator[list[ErpAddress]]:
        table = self._table
        if self._first:
            # A first scan delivers every row through modified_at (and the NULL page). The joined
            # stamps only learn their window, before that read: a joined change committed after
            # it gets a new stamp and is delivered by the next poll.
            for stream in self._streams[1:]:
                self._learn_window(stream)
        if not self._nulls_read:
            last: Any = None
            while True:  # rows without a change time, seen on the first scan only
                rows = table.page_null_modified(last, self._batch)
                if not rows:
                    break
                last = rows[-1][1]
                batch = [
                    a
                    for a in (self._table.to_address(r, self._field, self.rejected) for r, _n in rows)
                    if a is not None
                ]
                if batch:
                    yield batch
                if len(rows) < self._batch:
                    break
        self._nulls_read = True
        streams = self._streams[:1] if self._first else self._streams
        dedupe = len(streams) > 1
        for stream in streams:
            yield from self._scan(stream, dedupe)

    def _learn_window(self, stream: _Stream) -> None:
        newest = self._table.max_stamp(stream.bound)
        if newest is None:
            return
        stream.start = newest
        for row, number, raw in self._pages(stream):
            stream.note(raw, stamps.key(raw), _number_key(number), row)

    def _pages(self, stream: _Stream) -> Iterator[tuple[Mapping[str, Any], Any, Any]]:
        lower, after = stream.lower(), None
        bound = None if stream is self._streams[0] else stream.bound
        while True:
            rows = self._table.page_modified(lower, after, self._batch, bound)
            yield from rows
            if len(rows) < self._batch:
                return
            after = (rows[-1][2], rows[-1][1])

    def _scan(self, stream: _Stream, dedupe: bool) -> Iterator[list[ErpAddress]]:
        batch: list[ErpAddress] = []
        for row, number, raw in self._pages(stream):
            key, stamp = _number_key(number), stamps.key(raw)
            hashed: list[str] = []

            def digest(row: Mapping[str, Any] = row, hashed: list[str] = hashed) -> str:
                if not hashed:
                    hashed.append(self._fingerprint(row))
                return hashed[0]

            if not stream.known(key, stamp, digest):
                if not dedupe or self._delivered.get(key) != digest():
                    address = self._table.to_address(row, self._field, self.rejected)
                    if address is not None:
                        batch.append(address)
                    if dedupe:
                        self._delivered[key] = digest()
            stream.note(raw, stamp, key, row)
            if len(batch) >= self._batch:
                yield batch
                batch = []
        if batch:
            yield batch

    def cursor(self) -> dict[str, Any]:
        return {
            "mode": "watermark",
            "v": CURSOR_VERSION,
            "streams": {name: s.state() for name, s in zip(self._names, self._streams, strict=True)},
            "nulls_read": self._nulls_read,
        }


class HashScan:
    def __init__(
        self,
        table: AddressTable,
        password_field: str | None,
        cursor: Mapping[str, Any] | None,
        batch_size: int,
        fingerprint: Callable,
    ) -> None:
        self._table = table
        self._field = password_field
        self._batch = batch_size
        self._fingerprint = fingerprint
        self.rejected: list[tuple[str, str]] = []  # (raw number, reason): rows that are no address
        valid = bool(cursor) and cursor.get("mode") == "hash" and cursor.get("v") in (2, CURSOR_VERSION)
        self._old: dict[str, str] = dict(cursor.get("hashes", {})) if valid and cursor else {}
        self._new: dict[str, str] = {}
        self._complete = False

    def batches(self) -> Iterator[list[ErpAddress]]:
        table = self._table
        after: Any = None
        while True:
            rows = table.page_by_number(after, self._batch)
            if not rows:
                break
            batch = []
            for row, number in rows:
                key = _number_key(number)
                digest = self._fingerprint(row)
                if self._old.get(key) != digest:
                    address = self._table.to_address(row, self._field, self.rejected)
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

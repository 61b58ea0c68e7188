"""Moving a state store between backends (SQLite <-> PostgreSQL): export to and import from a
versioned JSON-lines file.

The file: a header line ``{"format": "syncd-state", "version": 1, "schema": [alembic heads],
...}``, one line per row ``{"table": NAME, "row": {column: value}}`` (timestamps as ISO 8601
with offset), and a trailer ``{"end": true, "rows": {table: count}}`` that proves the file is
complete. Every table of ``syncd.state.schema`` is carried except ``leases`` (who is working
right now belongs to the store being left, not to the file).

The store never holds a password (``schema`` docstring), so neither does the file.

Import runs in ONE transaction on a migrated target: either every row arrives or none. It
refuses a target that already holds rows (unless ``replace``: then they are deleted in the same
transaction), a newer format version, a schema revision this syncd does not know, and any
line it cannot read, naming the file and line.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Connection, Integer, Table, func, select, text

from syncd import __version__
from syncd.core.errors import SyncdError
from syncd.state.db import StateStore, _all_revisions, current_revisions
from syncd.state.schema import UTCDateTime, metadata

FORMAT = "syncd-state"
VERSION = 1
SKIPPED = frozenset({"leases"})
_CHUNK = 1000  # rows per INSERT on import; bounded memory for any store size


class TransferError(SyncdError):
    """The file cannot be used as asked (bad, incomplete, newer, or the target is not empty).
    ``usage`` tells the CLI to exit 2 rather than 1."""

    def __init__(self, message: str, *, usage: bool = True) -> None:
        super().__init__(message)
        self.usage = usage


@dataclass
class TransferResult:
    path: Path
    rows: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.rows.values())


def tables() -> list[Table]:
    return [t for t in metadata.sorted_tables if t.name not in SKIPPED]


# ---------------------------------------------------------------------------------------- export
def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    return value


def export_store(store: StateStore, path: Path, *, overwrite: bool = False) -> TransferResult:
    """Write every row of ``store`` to ``path`` (through a temporary file, renamed at the end:
    an interrupted export never leaves a file that looks complete)."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise TransferError(f"{path}: the file exists; choose another name or pass --force")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    result = TransferResult(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError as exc:
        raise TransferError(f"{path}: cannot write: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as out, _snapshot(store) as conn:
            header = {
                "format": FORMAT, "version": VERSION, "schema": sorted(current_revisions(store)),
                "syncd": __version__, "source": store.dialect_name,
                "exported_at": datetime.now(UTC).isoformat(),
                "tables": [t.name for t in tables()],
            }
            out.write(json.dumps(header, ensure_ascii=False) + "\n")
            for table in tables():
                count = 0
                key = list(table.primary_key.columns)
                rows = conn.execution_options(stream_results=True, yield_per=_CHUNK).execute(
                    select(table).order_by(*key)
                )
                for row in rows.mappings():
                    line = {"table": table.name, "row": {k: _encode(v) for k, v in row.items()}}
                    out.write(json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n")
                    count += 1
                result.rows[table.name] = count
            out.write(json.dumps({"end": True, "rows": result.rows}) + "\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return result


class _snapshot:
    """One read transaction for the whole export: a daemon writing meanwhile cannot make the
    file mix two moments (SQLite WAL readers see one snapshot; PostgreSQL needs REPEATABLE READ)."""

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self.conn: Connection | None = None

    def __enter__(self) -> Connection:
        # syncd_read_only: a plain BEGIN on SQLite, not the writers' BEGIN IMMEDIATE, so the export
        # neither waits for nor blocks a running daemon's writes.
        conn = self.store.engine.connect().execution_options(syncd_read_only=True)
        if self.store.dialect_name == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        conn.begin()
        self.conn = conn
        return conn

    def __exit__(self, *exc: object) -> None:
        assert self.conn is not None
        self.conn.rollback()
        self.conn.close()


# ---------------------------------------------------------------------------------------- import
def _lines(path: Path, handle: IO[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, raw in enumerate(handle, 1):
        if not raw.strip():
            continue
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise TransferError(f"{path}, line {number}: not JSON ({exc.msg})") from None
        if not isinstance(value, dict):
            raise TransferError(f"{path}, line {number}: expected a JSON object")
        yield number, value


def _check_header(path: Path, header: Mapping[str, Any]) -> None:
    if header.get("format") != FORMAT:
        raise TransferError(f"{path}, line 1: not a syncd state export (format {header.get('format')!r})")
    version = header.get("version")
    if not isinstance(version, int) or version < 1:
        raise TransferError(f"{path}, line 1: invalid format version {version!r}")
    if version > VERSION:
        raise TransferError(
            f"{path}: format version {version} was written by a newer syncd "
            f"({header.get('syncd', '?')}); this syncd {__version__} reads up to version {VERSION}"
        )
    unknown = set(header.get("schema") or ()) - _all_revisions()
    if unknown:
        raise TransferError(
            f"{path}: the store was at schema revision {', '.join(sorted(unknown))}, unknown to this "
            f"syncd {__version__} (exported by {header.get('syncd', '?')}); upgrade syncd first"
        )


def _decoders(table: Table) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for column in table.columns:
        if isinstance(column.type, UTCDateTime):
            out[column.name] = _datetime
    return out


def _datetime(value: Any) -> datetime | None:
    if value is None:
        return None
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _occupied(conn: Connection) -> dict[str, int]:
    counts = {}
    for table in metadata.sorted_tables:  # leases too: rows there mean someone works on it
        n = int(conn.execute(select(func.count()).select_from(table)).scalar_one())
        if n:
            counts[table.name] = n
    return counts


def _open(path: Path) -> IO[str]:
    try:
        return path.open(encoding="utf-8")
    except FileNotFoundError:
        raise TransferError(f"{path}: no such file") from None
    except OSError as exc:
        raise TransferError(f"{path}: cannot read: {exc.strerror or exc}") from None


def check_file(path: Path) -> dict[str, Any]:
    """The header of ``path`` once it is known to be readable by this syncd (raises
    ``TransferError``); lets a caller refuse a bad file before it opens or creates a store."""
    path = Path(path)
    with _open(path) as handle:
        first = next(_lines(path, handle), None)
    if first is None:
        raise TransferError(f"{path}: the file is empty")
    _check_header(path, first[1])
    return first[1]


def import_store(store: StateStore, path: Path, *, replace: bool = False) -> TransferResult:
    """Load ``path`` into ``store`` (migrated to this syncd's schema) in one transaction."""
    path = Path(path)
    handle = _open(path)
    known = {t.name: t for t in tables()}
    decoders = {name: _decoders(t) for name, t in known.items()}
    result = TransferResult(path)
    with handle:
        lines = _lines(path, handle)
        first = next(lines, None)
        if first is None:
            raise TransferError(f"{path}: the file is empty")
        _check_header(path, first[1])
        with store.begin() as conn:
            occupied = _occupied(conn)
            if occupied and not replace:
                listed = ", ".join(f"{k} {v}" for k, v in sorted(occupied.items()))
                raise TransferError(
                    f"{path}: the target state store is not empty ({listed}); import into an empty "
                    f"store or pass --replace to delete its rows first"
                )
            for table in reversed(metadata.sorted_tables):
                if occupied.get(table.name):
                    conn.execute(table.delete())
            pending: dict[str, list[dict[str, Any]]] = {}
            trailer: dict[str, Any] | None = None
            for number, line in lines:
                if trailer is not None:
                    raise TransferError(f"{path}, line {number}: data after the end marker")
                if line.get("end") is True:
                    trailer = line
                    continue
                name, row = line.get("table"), line.get("row")
                table = known.get(name) if isinstance(name, str) else None
                if table is None or not isinstance(row, dict):
                    raise TransferError(f"{path}, line {number}: unknown table {name!r} or no row")
                extra = set(row) - set(table.columns.keys())
                if extra:
                    raise TransferError(
                        f"{path}, line {number}: table {name} has no column {', '.join(sorted(extra))}"
                    )
                try:
                    for col, decode in decoders[name].items():
                        if col in row:
                            row[col] = decode(row[col])
                except ValueError as exc:
                    raise TransferError(f"{path}, line {number}: table {name}: {exc}") from None
                batch = pending.setdefault(name, [])
                batch.append(row)
                result.rows[name] = result.rows.get(name, 0) + 1
                if len(batch) >= _CHUNK:
                    _insert(conn, table, batch)
                    batch.clear()
            if trailer is None:
                raise TransferError(f"{path}: incomplete file (no end marker); nothing was imported")
            for name, batch in pending.items():
                if batch:
                    _insert(conn, known[name], batch)
            expected = {k: int(v) for k, v in (trailer.get("rows") or {}).items() if v}
            if expected != {k: v for k, v in result.rows.items() if v}:
                raise TransferError(
                    f"{path}: row counts {result.rows} differ from the end marker's {expected}; "
                    f"nothing was imported"
                )
            _advance_sequences(conn)
    return result


def _insert(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    # Rows may lack columns an older export did not have: their server defaults apply.
    by_shape: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        by_shape.setdefault(tuple(sorted(row)), []).append(row)
    for group in by_shape.values():
        conn.execute(table.insert(), group)


def _advance_sequences(conn: Connection) -> None:
    """Explicit ids were inserted: PostgreSQL's sequences must move past them or the next
    credential job / cycle collides with an imported one. SQLite takes max(rowid) + 1 anyway."""
    if conn.dialect.name != "postgresql":
        return
    for table in metadata.sorted_tables:
        key = list(table.primary_key.columns)
        if len(key) != 1 or not isinstance(key[0].type, Integer) or key[0].autoincrement is False:
            continue
        conn.execute(
            text(
                f"SELECT setval(pg_get_serial_sequence(:t, :c), COALESCE(MAX({key[0].name}), 0) + 1, false) "
                f"FROM {table.name}"
            ),
            {"t": table.name, "c": key[0].name},
        )

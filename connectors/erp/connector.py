"""``SqlErp``: the ERP address table over SQLAlchemy Core (``syncd.ports.ErpPort``).

Reads go to the read source (a table, a view, or the address table with the profile's joins);
writes go to the address table only, each in its own short transaction. Every database call
runs under the project's retry policy with driver errors mapped to Transient/PermanentError
(``connectors.erp.engine.run_db``). The password field is written only through the
password-field methods (``connectors.erp.writes``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine

from connectors.erp import checks, scan
from connectors.erp.engine import build_engine, run_db
from connectors.erp.layout import Bound, Layout, LayoutError, names_needed, resolve_layout
from connectors.erp.normalise import AddressBuilder, clean_rows
from connectors.erp.reflect import Cache, MemoryCache, TableInfo, cached_table, table_names
from connectors.erp.values import ValueProblem, clean_raw, parse_number
from connectors.erp.writes import WritesMixin
from syncd.config.model import ErpSettings
from syncd.domain import CheckItem, ErpAddress
from syncd.errors import ConfigError, PermanentError


def _raw(column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """The column without its SQLAlchemy type: read as the driver returns it (a SQLite
    ``TIMESTAMP`` stays its stored text), and no bind processing on what it is compared with."""
    return sa.type_coerce(column, sa.types.NullType())


def _bind(value: Any) -> sa.BindParameter[Any]:
    return sa.bindparam(None, value, type_=sa.types.NullType(), unique=True)


_CHUNK = 500  # numbers per IN (...): well below SQL Server's 2100 parameters
PASSWORD_KEY = "platforms[].addresses.password_field"  # noqa: S105 - a config key, not a secret


@dataclass
class ErpStats:
    """What the connector asked of the database: the change-detection tests and the benchmark
    count these instead of timing."""

    statements: int = 0
    rows_read: int = 0


class _Shared:
    """What every view of one ERP shares: engine, cache, resolved layout, counters."""

    def __init__(self, settings: ErpSettings, engine: Engine, cache: Cache) -> None:
        self.settings = settings
        self.engine = engine
        self.cache = cache
        self.layout: Layout | None = None
        self.stats = ErpStats()

        @event.listens_for(engine, "before_cursor_execute")
        def _count(*_args: Any) -> None:
            self.stats.statements += 1


class SqlErp(WritesMixin):
    def __init__(
        self,
        settings: ErpSettings,
        engine: Engine,
        *,
        cache: Cache | None = None,
        password_field: str | None = None,
        password_length: int = 12,
        password_key: str = PASSWORD_KEY,
        _shared: _Shared | None = None,
    ) -> None:
        self._shared = _shared or _Shared(settings, engine, cache or MemoryCache())
        self.password_field = password_field
        self.password_length = password_length
        self.password_key = password_key
        self._builder: AddressBuilder | None = None

    def with_password_field(
        self, field: str | None, *, password_length: int = 12, password_key: str = PASSWORD_KEY
    ) -> SqlErp:
        """A view of the same ERP (engine, cache, layout) for one platform's password field."""
        return SqlErp(
            self.settings,
            self.engine,
            password_field=field,
            password_length=password_length,
            password_key=password_key,
            _shared=self._shared,
        )

    # --- plumbing -----------------------------------------------------------------------------
    @property
    def settings(self) -> ErpSettings:
        return self._shared.settings

    @property
    def engine(self) -> Engine:
        return self._shared.engine

    @property
    def stats(self) -> ErpStats:
        return self._shared.stats

    @property
    def password_field_length(self) -> int | None:
        """Characters the password column holds (None: unbounded, or no field configured); the
        credential flow never generates a longer password."""
        if not self.password_field:
            return None
        column = self.layout.write.column(self.password_field)
        return column.length if column is not None and column.kind == "text" else None

    def close(self) -> None:
        self.engine.dispose()

    @property
    def layout(self) -> Layout:
        if self._shared.layout is None:
            try:
                self._shared.layout = self._load_layout(fresh=False)
            except LayoutError:
                # The cache may predate the operator's fix: look again before refusing.
                self._shared.layout = self._load_layout_or_raise(fresh=True)
        return self._shared.layout

    def _reflect(self, fresh: bool) -> tuple[dict[str, TableInfo | None], list[str]]:
        s = self.settings
        write, read, joins = names_needed(s)
        wanted = [n for n in dict.fromkeys([write, read, *joins]) if n]

        def go() -> tuple[dict[str, TableInfo | None], list[str]]:
            with self.engine.connect() as conn:
                found = {n: cached_table(conn, self._shared.cache, n, s.schema_, fresh=fresh) for n in wanted}
                names = table_names(conn, s.schema_) if any(v is None for v in found.values()) else []
                return found, names

        return run_db("reflect tables", go)

    def _load_layout(self, fresh: bool) -> Layout:
        tables, names = self._reflect(fresh)
        return resolve_layout(self.settings, tables, lambda: names)

    def _load_layout_or_raise(self, fresh: bool) -> Layout:
        try:
            return self._load_layout(fresh)
        except LayoutError as e:
            first = e.findings[0]
            more = "; ".join(f"{f.key}: {f.message}" for f in e.findings[1:])
            raise ConfigError(
                first.message + (f" (also: {more})" if more else ""), key=first.key, value=first.value
            ) from None

    def refresh(self) -> None:
        """Forget the reflected layout (after ``syncd clear-cache``) and reflect again."""
        self._shared.layout = self._load_layout_or_raise(fresh=True)

    def _read(self, what: str, stmt: sa.Executable) -> list[sa.Row[Any]]:
        def go() -> list[sa.Row[Any]]:
            with self.engine.connect() as conn:
                rows = list(conn.execute(stmt))
            self.stats.rows_read += len(rows)
            return rows

        return run_db(what, go)

    def _number_param(self, number: int) -> Any:
        return str(number) if self.layout.number().column.kind == "text" else number

    def _number_params(self, numbers: Iterable[int]) -> list[list[Any]]:
        unique = list(dict.fromkeys(int(n) for n in numbers))
        params = [self._number_param(n) for n in unique]
        return [params[i : i + _CHUNK] for i in range(0, len(params), _CHUNK)]

    # --- checks -------------------------------------------------------------------------------
    def check(
        self,
        password_field: str | None = None,
        password_length: int | None = None,
        *,
        password_key: str | None = None,
    ) -> list[CheckItem]:
        return checks.run_checks(
            self,
            password_field or self.password_field,
            password_length or self.password_length,
            password_key or self.password_key,
        )

    def validate(
        self,
        password_field: str | None = None,
        password_length: int | None = None,
        *,
        password_key: str | None = None,
    ) -> None:
        """Start-up: raise ConfigError naming the first wrong key; a server that does not
        answer raises TransientError (after retries) instead, since that is no config fault."""
        checks.validate(
            self,
            password_field or self.password_field,
            password_length or self.password_length,
            password_key or self.password_key,
        )

    # --- normalisation ------------------------------------------------------------------------
    @staticmethod
    def _clean(rows: list[sa.Row[Any]]) -> list[dict[str, Any]]:
        return clean_rows(rows)

    def _to_address(
        self, raw: dict[str, Any], rejected: list[tuple[str, str]] | None = None
    ) -> ErpAddress | None:
        """``raw`` comes from ``_clean`` and is not changed (scans hash it)."""
        layout = self.layout
        builder = self._builder
        if builder is None or builder.layout is not layout:
            builder = self._builder = AddressBuilder(layout, self.settings, self.password_field)
        return builder.build(raw, rejected)

    # --- reads --------------------------------------------------------------------------------
    def _select(self) -> sa.Select[Any]:
        layout = self.layout
        return sa.select(*layout.read_columns()).select_from(layout.read_from())

    def get_addresses(self, numbers: Iterable[int]) -> dict[int, ErpAddress]:
        layout = self.layout
        number_col = layout.col(layout.number())
        found: dict[int, ErpAddress] = {}
        for chunk in self._number_params(numbers):
            for row in self._clean(self._read("read addresses", self._select().where(number_col.in_(chunk)))):
                address = self._to_address(row)
                if address is not None:
                    found[address.number] = address
        return found

    def get_address(self, number: int) -> ErpAddress | None:
        return self.get_addresses([number]).get(int(number))

    def numbers_present(self, numbers: Iterable[int]) -> set[int]:
        """Which of ``numbers`` the read source still holds (the number column only: the
        reconciliation asks this for every link, so it reads no address data)."""
        layout = self.layout
        num_b = layout.number()
        num = layout.col(num_b)
        found: set[int] = set()
        for chunk in self._number_params(numbers):
            stmt = sa.select(num.label("n")).select_from(layout.read_from()).where(num.in_(chunk))
            for row in self._read("find addresses", stmt):
                try:
                    found.add(parse_number(row.n))
                except ValueProblem:
                    continue
        return found

    def scan_changes(
        self, cursor: Mapping[str, Any] | None, *, batch_size: int = 500
    ) -> scan.WatermarkScan | scan.HashScan:
        layout = self.layout
        skip = frozenset(b.key for b in layout.row_keys if self._is_password_column(b))

        def fingerprint(row: Mapping[str, Any]) -> str:
            return scan.row_fingerprint(row, skip)

        if "modified_at" in layout.logical:
            return scan.WatermarkScan(self, cursor, batch_size, fingerprint)
        return scan.HashScan(self, cursor, batch_size, fingerprint)

    def _is_password_column(self, bound: Bound) -> bool:
        field = self.password_field
        return bool(field) and bound.table is self.layout.write and bound.column.name.lower() == field.lower()

    def _page_modified(
        self, lower: Any, after: tuple[Any, Any] | None, limit: int, stamp: Bound | None = None
    ) -> list[tuple]:
        """One keyset page of rows whose ``stamp`` (default: modified_at) is at least ``lower``,
        after ``after`` = (stamp, number), as (row, raw number, raw stamp). Bounds are compared
        uncoerced: what a page returned is what the next one binds (``connectors.erp.stamps``)."""
        layout = self.layout
        bound = stamp or layout.logical["modified_at"]
        mod, num = _raw(layout.col(bound)), _raw(layout.col(layout.number()))
        stmt = self._select_raw(num, mod, inner=layout.inner_for(bound)).where(mod.is_not(None))
        if lower is not None:
            stmt = stmt.where(mod >= _bind(lower))
        if after is not None:
            # The redundant leading ">=" lets every backend use the stamp's index as a range.
            stmt = stmt.where(mod >= _bind(after[0]), sa.or_(mod > _bind(after[0]), num > _bind(after[1])))
        return self._raw_rows("scan changes", stmt.order_by(mod, num).limit(limit))

    def _max_stamp(self, stamp: Bound) -> Any:
        """The newest raw value of ``stamp`` in its own table (one index probe when indexed)."""
        col = _raw(self.layout.col(stamp))
        return self._read("newest change stamp", sa.select(sa.func.max(col)))[0][0]

    def _page_null_modified(self, after: Any, limit: int) -> list[tuple]:
        layout = self.layout
        mod = layout.col(layout.logical["modified_at"])
        return self._page_by_number(after, limit, mod.is_(None))

    def _page_by_number(self, after: Any, limit: int, *where: Any) -> list[tuple]:
        """One page in number order after the raw number ``after``, as (row, raw number)."""
        num = _raw(self.layout.col(self.layout.number()))
        stmt = self._select_raw(num).where(num.is_not(None), *where)
        if after is not None:
            stmt = stmt.where(num > _bind(after))
        rows = self._raw_rows("scan addresses", stmt.order_by(num).limit(limit))
        return [(row, raw[0]) for row, *raw in rows]

    def _select_raw(self, *raw: sa.ColumnElement[Any], inner: frozenset[str] = frozenset()) -> sa.Select[Any]:
        """The read columns, then ``raw`` keyset columns as the driver returns them."""
        layout = self.layout
        extra = [c.label(f"_syncd_raw{i}") for i, c in enumerate(raw)]
        return sa.select(*layout.read_columns(), *extra).select_from(layout.read_from(inner))

    def _raw_rows(self, what: str, stmt: sa.Select[Any]) -> list[tuple]:
        rows = self._read(what, stmt)
        if not rows:
            return []
        width = len(self.layout.row_keys)
        keys = rows[0]._fields[:width]
        return [(dict(zip(keys, map(clean_raw, r[:width]), strict=True)), *r[width:]) for r in rows]

    def iter_all(self, *, batch_size: int = 500) -> Iterator[list[ErpAddress]]:
        """Every address in number order, one page in memory at a time (exports, demo)."""
        after = None
        while True:
            rows = self._page_by_number(after, batch_size)
            if not rows:
                return
            after = rows[-1][1]
            yield [a for a in (self._to_address(r) for r, _n in rows) if a is not None]

    def read_columns(self, number: int, columns: Sequence[str]) -> dict[str, Any]:
        bounds = [self._source_column(c, key="platforms[].addresses.copy_fields") for c in columns]
        num = self.layout.col(self.layout.number())
        stmt = (
            sa.select(*[self.layout.col(b).label(b.key) for b in bounds])
            .select_from(self.layout.read_from())
            .where(num == self._number_param(number))
        )
        rows = self._read("read columns", stmt)
        if not rows:
            raise PermanentError(f"ERP address {number} not found")
        values = rows[0]._mapping
        return {name: clean_raw(values[b.key]) for name, b in zip(columns, bounds, strict=True)}

    def find_numbers(self, column: str, value: Any) -> list[int]:
        b = self._source_column(column, key="erp.columns")
        col, num_b = self.layout.col(b), self.layout.number()
        if b.column.kind == "int" and isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        elif b.column.kind == "text" and value is not None and not isinstance(value, str):
            value = str(value)
        stmt = sa.select(self.layout.col(num_b).label("n")).select_from(self.layout.read_from())
        stmt = stmt.where(col.is_(None) if value is None else col == value)
        numbers = []
        for row in self._read("find addresses", stmt):
            try:
                numbers.append(parse_number(row.n))
            except ValueProblem:
                continue
        return sorted(numbers)

    def number_exists(self, number: int) -> bool:
        num = self.layout.write_col(self.layout.write_number().name)
        stmt = sa.select(num).where(num == self._number_param(number))
        return bool(self._read("number exists", stmt))

    def _source_column(self, name: str, *, key: str) -> Bound:
        """A logical name or a column of the read source; unknown names are config errors."""
        layout = self.layout
        bound = layout.logical.get(name) or layout.bind_in_sources(name)
        if bound is None:
            from connectors.erp.layout import near

            candidates = [b.key for b in layout.row_keys]
            raise ConfigError(
                f"column {name!r} not found in {' / '.join(s.name for s in layout.sources)}"
                f"{near(name, candidates)}",
                key=key,
                value=name,
            )
        return bound


def open_erp(
    erp: ErpSettings,
    *,
    password: str | None = None,
    cache: Cache | None = None,
    password_field: str | None = None,
    password_length: int = 12,
    password_key: str = PASSWORD_KEY,
) -> SqlErp:
    """Build the connector; no connection is made until the first call."""
    engine = build_engine(
        erp.url, password=password, pool_size=erp.pool_size, connect_timeout=erp.connect_timeout
    )
    return SqlErp(
        erp,
        engine,
        cache=cache,
        password_field=password_field,
        password_length=password_length,
        password_key=password_key,
    )

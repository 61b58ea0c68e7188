"""``AddressTable``: the ERP's address table and read source as one public object.

It owns what every part of the connector shares (engine, reflection cache, resolved layout,
statement counters) and the primitives they build on: reads under the retry policy, keyset
pages for the change scan, the lookup of address numbers, and the column facts writers need.
Scans (``scan.py``), checks (``checks.py``) and writers (``writes.py``) take an ``AddressTable``;
``SqlErp`` (``connector.py``) is the ``ErpPort`` façade over it.

Numbers are bound **in the column's own representation**, as the scan binds stamps
(``stamps.py``): a text number column may hold ``'10001'``, ``'00012'``, ``' 12'`` or a CHAR
right-padded with spaces, all of which the scan reads as the same integer. ``number_binds``
gives, for each number, the stored forms the column uses (learned from its smallest and largest
value and from the rows the scan pages read), so a lookup finds every row the scan delivered.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine

from syncd.config.model import ErpSettings
from syncd.connectors.erp.engine import run_db
from syncd.connectors.erp.layout import Bound, Layout, LayoutError, names_needed, near, resolve_layout
from syncd.connectors.erp.normalise import AddressBuilder
from syncd.connectors.erp.reflect import Cache, ColumnInfo, TableInfo, cached_table, table_names
from syncd.connectors.erp.values import ValueProblem, check_length, clean_raw, parse_country, parse_number
from syncd.core.domain import ErpAddress
from syncd.core.errors import ConfigError

# Values per IN (...): well below SQL Server's 2100 parameters, and 500 numbers per statement
# as long as the column uses at most two forms.
_IN_VALUES = 1000
_NUMBERS_PER_IN = 500

# How a number is stored: ("int",) or ("text", zero-fill width, right-justify width,
# left-justify width); ("text", 0, 0, 0) is the plain decimal text.
NumberForm = tuple
_PLAIN: NumberForm = ("text", 0, 0, 0)
_LEADING = frozenset("123456789")
_INT: NumberForm = ("int",)


def raw(column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """The column without its SQLAlchemy type: read as the driver returns it (a SQLite
    ``TIMESTAMP`` stays its stored text), and no bind processing on what it is compared with."""
    return sa.type_coerce(column, sa.types.NullType())


def bind(value: Any) -> sa.BindParameter[Any]:
    return sa.bindparam(None, value, type_=sa.types.NullType(), unique=True)


def form_of(value: Any) -> NumberForm | None:
    """The storage form of one raw number value (None: not a number)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return _INT
    if not isinstance(value, str):
        return None
    core = value.strip(" ")
    if not (core.isdecimal() and core.isascii()):
        return None
    zfill = len(core) if len(core) > 1 and core.startswith("0") else 0
    rjust = len(value.rstrip(" ")) if value.startswith(" ") else 0
    ljust = len(value) if value.endswith(" ") else 0
    return ("text", zfill, rjust, ljust)


def render(number: int, form: NumberForm) -> Any:
    if form[0] == "int":
        return number
    _kind, zfill, rjust, ljust = form
    text = str(number).zfill(zfill) if zfill else str(number)
    return text.rjust(rjust).ljust(ljust)


def _new_form(low: NumberForm | None, high: NumberForm | None) -> NumberForm:
    """The form for a new number: the padding the column's ends show (``'10001'`` is as
    zero-padded as ``'00007'``, only wider)."""
    ends = [f for f in (high, low) if f is not None]
    if not ends or ends[0] == _INT:
        return ends[0] if ends else _PLAIN
    text = [f for f in ends if f[0] == "text"]
    return ("text", *(max(f[i] for f in text) for i in (1, 2, 3)))


@dataclass
class ErpStats:
    """What the connector asked of the database: the change-detection tests and the benchmark
    count these instead of timing."""

    statements: int = 0
    rows_read: int = 0


class AddressTable:
    def __init__(self, settings: ErpSettings, engine: Engine, cache: Cache) -> None:
        self.settings = settings
        self.engine = engine
        self.cache = cache
        self.stats = ErpStats()
        self._layout: Layout | None = None
        self._builders: dict[str | None, AddressBuilder] = {}
        # The forms the number column was seen to use (an insertion-ordered set, replaced on
        # change, never mutated: lookups iterate it while a scan's thread may learn a form).
        self._forms: dict[NumberForm, None] = {_PLAIN: None}
        self._probed: Layout | None = None  # the layout whose number column was probed
        self._new_form: NumberForm = _PLAIN

        @event.listens_for(engine, "before_cursor_execute")
        def _count(*_args: Any) -> None:
            self.stats.statements += 1

    # --- layout -------------------------------------------------------------------------------
    @property
    def layout(self) -> Layout:
        if self._layout is None:
            try:
                self._layout = self.load_layout(fresh=False)
            except LayoutError:
                # The cache may predate the operator's fix: look again before refusing.
                self._layout = self._load_layout_or_raise(fresh=True)
        return self._layout

    def load_layout(self, fresh: bool) -> Layout:
        """Reflect and resolve (raises LayoutError with every finding; ``checks`` reports them)."""
        s = self.settings
        write, read, joins = names_needed(s)
        wanted = [n for n in dict.fromkeys([write, read, *joins]) if n]

        def go() -> tuple[dict[str, TableInfo | None], list[str]]:
            with self.engine.connect() as conn:
                found = {n: cached_table(conn, self.cache, n, s.schema_, fresh=fresh) for n in wanted}
                names = table_names(conn, s.schema_) if any(v is None for v in found.values()) else []
                return found, names

        tables, names = run_db("reflect tables", go)
        return resolve_layout(self.settings, tables, lambda: names)

    def _load_layout_or_raise(self, fresh: bool) -> Layout:
        try:
            return self.load_layout(fresh)
        except LayoutError as e:
            first = e.findings[0]
            more = "; ".join(f"{f.key}: {f.message}" for f in e.findings[1:])
            raise ConfigError(
                first.message + (f" (also: {more})" if more else ""), key=first.key, value=first.value
            ) from None

    def refresh(self) -> None:
        """Forget the reflected layout (after ``syncd clear-cache``) and reflect again."""
        self._layout = self._load_layout_or_raise(fresh=True)

    def read(self, what: str, stmt: sa.Executable) -> list[sa.Row[Any]]:
        def go() -> list[sa.Row[Any]]:
            with self.engine.connect() as conn:
                rows = list(conn.execute(stmt))
            self.stats.rows_read += len(rows)
            return rows

        return run_db(what, go)

    # --- address numbers ----------------------------------------------------------------------
    def _text_numbers(self) -> bool:
        return self.layout.number().column.kind == "text"

    def number_forms(self) -> list[NumberForm]:
        """The forms the number column stores numbers in. A text column's are learned from its
        smallest and largest value (probed once: two index lookups) and from every raw number
        any read returned (scan pages, the sweep's list), so a number the scan delivered or the
        sweep found is found again by a lookup."""
        layout = self.layout
        if not self._text_numbers():
            return [_INT]
        if self._probed is not layout:
            col = raw(layout.write_col(layout.write_number().name))
            low, high = self.read("number forms", sa.select(sa.func.min(col), sa.func.max(col)))[0]
            self._new_form = _new_form(form_of(low), form_of(high))
            self.learn_numbers((high, low))
            self._probed = layout
        return list(self._forms)

    def learn_numbers(self, values: Iterable[Any]) -> None:
        forms = self._forms
        for value in values:
            if value.__class__ is str and value[:1] in _LEADING and value[-1:] != " ":
                continue  # plain decimal text (or no number): the common case, checked cheaply
            form = form_of(value)
            if form is not None and form not in forms:
                forms = {**forms, form: None}
        self._forms = forms

    def numbers_of(self, values: Iterable[Any]) -> set[int]:
        """The address numbers of raw number values (values that are no number are left out);
        their forms are learned."""
        values = list(values)
        if self._text_numbers():
            self.learn_numbers(values)
        found: set[int] = set()
        for value in values:
            try:
                found.add(parse_number(value))
            except ValueProblem:
                continue
        return found

    def number_binds(self, numbers: Iterable[int]) -> list[list[Any]]:
        """The values to match the number column against with ``IN``, in chunks: every number
        in every form the column stores numbers in. Rows found map back with ``parse_number``."""
        unique = list(dict.fromkeys(int(n) for n in numbers))
        forms = self.number_forms()
        per = max(1, min(_NUMBERS_PER_IN, _IN_VALUES // len(forms)))
        return [
            list(dict.fromkeys(render(n, f) for n in unique[i : i + per] for f in forms))
            for i in range(0, len(unique), per)
        ]

    def number_value(self, number: int) -> Any:
        """A new row's number, in the form of the column's largest stored number."""
        forms = self.number_forms()
        return render(number, self._new_form if len(forms) > 1 else forms[0])

    def number_exists(self, number: int) -> bool:
        num = self.layout.write_col(self.layout.write_number().name)
        stmt = sa.select(num).where(num.in_(self.number_binds([number])[0]))
        return bool(self.read("number exists", stmt))

    # --- rows -> addresses --------------------------------------------------------------------
    def select(self) -> sa.Select[Any]:
        layout = self.layout
        return sa.select(*layout.read_columns()).select_from(layout.read_from())

    def to_address(
        self,
        row: Mapping[str, Any],
        password_field: str | None,
        rejected: list[tuple[str, str]] | None = None,
    ) -> ErpAddress | None:
        """``row`` comes from ``clean_rows`` or a page and is not changed (scans hash it)."""
        layout = self.layout
        builder = self._builders.get(password_field)
        if builder is None or builder.layout is not layout:
            builder = self._builders[password_field] = AddressBuilder(layout, self.settings, password_field)
        return builder.build(row, rejected)

    def is_password_column(self, bound: Bound, field: str | None) -> bool:
        return bool(field) and bound.table is self.layout.write and bound.column.name.lower() == field.lower()

    def source_column(self, name: str, *, key: str) -> Bound:
        """A logical name or a column of the read source; unknown names are config errors."""
        layout = self.layout
        bound = layout.logical.get(name) or layout.bind_in_sources(name)
        if bound is None:
            candidates = [b.key for b in layout.row_keys]
            raise ConfigError(
                f"column {name!r} not found in {' / '.join(s.name for s in layout.sources)}"
                f"{near(name, candidates)}",
                key=key,
                value=name,
            )
        return bound

    # --- keyset pages (the change scan) -------------------------------------------------------
    def page_modified(
        self, lower: Any, after: tuple[Any, Any] | None, limit: int, stamp: Bound | None = None
    ) -> list[tuple]:
        """One keyset page of rows whose ``stamp`` (default: modified_at) is at least ``lower``,
        after ``after`` = (stamp, number), as (row, raw number, raw stamp). Bounds are compared
        uncoerced: what a page returned is what the next one binds (``syncd.connectors.erp.stamps``)."""
        layout = self.layout
        bound = stamp or layout.logical["modified_at"]
        mod, num = raw(layout.col(bound)), raw(layout.col(layout.number()))
        stmt = self._select_raw(num, mod, inner=layout.inner_for(bound)).where(mod.is_not(None))
        if lower is not None:
            stmt = stmt.where(mod >= bind(lower))
        if after is not None:
            # The redundant leading ">=" lets every backend use the stamp's index as a range.
            stmt = stmt.where(mod >= bind(after[0]), sa.or_(mod > bind(after[0]), num > bind(after[1])))
        return self._raw_rows("scan changes", stmt.order_by(mod, num).limit(limit))

    def max_stamp(self, stamp: Bound) -> Any:
        """The newest raw value of ``stamp`` in its own table (one index probe when indexed)."""
        col = raw(self.layout.col(stamp))
        return self.read("newest change stamp", sa.select(sa.func.max(col)))[0][0]

    def page_null_modified(self, after: Any, limit: int) -> list[tuple]:
        layout = self.layout
        mod = layout.col(layout.logical["modified_at"])
        return self.page_by_number(after, limit, mod.is_(None))

    def page_by_number(self, after: Any, limit: int, *where: Any) -> list[tuple]:
        """One page in number order after the raw number ``after``, as (row, raw number)."""
        num = raw(self.layout.col(self.layout.number()))
        stmt = self._select_raw(num).where(num.is_not(None), *where)
        if after is not None:
            stmt = stmt.where(num > bind(after))
        rows = self._raw_rows("scan addresses", stmt.order_by(num).limit(limit))
        return [(row, extra[0]) for row, *extra in rows]

    def _select_raw(
        self, *extra: sa.ColumnElement[Any], inner: frozenset[str] = frozenset()
    ) -> sa.Select[Any]:
        """The read columns, then ``extra`` keyset columns as the driver returns them."""
        layout = self.layout
        labelled = [c.label(f"_syncd_raw{i}") for i, c in enumerate(extra)]
        return sa.select(*layout.read_columns(), *labelled).select_from(layout.read_from(inner))

    def _raw_rows(self, what: str, stmt: sa.Select[Any]) -> list[tuple]:
        rows = self.read(what, stmt)
        if not rows:
            return []
        width = len(self.layout.row_keys)
        keys = rows[0]._fields[:width]
        if self._text_numbers():
            self.learn_numbers(r[width] for r in rows)  # the keyset number follows the row
        return [(dict(zip(keys, map(clean_raw, r[:width]), strict=True)), *r[width:]) for r in rows]

    # --- what writers need --------------------------------------------------------------------
    def write_target(self, name: str, key: str) -> tuple[TableInfo, ColumnInfo]:
        """A logical name or a column of the address table (or a joined table, for inserts)."""
        layout = self.layout
        bound = layout.logical.get(name)
        if bound is not None:
            joined = [t for t in layout.sources[1:] if layout.joins]
            if bound.table is layout.write or any(bound.table is t for t in joined):
                return bound.table, bound.column
            name = bound.column.name  # read through a view: write the table's column of that name
        table_name, _, col_name = name.rpartition(".")
        for info in [layout.write, *layout.sources[1:]]:
            if table_name and info.name.lower() != table_name.lower():
                continue
            column = info.column(col_name)
            if column is not None:
                return info, column
        candidates = [c.name for t in [layout.write, *layout.sources[1:]] for c in t.columns]
        raise ConfigError(
            f"column {name!r} not found in {layout.write.name}{near(col_name, candidates)}",
            key=key,
            value=name,
        )

    def refuse_protected(self, column: str, key: str, password_field: str | None) -> None:
        """The password column is written only by ``PasswordFields``; the number only on insert."""
        if password_field and column.lower() == password_field.lower():
            raise ConfigError(
                f"column {column!r} is the password field; only the credential flow writes it",
                key=key,
                value=column,
            )
        if column.lower() == self.layout.write_number().name.lower():
            raise ConfigError(f"column {column!r} is the address number", key=key, value=column)

    @staticmethod
    def convert(logical: str | None, column: ColumnInfo, value: Any, problems: list[str]) -> Any:
        """A value in the form the column takes; problems collected per record."""
        if value is None:
            return None
        if logical == "country" and column.kind == "int":
            import pycountry

            try:
                value = int(pycountry.countries.get(alpha_2=parse_country(value)).numeric)
            except (ValueProblem, AttributeError):
                problems.append(f"{column.name}: country {value!r} has no ISO numeric code")
                return None
        if logical in ("blocked", "shop_flag", "business_flag") and isinstance(value, bool):
            value = {"bool": value, "int": int(value), "decimal": int(value)}.get(
                column.kind, "1" if value else "0"
            )
        if column.kind == "text" and not isinstance(value, str):
            value = str(value)
        if column.kind == "int" and isinstance(value, str):
            if not value.strip().lstrip("-").isdigit():
                problems.append(f"{column.name}: {value!r} is not an integer")
                return None
            value = int(value)
        try:
            check_length(column.name, value, column.length)
        except ValueProblem as e:
            problems.append(str(e))
        return value

    def now(self) -> Any:
        if self.engine.dialect.name == "sqlite":  # no server clock: match what the fixtures store
            return datetime.now(UTC).replace(tzinfo=None)
        return sa.func.current_timestamp()

"""The configured ERP mapping resolved against what the database really has.

``resolve_layout`` turns ``[erp]`` + profile + reflected tables into a ``Layout``: the read
source (a table, a view, or the address table with the profile's joins), the write table
(holds the password field, receives new addresses), and every logical column bound to a real
column. Anything that does not resolve is a ``Finding`` naming the config key, the table and
the column, with near matches.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from syncd.config.model import ErpSettings
from syncd.config.profiles import (
    PROFILES,
    Join,
    effective_address_table,
    effective_columns,
    effective_joins,
    effective_read_source,
)
from syncd.connectors.erp.reflect import ColumnInfo, TableInfo


@dataclass(frozen=True)
class Finding:
    """One thing wrong with the mapping; becomes a failed CheckItem or a ConfigError."""

    key: str
    message: str
    value: Any = None


@dataclass(frozen=True)
class Bound:
    table: TableInfo
    column: ColumnInfo
    key: str  # the name the column has in ErpAddress.row


_SA_TYPES: dict[str, Callable[[ColumnInfo], Any]] = {
    # Unicode, not String: mssql+pyodbc then binds N'' literals, so umlauts survive.
    "text": lambda c: sa.Unicode(c.length),
    "int": lambda c: sa.BigInteger(),
    "decimal": lambda c: sa.Numeric(),
    "bool": lambda c: sa.Boolean(),
    "datetime": lambda c: sa.DateTime(),
    "date": lambda c: sa.Date(),
}


def sa_table(info: TableInfo, metadata: sa.MetaData) -> sa.Table:
    cols = [sa.Column(c.name, _SA_TYPES.get(c.kind, lambda _c: sa.types.NullType())(c)) for c in info.columns]
    return sa.Table(info.name, metadata, *cols, schema=info.schema)


def near(name: str, candidates: list[str]) -> str:
    by_lower = {c.lower(): c for c in candidates}
    hits = difflib.get_close_matches(name.lower(), list(by_lower), n=3, cutoff=0.6)
    return f"; near matches: {', '.join(by_lower[h] for h in hits)}" if hits else ""


@dataclass
class Layout:
    settings: ErpSettings
    write: TableInfo
    sources: list[TableInfo]  # read source first, then the joined tables
    joins: tuple[Join, ...]
    logical: dict[str, Bound]
    row_keys: list[Bound]
    findings: list[Finding] = field(default_factory=list)
    # Change stamps of joined tables, watched next to modified_at; and the joined tables whose
    # changes nothing watches, each with the reason (for `syncd check`).
    joined_stamps: list[Bound] = field(default_factory=list)
    unwatched: list[tuple[str, str]] = field(default_factory=list)
    metadata: sa.MetaData = field(default_factory=sa.MetaData)
    _tables: dict[str, sa.Table] = field(default_factory=dict)

    def table(self, info: TableInfo) -> sa.Table:
        if info.name not in self._tables:
            self._tables[info.name] = sa_table(info, self.metadata)
        return self._tables[info.name]

    def col(self, bound: Bound) -> sa.ColumnElement[Any]:
        return self.table(bound.table).c[bound.column.name]

    def write_col(self, name: str) -> sa.ColumnElement[Any]:
        return self.table(self.write).c[name]

    def read_from(self, inner: frozenset[str] = frozenset()) -> sa.FromClause:
        """The read source with the profile's joins: LEFT joins, except for the tables named in
        ``inner`` (lower case), which a query's WHERE requires anyway (``inner_for``)."""
        base = self.sources[0]
        result: sa.FromClause = self.table(base)
        for join in self.joins:
            child = self.table(self._source(join.table))
            parent = self.table(self._parent(join))
            cond = sa.and_(*[child.c[c] == parent.c[p] for c, p in join.on])
            if join.table.lower() in inner:
                result = result.join(child, cond)
            else:
                result = result.outerjoin(child, cond)
        return result

    def inner_for(self, bound: Bound) -> frozenset[str]:
        """The joined tables a row must have when ``bound`` is not NULL: its table and the joins
        it hangs from. Saying so lets a planner start from that table's stamp index (SQLite
        does not on its own through two LEFT joins)."""
        names: set[str] = set()
        table = bound.table.name.lower()
        by_name = {j.table.lower(): j for j in self.joins}
        while table in by_name:
            names.add(table)
            table = by_name[table].parent_table.lower()
        return frozenset(names)

    def read_columns(self) -> list[sa.ColumnElement[Any]]:
        return [self.col(b).label(b.key) for b in self.row_keys]

    def bind_in_sources(self, name: str) -> Bound | None:
        """A column of the read source by name, or ``Table.Column`` for a joined table."""
        table_name, _, col_name = name.rpartition(".")
        for info in self.sources:
            if table_name and info.name.lower() != table_name.lower():
                continue
            c = info.column(col_name)
            if c is not None:
                for b in self.row_keys:
                    if b.table is info and b.column.name == c.name:
                        return b
        return None

    def number(self) -> Bound:
        return self.logical["number"]

    def write_number(self) -> ColumnInfo:
        c = self.write.column(self.logical["number"].column.name)
        assert c is not None  # resolve_layout makes this a finding
        return c

    def _source(self, name: str) -> TableInfo:
        return next(t for t in self.sources if t.name.lower() == name.lower())

    def _parent(self, join: Join) -> TableInfo:
        profile_table = PROFILES[self.settings.profile].address_table or ""
        if join.parent_table.lower() == profile_table.lower():
            return self.sources[0]
        return self._source(join.parent_table)


def names_needed(erp: ErpSettings) -> tuple[str | None, str | None, list[str]]:
    """(write table, read source, joined tables) as configured."""
    read = effective_read_source(erp)
    write = effective_address_table(erp) or read
    return write, read or write, [j.table for j in effective_joins(erp)]


def resolve_layout(
    erp: ErpSettings, tables: dict[str, TableInfo | None], all_names: Callable[[], list[str]]
) -> Layout:
    """``tables`` maps every name of ``names_needed`` to its reflection (None = missing)."""
    findings: list[Finding] = []
    write_name, read_name, join_names = names_needed(erp)
    if not write_name:
        findings.append(
            Finding("erp.address_table", "no address table configured (profile generic has none)")
        )
        raise LayoutError(findings)
    for key, name in (("erp.address_table", write_name), ("erp.read_source", read_name)):
        if tables.get(name) is None:
            key = "erp.address_table" if name == write_name else key
            findings.append(Finding(key, f"table or view {name!r} not found{near(name, all_names())}", name))
    for name in join_names:
        if tables.get(name) is None:
            findings.append(
                Finding(
                    "erp.profile",
                    f"profile {erp.profile!r} reads table {name!r}, which was not found"
                    f"{near(name, all_names())}; set [erp] read_source to a view instead",
                    name,
                )
            )
    if findings:
        raise LayoutError(findings)
    write = tables[write_name]
    sources = [tables[read_name]] + [tables[n] for n in join_names]
    assert write is not None and all(s is not None for s in sources)
    row_keys: list[Bound] = []
    used: set[str] = set()
    for info in sources:
        assert info is not None
        for c in info.columns:
            key = c.name if c.name.lower() not in used else f"{info.name}.{c.name}"
            used.add(key.lower())
            row_keys.append(Bound(info, c, key))
    layout = Layout(
        settings=erp,
        write=write,
        sources=[s for s in sources if s is not None],
        joins=effective_joins(erp),
        logical={},
        row_keys=row_keys,
    )
    for logical, name in effective_columns(erp).items():  # ERP_FLAGS: "COLUMN[=VALUE]" keys of [erp]
        bound = layout.bind_in_sources(name)
        if bound is None:
            where = " / ".join(s.name for s in layout.sources)
            candidates = [c.name for s in layout.sources for c in s.columns]
            hint = ('; set [erp] shop_flag = "" to push every address' if logical == "shop_flag" else "")
            findings.append(
                Finding(
                    f"erp.{logical}" if logical in ERP_FLAGS else f"erp.columns.{logical}",
                    f"column {name!r} not found in {where}{near(name.rpartition('.')[2], candidates)}{hint}",
                    name,
                )
            )
            continue
        layout.logical[logical] = bound
    if "number" not in effective_columns(erp):
        findings.append(Finding("erp.columns.number", "the address number column is not mapped"))
    elif "number" in layout.logical:
        number = layout.logical["number"]
        if write.column(number.column.name) is None:
            findings.append(
                Finding(
                    "erp.columns.number",
                    f"column {number.column.name!r} not found in address table {write.name!r}",
                    number.column.name,
                )
            )
        elif number.column.kind not in ("int", "decimal", "text"):
            findings.append(
                Finding(
                    "erp.columns.number",
                    f"column {number.column.name!r} is {number.column.type}, not an integer or text",
                    number.column.name,
                )
            )
    modified = layout.logical.get("modified_at")
    _resolve_joined_stamps(layout)
    if modified is not None and modified.column.kind not in STAMP_KINDS:
        findings.append(
            Finding(
                "erp.columns.modified_at",
                f"column {modified.column.name!r} is {modified.column.type}; change detection needs a "
                "timestamp (or a growing number)",
                modified.column.name,
            )
        )
    if findings:
        raise LayoutError(findings, layout)
    return layout


STAMP_KINDS = ("datetime", "date", "int", "decimal")
ERP_FLAGS = ("shop_flag", "deletion_mark")  # logical columns set as [erp] keys, not [erp.columns]


def _resolve_joined_stamps(layout: Layout) -> None:
    for join in layout.joins:
        info = layout._source(join.table)
        if not join.stamp:
            layout.unwatched.append((info.name, "the profile names no change stamp for it"))
            continue
        column = info.column(join.stamp)
        if column is None:
            layout.unwatched.append((info.name, f"it has no column {join.stamp}"))
            continue
        if column.kind not in STAMP_KINDS:
            reason = f"its column {column.name} is {column.type}, not a timestamp"
            layout.unwatched.append((info.name, reason))
            continue
        bound = next(b for b in layout.row_keys if b.table is info and b.column.name == column.name)
        layout.joined_stamps.append(bound)


class LayoutError(Exception):
    def __init__(self, findings: list[Finding], layout: Layout | None = None) -> None:
        super().__init__("; ".join(f"{f.key}: {f.message}" for f in findings))
        self.findings = findings
        self.layout = layout

"""What the ERP database says about its tables: column names, types, lengths, keys.

Reflected once per cache lifetime and kept in the tenant cache (scope ``erp``) as plain JSON,
so a restart does not hit the ERP's catalogue again; ``syncd clear-cache`` forgets it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.engine import Connection

from syncd.connectors.cache import MemoryCache  # noqa: F401 - re-exported for the connector
from syncd.core.ports import TenantCache as Cache

CACHE_SCOPE = "erp"


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    type: str  # as the database names it, for messages ("VARCHAR(40)")
    kind: str  # text | int | decimal | bool | datetime | date | binary | other
    length: int | None = None  # characters, for text; None = unbounded or not text
    nullable: bool = True


@dataclass(frozen=True)
class TableInfo:
    name: str
    schema: str | None
    columns: tuple[ColumnInfo, ...]
    primary_key: tuple[str, ...] = ()
    unique: tuple[tuple[str, ...], ...] = field(default=())
    # Leading column of every index (and key): a range on one of these need not read the table.
    # None: not known (a view, or a cache entry written before this was reflected).
    indexed: tuple[str, ...] | None = None

    def column(self, name: str) -> ColumnInfo | None:
        """Exact name first, then a unique case-insensitive match (MariaDB/SQL Server do not
        care about case, so an operator's 'email' for 'EMail' must work there)."""
        for c in self.columns:
            if c.name == name:
                return c
        folded = [c for c in self.columns if c.name.lower() == name.lower()]
        return folded[0] if len(folded) == 1 else None

    def is_indexed(self, column: str) -> bool | None:
        if self.indexed is None:
            return None
        return column.lower() in {c.lower() for c in self.indexed}

    def is_unique(self, column: str) -> bool:
        return (column,) == self.primary_key or (column,) in self.unique

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["columns"] = [asdict(c) for c in self.columns]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TableInfo:
        return cls(
            name=data["name"],
            schema=data.get("schema"),
            columns=tuple(ColumnInfo(**c) for c in data["columns"]),
            primary_key=tuple(data.get("primary_key") or ()),
            unique=tuple(tuple(u) for u in data.get("unique") or ()),
            indexed=tuple(data["indexed"]) if data.get("indexed") is not None else None,
        )


def _kind(type_: Any) -> str:
    if isinstance(type_, sa.Enum):
        return "other"
    if isinstance(type_, sa.Boolean):
        return "bool"
    if isinstance(type_, sa.String):
        return "text"
    if isinstance(type_, sa.Integer):
        return "int"
    if isinstance(type_, sa.Numeric):
        return "decimal"
    if isinstance(type_, sa.DateTime):
        return "datetime"
    if isinstance(type_, sa.Date):
        return "date"
    if isinstance(type_, sa.LargeBinary | sa.types._Binary):
        return "binary"
    try:
        python = type_.python_type
    except NotImplementedError:
        return "other"
    return {str: "text", int: "int", bool: "bool"}.get(python, "other")


def _type_name(type_: Any, dialect: sa.Dialect) -> str:
    try:
        return type_.compile(dialect=dialect)
    except Exception:  # a type the dialect cannot render back still has a readable name
        return str(type_.__class__.__name__).upper()


def reflect_table(conn: Connection, name: str, schema: str | None) -> TableInfo | None:
    """None when there is no such table or view."""
    inspector = sa.inspect(conn)
    try:
        raw = inspector.get_columns(name, schema=schema)
    except exc.NoSuchTableError:
        return None
    if not raw:
        return None
    columns = []
    for c in raw:
        kind = _kind(c["type"])
        length = getattr(c["type"], "length", None) if kind == "text" else None
        columns.append(
            ColumnInfo(
                name=c["name"],
                type=_type_name(c["type"], conn.dialect),
                kind=kind,
                length=int(length) if length else None,
                nullable=bool(c.get("nullable", True)),
            )
        )
    pk: tuple[str, ...] = ()
    unique: list[tuple[str, ...]] = []
    indexed: tuple[str, ...] | None = None
    try:  # views have no keys, and some dialects refuse to look
        pk = tuple(inspector.get_pk_constraint(name, schema=schema).get("constrained_columns") or ())
        unique += [tuple(u["column_names"]) for u in inspector.get_unique_constraints(name, schema=schema)]
        indexes = inspector.get_indexes(name, schema=schema)
        unique += [tuple(i["column_names"]) for i in indexes if i["unique"]]
        leading = [i["column_names"][0] for i in indexes if i["column_names"] and i["column_names"][0]]
        leading += [k[0] for k in (pk, *unique) if k]
        views = {v.lower() for v in inspector.get_view_names(schema=schema)}
        indexed = None if name.lower() in views else tuple(dict.fromkeys(leading))
    except (NotImplementedError, exc.DBAPIError, exc.NoSuchTableError):
        pass
    return TableInfo(
        name=name,
        schema=schema,
        columns=tuple(columns),
        primary_key=pk,
        unique=tuple(unique),
        indexed=indexed,
    )


def table_names(conn: Connection, schema: str | None) -> list[str]:
    """Tables and views, for 'did you mean' hints."""
    inspector = sa.inspect(conn)
    names = list(inspector.get_table_names(schema=schema))
    try:
        names += inspector.get_view_names(schema=schema)
    except NotImplementedError:
        pass
    return names


def resolve_table_name(conn: Connection, name: str, schema: str | None) -> str:
    """The catalogue's spelling of ``name`` when it differs only in case (PostgreSQL folds
    unquoted names to lower case; an operator writing 'Adressen' means 'adressen' there)."""
    names = table_names(conn, schema)
    if name in names:
        return name
    folded = [n for n in names if n.lower() == name.lower()]
    return folded[0] if len(folded) == 1 else name


def cached_table(
    conn: Connection, cache: Cache, name: str, schema: str | None, *, fresh: bool = False
) -> TableInfo | None:
    key = f"table:{schema or ''}:{name}"
    if not fresh:
        hit = cache.get(CACHE_SCOPE, key)
        if hit:
            try:
                return TableInfo.from_json(hit)
            except (KeyError, TypeError, ValueError):
                pass  # written by another version of syncd: reflect again
    info = reflect_table(conn, resolve_table_name(conn, name, schema), schema)
    if info is not None:  # a missing table is not cached: the operator may create it next
        cache.set(CACHE_SCOPE, key, info.to_json())
    return info

"""Writes into the ERP address table, each in its own short transaction.

The password column is written only by the password-field methods here: ``write_value``,
``create_address`` and template copies refuse it, so nothing else can leave a password in the
ERP. Values are checked against the reflected column lengths before the statement is sent:
an over-long value is refused with the column and its size, never truncated. No message ever
contains a password value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import exc

from connectors.erp.engine import run_db, sqlstate
from connectors.erp.layout import near
from connectors.erp.reflect import ColumnInfo, TableInfo
from connectors.erp.values import ValueProblem, check_length, parse_country
from syncd.errors import ConfigError, PermanentError

if TYPE_CHECKING:
    from connectors.erp.connector import SqlErp

_Base = object if not TYPE_CHECKING else SqlErp


class _Taken(Exception):
    """The insert hit a unique/primary-key violation."""


def _is_unique_violation(error: exc.DBAPIError) -> bool:
    if isinstance(error, exc.IntegrityError):
        return True
    state = sqlstate(error)  # sqlite over ODBC and some pyodbc drivers give a bare DBAPIError
    return state.startswith("23") or state in ("1062", "2627", "2601")


class WritesMixin(_Base):  # type: ignore[misc,valid-type]
    # --- the password field -------------------------------------------------------------------
    def _password_column(self) -> ColumnInfo:
        if not self.password_field:
            raise ConfigError("no password field configured for this platform", key=self.password_key)
        column = self.layout.write.column(self.password_field)
        if column is None or column.kind != "text":
            self.validate()  # raises the precise ConfigError (missing, wrong type, ...)
            raise ConfigError(
                "password field is not usable", key=self.password_key, value=self.password_field
            )
        return column

    def _empty(self, column: ColumnInfo) -> Any:
        return None if column.nullable else ""

    def write_password_fields(self, values: Mapping[int, str]) -> None:
        """All values in one transaction; an unknown number rolls back the whole batch."""
        if not values:
            return
        column = self._password_column()
        for number, value in values.items():
            if not isinstance(value, str) or not value:
                raise PermanentError(f"ERP address {number}: empty password refused")
            if column.length is not None and len(value) > column.length:
                raise PermanentError(
                    f"ERP address {number}: password has {len(value)} characters; "
                    f"{self.layout.write.name}.{column.name} holds {column.length}"
                )
        table = self.layout.table(self.layout.write)
        num = table.c[self.layout.write_number().name]
        params = [{"n_": self._number_param(n), "v_": v} for n, v in values.items()]
        stmt = sa.update(table).where(num == sa.bindparam("n_")).values({column.name: sa.bindparam("v_")})

        def go() -> None:
            with self.engine.begin() as conn:
                existing = set()
                for chunk in self._number_params(values):
                    existing |= {
                        str(r[0]).strip() for r in conn.execute(sa.select(num).where(num.in_(chunk)))
                    }
                missing = sorted(n for n in values if str(n) not in existing)
                if missing:
                    raise PermanentError(f"ERP address(es) not found: {', '.join(map(str, missing))}")
                conn.execute(stmt, params)

        run_db("write password fields", go)

    def read_password_fields(self, numbers: Iterable[int]) -> dict[int, str | None]:
        column = self._password_column()
        table = self.layout.table(self.layout.write)
        num = table.c[self.layout.write_number().name]
        wanted = [int(n) for n in numbers]
        result: dict[int, str | None] = dict.fromkeys(wanted)
        for chunk in self._number_params(wanted):
            for row in self._read(
                "read password fields", sa.select(num, table.c[column.name]).where(num.in_(chunk))
            ):
                value = row[1].rstrip(" ") if isinstance(row[1], str) else row[1]
                result[int(str(row[0]).strip())] = value or None
        return result

    def _non_empty(self, table: sa.Table, column: ColumnInfo) -> sa.ColumnElement[bool]:
        col = table.c[column.name]
        return sa.and_(col.is_not(None), col != "")

    def numbers_with_password(self) -> list[int]:
        column = self._password_column()
        table = self.layout.table(self.layout.write)
        num = table.c[self.layout.write_number().name]
        rows = self._read("find password fields", sa.select(num).where(self._non_empty(table, column)))
        return sorted(int(str(r[0]).strip()) for r in rows if str(r[0]).strip().isdigit())

    def clear_password_fields(self, numbers: Iterable[int]) -> None:
        """One statement per 500 numbers, in one transaction; clearing an empty field is a no-op."""
        column = self._password_column()
        table = self.layout.table(self.layout.write)
        num = table.c[self.layout.write_number().name]
        chunks = self._number_params(numbers)
        if not chunks:
            return

        def go() -> None:
            with self.engine.begin() as conn:
                for chunk in chunks:
                    conn.execute(
                        sa.update(table)
                        .where(num.in_(chunk), self._non_empty(table, column))
                        .values({column.name: self._empty(column)})
                    )

        run_db("clear password fields", go)

    def clear_all_password_fields(self) -> int:
        """The sweep: every non-empty password field emptied in one statement; returns how many."""
        column = self._password_column()
        table = self.layout.table(self.layout.write)
        stmt = (
            sa.update(table).where(self._non_empty(table, column)).values({column.name: self._empty(column)})
        )

        def go() -> int:
            with self.engine.begin() as conn:
                return int(conn.execute(stmt).rowcount or 0)

        return run_db("clear all password fields", go)

    # --- other writes -------------------------------------------------------------------------
    def _refuse_protected(self, column: str, key: str) -> None:
        if self.password_field and column.lower() == self.password_field.lower():
            raise ConfigError(
                f"column {column!r} is the password field; only the credential flow writes it",
                key=key,
                value=column,
            )
        if column.lower() == self.layout.write_number().name.lower():
            raise ConfigError(f"column {column!r} is the address number", key=key, value=column)

    def _write_target(self, name: str, key: str) -> tuple[TableInfo, ColumnInfo]:
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

    def _convert(self, logical: str | None, column: ColumnInfo, value: Any, problems: list[str]) -> Any:
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
        if logical == "blocked" and isinstance(value, bool):
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

    def _now(self) -> Any:
        if self.engine.dialect.name == "sqlite":  # no server clock: match what the fixtures store
            return datetime.now(UTC).replace(tzinfo=None)
        return sa.func.current_timestamp()

    def create_address(self, number: int, values: Mapping[str, Any]) -> bool:
        """Insert a new address (and, with a profile's joins, its postal record and contact).
        False when the number is taken, detected by the database's key violation (no
        check-then-insert race). When ``values`` carry the shop id column and the existing row
        has the same shop id, the row is our own earlier attempt (a retry after a lost reply)
        and counts as created."""
        layout = self.layout
        problems: list[str] = []
        rows: dict[str, dict[str, Any]] = {layout.write.name: {}}
        logical_of = {(b.table.name, b.column.name): name for name, b in layout.logical.items()}
        for name, value in values.items():
            table, column = self._write_target(name, key="values")
            self._refuse_protected(column.name, key=f"values.{name}")
            logical = name if name in layout.logical else logical_of.get((table.name, column.name))
            converted = self._convert(logical, column, value, problems)
            rows.setdefault(table.name, {})[column.name] = converted
        if problems:
            raise PermanentError(f"ERP address {number}: " + "; ".join(problems))
        base = rows[layout.write.name]
        base[layout.write_number().name] = self._number_param(number)
        modified = layout.logical.get("modified_at")
        if modified is not None and modified.table is layout.write and modified.column.name not in base:
            if modified.column.kind in ("datetime", "date"):
                base[modified.column.name] = self._now()
        self._link_joined_rows(rows)
        statements = [sa.insert(layout.table(layout.write)).values(base)]
        for join in layout.joins:
            if join.table in rows:
                info = next(t for t in layout.sources if t.name.lower() == join.table.lower())
                statements.append(sa.insert(layout.table(info)).values(rows.pop(join.table)))
        rows.pop(layout.write.name)
        if rows:  # never drop a value silently
            raise ConfigError(f"cannot write into {', '.join(rows)}", key="values", value=sorted(rows))

        def go() -> bool:
            try:
                with self.engine.begin() as conn:
                    for stmt in statements:
                        conn.execute(stmt)
                return True
            except exc.DBAPIError as e:
                if not e.connection_invalidated and _is_unique_violation(e):
                    raise _Taken() from None
                raise

        try:
            return run_db("create address", go)
        except _Taken:
            pass
        if not self.number_exists(number):
            raise PermanentError(
                f"ERP address {number}: insert refused by a constraint of {layout.write.name}"
            )
        shop = layout.logical.get("shop_id")
        mine = values.get("shop_id") if shop is not None else None
        if mine and self.read_columns(number, ["shop_id"]).get("shop_id") == mine:
            return True
        return False

    def _link_joined_rows(self, rows: dict[str, dict[str, Any]]) -> None:
        """Fill the join columns of child rows from their parents (profile joins only)."""
        layout = self.layout
        parent_name = {j.table: layout._parent(j).name for j in layout.joins}
        for join in reversed(layout.joins):  # a contact needs its postal record, and so on up
            if join.table in rows:
                parent = rows.setdefault(parent_name[join.table], {})
                for col, default in join.defaults.items():
                    parent.setdefault(col, default)
        for join in layout.joins:
            if join.table in rows:
                parent = rows[parent_name[join.table]]
                for child_col, parent_col in join.on:
                    rows[join.table][child_col] = parent.get(parent_col)

    def write_value(self, number: int, column: str, value: Any) -> None:
        layout = self.layout
        table_info, col = self._write_target(column, key="column")
        self._refuse_protected(col.name, key="column")
        if table_info is not layout.write:
            raise ConfigError(
                f"column {col.name!r} lives in {table_info.name}; "
                f"only {layout.write.name} columns can be written",
                key="column",
                value=column,
            )
        logical = (
            column
            if column in layout.logical
            else next((n for n, b in layout.logical.items() if b.column is col), None)
        )
        problems: list[str] = []
        converted = self._convert(logical, col, value, problems)
        if problems:
            raise PermanentError(f"ERP address {number}: " + "; ".join(problems))
        table = layout.table(layout.write)
        num = table.c[layout.write_number().name]
        stmt = sa.update(table).where(num == self._number_param(number)).values({col.name: converted})

        def go() -> None:
            with self.engine.begin() as conn:
                found = conn.execute(sa.select(num).where(num == self._number_param(number))).first()
                if found is None:
                    raise PermanentError(f"ERP address {number} not found")
                conn.execute(stmt)

        run_db("write value", go)

    def copy_from_template(self, template_number: int, fields: Sequence[str]) -> dict[str, Any]:
        """The configured fields of the template address, ready to pass to ``create_address``."""
        key = "platforms[].addresses.copy_fields"
        for name in fields:
            target = self._write_target(name, key=key)[1].name  # must be writable into a new address
            self._refuse_protected(target, key=key)
        try:
            return self.read_columns(template_number, list(fields))
        except PermanentError:
            raise PermanentError(f"template address {template_number} not found in the ERP") from None

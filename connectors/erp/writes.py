"""Writes into the ERP address table, each in its own short transaction.

``PasswordFields`` is the only writer of the password column; ``AddressWriter.create_address``
refuses it (and the number column among the values), so nothing else can leave a password in
the ERP. Values are checked against the reflected column lengths before the statement is sent:
an over-long value is refused with the column and its size, never truncated. No message ever
contains a password value. Numbers are matched in the column's own form
(``AddressTable.number_binds``); updates bind the number exactly as the lookup read it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc

from syncd.connectors.erp import checks
from syncd.connectors.erp.engine import run_db, sqlstate
from syncd.connectors.erp.reflect import ColumnInfo
from syncd.connectors.erp.table import AddressTable, bind, raw
from syncd.connectors.erp.values import ValueProblem, parse_number
from syncd.core.errors import ConfigError, PermanentError
from syncd.core.rules import STATUS_COLUMNS


class _Taken(Exception):
    """The insert hit a unique/primary-key violation."""


def _is_unique_violation(error: exc.DBAPIError) -> bool:
    if isinstance(error, exc.IntegrityError):
        return True
    state = sqlstate(error)  # sqlite over ODBC and some pyodbc drivers give a bare DBAPIError
    return state.startswith("23") or state in ("1062", "2627", "2601")


class PasswordFields:
    """One platform's password column in the address table (spec §1 step 3b/3f, I2)."""

    def __init__(self, table: AddressTable, field: str | None, length: int, key: str) -> None:
        self.table = table
        self.field = field
        self.length = length
        self.key = key

    def column(self) -> ColumnInfo:
        if not self.field:
            raise ConfigError("no password field configured for this platform", key=self.key)
        column = self.table.layout.write.column(self.field)
        if column is None or column.kind != "text":
            checks.validate(self.table, self.field, self.length, self.key)  # the precise ConfigError
            raise ConfigError("password field is not usable", key=self.key, value=self.field)
        return column

    def _number(self) -> sa.ColumnElement[Any]:
        layout = self.table.layout
        return layout.table(layout.write).c[layout.write_number().name]

    @staticmethod
    def _non_empty(col: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
        return sa.and_(col.is_not(None), col != "")

    def write(self, values: Mapping[int, str]) -> None:
        """All values in one transaction; an unknown number rolls back the whole batch."""
        if not values:
            return
        column = self.column()
        for number, value in values.items():
            if not isinstance(value, str) or not value:
                raise PermanentError(f"ERP address {number}: empty password refused")
            if column.length is not None and len(value) > column.length:
                raise PermanentError(
                    f"ERP address {number}: password has {len(value)} characters; "
                    f"{self.table.layout.write.name}.{column.name} holds {column.length}"
                )
        layout = self.table.layout
        target = layout.table(layout.write)
        num = self._number()
        stmt = (
            sa.update(target)
            .where(raw(num) == sa.bindparam("n_", type_=sa.types.NullType()))
            .values({column.name: sa.bindparam("v_")})
        )
        chunks = self.table.number_binds(values)

        def go() -> None:
            with self.table.engine.begin() as conn:
                stored: dict[int, Any] = {}  # number -> the value the row holds, bound as read
                for chunk in chunks:
                    for (value,) in conn.execute(sa.select(raw(num)).where(num.in_(chunk))):
                        try:
                            stored.setdefault(parse_number(value), value)
                        except ValueProblem:
                            continue
                missing = sorted(n for n in values if int(n) not in stored)
                if missing:
                    raise PermanentError(f"ERP address(es) not found: {', '.join(map(str, missing))}")
                conn.execute(stmt, [{"n_": stored[int(n)], "v_": v} for n, v in values.items()])

        run_db("write password fields", go)

    def read(self, numbers: Iterable[int]) -> dict[int, str | None]:
        column = self.column()
        layout = self.table.layout
        num, col = self._number(), layout.table(layout.write).c[column.name]
        wanted = [int(n) for n in numbers]
        result: dict[int, str | None] = dict.fromkeys(wanted)
        for chunk in self.table.number_binds(wanted):
            for row in self.table.read("read password fields", sa.select(num, col).where(num.in_(chunk))):
                try:
                    number = parse_number(row[0])
                except ValueProblem:
                    continue
                if number in result:
                    value = row[1].rstrip(" ") if isinstance(row[1], str) else row[1]
                    result[number] = value or None
        return result

    def numbers_with_value(self) -> list[int]:
        column = self.column()
        layout = self.table.layout
        col = layout.table(layout.write).c[column.name]
        rows = self.table.read(
            "find password fields", sa.select(raw(self._number())).where(self._non_empty(col))
        )
        return sorted(self.table.numbers_of(r[0] for r in rows))

    def clear(self, numbers: Iterable[int]) -> None:
        """One statement per 500 numbers, in one transaction; clearing an empty field is a no-op."""
        column = self.column()
        layout = self.table.layout
        target = layout.table(layout.write)
        num, col = self._number(), target.c[column.name]
        chunks = self.table.number_binds(numbers)
        if not chunks:
            return
        empty = None if column.nullable else ""

        def go() -> None:
            with self.table.engine.begin() as conn:
                for chunk in chunks:
                    conn.execute(
                        sa.update(target)
                        .where(num.in_(chunk), self._non_empty(col))
                        .values({column.name: empty})
                    )

        run_db("clear password fields", go)


class AddressWriter:
    """New addresses (shop → ERP import)."""

    def __init__(self, table: AddressTable, password_field: str | None) -> None:
        self.table = table
        self.password_field = password_field

    def create_address(self, number: int, values: Mapping[str, Any], read_shop_id: Any) -> bool:
        """Insert a new address (and, with a profile's joins, its postal record and contact).
        False when the number is taken, detected by the database's key violation (no
        check-then-insert race). When ``values`` carry the shop id column and the existing row
        has the same shop id (``read_shop_id(number)``), the row is our own earlier attempt (a
        retry after a lost reply) and counts as created."""
        table = self.table
        layout = table.layout
        problems: list[str] = []
        rows: dict[str, dict[str, Any]] = {layout.write.name: {}}
        logical_of = {(b.table.name, b.column.name): name for name, b in layout.logical.items()}
        for name, value in values.items():
            info, column = table.write_target(name, key="values")
            table.refuse_protected(column.name, f"values.{name}", self.password_field)
            logical = name if name in layout.logical else logical_of.get((info.name, column.name))
            rows.setdefault(info.name, {})[column.name] = table.convert(logical, column, value, problems)
        if problems:
            raise PermanentError(f"ERP address {number}: " + "; ".join(problems))
        base = rows[layout.write.name]
        base[layout.write_number().name] = table.number_value(number)
        modified = layout.logical.get("modified_at")
        if modified is not None and modified.table is layout.write and modified.column.name not in base:
            if modified.column.kind in ("datetime", "date"):
                base[modified.column.name] = table.now()
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
                with table.engine.begin() as conn:
                    for stmt in statements:
                        conn.execute(stmt)
                return True
            except exc.DBAPIError as e:
                if not e.connection_invalidated and _is_unique_violation(e):
                    raise _Taken() from None
                raise

        # A column storing numbers in several forms ('12', '00012'): its key sees only the form
        # inserted, so look for the others first (the key still catches a same-form race).
        if len(table.number_forms()) == 1 or not table.number_exists(number):
            try:
                return run_db("create address", go)
            except _Taken:
                pass
            if not table.number_exists(number):
                raise PermanentError(
                    f"ERP address {number}: insert refused by a constraint of {layout.write.name}"
                )
        shop = layout.logical.get("shop_id")
        mine = values.get("shop_id") if shop is not None else None
        return bool(mine) and read_shop_id(number) == mine

    def _link_joined_rows(self, rows: dict[str, dict[str, Any]]) -> None:
        """Fill the join columns of child rows from their parents (profile joins only)."""
        layout = self.table.layout
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


class AddressUpdater:
    """Changes to existing addresses: the shop id written back after a push, shop-side edits
    imported (``shop_changes = "import"``). Values by logical name or column; each goes to the
    table that holds it (a profile's joined postal record or contact is found by its join keys
    in the address's row). One transaction for the whole call; with ``touch`` the change stamp of
    every table written is set to now, as the ERP itself would."""

    def __init__(self, table: AddressTable, password_field: str | None) -> None:
        self.table = table
        self.password_field = password_field

    def update(self, changes: Mapping[int, Mapping[str, Any]], *, touch: bool) -> set[int]:
        """Returns the numbers not found. Only the untouched write-table path (the shop ids of a
        batch) skips them - an address deleted meanwhile has no row to hold its id; every other
        update raises ``PermanentError`` naming them."""
        changes = {int(n): v for n, v in changes.items() if v}
        if not changes:
            return set()
        table, layout = self.table, self.table.layout
        logical_of = {(b.table.name, b.column.name): name for name, b in layout.logical.items()}
        planned: dict[tuple[int, str], dict[str, Any]] = {}  # (number, table) -> column values
        for number, values in changes.items():
            problems: list[str] = []
            for name, value in values.items():
                info, column = table.write_target(name, key="values")
                table.refuse_protected(column.name, f"values.{name}", self.password_field)
                logical = name if name in layout.logical else logical_of.get((info.name, column.name))
                converted = table.convert(logical, column, value, problems)
                planned.setdefault((number, info.name), {})[column.name] = converted
            if problems:
                raise PermanentError(f"ERP address {number}: " + "; ".join(problems))
        if not touch and all(t == layout.write.name for _n, t in planned):
            # The shop ids of a whole batch: one statement per column set, sent as executemany.
            go_write, missing = self._write_table_go(planned)
            run_db("update addresses", go_write)
            return missing
        rows = self._rows(changes)
        statements = [self._statement(rows[n], t, dict(v), touch) for (n, t), v in planned.items()]

        def go() -> None:
            with table.engine.begin() as conn:
                for stmt in statements:
                    conn.execute(stmt)

        run_db("update addresses", go)
        return set()

    def _write_table_go(self, planned: Mapping[tuple[int, str], dict[str, Any]]) -> tuple[Any, set[int]]:
        table, layout = self.table, self.table.layout
        target = layout.table(layout.write)
        num = target.c[layout.write_number().name]
        stored: dict[int, Any] = {}  # number -> the value the row holds, bound as read
        for chunk in table.number_binds(n for n, _t in planned):
            for (value,) in table.read("find addresses", sa.select(raw(num)).where(num.in_(chunk))):
                try:
                    stored.setdefault(parse_number(value), value)
                except ValueProblem:
                    continue
        missing = {n for n, _t in planned if n not in stored}
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for (n, _t), values in planned.items():
            if n in missing:
                continue
            columns = tuple(sorted(values))
            params = {f"v{i}_": values[c] for i, c in enumerate(columns)}
            groups.setdefault(columns, []).append({"n_": stored[n], **params})
        where = raw(num) == sa.bindparam("n_", type_=sa.types.NullType())
        statements = [(sa.update(target).where(where).values({c: sa.bindparam(f"v{i}_")
                                                               for i, c in enumerate(columns)}), params)
                      for columns, params in groups.items()]

        def go() -> None:
            with table.engine.begin() as conn:
                for stmt, params in statements:
                    conn.execute(stmt, params)

        return go, missing

    def _rows(self, numbers: Iterable[int]) -> dict[int, Mapping[str, Any]]:
        """The current rows (with the raw number as ``_syncd_n``) of ``numbers``; all must exist."""
        table, layout = self.table, self.table.layout
        num = layout.col(layout.number())
        wanted = {int(n) for n in numbers}
        found: dict[int, Mapping[str, Any]] = {}
        for chunk in table.number_binds(wanted):
            stmt = (sa.select(*layout.read_columns(), raw(num).label("_syncd_n"))
                    .select_from(layout.read_from()).where(num.in_(chunk)))
            for r in table.read("read addresses", stmt):
                try:
                    n = parse_number(r._mapping["_syncd_n"])
                except ValueProblem:
                    continue
                if n in wanted:
                    found.setdefault(n, r._mapping)
        missing = sorted(wanted - found.keys())
        if missing:
            raise PermanentError(f"ERP address(es) not found: {', '.join(map(str, missing))}")
        return found

    def _key(self, table_name: str, column: str) -> str:
        layout = self.table.layout
        return next(b.key for b in layout.row_keys
                    if b.table.name == table_name and b.column.name.lower() == column.lower())

    def _statement(self, row: Mapping[str, Any], table_name: str, values: dict[str, Any],
                   touch: bool) -> sa.Update:
        layout = self.table.layout
        if table_name == layout.write.name:
            target = layout.table(layout.write)
            where = [raw(target.c[layout.write_number().name]) == bind(row["_syncd_n"])]
            stamp = layout.logical.get("modified_at")
            stamp_col = stamp.column.name if stamp is not None and stamp.table is layout.write else None
        else:
            join = next(j for j in layout.joins if j.table.lower() == table_name.lower())
            info = next(t for t in layout.sources if t.name.lower() == table_name.lower())
            parent = layout._parent(join)
            target = layout.table(info)
            where = []
            for child_col, parent_col in join.on:
                if row[self._key(info.name, child_col)] is None:
                    raise PermanentError(
                        f"ERP address {parse_number(row['_syncd_n'])}: it has no {info.name} row to write "
                        f"{', '.join(values)} into"
                    )
                where.append(raw(target.c[child_col]) == bind(row[self._key(parent.name, parent_col)]))
            stamp_col = join.stamp if join.stamp and info.column(join.stamp) is not None else None
        if touch and stamp_col and stamp_col not in values:
            values[stamp_col] = self.table.now()
        return sa.update(target).where(*where).values(values)




class StatusWriter:
    """syncd's account status in the ERP, for office staff (``[erp.columns] credentials_sent_at``,
    ``account_state``): optional columns of the address table that syncd alone writes."""

    def __init__(self, table: AddressTable) -> None:
        self.table = table

    def configured(self) -> tuple[str, ...]:
        return tuple(n for n in STATUS_COLUMNS if n in self.table.layout.logical)

    def write(self, values: Mapping[int, Mapping[str, Any]]) -> None:
        """Per number, logical name -> value (a datetime in UTC, or text); names not mapped are
        skipped. One transaction; a number missing from the ERP is skipped (it was deleted)."""
        names = self.configured()
        if not values or not names:
            return
        layout = self.table.layout
        target = layout.table(layout.write)
        num = raw(layout.table(layout.write).c[layout.write_number().name])
        columns: dict[str, ColumnInfo] = {}
        for name in names:
            info, column = self.table.write_target(name, key=f"erp.columns.{name}")
            if info is not layout.write:
                raise ConfigError(f"{name} must be a column of {layout.write.name}",
                                  key=f"erp.columns.{name}", value=column.name)
            columns[name] = column
        rows: list[tuple[int, dict[str, Any]]] = []
        for number, fields in values.items():
            row: dict[str, Any] = {}
            for name, value in fields.items():
                column = columns.get(name)
                if column is None:
                    continue
                row[column.name] = _status_value(column, value)
            if row:
                rows.append((int(number), row))
        if not rows:
            return
        binds = {int(n): forms for n, forms in ((n, self.table.number_binds([n])[0]) for n, _ in rows)}

        def go() -> None:
            with self.table.engine.begin() as conn:
                for number, row in rows:
                    conn.execute(sa.update(target).where(num.in_(binds[number])).values(row))

        run_db("write account status", go)


def _status_value(column: ColumnInfo, value: Any) -> Any:
    from datetime import datetime

    if value is None:  # a status cleared (email_undeliverable once the e-mail changed)
        return None
    if isinstance(value, datetime):
        if column.kind in ("datetime", "date"):
            # ERP stamps are local wall-clock time without a zone (as büro+ keeps them).
            return value.astimezone().replace(tzinfo=None)
        value = value.astimezone().strftime("%Y-%m-%d %H:%M")
    text = str(value)
    if column.length is not None:
        text = text[: column.length]  # a status, not a record: cut rather than refuse
    return text

"""``syncd check`` and start-up validation for the ERP side: connectivity, the read source and
address table, every mapped column, the key of the number column, and the password field
(exists in the address table, a text type, long enough, mapped to nothing else, readable by
layouts). Every refusal names the config key, table and column, and the column's real type.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa

from syncd.connectors.erp.engine import connect_target, display_url, translate
from syncd.connectors.erp.layout import Finding, Layout, LayoutError, near
from syncd.core.domain import CheckItem
from syncd.core.errors import ConfigError, PermanentError, TransientError

if TYPE_CHECKING:
    from syncd.connectors.erp.table import AddressTable

MIN_PASSWORD_FIELD = 10  # the reference ERP's minimum size for the field


def password_findings(layout: Layout, field: str, length: int, key: str) -> tuple[list[Finding], str]:
    """Problems with the password field, and a description of the column for the OK line."""
    write = layout.write
    column = write.column(field)
    if column is None:
        names = [c.name for c in write.columns]
        return [
            Finding(
                key, f"column {field!r} not found in address table {write.name}{near(field, names)}", field
            )
        ], ""
    described = f"{write.name}.{column.name}: {column.type}, " + (
        f"{column.length} characters" if column.length else "unbounded length"
    )
    found: list[Finding] = []
    if column.kind != "text":
        found.append(
            Finding(key, f"column {write.name}.{column.name} is {column.type}, not a text type", field)
        )
    need = max(length, MIN_PASSWORD_FIELD)
    if column.kind == "text" and column.length is not None and column.length < need:
        found.append(
            Finding(
                key,
                f"column {write.name}.{column.name} is {column.type} and holds {column.length} characters; "
                f"it needs at least {need} (password_length {length}, ERP minimum {MIN_PASSWORD_FIELD})",
                field,
            )
        )
    for logical, bound in layout.logical.items():
        if bound.table is write and bound.column.name == column.name:
            found.append(
                Finding(
                    key, f"column {write.name}.{column.name} is also mapped as erp.columns.{logical}", field
                )
            )
    if (
        layout.bind_in_sources(column.name) is None
        and layout.bind_in_sources(f"{write.name}.{column.name}") is None
    ):
        found.append(
            Finding(
                key,
                f"column {column.name!r} is not part of the read source {layout.sources[0].name}; "
                "layouts could not read the password from it",
                field,
            )
        )
    return found, described


def change_detection(layout: Layout, overlap: float) -> list[CheckItem]:
    """What the change scan watches, and warnings (ok lines marked so) for what it cannot see
    or can see only by reading the whole table."""
    if "modified_at" not in layout.logical:
        mode = "row hashing: every poll reads the whole table (map erp.columns.modified_at to avoid it)"
        return [CheckItem("erp", "change detection", True, mode)]
    primary = layout.logical["modified_at"]
    watched = [primary, *layout.joined_stamps]
    names = [primary.column.name] + [f"{b.table.name}.{b.column.name}" for b in layout.joined_stamps]
    items = [
        CheckItem("erp", "change detection", True, f"watermark on {', '.join(names)} (overlap {overlap:g}s)")
    ]
    for table, reason in layout.unwatched:
        items.append(
            CheckItem(
                "erp",
                f"change detection: {table}",
                True,
                f"{table} is read but not watched ({reason}): a change made only in {table} reaches "
                f"the shop when the address's {primary.table.name}.{primary.column.name} changes, or "
                "at the next full reconciliation (warning)",
            )
        )
    for b in watched:
        if b.table.is_indexed(b.column.name) is False:
            items.append(
                CheckItem(
                    "erp",
                    f"change detection: {b.table.name}.{b.column.name}",
                    True,
                    f"no index on {b.table.name}.{b.column.name}: every poll reads the whole table; "
                    f"CREATE INDEX on it (warning)",
                )
            )
    return items


def _layout(table: AddressTable, fresh: bool) -> tuple[Layout | None, list[Finding]]:
    try:
        if fresh:
            table.refresh()
        return table.layout, []
    except ConfigError:
        try:
            table.load_layout(fresh=True)
        except LayoutError as e:
            return e.layout, e.findings
        raise


def _findings(
    table: AddressTable, field: str | None, length: int, key: str, fresh: bool
) -> tuple[Layout | None, list[Finding], list[CheckItem]]:
    layout, findings = _layout(table, fresh)
    ok: list[CheckItem] = []
    if layout is None:
        return None, findings, ok
    sources = " + ".join(s.name for s in layout.sources)
    ok.append(CheckItem("erp", "read source", True, sources))
    ok.append(CheckItem("erp", "address table", True, layout.write.name))
    for logical, bound in layout.logical.items():
        ok.append(
            CheckItem(
                "erp",
                f"erp.columns.{logical}",
                True,
                f"{bound.table.name}.{bound.column.name} ({bound.column.type})",
            )
        )
    if not findings and "number" in layout.logical:
        number = layout.write_number()
        if not layout.write.is_unique(number.name):
            findings.append(
                Finding(
                    "erp.columns.number",
                    f"column {layout.write.name}.{number.name} is neither primary key nor unique: a taken "
                    "number could not be detected when creating addresses",
                    number.name,
                )
            )
    if not findings:
        ok += change_detection(layout, table.settings.overlap)
    if field and not findings:
        problems, described = password_findings(layout, field, length, key)
        findings += problems
        if not problems:
            ok.append(CheckItem("erp", key, True, described))
    return layout, findings, ok


# What the server says about itself: host name, the port it listens on, the database of this
# session. A forwarder or NAT in between makes its port differ from the URL's, so both are shown.
_WHERE = {
    "mysql": "SELECT @@hostname, @@port, DATABASE()",
    "mariadb": "SELECT @@hostname, @@port, DATABASE()",
    "postgresql": "SELECT COALESCE(host(inet_server_addr()), 'local socket'), inet_server_port(), "
    "current_database()",
    "mssql": "SELECT @@SERVERNAME, CONNECTIONPROPERTY('local_tcp_port'), DB_NAME()",
    "oracle": "SELECT SYS_CONTEXT('USERENV', 'SERVER_HOST'), NULL, SYS_CONTEXT('USERENV', 'DB_NAME') "
    "FROM dual",
}


def _reached(conn: sa.Connection) -> str:
    name = conn.dialect.name
    if name == "sqlite":
        rows = conn.exec_driver_sql("PRAGMA database_list").fetchall()
        path = next((r[2] for r in rows if r[1] == "main"), "")
        return f"SQLite file {path}" if path else "SQLite in-memory database"
    query = _WHERE.get(name)
    if query is None:
        return "the server cannot be asked where it is"
    host, port, database = conn.exec_driver_sql(query).one()
    port_text = port if port is not None else "?"
    return f"server {host}, port {port_text}, database {database}"


def _ping(table: AddressTable) -> str:
    """Connect once and ask the server where it is; the description for the check line."""
    with table.engine.connect() as conn:
        try:
            return _reached(conn)
        except sa.exc.DBAPIError:
            conn.rollback()
            conn.execute(
                sa.text("SELECT 1")
                if table.engine.dialect.name != "oracle"
                else sa.text("SELECT 1 FROM dual")
            )
            return "the server did not say where it is"


def run_checks(table: AddressTable, field: str | None, length: int, key: str) -> list[CheckItem]:
    url = display_url(table.engine.url)
    try:
        reached = _ping(table)  # once, no retries: check reports, it does not wait
    except Exception as e:  # any driver or network failure is a failed line, not a crash
        reason = translate(e, "connect") if isinstance(e, sa.exc.DBAPIError) else e
        return [CheckItem("erp", "connection", False, f"{url} (to {connect_target(table.engine)}): {reason}")]
    detail = f"{url}: connected to {connect_target(table.engine)}; reached {reached}"
    items = [CheckItem("erp", "connection", True, detail)]
    try:
        _layout_, findings, ok = _findings(table, field, length, key, fresh=True)
    except (TransientError, PermanentError) as e:
        return items + [CheckItem("erp", "reflection", False, str(e))]
    items += ok
    items += [CheckItem("erp", f.key, False, f.message) for f in findings]
    return items


def validate(table: AddressTable, field: str | None, length: int, key: str) -> None:
    _layout_, findings, _ok = _findings(table, field, length, key, fresh=False)
    if findings:
        first = findings[0]
        more = "; ".join(f"{f.key}: {f.message}" for f in findings[1:])
        raise ConfigError(
            first.message + (f" (also: {more})" if more else ""), key=first.key, value=first.value
        )

"""Build a sample ERP address table in any backend (SQLite file, PostgreSQL, MariaDB over ODBC).

The table uses the ``generic`` profile with this mapping (logical name -> column):

    number AdrNr (integer primary key)   company Firma        salutation Anrede
    first_name Vorname    last_name Nachname    street Strasse    zip PLZ    city Ort
    country Land (text: ISO code or name)      email EMail        phone Telefon
    customer_group Gruppe blocked Gesperrt ('J'/'N')              shop_id ShopId
    modified_at Geaendert (naive UTC timestamp, indexed; omitted with with_modified_at=False)

plus free selection fields ``Sel1`` … ``Sel10`` (VARCHAR(80)), ``Status`` and ``Bemerkung``.
The password field (default ``Sel5``) is ``VARCHAR(password_len)``; ``password_type="int"``
makes it an INTEGER and ``password_type=None`` leaves it out, for the check tests.

    settings = create_address_table(url, "erp_" + suffix)
    insert_addresses(url, table, [{"number": 10001, "email": "a@example.com", "last_name": "Müller"}])
    erp = syncd.connectors.erp.open_erp(settings, password_field="Sel5")

Rows for ``insert_addresses`` / ``update_address`` are keyed by logical name or column name;
``blocked`` takes a bool; ``modified_at`` defaults to now (UTC) on insert, and
``update_address`` sets it to now unless ``touch=False`` or a value is given.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from syncd.config.model import ErpColumns, ErpSettings

COLUMNS = {
    "number": "AdrNr",
    "company": "Firma",
    "salutation": "Anrede",
    "first_name": "Vorname",
    "last_name": "Nachname",
    "street": "Strasse",
    "zip": "PLZ",
    "city": "Ort",
    "country": "Land",
    "email": "EMail",
    "phone": "Telefon",
    "customer_group": "Gruppe",
    "blocked": "Gesperrt",
    "modified_at": "Geaendert",
    "shop_id": "ShopId",
}


def utcnow() -> datetime:
    """Naive UTC, as the sample table stores it."""
    return datetime.now(UTC).replace(tzinfo=None)


def _engine(url: str) -> sa.Engine:
    return sa.create_engine(url, poolclass=sa.pool.NullPool)


def _table(url: str, table: str, engine: sa.Engine | None = None) -> sa.Table:
    own = engine is None
    engine = engine or _engine(url)
    try:
        return sa.Table(table, sa.MetaData(), autoload_with=engine)
    finally:
        if own:
            engine.dispose()


def create_address_table(
    url: str,
    table: str,
    *,
    password_field: str | None = "Sel5",
    password_len: int = 40,
    with_modified_at: bool = True,
    password_type: str | None = "text",
) -> ErpSettings:
    """Create the sample table (dropping a leftover of the same name) and return settings."""
    cols: list[sa.Column[Any]] = [
        sa.Column("AdrNr", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("Firma", sa.Unicode(80)),
        sa.Column("Anrede", sa.Unicode(20)),
        sa.Column("Vorname", sa.Unicode(60)),
        sa.Column("Nachname", sa.Unicode(60)),
        sa.Column("Strasse", sa.Unicode(80)),
        sa.Column("PLZ", sa.Unicode(10)),
        sa.Column("Ort", sa.Unicode(60)),
        sa.Column("Land", sa.Unicode(40)),
        sa.Column("EMail", sa.Unicode(254)),
        sa.Column("Telefon", sa.Unicode(40)),
        sa.Column("Gruppe", sa.Unicode(20)),
        sa.Column("Gesperrt", sa.Unicode(1), nullable=False, server_default="N"),
        sa.Column("ShopId", sa.Unicode(64)),
        sa.Column("Status", sa.Unicode(20)),
        sa.Column("Bemerkung", sa.Unicode(200)),
    ]
    for i in range(1, 11):
        name = f"Sel{i}"
        if name == password_field:
            continue
        cols.append(sa.Column(name, sa.Unicode(80)))
    if password_field and password_type == "text":
        cols.append(sa.Column(password_field, sa.Unicode(password_len)))
    elif password_field and password_type == "int":
        cols.append(sa.Column(password_field, sa.Integer))
    if with_modified_at:
        cols.append(sa.Column("Geaendert", sa.DateTime, index=True))
    metadata = sa.MetaData()
    t = sa.Table(table, metadata, *cols)
    engine = _engine(url)
    try:
        t.drop(engine, checkfirst=True)
        t.create(engine)
    finally:
        engine.dispose()
    columns = dict(COLUMNS)
    if not with_modified_at:
        columns.pop("modified_at")
    return ErpSettings(url=url, profile="generic", address_table=table, columns=ErpColumns(**columns))


def _to_columns(row: Mapping[str, Any], table: sa.Table) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.items():
        column = COLUMNS.get(key, key)
        if column not in table.c:
            raise KeyError(f"sample ERP table {table.name} has no column {column!r} (from {key!r})")
        if column == "Gesperrt" and isinstance(value, bool):
            value = "J" if value else "N"
        out[column] = value
    return out


def insert_addresses(url: str, table: str, rows: Iterable[Mapping[str, Any]]) -> None:
    engine = _engine(url)
    try:
        t = _table(url, table, engine)
        now = utcnow()
        values = []
        for row in rows:
            v = _to_columns(row, t)
            if "Geaendert" in t.c:
                v.setdefault("Geaendert", now)
            v.setdefault("Gesperrt", "N")  # executemany sends one key set: no server default
            values.append(v)
        if not values:
            return
        keys = sorted({k for v in values for k in v})
        with engine.begin() as conn:
            conn.execute(sa.insert(t), [{k: v.get(k) for k in keys} for v in values])
    finally:
        engine.dispose()


def update_address(
    url: str, table: str, number: int, values: Mapping[str, Any], *, touch: bool = True
) -> None:
    engine = _engine(url)
    try:
        t = _table(url, table, engine)
        v = _to_columns(values, t)
        if touch and "Geaendert" in t.c:
            v.setdefault("Geaendert", utcnow())
        with engine.begin() as conn:
            conn.execute(sa.update(t).where(t.c.AdrNr == number).values(v))
    finally:
        engine.dispose()


def fetch_row(url: str, table: str, number: int) -> dict[str, Any] | None:
    engine = _engine(url)
    try:
        t = _table(url, table, engine)
        with engine.connect() as conn:
            row = conn.execute(sa.select(t).where(t.c.AdrNr == number)).first()
        return dict(row._mapping) if row is not None else None
    finally:
        engine.dispose()


def drop_table(url: str, *tables: str) -> None:
    engine = _engine(url)
    try:
        with engine.begin() as conn:
            for table in tables:
                conn.execute(
                    sa.text(f"DROP TABLE IF EXISTS {engine.dialect.identifier_preparer.quote(table)}")
                )
    finally:
        engine.dispose()


def fill_addresses(
    url: str,
    table: str,
    count: int,
    *,
    first_number: int = 100000,
    base_time: datetime | None = None,
    step_seconds: int = 60,
) -> datetime:
    """Bulk-insert ``count`` addresses server-side (generate_series / seq engine / recursive CTE):
    number ``first_number + i``, e-mail ``kunde<number>@example.com``, modified_at
    ``base_time + i * step_seconds``. Returns the newest modified_at."""
    base = (base_time or utcnow() - timedelta(days=400)).replace(microsecond=0)
    engine = _engine(url)
    q = engine.dialect.identifier_preparer.quote(table)
    has_mod = "Geaendert" in _table(url, table, engine).c
    mod_col = ', "Geaendert"' if has_mod else ""
    try:
        with engine.begin() as conn:
            name = engine.dialect.name
            b = base.strftime("%Y-%m-%d %H:%M:%S")
            if name == "postgresql":
                mod = f", TIMESTAMP '{b}' + (i * {step_seconds}) * INTERVAL '1 second'" if has_mod else ""
                conn.execute(
                    sa.text(
                        f'INSERT INTO {q} ("AdrNr", "Firma", "EMail", "Gesperrt"{mod_col}) '
                        f"SELECT {first_number} + i, 'Firma ' || i, "
                        f"'kunde' || ({first_number} + i) || '@example.com', "
                        f"'N'{mod} FROM generate_series(0, {count - 1}) AS i"
                    )
                )
            elif name in ("mysql", "mariadb"):
                mod = f", DATE_ADD('{b}', INTERVAL seq * {step_seconds} SECOND)" if has_mod else ""
                conn.execute(
                    sa.text(
                        f"INSERT INTO {q} (AdrNr, Firma, EMail, Gesperrt{mod_col.replace(chr(34), '')}) "
                        f"SELECT {first_number} + seq, CONCAT('Firma ', seq), "
                        f"CONCAT('kunde', {first_number} + seq, '@example.com'), 'N'{mod} "
                        f"FROM seq_0_to_{count - 1}"
                    )
                )
            elif name == "sqlite":
                # SQLAlchemy stores SQLite timestamps as 'YYYY-MM-DD HH:MM:SS.ffffff': keep that form.
                mod = (
                    f", datetime('{b}', '+' || (i * {step_seconds}) || ' seconds') || '.000000'"
                    if has_mod
                    else ""
                )
                conn.execute(
                    sa.text(
                        "WITH RECURSIVE s(i) AS "
                        f"(SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < {count - 1}) "
                        f'INSERT INTO {q} ("AdrNr", "Firma", "EMail", "Gesperrt"{mod_col}) '
                        f"SELECT {first_number} + i, 'Firma ' || i, "
                        f"'kunde' || ({first_number} + i) || '@example.com', "
                        f"'N'{mod} FROM s"
                    )
                )
            else:
                raise NotImplementedError(f"fill_addresses: no bulk insert for {name}")
        if engine.dialect.name == "postgresql":  # a live ERP table has statistics; a fresh one not
            with engine.begin() as conn:
                conn.execute(sa.text(f"ANALYZE {q}"))
    finally:
        engine.dispose()
    return base + timedelta(seconds=step_seconds * (count - 1))


def create_bueroplus_tables(
    url: str,
    *,
    schema: str | None = None,
    password_len: int = 40,
    contact_stamp: bool = True,
    stamp_index: bool = True,
) -> ErpSettings:
    """The reference ERP's three address datasets with the names of bueroplus-notes.md, as plain
    tables: ``Adressen`` (AdrNr text key, ReAnsNr, GspKz, WShopAdrKz, WShopID, LtzAend, Status,
    Sel1…Sel15 with
    ``Sel10`` of ``password_len``), ``Anschriften`` (postal data, e-mail, ``Land`` as ISO numeric)
    and ``Ansprechpartner`` (contact names), each with its change stamp ``LtzAend`` (the joined
    tables' stamps are indexed unless ``stamp_index=False``; ``contact_stamp=False`` leaves the
    stamp out of Ansprechpartner).
    Returns ``profile = "bueroplus"`` settings; pass a fresh ``schema`` on a shared server (the
    table names are fixed; on MariaDB a schema is a database)."""
    metadata = sa.MetaData(schema=schema)
    sels = [sa.Column(f"Sel{i}", sa.Unicode(password_len if i == 10 else 80)) for i in range(1, 16)]
    tables = [
        sa.Table(
            "Adressen",
            metadata,
            sa.Column("AdrNr", sa.Unicode(20), primary_key=True),
            sa.Column("ReAnsNr", sa.Integer),
            sa.Column("Status", sa.Unicode(20)),
            sa.Column("GspKz", sa.Boolean, nullable=False, server_default=sa.false()),
            sa.Column("WShopAdrKz", sa.Boolean, nullable=False, server_default=sa.false()),
            sa.Column("WShopID", sa.Unicode(64)),
            sa.Column("LtzAend", sa.DateTime, index=True),
            *sels,
        ),
        sa.Table(
            "Anschriften",
            metadata,
            sa.Column("AdrNr", sa.Unicode(20), primary_key=True),
            sa.Column("AnsNr", sa.Integer, primary_key=True),
            sa.Column("Na1", sa.Unicode(40)),
            sa.Column("Na2", sa.Unicode(80)),
            sa.Column("Na3", sa.Unicode(80)),
            sa.Column("Str", sa.Unicode(80)),
            sa.Column("PLZ", sa.Unicode(10)),
            sa.Column("Ort", sa.Unicode(60)),
            sa.Column("Land", sa.Integer),
            sa.Column("Tel", sa.Unicode(40)),
            sa.Column("EMail1", sa.Unicode(254)),
            sa.Column("AspNr", sa.Integer),
            sa.Column("LtzAend", sa.DateTime, index=stamp_index),
        ),
        sa.Table(
            "Ansprechpartner",
            metadata,
            sa.Column("AdrNr", sa.Unicode(20), primary_key=True),
            sa.Column("AnsNr", sa.Integer, primary_key=True),
            sa.Column("AspNr", sa.Integer, primary_key=True),
            sa.Column("Anr", sa.Unicode(20)),
            sa.Column("VNa", sa.Unicode(60)),
            sa.Column("NNa", sa.Unicode(60)),
            sa.Column("EMail1", sa.Unicode(254)),
            *([sa.Column("LtzAend", sa.DateTime, index=stamp_index)] if contact_stamp else []),
        ),
    ]
    engine = _engine(url)
    try:
        if schema:
            with engine.begin() as conn:
                conn.execute(sa.schema.CreateSchema(schema, if_not_exists=True))
        metadata.drop_all(engine, tables=tables, checkfirst=True)
        metadata.create_all(engine, tables=tables)
    finally:
        engine.dispose()
    settings = {"url": url, "profile": "bueroplus"}
    if schema:
        settings["schema"] = schema
    return ErpSettings(**settings)


def drop_schema(url: str, schema: str) -> None:
    engine = _engine(url)
    try:
        with engine.begin() as conn:
            # MariaDB drops a schema (a database) with its tables and knows no CASCADE
            cascade = engine.dialect.name not in ("mysql", "mariadb")
            conn.execute(sa.schema.DropSchema(schema, cascade=cascade, if_exists=True))
    finally:
        engine.dispose()

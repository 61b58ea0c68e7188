"""``SqlErp``: the ERP address table over SQLAlchemy Core (``syncd.core.ports.ErpPort``).

A façade: the table itself (engine, layout, reads, keyset pages, number binding) is the public
``AddressTable`` (``syncd.connectors.erp.table``); the change scan (``scan.py``), checks (``checks.py``)
and writers (``writes.py``) work on that object. ``SqlErp`` adds one platform's view: its
password field, through ``PasswordFields``, the only writer of that column.

Reads go to the read source (a table, a view, or the address table with the profile's joins);
writes go to the address table only, each in its own short transaction. Every database call
runs under the project's retry policy with driver errors mapped to Transient/PermanentError
(``syncd.connectors.erp.engine.run_db``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from syncd.config.contacts import effective_contacts, optional_contact_columns
from syncd.config.model import ErpSettings
from syncd.connectors.erp import checks, scan
from syncd.connectors.erp.contacts import ContactBook, contact_address
from syncd.connectors.erp.engine import build_engine
from syncd.connectors.erp.layout import Layout
from syncd.connectors.erp.normalise import clean_rows
from syncd.connectors.erp.reflect import Cache, MemoryCache
from syncd.connectors.erp.table import AddressTable, ErpStats
from syncd.connectors.erp.values import ValueProblem, clean_raw, parse_number
from syncd.connectors.erp.writes import AddressUpdater, AddressWriter, PasswordFields, StatusWriter
from syncd.core.domain import CheckItem, ErpAddress
from syncd.core.errors import ConfigError, PermanentError
from syncd.core.rules import account_parts

PASSWORD_KEY = "platforms[].addresses.password_field"  # noqa: S105 - a config key, not a secret

__all__ = ["PASSWORD_KEY", "ErpStats", "SqlErp", "open_erp"]


class SqlErp:
    def __init__(
        self,
        settings: ErpSettings,
        engine: Engine,
        *,
        cache: Cache | None = None,
        password_field: str | None = None,
        password_length: int = 12,
        password_key: str = PASSWORD_KEY,
        table: AddressTable | None = None,
    ) -> None:
        self.table = table or AddressTable(settings, engine, cache or MemoryCache())
        self.password_field = password_field
        self.password_length = password_length
        self.password_key = password_key
        self.passwords = PasswordFields(self.table, password_field, password_length, password_key)
        self.writer = AddressWriter(self.table, password_field)
        self.updater = AddressUpdater(self.table, password_field)
        self.status = StatusWriter(self.table)
        contacts = effective_contacts(settings)
        self.contacts = (ContactBook(self.table, contacts, optional_contact_columns(settings))
                         if contacts is not None else None)

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
            table=self.table,
        )

    # --- plumbing -----------------------------------------------------------------------------
    @property
    def settings(self) -> ErpSettings:
        return self.table.settings

    @property
    def engine(self) -> Engine:
        return self.table.engine

    @property
    def stats(self) -> ErpStats:
        return self.table.stats

    @property
    def layout(self) -> Layout:
        return self.table.layout

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

    def refresh(self) -> None:
        """Forget the reflected layout (after ``syncd clear-cache``) and reflect again."""
        self.table.refresh()

    # --- checks -------------------------------------------------------------------------------
    def check(
        self,
        password_field: str | None = None,
        password_length: int | None = None,
        *,
        password_key: str | None = None,
    ) -> list[CheckItem]:
        return checks.run_checks(
            self.table,
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
            self.table,
            password_field or self.password_field,
            password_length or self.password_length,
            password_key or self.password_key,
        )

    # --- reads --------------------------------------------------------------------------------
    def get_addresses(self, numbers: Iterable[int]) -> dict[int, ErpAddress]:
        """Addresses by number; a contact account's key (negative, ``rules.contact_account``)
        gives that contact person's account address."""
        wanted = {int(n) for n in numbers}
        accounts = {n for n in wanted if n < 0}
        found = self._addresses((wanted - accounts) | {account_parts(n)[0] for n in accounts})
        if accounts and self.contacts is not None:
            companies = [found[a] for a in {account_parts(n)[0] for n in accounts} if a in found]
            for items in self.contact_addresses(companies).values():
                found.update((c.number, c) for c in items if c.number in accounts)
        return {n: a for n, a in found.items() if n in wanted}

    def _addresses(self, wanted: set[int]) -> dict[int, ErpAddress]:
        table = self.table
        number_col = self.layout.col(self.layout.number())
        found: dict[int, ErpAddress] = {}
        for chunk in table.number_binds(wanted):
            rows = clean_rows(table.read("read addresses", table.select().where(number_col.in_(chunk))))
            for row in rows:
                address = table.to_address(row, self.password_field)
                if address is not None and address.number in wanted:
                    found[address.number] = address
        return found

    def get_address(self, number: int) -> ErpAddress | None:
        return self.get_addresses([number]).get(int(number))

    def numbers_present(self, numbers: Iterable[int]) -> set[int]:
        """Which of ``numbers`` the read source still holds (the number column only: the
        reconciliation asks this for every link, so it reads no address data)."""
        layout, table = self.layout, self.table
        numbers = {int(n) for n in numbers}
        accounts = {n: account_parts(n) for n in numbers if n < 0}
        num = layout.col(layout.number())
        found: set[int] = set()
        for chunk in table.number_binds(numbers - set(accounts)):
            stmt = sa.select(num.label("n")).select_from(layout.read_from()).where(num.in_(chunk))
            found |= table.numbers_of(row.n for row in table.read("find addresses", stmt))
        if accounts and self.contacts is not None:  # a contact account lives while its contact row does
            present = self.contacts.present(accounts.values())
            found |= {n for n, pair in accounts.items() if pair in present}
        return found

    # --- contact persons (syncd.connectors.erp.contacts) ---------------------------------------
    def contact_addresses(self, companies: Sequence[ErpAddress]) -> dict[int, list[ErpAddress]]:
        """Each business address's contact persons as account addresses (main one flagged),
        with or without an e-mail; private addresses have none. Empty without ``[erp.contacts]``."""
        book = self.contacts
        if book is None:
            return {}
        business = {a.number: a for a in companies if a.business and a.number > 0}
        table = book.settings.table or ""
        found: dict[int, list[ErpAddress]] = {}
        for number, items in book.contacts_of(list(business.values())).items():
            company = business[number]
            main = book.main_of(company)
            found[number] = [contact_address(company, c, main=c.contact == main, table=table) for c in items]
        return found

    def check_contacts(self) -> list[CheckItem]:
        """``syncd check`` / start-up: the contact persons' table and columns resolve."""
        if self.contacts is None:
            return []
        try:
            bound = self.contacts.bound
        except ConfigError as exc:
            return [CheckItem("erp", exc.key or "erp.contacts", False, exc.message)]
        columns = ", ".join(f"{k} = {c.name}" for k, c in bound.columns.items())
        main = self.contacts.settings.main if bound.main is not None else "none (no main-contact events)"
        return [CheckItem("erp", "erp.contacts", True, f"{bound.info.name}: {columns}; main contact: {main}")]

    def main_contact(self, address: ErpAddress) -> int | None:
        """The number of the address's main contact person (None: no marker, or none set)."""
        return self.contacts.main_of(address) if self.contacts is not None else None

    def contacts_changed(self, since: Any) -> tuple[set[int], Any]:
        """(addresses whose contact persons changed at or after ``since``, the newest stamp)."""
        return self.contacts.changed_since(since) if self.contacts is not None else (set(), None)

    def scan_changes(
        self, cursor: Mapping[str, Any] | None, *, batch_size: int = 500
    ) -> scan.WatermarkScan | scan.HashScan:
        layout, table, field = self.layout, self.table, self.password_field
        skip = frozenset(b.key for b in layout.row_keys if table.is_password_column(b, field))
        if "shop_id" in layout.logical:
            # syncd's own link mark (written back after a push, ``write_shop_ids``): not a change
            # of the address, so writing it never re-delivers the row.
            skip |= {layout.logical["shop_id"].key}

        def fingerprint(row: Mapping[str, Any]) -> str:
            return scan.row_fingerprint(row, skip)

        if "modified_at" in layout.logical:
            return scan.WatermarkScan(table, field, cursor, batch_size, fingerprint)
        return scan.HashScan(table, field, cursor, batch_size, fingerprint)

    def iter_all(self, *, batch_size: int = 500) -> Iterator[list[ErpAddress]]:
        """Every address in number order, one page in memory at a time (exports, demo)."""
        table, after = self.table, None
        while True:
            rows = table.page_by_number(after, batch_size)
            if not rows:
                return
            after = rows[-1][1]
            yield [a for a in (table.to_address(r, self.password_field) for r, _n in rows) if a is not None]

    def read_columns(self, number: int, columns: Sequence[str]) -> dict[str, Any]:
        table, layout = self.table, self.layout
        bounds = [table.source_column(c, key="platforms[].addresses.copy_fields") for c in columns]
        num = layout.col(layout.number())
        stmt = (
            sa.select(num.label("_syncd_n"), *[layout.col(b).label(b.key) for b in bounds])
            .select_from(layout.read_from())
            .where(num.in_(table.number_binds([number])[0]))
        )
        rows = [r for r in table.read("read columns", stmt) if _is(r[0], number)]
        if not rows:
            raise PermanentError(f"ERP address {number} not found")
        values = rows[0]._mapping
        return {name: clean_raw(values[b.key]) for name, b in zip(columns, bounds, strict=True)}

    def find_numbers(self, column: str, value: Any) -> list[int]:
        table, layout = self.table, self.layout
        b = table.source_column(column, key="erp.columns")
        col = layout.col(b)
        if b.column.kind == "int" and isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        elif b.column.kind == "text" and value is not None and not isinstance(value, str):
            value = str(value)
        stmt = sa.select(layout.col(layout.number()).label("n")).select_from(layout.read_from())
        stmt = stmt.where(col.is_(None) if value is None else col == value)
        return sorted(table.numbers_of(row.n for row in table.read("find addresses", stmt)))

    def number_exists(self, number: int) -> bool:
        return self.table.number_exists(number)

    def changed_at(self, address: ErpAddress) -> datetime | None:
        """The newest change stamp of ``address``: ``modified_at`` and, with a profile's joins,
        each joined table's stamp as the row holds it (no query)."""
        stamps = [address.modified_at] + [address.row.get(b.key) for b in self.layout.joined_stamps]
        found = [s for s in stamps if isinstance(s, datetime)]
        return max(found, key=lambda s: s.replace(tzinfo=None)) if found else None

    # --- writes -------------------------------------------------------------------------------
    def write_password_fields(self, values: Mapping[int, str]) -> None:
        """All values in one transaction; an unknown number rolls back the whole batch."""
        self.passwords.write(values)

    def read_password_fields(self, numbers: Iterable[int]) -> dict[int, str | None]:
        return self.passwords.read(numbers)

    def numbers_with_password(self) -> list[int]:
        return self.passwords.numbers_with_value()

    def clear_password_fields(self, numbers: Iterable[int]) -> None:
        """One statement per 500 numbers, in one transaction; clearing an empty field is a no-op."""
        self.passwords.clear(numbers)

    def update_addresses(self, changes: Mapping[int, Mapping[str, Any]]) -> None:
        """Change existing addresses (values by logical name or column), stamped as changed now;
        one transaction (``AddressUpdater``)."""
        self.updater.update(changes, touch=True)

    def write_shop_ids(self, shop_ids: Mapping[int, str]) -> set[int]:
        """The shop customer id of each address into the ``shop_id`` column (büro+ WShopID),
        without touching the change stamp: it links, it changes nothing the shop shows. Returns
        the numbers whose row is gone (deleted meanwhile: skipped, the others are written). A
        no-op when no shop id column is mapped."""
        if "shop_id" not in self.layout.logical:
            return set()
        # A contact account's id is not the company's: WShopID keeps the company's own account.
        return self.updater.update({n: {"shop_id": sid} for n, sid in shop_ids.items() if n > 0}, touch=False)

    def write_account_status(self, values: Mapping[int, Mapping[str, Any]]) -> None:
        """syncd's status columns (``[erp.columns] credentials_sent_at``, ``account_state``)."""
        self.status.write({n: v for n, v in values.items() if n > 0})  # the row is the company's

    def create_address(self, number: int, values: Mapping[str, Any]) -> bool:
        """Insert a new address; False when the number is taken (``AddressWriter``)."""
        return self.writer.create_address(
            number, values, lambda n: self.read_columns(n, ["shop_id"]).get("shop_id")
        )


def _is(value: Any, number: int) -> bool:
    try:
        return parse_number(value) == int(number)
    except ValueProblem:
        return False


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

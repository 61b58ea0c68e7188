"""The contact persons of company addresses (``[erp.contacts]``; büro+ ``Ansprechpartner``).

``ContactBook`` reads them per address number, in the forms the address number column uses
(``AddressTable.number_binds``), and turns each into the address of its own shop account
(``contact_address``): the company's address, billing data and group, the contact's salutation,
names, e-mail and phone, keyed by ``syncd.core.rules.contact_account``. It also names each
company's main contact (the read source's ``main`` column) and finds the addresses whose
contacts changed since a stamp, for contacts changed without their address.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from syncd.config.contacts import CONTACT_FIELDS, ContactSettings
from syncd.connectors.erp.engine import run_db
from syncd.connectors.erp.layout import Bound, sa_table
from syncd.connectors.erp.normalise import clean_rows
from syncd.connectors.erp.reflect import ColumnInfo, TableInfo, cached_table
from syncd.connectors.erp.table import AddressTable
from syncd.connectors.erp.values import ValueProblem, parse_number, text_or_none
from syncd.core.domain import ErpAddress
from syncd.core.errors import ConfigError
from syncd.core.rules import CONTACT_SPAN, contact_account

KEY = "erp.contacts"


@dataclass(frozen=True)
class Contact:
    """One contact person of address ``address`` (its number ``contact``), by logical field."""

    address: int
    contact: int
    values: Mapping[str, Any]
    row: Mapping[str, Any]

    def get(self, name: str) -> Any:
        return self.values.get(name)


@dataclass
class _Bound:
    info: TableInfo
    columns: dict[str, ColumnInfo]  # logical name (and "address", "number", match keys) -> column
    match: list[tuple[ColumnInfo, Bound]]  # contact column == read-source column
    main: Bound | None
    table: sa.Table


class ContactBook:
    def __init__(self, table: AddressTable, settings: ContactSettings, optional: frozenset[str]) -> None:
        self.table = table
        self.settings = settings
        self.optional = optional
        self._bound: _Bound | None = None
        self._for_layout: Any = None

    @property
    def bound(self) -> _Bound:
        layout = self.table.layout
        if self._bound is None or self._for_layout is not layout:
            self._bound, self._for_layout = self._resolve(), layout
        return self._bound

    def _resolve(self) -> _Bound:
        s, table = self.settings, self.table
        layout = table.layout
        assert s.table is not None
        info = next((t for t in layout.sources if t.name.lower() == s.table.lower()), None)
        if info is None:
            info = run_db("reflect contacts", lambda: self._reflect(s.table or ""))
        if info is None:
            raise ConfigError(f"contact persons' table {s.table!r} not found", key=f"{KEY}.table",
                              value=s.table)
        columns: dict[str, ColumnInfo] = {}
        for name in ("address", "number", *CONTACT_FIELDS):
            wanted = getattr(s, name)
            if not wanted:
                continue
            column = info.column(wanted)
            if column is None:
                if name in self.optional:
                    continue
                raise ConfigError(f"column {wanted!r} not found in {info.name}", key=f"{KEY}.{name}",
                                  value=wanted)
            columns[name] = column
        for name in ("address", "number"):
            if name not in columns:
                raise ConfigError(f"the contacts' {name} column is not set", key=f"{KEY}.{name}")
        match = []
        for own, source in s.match.items():
            column, bound = info.column(own), layout.bind_in_sources(source)
            if column is None or bound is None:
                raise ConfigError(f"{own!r} of {info.name} or {source!r} of the read source not found",
                                  key=f"{KEY}.match", value={own: source})
            match.append((column, bound))
        main = layout.bind_in_sources(s.main) if s.main else None
        if s.main and main is None:
            raise ConfigError(f"column {s.main!r} not found in the read source", key=f"{KEY}.main",
                              value=s.main)
        return _Bound(info, columns, match, main, sa_table(info, sa.MetaData()))

    def _reflect(self, name: str) -> TableInfo | None:
        with self.table.engine.connect() as conn:
            return cached_table(conn, self.table.cache, name, self.table.settings.schema_)

    # --- reads ----------------------------------------------------------------------------
    def contacts_of(self, addresses: Sequence[ErpAddress]) -> dict[int, list[Contact]]:
        """The contacts of each address (by its number), in contact number order; rows whose
        ``match`` columns name another of the address's records (another Anschrift) are left out."""
        b = self.bound
        by_number = {a.number: a for a in addresses if a.number > 0}
        found: dict[int, list[Contact]] = {n: [] for n in by_number}
        if not by_number:
            return found
        col = b.table.c[b.columns["address"].name]
        for chunk in self.table.number_binds(by_number):
            rows = clean_rows(self.table.read("read contacts", sa.select(b.table).where(col.in_(chunk))))
            for row in rows:
                contact = self._contact(row)
                address = by_number.get(contact.address) if contact is not None else None
                if contact is None or address is None or not self._matches(row, address):
                    continue
                found[contact.address].append(contact)
        for items in found.values():
            items.sort(key=lambda c: c.contact)
        return found

    def _contact(self, row: Mapping[str, Any]) -> Contact | None:
        cols = self.bound.columns
        try:
            address = parse_number(row[cols["address"].name])
            number = parse_number(row[cols["number"].name])
        except ValueProblem:
            return None
        if not 0 < number < CONTACT_SPAN:
            return None
        values = {name: row.get(cols[name].name) for name in CONTACT_FIELDS if name in cols}
        return Contact(address, number, values, row)

    def _matches(self, row: Mapping[str, Any], address: ErpAddress) -> bool:
        return all(_same(row.get(c.name), address.row.get(bound.key)) for c, bound in self.bound.match)

    def main_of(self, address: ErpAddress) -> int | None:
        """The number of the address's main contact (None: none named)."""
        main = self.bound.main
        if main is None:
            return None
        try:
            return parse_number(address.row.get(main.key))
        except ValueProblem:
            return None

    def present(self, keys: Iterable[tuple[int, int]]) -> set[tuple[int, int]]:
        """Which (address, contact) pairs still have their contact row."""
        keys = set(keys)
        b = self.bound
        col = b.table.c[b.columns["address"].name]
        found: set[tuple[int, int]] = set()
        for chunk in self.table.number_binds({a for a, _c in keys}):
            stmt = sa.select(col, b.table.c[b.columns["number"].name]).where(col.in_(chunk))
            for address, number in self.table.read("find contacts", stmt):
                try:
                    pair = (parse_number(address), parse_number(number))
                except ValueProblem:
                    continue
                if pair in keys:
                    found.add(pair)
        return found

    def changed_since(self, since: Any) -> tuple[set[int], Any]:
        """(address numbers with a contact changed at or after ``since``, the newest stamp
        seen); ``since`` None reads nothing but the newest stamp (a first run starts there)."""
        b = self.bound
        stamp = b.columns.get("modified_at")
        if stamp is None:
            return set(), None
        col, adr = b.table.c[stamp.name], b.table.c[b.columns["address"].name]
        newest = self.table.read("newest contact stamp", sa.select(sa.func.max(col)))[0][0]
        if since is None:
            return set(), newest
        rows = self.table.read("changed contacts", sa.select(adr).where(col >= since))
        return self.table.numbers_of(r[0] for r in rows), newest


def _same(a: Any, b: Any) -> bool:
    try:
        return parse_number(a) == parse_number(b)
    except ValueProblem:
        return text_or_none(a) == text_or_none(b)


def contact_address(company: ErpAddress, contact: Contact, *, main: bool, table: str) -> ErpAddress:
    """The address of ``contact``'s own account: the company's data with the person's names,
    salutation, e-mail and phone; ``row`` is the company's row with the contact's columns
    overlaid (a layout's ``erp.VNa`` is the contact's) and also as ``<table>.<column>``."""
    row = dict(company.row)
    for column, value in contact.row.items():
        row[f"{table}.{column}"] = value
        if column not in ("AdrNr", "AnsNr") and column in row:
            row[column] = value
    phone = text_or_none(contact.get("mobile")) or text_or_none(contact.get("phone")) or company.phone
    return dataclasses.replace(
        company,
        number=contact_account(company.number, contact.contact),
        email=text_or_none(contact.get("email")),
        salutation=text_or_none(contact.get("salutation")),
        first_name=text_or_none(contact.get("first_name")),
        last_name=text_or_none(contact.get("last_name")),
        phone=phone,
        business=True,
        main_contact=main,
        row=row,
    )

"""ERP rows into ``ErpAddress``: logical fields parsed, problems collected per record.

Which row key feeds which logical field is worked out once per layout (``AddressBuilder``),
not per row: a first scan normalises every row of the table.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
import structlog

from syncd.config.model import ErpSettings
from syncd.config.profiles import (
    company_is_name_line,
    effective_columns,
    effective_deletion_mark,
    effective_shop_flag,
)
from syncd.connectors.erp.layout import Layout
from syncd.connectors.erp.values import (
    ValueProblem,
    clean_raw,
    parse_blocked,
    parse_country,
    parse_number,
    text_or_none,
)
from syncd.core.domain import ErpAddress
from syncd.core.rules import TEXT_FIELDS

log = structlog.get_logger("syncd.erp")


def clean_rows(rows: list[sa.Row[Any]]) -> list[dict[str, Any]]:
    """Rows as plain dicts by column name, CHAR padding trimmed (what ``ErpAddress.row`` is)."""
    if not rows:
        return []
    keys = rows[0]._fields
    return [dict(zip(keys, map(clean_raw, r), strict=True)) for r in rows]


class AddressBuilder:
    def __init__(self, layout: Layout, settings: ErpSettings, password_field: str | None) -> None:
        self.layout = layout

        def key_of(name: str) -> tuple[str, str] | None:
            bound = layout.logical.get(name)
            return (bound.key, bound.column.name) if bound is not None else None

        self._number = key_of("number")
        self._texts = tuple(
            (name, layout.logical[name].key) for name in TEXT_FIELDS if name in layout.logical
        )
        self._country = key_of("country")
        self._blocked = key_of("blocked")
        self._modified = key_of("modified_at")
        self._business_flag = key_of("business_flag")
        self._business_salutations = frozenset(v.strip().casefold() for v in settings.business_salutations)
        self._name_line = company_is_name_line(settings)
        flag = effective_shop_flag(settings)
        self._shop_flag = key_of("shop_flag") if flag is not None else None
        self._shop_flag_value = flag[1].casefold() if flag is not None and flag[1] is not None else None
        mark = effective_deletion_mark(settings)
        self._mark = key_of("deletion_mark") if mark is not None else None
        self._mark_value = mark[1].casefold() if mark is not None and mark[1] is not None else None
        # Configured spellings that differ from the catalogue's (PostgreSQL folds unquoted names to
        # lower case): the row carries both, so a layout's ``erp.Sel10`` finds ``sel10``.
        configured = effective_columns(settings)
        aliases = [
            (configured[name], bound.key)
            for name, bound in layout.logical.items()
            if configured.get(name) and configured[name] != bound.key
        ]
        if password_field:
            bound = layout.bind_in_sources(password_field)
            if bound is not None and bound.key != password_field:
                aliases.append((password_field, bound.key))
        self._aliases = tuple(aliases)

    def build(self, raw: dict[str, Any], rejected: list[tuple[str, str]] | None = None) -> ErpAddress | None:
        """``raw`` comes from ``clean_rows`` and is not changed (scans hash it). None: the row
        has no usable address number; it is logged and, with ``rejected``, listed there as
        (raw number, reason), and the batch goes on."""
        assert self._number is not None  # resolve_layout refuses a layout without one
        try:
            number = parse_number(raw[self._number[0]])
        except ValueProblem as e:
            log.warning("erp_row_skipped", reason=str(e), column=self._number[1])
            if rejected is not None:
                rejected.append((str(raw[self._number[0]]), f"{self._number[1]}: {e}"))
            return None
        problems: list[str] = []
        fields: dict[str, Any] = {name: text_or_none(raw[key]) for name, key in self._texts}
        if self._country is not None:
            try:
                fields["country"] = parse_country(raw[self._country[0]])
            except ValueProblem as e:
                problems.append(f"{self._country[1]}: {e}")
        blocked = False
        if self._blocked is not None:
            try:
                blocked = parse_blocked(raw[self._blocked[0]])
            except ValueProblem as e:
                blocked = True  # unknown flag: do not publish what may be blocked
                problems.append(f"{self._blocked[1]}: {e}")
        business = self._business(raw, fields, problems)
        if self._name_line and not business:
            # The company column holds the person's name ("Vorname Nachname"), not a company.
            line = fields.get("company")
            fields["company"] = None
            if line and not (fields.get("first_name") or fields.get("last_name")):
                first, _, last = line.rpartition(" ")
                fields["first_name"], fields["last_name"] = first.strip() or None, last
        for_shop = self._for_shop(raw, problems)
        marked = self._flag(self._mark, self._mark_value, raw, problems, "deletion mark")
        modified = raw[self._modified[0]] if self._modified is not None else None
        row = raw
        if self._aliases:
            row = {**raw, **{alias: raw[key] for alias, key in self._aliases if alias not in raw}}
        return ErpAddress(
            number=number,
            blocked=blocked,
            modified_at=modified if hasattr(modified, "isoformat") else None,
            business=business,
            for_shop=for_shop,
            marked_deleted=marked,
            row=row,
            problems=tuple(problems),
            **fields,
        )

    def _business(self, raw: dict[str, Any], fields: dict[str, Any], problems: list[str]) -> bool:
        """Business or private, from the address's own kind (``business_rule``): the business
        flag when it is set either way, else a business salutation ("Firma"), else - unless the
        company column is a shared name line - a company name."""
        if self._business_flag is not None and raw[self._business_flag[0]] is not None:
            try:
                return parse_blocked(raw[self._business_flag[0]])
            except ValueProblem:
                problems.append(f"{self._business_flag[1]}: business flag {raw[self._business_flag[0]]!r} "
                                "is not one of 0/1, J/N, true/false")
                return False
        salutation = fields.get("salutation")
        if salutation and salutation.casefold() in self._business_salutations:
            return True
        return not self._name_line and bool(fields.get("company"))

    def _for_shop(self, raw: dict[str, Any], problems: list[str]) -> bool | None:
        return self._flag(self._shop_flag, self._shop_flag_value, raw, problems, "shop flag")

    @staticmethod
    def _flag(key: tuple[str, str] | None, wanted: str | None, raw: dict[str, Any], problems: list[str],
              what: str) -> bool | None:
        """A "COLUMN" (truthy) or "COLUMN=VALUE" flag of the row; None when none is configured.
        An unreadable value is a problem of the record (it fails with the reason) and reads as
        False: neither pushed as marked for the shop nor treated as deleted by guesswork."""
        if key is None:
            return None
        value = raw[key[0]]
        if wanted is not None:
            return (text_or_none(value) or "").casefold() == wanted
        try:
            return parse_blocked(value)
        except ValueProblem:
            problems.append(f"{key[1]}: {what} {value!r} is not one of 0/1, J/N, true/false")
            return False

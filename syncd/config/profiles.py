"""Default table and column names for known ERPs (``[erp] profile``).

A profile only fills what the operator left out; every name can be overridden in
``[erp]`` / ``[erp.columns]``. When neither ``[erp] read_source`` nor the profile names a read
source, the ERP connector reads from the address table joined with the profile's ``joins``
(left outer joins, so an address without a postal record is still seen).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from syncd.config.model import ErpSettings


@dataclass(frozen=True)
class Join:
    """``LEFT JOIN table ON table.<child> = <parent_table>.<parent> AND ...``.

    ``on`` pairs are (child column, parent column); ``parent_table`` is the address table or
    an earlier join. When the connector creates an address it also inserts one row into each
    joined table that receives values, filling the ``on`` columns from the parent row
    (``defaults`` supply parent values the caller did not give, e.g. the default postal
    record number).
    """

    table: str
    parent_table: str
    on: tuple[tuple[str, str], ...]
    defaults: dict[str, object] = field(default_factory=dict)
    # The joined table's own change stamp: change detection watches it next to
    # ``modified_at``, so a change made only in this table is delivered too.
    stamp: str | None = None


@dataclass(frozen=True)
class Profile:
    name: str
    address_table: str | None = None
    read_source: str | None = None
    joins: tuple[Join, ...] = ()
    columns: dict[str, str] = field(default_factory=dict)


# büro+ names from shared/bueroplus-notes.md (Feldliste "25"): Adressen holds number, block flag,
# change time and the Sel-fields (the password field is one of them); postal data and e-mail
# live in the default billing Anschrift (Adressen.ReAnsNr), first/last name in that Anschrift's
# default contact person (Anschriften.AspNr). Change detection watches each table's LtzAend
# ("Letzte Datensatzänderung", on all three datasets per the Feldliste); `syncd check` warns
# when a joined table lacks it.
BUEROPLUS = Profile(
    name="bueroplus",
    address_table="Adressen",
    read_source=None,
    joins=(
        Join(
            table="Anschriften",
            parent_table="Adressen",
            on=(("AdrNr", "AdrNr"), ("AnsNr", "ReAnsNr")),
            defaults={"ReAnsNr": 1},
            stamp="LtzAend",
        ),
        Join(
            table="Ansprechpartner",
            parent_table="Anschriften",
            on=(("AdrNr", "AdrNr"), ("AnsNr", "AnsNr"), ("AspNr", "AspNr")),
            defaults={"AspNr": 1},
            stamp="LtzAend",
        ),
    ),
    columns={
        "number": "AdrNr",
        "salutation": "Na1",
        "company": "Na2",
        "first_name": "VNa",
        "last_name": "NNa",
        "street": "Str",
        "zip": "PLZ",
        "city": "Ort",
        "country": "Land",
        "email": "EMail1",
        "phone": "Tel",
        "customer_group": "Status",
        "blocked": "GspKz",
        "modified_at": "LtzAend",
        "shop_id": "WShopID",  # how büro+ bridges link an address to its shop customer
    },
)

GENERIC = Profile(name="generic")

PROFILES = {p.name: p for p in (GENERIC, BUEROPLUS)}


def effective_columns(erp: ErpSettings) -> dict[str, str]:
    """Logical name -> ERP column: the profile's defaults overlaid with ``[erp.columns]``."""
    merged = dict(PROFILES[erp.profile].columns)
    for key, value in erp.columns.model_dump().items():
        if value:
            merged[key] = value
    return merged


def effective_address_table(erp: ErpSettings) -> str | None:
    return erp.address_table or PROFILES[erp.profile].address_table


def effective_read_source(erp: ErpSettings) -> str | None:
    """The table or view named as read source, or None: read the address table (plus the
    profile's joins)."""
    return erp.read_source or PROFILES[erp.profile].read_source


def effective_joins(erp: ErpSettings) -> tuple[Join, ...]:
    """Joins apply only when no explicit read source is set: a view already does its own."""
    if effective_read_source(erp):
        return ()
    return PROFILES[erp.profile].joins

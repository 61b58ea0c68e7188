"""Default table and column names for known ERPs (``[erp] profile``).

A profile only fills what the operator left out; every name can be overridden in
``[erp]`` / ``[erp.columns]``. The ERP connector owns how a profile's read source is built.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from syncd.config.model import ErpSettings


@dataclass(frozen=True)
class Profile:
    name: str
    address_table: str | None = None
    read_source: str | None = None
    columns: dict[str, str] = field(default_factory=dict)


# büro+ names from shared/bueroplus-notes.md (Feldliste "25"): Adressen holds number, block flag
# and change time; postal data and e-mail live in the default billing Anschrift.
BUEROPLUS = Profile(
    name="bueroplus",
    address_table="Adressen",
    read_source=None,  # the ERP connector builds the Adressen/Anschriften join
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

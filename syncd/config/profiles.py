"""Default table and column names for known ERPs (``[erp] profile``).

A profile only fills what the operator left out; every name can be overridden in
``[erp]`` / ``[erp.columns]``. When neither ``[erp] read_source`` nor the profile names a read
source, the ERP connector reads from the address table joined with the profile's ``joins``
(left outer joins, so an address without a postal record is still seen).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from syncd.config.model import ErpSettings, Settings


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
    # The ``company`` column is a shared name line: the company's name on a business address,
    # the person's "Vorname Nachname" on a private one (büro+ Na2). Then only a business
    # salutation or the business flag makes an address a company, never the line being filled.
    company_is_name_line: bool = False
    shop_flag: str | None = None  # default of ``[erp] shop_flag``


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
    # Na1 = "Herr"/"Frau"/"Firma", Na2 = company name or "Vorname Nachname" (bueroplus-notes.md,
    # conventions GCpy writes): Na2 alone says nothing about the kind of address.
    company_is_name_line=True,
    # "Webshop Adresse" checkbox: the Middleware transfers only addresses that have it.
    shop_flag="WShopAdrKz",
)

GENERIC = Profile(name="generic")

PROFILES = {p.name: p for p in (GENERIC, BUEROPLUS)}


def effective_columns(erp: ErpSettings) -> dict[str, str]:
    """Logical name -> ERP column: the profile's defaults overlaid with ``[erp.columns]``."""
    merged = dict(PROFILES[erp.profile].columns)
    for key, value in erp.columns.model_dump().items():
        if value:
            merged[key] = value
    flag = effective_shop_flag(erp)
    if flag is not None:
        merged["shop_flag"] = flag[0]
    mark = effective_deletion_mark(erp)
    if mark is not None:
        merged["deletion_mark"] = mark[0]
    return merged


def platform_columns(settings: Settings, platform: str) -> dict[str, str]:
    """``effective_columns`` as one platform's flows use them. The ``shop_id`` column has room for
    one shop customer id: two shops writing theirs would overwrite each other every cycle, and an
    import recognises its own interrupted row by that id. So only the owning platform
    (``[erp] shop_id_platform``, default the first) reads and writes it; the others recognise
    their imports by e-mail, as without the column."""
    columns = effective_columns(settings.erp)
    if "shop_id" in columns and platform != shop_id_owner(settings):
        del columns["shop_id"]
    return columns


def shop_id_owner(settings: Settings) -> str | None:
    """The platform whose customer ids go into the ERP's ``shop_id`` column."""
    if settings.erp.shop_id_platform is not None:
        return settings.erp.shop_id_platform
    return settings.platforms[0].name if settings.platforms else None


def effective_shop_flag(erp: ErpSettings) -> tuple[str, str | None] | None:
    """(column, value) of the shop flag: an address is for the shop when the column is truthy
    (value None) or holds ``value``. None: every address is for the shop."""
    spec = erp.shop_flag if erp.shop_flag is not None else PROFILES[erp.profile].shop_flag
    if not spec:
        return None
    column, sep, value = spec.partition("=")
    return column.strip(), (value.strip() if sep else None)


def effective_deletion_mark(erp: ErpSettings) -> tuple[str, str | None] | None:
    """(column, value) of ``[erp] deletion_mark``: an address is marked for deletion when the
    column is truthy (value None) or holds ``value``. None: no mark. No profile has a default:
    the büro+ notes name no deletion flag of the address table (shared bueroplus-notes.md)."""
    if not erp.deletion_mark:
        return None
    column, sep, value = erp.deletion_mark.partition("=")
    return column.strip(), (value.strip() if sep else None)


def company_is_name_line(erp: ErpSettings) -> bool:
    """Whether the mapped company column doubles as a person's name line (see ``Profile``). Only
    when the operator kept the profile's company column."""
    profile = PROFILES[erp.profile]
    return profile.company_is_name_line and (erp.columns.company or profile.columns.get("company")) == \
        profile.columns.get("company")


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


def business_rule(erp: ErpSettings) -> str:
    """The private/business rule of ``erp`` in words (``syncd check`` shows it); the ERP
    connector applies it (``syncd.connectors.erp.normalise``)."""
    columns = effective_columns(erp)
    parts = []
    if columns.get("business_flag"):
        parts.append(f"{columns['business_flag']} is set")
    if columns.get("salutation") and erp.business_salutations:
        shown = " / ".join(repr(v) for v in erp.business_salutations)
        parts.append(f"{columns['salutation']} is {shown}")
    if columns.get("company") and not company_is_name_line(erp):
        parts.append(f"{columns['company']} is not empty")
    if not parts:
        return "every address is private (no company, salutation or business flag column mapped)"
    text = "business when " + " or ".join(parts) + ", else private"
    if company_is_name_line(erp):
        text += f"; {columns['company']} is the company name only on business addresses (else the person's)"
    return text


def shop_flag_rule(erp: ErpSettings, unflagged: str = "deactivate") -> str:
    """The shop flag decision in words (``syncd check``)."""
    flag = effective_shop_flag(erp)
    if flag is None:
        return "none: every address is pushed ([erp] shop_flag)"
    column, value = flag
    marked = f"{column} = {value!r}" if value is not None else f"{column} set"
    then = ("its account is deactivated" if unflagged == "deactivate"
            else "its account is left as it is")
    return f"only addresses with {marked} are pushed; when it is cleared later, {then}"

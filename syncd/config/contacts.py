"""Contact persons of a company address (``[erp.contacts]``) and what needs them: contact accounts
(``platforms[].addresses.accounts_per = "contact"``) and the ``new_main_contact`` /
``former_main_contact`` events.

A profile fills what the operator left out (büro+: the ``Ansprechpartner`` table, keyed by
AdrNr + AnsNr + AspNr, the main contact named by ``Anschriften.AspNr``); ``effective_contacts``
merges the two. The checks here are the refusals at config load: each names the key at fault.
"""

from __future__ import annotations

from typing import Any

from syncd.config.base import FieldProblem, _Model

# Platform kinds with company accounts a contact's own account can be linked to (WooCommerce has none).
CONTACT_KINDS = ("shopware6",)
# Events that need the contact persons and their main-contact marker.
MAIN_CONTACT_EVENTS = ("new_main_contact", "former_main_contact")


class ContactSettings(_Model):
    """Where the contact persons live. Unset keys come from the ERP profile."""

    table: str | None = None  # the contact persons' table (büro+: Ansprechpartner)
    address: str | None = None  # its column holding the address number (AdrNr)
    number: str | None = None  # its column numbering the contacts of one address (AspNr), 1..9999
    # Further key columns, each matched to a column of the address read source (büro+: the
    # contacts of the address's billing Anschrift: {"AnsNr" = "Anschriften.AnsNr"}).
    match: dict[str, str] = {}
    salutation: str | None = None  # Anr
    first_name: str | None = None  # VNa
    last_name: str | None = None  # NNa
    email: str | None = None  # EMail1: a contact without one gets no account
    mobile: str | None = None  # MTel
    phone: str | None = None  # Tel1
    modified_at: str | None = None  # LtzAend: a contact changed alone is found by this stamp
    # A column of the address read source holding the main contact's number (Anschriften.AspNr).
    main: str | None = None


# The columns a contact can map, by logical name (what a contact account's address gets).
CONTACT_FIELDS = ("salutation", "first_name", "last_name", "email", "mobile", "phone", "modified_at")

PROFILE_CONTACTS: dict[str, ContactSettings] = {
    # bueroplus-notes.md §1: Ansprechpartner (AdrNr+AnsNr+AspNr), Anschriften.AspNr = the default.
    "bueroplus": ContactSettings(
        table="Ansprechpartner", address="AdrNr", number="AspNr", match={"AnsNr": "Anschriften.AnsNr"},
        salutation="Anr", first_name="VNa", last_name="NNa", email="EMail1", mobile="MTel", phone="Tel1",
        modified_at="LtzAend", main="Anschriften.AspNr",
    ),
}
# Profile defaults left out when the database lacks them (a büro+ installation without mobile
# numbers) rather than refused; a key the operator set must exist.
PROFILE_OPTIONAL = {"bueroplus": frozenset({"salutation", "mobile", "phone", "modified_at"})}


def effective_contacts(erp: Any) -> ContactSettings | None:
    """The contact settings of ``erp`` (an ``ErpSettings``): the profile's overlaid with
    ``[erp.contacts]``; None when neither names a table."""
    base = PROFILE_CONTACTS.get(erp.profile)
    own = erp.contacts
    if base is None:
        return own if own.table else None
    return base.model_copy(update=own.model_dump(exclude_unset=True, exclude_defaults=True))


def optional_contact_columns(erp: Any) -> frozenset[str]:
    """The logical contact columns that may be missing in the database: the profile's defaults
    the operator did not set."""
    given = erp.contacts.model_dump(exclude_unset=True, exclude_defaults=True)
    return frozenset(k for k in PROFILE_OPTIONAL.get(erp.profile, ()) if k not in given)


def contacts_used(settings: Any) -> bool:
    """Whether any platform or event of ``settings`` (a ``Settings``) reads contact persons."""
    return (any(p.addresses.accounts_per == "contact" for p in settings.platforms)
            or any(n.event in MAIN_CONTACT_EVENTS and n.enabled for n in settings.notifications))


def contact_problems(settings: Any) -> FieldProblem | None:
    """The first reason ``settings`` (a ``Settings``) cannot be served with its contact keys."""
    contacts = effective_contacts(settings.erp)
    for index, platform in enumerate(settings.platforms):
        if platform.addresses.accounts_per != "contact":
            continue
        path = ("platforms", index, "addresses", "accounts_per")
        if platform.kind not in CONTACT_KINDS:
            return FieldProblem(path, f'kind = "{platform.kind}" has no company accounts syncd can link '
                                "contact persons to; only shopware6 supports contact accounts", "contact")
        if contacts is None:
            return FieldProblem(path, "needs the ERP's contact persons: set [erp.contacts] table (and its "
                                'columns) or profile = "bueroplus"', "contact")
        if platform.addresses.send_credentials and platform.addresses.credential_mode != "link":
            return FieldProblem(path, "a contact person has no ERP password field to carry a generated "
                                'password through a crash; set credential_mode = "link" (a set-password '
                                "link per contact)", "contact")
    for index, n in enumerate(settings.notifications):
        if n.event in MAIN_CONTACT_EVENTS and n.enabled and (contacts is None or not contacts.main):
            return FieldProblem(("notifications", index, "event"),
                                "needs the ERP's contact persons and their main contact marker: set "
                                '[erp.contacts] table and main, or profile = "bueroplus"', n.event)
    return None

"""What a layout is written against: its files, the names it can read, and ``build_context``,
which fills those names for one address (spec §2 "Files and service").

The render context: ``erp`` (row by column name), ``address`` (by logical name), ``shop`` (name,
display_name, url, login_url), ``customer`` (email, number), ``password_column`` (the name of
the password column, so a layout can read ``erp[password_column]``), and in link mode ``link`` /
``link_expires``.
"""

from __future__ import annotations

from collections.abc import Mapping
from email.utils import parseaddr
from functools import lru_cache
from operator import attrgetter
from typing import Any
from urllib.parse import urlsplit

from syncd.core.domain import ErpAddress
from syncd.core.rules import ADDRESS_FIELDS, account_label

SUBJECT, TEXT, HTML = "subject.txt.j2", "body.txt.j2", "body.html.j2"
SMS = "sms.txt.j2"  # the text of the same message as an SMS (optional; needed where SMS may be chosen)
FILES = (SUBJECT, TEXT, HTML, SMS)
REQUIRED = (SUBJECT, TEXT)
CONTEXT_NAMES = frozenset({"erp", "address", "shop", "customer", "password_column", "link", "link_expires",
                           "event"})
SHOP_FIELDS = ("name", "display_name", "url", "login_url")
CUSTOMER_FIELDS = ("email", "number")

__all__ = [
    "ADDRESS_FIELDS", "CONTEXT_NAMES", "CUSTOMER_FIELDS", "FILES", "HTML", "REQUIRED", "SHOP_FIELDS",
    "SMS", "SUBJECT", "TEXT", "ErpRow", "build_context", "row_key",
]


class ErpRow(dict[str, Any]):
    """The ``erp`` row: column names as the driver spelled them, looked up case-insensitively
    as a fallback (SQL Server and most ERPs treat column names so; a layout written with
    ``erp.kennwort`` must not break when the driver says ``KENNWORT``)."""

    def __missing__(self, key: str) -> Any:
        if isinstance(key, str):
            lowered = key.lower()
            for k, v in self.items():
                if isinstance(k, str) and k.lower() == lowered:
                    return v
        raise KeyError(key)


def row_key(row: Mapping[str, Any], column: str) -> str:
    """The row's own spelling of ``column`` (drivers differ in case)."""
    if column in row:
        return column
    lowered = column.lower()
    return next((str(k) for k in row if str(k).lower() == lowered), column)



def build_context(
    address: ErpAddress,
    row: Mapping[str, Any] | None = None,
    platform: Any = None,
    customer_number: str | int | None = None,
    email: str | None = None,
    *,
    shop: Any = None,
    sender: str | None = None,
    password_column: str | None = None,
    link: str | None = None,
    link_expires: Any = None,
) -> dict[str, Any]:
    """The render context for ``address``.

    ``row`` defaults to ``address.row`` (the row as re-read after the password was written).
    ``platform`` is a ``PlatformSettings`` (or anything with ``name``/``url``/``login_url``);
    ``shop`` a ``ShopPort`` whose ``login_url`` wins. ``customer_number`` defaults to the ERP
    number (the number syncd writes to the shop account), ``email`` to the address's e-mail.
    ``password_column`` defaults to the platform's ``addresses.password_field``. ``sender``
    (``"Name <addr>"``) gives ``shop.display_name``; default: the platform's sender, then the
    shop's host name.
    """
    erp_row = ErpRow(address.row if row is None else row)
    if password_column is None:
        password_column = getattr(getattr(platform, "addresses", None), "password_field", None)
    if password_column:
        password_column = row_key(erp_row, password_column)
    name = _attr(platform, "name") or _attr(shop, "name") or ""
    url = (_attr(platform, "url") or "").rstrip("/")
    login_url = (_attr(shop, "login_url") or _attr(platform, "login_url")
                 or (f"{url}/account/login" if url else ""))
    display = _display_name(sender or _attr(platform, "sender") or "", url, name)
    fields = dict(zip(ADDRESS_FIELDS, _address_fields(address), strict=True))
    if address.number < 0:  # a contact person's account: "10001-2", as the shop numbers it
        fields["number"] = account_label(address.number)
    ctx: dict[str, Any] = {
        "erp": erp_row,
        "address": fields,
        "shop": {"name": name, "display_name": display, "url": url, "login_url": login_url},
        "customer": {
            "email": email if email is not None else address.email,
            "number": str(customer_number if customer_number is not None else account_label(address.number)),
        },
        "password_column": password_column or "",
    }
    if link is not None:
        ctx["link"] = link
        ctx["link_expires"] = link_expires
    return ctx


_address_fields = attrgetter(*ADDRESS_FIELDS)


@lru_cache(maxsize=64)  # one value per platform: parse its sender and URL once, not per mail
def _display_name(sender: str, url: str, name: str) -> str:
    return parseaddr(sender)[0] or urlsplit(url).hostname or name


def _attr(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)

"""ERP address -> WooCommerce customer payload, and WooCommerce JSON -> ``ShopCustomer``. Pure.

Rules an operator sees:
- the ERP number is kept in the customer's ``meta_data`` under ``syncd_erp_number`` (WooCommerce
  assigns the ids, so this is how an account is recognised as the address's own after a lost
  answer or a lost state store), and shown as the customer number of ``ShopCustomer``;
- ``username`` on create = the e-mail address (unique in WordPress as the e-mail is; sent so a
  shop with ``woocommerce_registration_generate_username = no`` accepts the create too; over 60
  characters: its first 51 and a hash, ``username_for``);
- ``password`` on create: a random throwaway nobody learns (the shop may require one, option
  ``woocommerce_registration_generate_password = no``); the credentials flow sets the real one;
- billing = the ERP address (name, company, street, zip, city, country, e-mail, phone),
  shipping = the same without e-mail and phone; text: CR/LF/tabs become spaces, runs collapse;
- no name and no company -> rejected; a missing e-mail -> rejected (WooCommerce requires it).
WooCommerce has no salutation and no customer groups in its customer resource: neither is sent
(``check`` refuses a configured group mapping).
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from syncd.core.domain import ErpAddress, ShopCustomer
from syncd.core.rules import email_problem

META_KEY = "syncd_erp_number"
_SPACES = re.compile(r"\s+")


class Rejected(Exception):
    def __init__(self, reason: str, code: str, field: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code
        self.field = field  # the address field at fault, when there is one


# The field a WordPress / WooCommerce error code is about: the errors of wc_create_new_customer()
# and wp_insert_user() name no field themselves, but each code belongs to one (shopware-notes §7).
ERROR_FIELDS = {
    "registration-error-invalid-email": "email",
    "registration-error-email-exists": "email",
    "existing_user_email": "email",
    "user_email_too_long": "email",
    "registration-error-invalid-username": "username",
    "registration-error-username-exists": "username",
    "existing_user_login": "username",
    "user_login_too_long": "username",
}


def error_field(error: Any) -> str | None:
    """The field a per-item error is about: by its code, else the first of the parameters a
    ``rest_invalid_param`` error lists (``data.params``)."""
    if not isinstance(error, dict):
        return None
    field = ERROR_FIELDS.get(str(error.get("code")))
    params = (error.get("data") or {}).get("params") if isinstance(error.get("data"), dict) else None
    if field is None and isinstance(params, dict) and params:
        field = str(next(iter(params)))
    return field


def clean(value: Any) -> str:
    return _SPACES.sub(" ", str(value)).strip() if value is not None else ""


@dataclass(slots=True)
class MappedCustomer:
    number: int
    email: str
    payload: dict[str, Any]  # without username/password: what an update writes


def map_address(address: ErpAddress) -> MappedCustomer:
    problem = email_problem(address.email)
    if problem:
        code = "SYNCD__NO_EMAIL" if problem == "no e-mail address" else "SYNCD__BAD_EMAIL"
        raise Rejected(problem, code, "email")
    email = clean(address.email)
    first, last, company = clean(address.first_name), clean(address.last_name), clean(address.company)
    if not (first or last or company):
        raise Rejected("the address has neither a name nor a company", "SYNCD__NO_NAME", "last_name")
    billing = {
        "first_name": first,
        "last_name": last,
        "company": company,
        "address_1": clean(address.street),
        "address_2": "",
        "city": clean(address.city),
        "postcode": clean(address.zip),
        "country": clean(address.country).upper(),
        "email": email,
        "phone": clean(address.phone),
    }
    shipping = {k: v for k, v in billing.items() if k not in ("email", "phone")}
    payload = {
        "email": email,
        "first_name": first,
        "last_name": last,
        "billing": billing,
        "shipping": shipping,
        "meta_data": [{"key": META_KEY, "value": str(address.number)}],
    }
    return MappedCustomer(address.number, email, payload)


def create_item(mapped: MappedCustomer) -> dict[str, Any]:
    """The create payload: username and a throwaway password on top of the update payload."""
    return {**mapped.payload, "username": username_for(mapped.email), "password": throwaway_password()}


def username_for(email: str) -> str:
    """The e-mail itself; WordPress caps a username at 60 characters, so a longer e-mail keeps its
    first 51 and a hash of the whole (still unique, still the same on every replay)."""
    if len(email) <= 60:
        return email
    return email[:51] + "-" + hashlib.sha256(email.lower().encode()).hexdigest()[:8]


def throwaway_password() -> str:
    """A password nobody is told: the account cannot be logged in to until the credentials flow
    (or the customer's own password reset) sets one."""
    return secrets.token_urlsafe(24)


def fingerprint(payload: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def erp_number_of(row: Mapping[str, Any]) -> str | None:
    for meta in row.get("meta_data") or []:
        if isinstance(meta, Mapping) and meta.get("key") == META_KEY and str(meta.get("value") or "").strip():
            return str(meta["value"]).strip()
    return None


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def to_shop_customer(row: Mapping[str, Any], *, has_orders: bool | None = None) -> ShopCustomer:
    billing = row.get("billing") or {}
    orders = has_orders if has_orders is not None else bool(row.get("is_paying_customer"))
    return ShopCustomer(
        id=str(row["id"]),
        email=str(row.get("email") or ""),
        customer_number=erp_number_of(row),
        first_name=row.get("first_name") or billing.get("first_name") or None,
        last_name=row.get("last_name") or billing.get("last_name") or None,
        company=billing.get("company") or None,
        street=billing.get("address_1") or None,
        zip=billing.get("postcode") or None,
        city=billing.get("city") or None,
        country=(billing.get("country") or None),
        phone=billing.get("phone") or None,
        active=True,
        guest=False,
        order_count=1 if orders else 0,
        created_at=_time(row.get("date_created_gmt")),
        updated_at=_time(row.get("date_modified_gmt")),
    )


def differences(payload: Mapping[str, Any], row: Mapping[str, Any]) -> list[str]:
    """Fields of ``payload`` the account ``row`` holds differently (reconciliation)."""
    out = ["email"] if clean(row.get("email")).lower() != payload["email"].lower() else []
    out += [k for k in ("first_name", "last_name") if clean(row.get(k)) != payload[k]]
    billing = row.get("billing") or {}
    out += [f"billing.{k}" for k, v in payload["billing"].items() if clean(billing.get(k)) != v]
    if erp_number_of(row) != payload["meta_data"][0]["value"]:
        out.append(META_KEY)
    return out

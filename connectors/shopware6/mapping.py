"""ERP address -> Shopware customer payload, and shop JSON -> ``ShopCustomer``. Pure functions.

Rules an operator sees:

- ids: customer ``uuid5(NAMESPACE, "<platform>:<number>")``, its default address
  ``uuid5(NAMESPACE, "<platform>:<number>:address")``, as 32 hex digits. A replayed push upserts
  the same rows instead of adding new ones.
- text: CR, LF and tabs become spaces, runs of whitespace collapse, ends are trimmed.
- salutation: Herr/Herrn/Mr -> ``mr``, Frau/Mrs/Ms -> ``mrs``, anything else (Firma, empty) ->
  ``not_specified``.
- names (Shopware needs both): a missing first name becomes ``-``; a missing last name takes the
  first name (and the first name becomes ``-``); an address with neither but a company gets
  first name ``-`` and the company as last name, shortened at a word boundary to the shop's limit
  (it is a derived value, not ERP data). No name and no company -> rejected.
- ``accountType`` = business when the ERP says the address is one (``ErpAddress.business``:
  business flag, salutation "Firma", or a company column that is not a shared name line; 6.5.1+),
  ``active`` = not blocked, ``customerNumber`` = ``customer_number_prefix`` + ERP number, empty
  country -> ``default_country``, and without one the record is rejected (never guessed).
- a value longer than the shop version allows, an unknown country, a missing e-mail, street or
  city -> the record is rejected with a reason before anything is sent.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from syncd.config.model import PlatformSettings
from syncd.core.domain import ErpAddress, ShopCustomer
from syncd.core.rules import account_label, account_parts, email_problem

from .metadata import ShopMetadata
from .versions import VersionTraits

# Fixed forever: changing it would make every existing link look like a foreign account.
NAMESPACE = uuid.UUID("5d0c2f0e-6a4b-5b8e-9b4f-2f3d6c1a7e10")

NO_NAME = "-"
_SALUTATIONS = {
    "herr": "mr",
    "herrn": "mr",
    "mr": "mr",
    "mr.": "mr",
    "frau": "mrs",
    "mrs": "mrs",
    "mrs.": "mrs",
    "ms": "mrs",
    "ms.": "mrs",
}
_SALUTATION_BACK = {"mr": "Herr", "mrs": "Frau"}
# Logical names of the length-checked values, in the order ``CustomerMapper.map`` checks them:
# ``rules.TEXT_FIELDS`` without the two that become shop ids (salutation, customer group), but city
# before zip, so that of two over-long values the city is still the one reported.
_CAPPED_FIELDS = ("email", "company", "first_name", "last_name", "street", "city", "zip", "phone")


class Rejected(Exception):
    """A record that cannot be sent; ``code`` is syncd's own (prefix ``SYNCD__``)."""

    def __init__(self, reason: str, code: str, field: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code
        self.field = field  # the logical ERP field at fault, when one is


_NAMESPACE_BYTES = NAMESPACE.bytes


_MEMO_LIMIT = 1000  # distinct ERP groups/salutations remembered per mapper; more are looked up each time


def _uuid_hex(sha1_digest: bytes) -> str:
    """The version-5 UUID hex of a SHA-1 digest (what ``uuid.uuid5`` does, without UUID objects)."""
    digest = bytearray(sha1_digest[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    return digest.hex()


def _uuid5_hex(name: str) -> str:
    """``uuid.uuid5(NAMESPACE, name).hex`` without building UUID objects (hot path of push)."""
    return _uuid_hex(hashlib.sha1(_NAMESPACE_BYTES + name.encode("utf-8"), usedforsecurity=False).digest())


def customer_id(platform: str, number: int) -> str:
    return _uuid5_hex(f"{platform}:{number}")


def address_id(platform: str, number: int) -> str:
    return _uuid5_hex(f"{platform}:{number}:address")


def clean(value: Any) -> str | None:
    """One line of text: no CR/LF/tabs (they break shop lists and mail headers), trimmed."""
    if value is None:
        return None
    text = " ".join(str(value).split())
    return text or None


def normalise_email(value: Any) -> str | None:
    return clean(value)


def salutation_key(value: str | None) -> str:
    return _SALUTATIONS.get((clean(value) or "").casefold(), "not_specified")


def _shorten(text: str, cap: int) -> str:
    if len(text) <= cap:
        return text
    cut = text[:cap]
    space = cut.rfind(" ")
    return (cut[:space] if space >= cap // 2 else cut).rstrip()


@dataclass(frozen=True)
class MappedCustomer:
    number: int
    customer_id: str
    address_id: str
    email: str
    payload: dict[str, Any]


class CustomerMapper:
    """Builds payloads for one platform, one shop version and one metadata snapshot."""

    def __init__(
        self,
        platform: PlatformSettings,
        meta: ShopMetadata,
        traits: VersionTraits,
        erp_columns: Mapping[str, str] | None = None,
    ) -> None:
        self.platform = platform
        self.meta = meta
        self.traits = traits
        self.columns = dict(erp_columns or {})
        # Everything that is the same for every record, resolved once: ``map`` runs per address.
        prefix = f"{platform.name}:".encode()
        self._id_hash = hashlib.sha1(_NAMESPACE_BYTES + prefix, usedforsecurity=False)
        cc, ac = traits.customer_caps, traits.address_caps
        self._caps = (
            cc["email"],
            min(cc["company"], ac["company"]),
            min(cc["firstName"], ac["firstName"]),
            min(cc["lastName"], ac["lastName"]),
            ac["street"],
            ac["city"],
            ac["zipcode"],
            ac["phoneNumber"],
        )
        self._groups: dict[Any, str] = {}  # ERP group value -> resolved id (successes only)
        self._salutations: dict[Any, str | None] = {}  # ERP salutation -> salutation id
        account_fields: dict[str, Any] = {"salesChannelId": meta.sales_channel_id, "guest": False}
        if meta.language_id:
            account_fields["languageId"] = meta.language_id
        if traits.requires_payment_method:
            account_fields["defaultPaymentMethodId"] = meta.payment_method_id
        self._account_fields = account_fields  # only on accounts of ours (see ``map``)

    def _ids(self, number: int) -> tuple[str, str]:
        """``customer_id`` and ``address_id`` for ``number`` from the platform's precomputed hash
        state (SHA-1 is streamed, so the result is the same uuid5)."""
        text = str(number)
        h = self._id_hash.copy()
        h.update(text.encode())
        a = h.copy()
        a.update(b":address")
        return _uuid_hex(h.digest()), _uuid_hex(a.digest())

    # Memos only for str/None: values of other types may compare equal (1 == 1.0 == True) but
    # read differently once turned into text.
    def _group(self, erp_group: Any) -> str:
        if erp_group is not None and erp_group.__class__ is not str:
            return self.group_id(erp_group)
        gid = self._groups.get(erp_group)
        if gid is None:
            gid = self.group_id(erp_group)  # raises Rejected: such values are never memoised
            if len(self._groups) < _MEMO_LIMIT:
                self._groups[erp_group] = gid
        return gid

    def _salutation(self, value: Any) -> str | None:
        if value is not None and value.__class__ is not str:
            return self.meta.salutations.get(salutation_key(value))
        try:
            return self._salutations[value]
        except KeyError:
            sid = self.meta.salutations.get(salutation_key(value))
            if len(self._salutations) < _MEMO_LIMIT:
                self._salutations[value] = sid
            return sid

    def _field(self, logical: str) -> str:
        column = self.columns.get(logical)
        return f"{logical} (ERP column {column})" if column else logical

    def _check_len(self, logical: str, value: str | None, cap: int) -> None:
        if value is not None and len(value) > cap:
            raise Rejected(
                f"{self._field(logical)} is {len(value)} characters long, Shopware {self.traits.version} "
                f"allows at most {cap}: {value[:40]!r}...",
                "SYNCD__VALUE_TOO_LONG",
                logical,
            )

    def group_id(self, erp_group: Any) -> str:
        mapped = None
        if erp_group is not None and str(erp_group).strip():
            mapped = self.platform.customer_group_map.get(str(erp_group).strip())
        name = mapped or self.platform.customer_group
        if name is None:
            if not self.meta.customer_group_id:
                raise Rejected("the sales channel has no default customer group", "SYNCD__UNKNOWN_GROUP")
            return self.meta.customer_group_id
        gid = self.meta.group_id(name)
        if gid is None:
            source = f"ERP group {erp_group!r} maps to" if mapped else "default"
            raise Rejected(
                f"customer group {name!r} ({source}) does not exist in the shop; create it there, then "
                "run `syncd clear-cache`",
                "SYNCD__UNKNOWN_GROUP",
                "customer_group",
            )
        return gid

    def names(self, address: ErpAddress) -> tuple[str, str]:
        first, last, company = clean(address.first_name), clean(address.last_name), clean(address.company)
        if first and last:
            return first, last
        return self._fill_names(first, last, company)

    def _fill_names(self, first: str | None, last: str | None, company: str | None) -> tuple[str, str]:
        """Names when the ERP lacks one or both (module docstring)."""
        if first or last:
            return NO_NAME, (last or first)  # type: ignore[return-value]
        if company:
            return NO_NAME, _shorten(company, self.traits.address_caps["lastName"])
        raise Rejected(
            f"address has neither {self._field('first_name')}, {self._field('last_name')} nor "
            f"{self._field('company')}",
            "SYNCD__NO_NAME",
            "last_name",
        )

    def map(self, address: ErpAddress, *, shop_id: str | None = None) -> MappedCustomer:
        """Full payload for ``address``. ``shop_id`` is the linked account when it is not ours
        (then the sales channel, language and payment method the customer chose stay as they are)."""
        if address.problems:
            raise Rejected("; ".join(address.problems), "SYNCD__ERP_VALUE")
        email = clean(address.email)
        if not email:
            raise Rejected(f"no {self._field('email')}", "SYNCD__NO_EMAIL", "email")
        if email_problem(email) is not None:  # the push flow's rule: no other check may differ
            raise Rejected(f"{self._field('email')} {email!r} is not an e-mail address", "SYNCD__BAD_EMAIL",
                           "email")
        company = clean(address.company)
        first, last = clean(address.first_name), clean(address.last_name)
        if not (first and last):
            first, last = self._fill_names(first, last, company)
        street, city = clean(address.street), clean(address.city)
        zipcode, phone = clean(address.zip), clean(address.phone)
        if not street:
            raise Rejected(f"no {self._field('street')}", "SYNCD__NO_STREET", "street")
        if not city:
            raise Rejected(f"no {self._field('city')}", "SYNCD__NO_CITY", "city")
        iso = (clean(address.country) or "").upper()
        if not iso:
            # Never invented: the operator's default, else the record fails (issue 13).
            iso = (self.platform.default_country or "").upper()
            if not iso:
                raise Rejected(
                    f"ERP address {address.number}: {self._field('country')} is empty and "
                    f"platforms[{self.platform.name}].default_country is not set",
                    "SYNCD__NO_COUNTRY",
                )
        country = self.meta.countries.get(iso)
        if not country:
            shown = address.country if clean(address.country) else f"{iso} (default_country)"
            raise Rejected(
                f"{self._field('country')} {shown!r} is not a country of the shop",
                "SYNCD__UNKNOWN_COUNTRY",
                "country",
            )
        values = (email, company, first, last, street, city, zipcode, phone)
        caps = self._caps
        for i in range(8):
            value = values[i]
            if value is not None and len(value) > caps[i]:
                self._check_len(_CAPPED_FIELDS[i], value, caps[i])  # raises with the reason

        salutation = self._salutation(address.salutation)
        number = address.number
        if shop_id is None:
            cid, aid = self._ids(number)
        else:
            cid, aid = shop_id, self._ids(number)[1]
        payload: dict[str, Any] = {
            "id": cid,
            "customerNumber": self.platform.customer_number_prefix + account_label(number),
            "groupId": self._group(address.customer_group),
            "firstName": first,
            "lastName": last,
            "company": company,
            "email": email,
            "active": not address.blocked,
        }
        if salutation:
            payload["salutationId"] = salutation
        if address.main_contact is not None:  # a contact person's account: its company and role
            payload["customFields"] = {"syncd_company_number": account_label(account_parts(number)[0]),
                                       "syncd_main_contact": address.main_contact}
        if self.traits.has_account_type:
            # The address's own kind (ERP connector), not "a company column is filled": büro+
            # keeps a private customer's name in the same line as a company's (issue 13).
            business = address.business if address.business is not None else bool(company)
            payload["accountType"] = "business" if business else "private"
        if shop_id is None:
            payload.update(self._account_fields)
        addr: dict[str, Any] = {
            "id": aid,
            "countryId": country,
            "firstName": first,
            "lastName": last,
            "street": street,
            "zipcode": zipcode,
            "city": city,
            "company": company,
            "phoneNumber": phone,
        }
        if salutation:
            addr["salutationId"] = salutation
        payload["addresses"] = [addr]
        payload["defaultBillingAddressId"] = aid
        payload["defaultShippingAddressId"] = aid
        return MappedCustomer(address.number, cid, aid, email, payload)


# What ``json.dumps(payload, sort_keys=True, ensure_ascii=False)`` builds on every call, built once:
# the text (and so every stored fingerprint) stays the same.
_fingerprint_text = json.JSONEncoder(sort_keys=True, ensure_ascii=False).encode


def fingerprint(payload: Mapping[str, Any]) -> str:
    """Stable hash of what would be sent: equal hashes mean the shop already has this state."""
    return hashlib.sha256(_fingerprint_text(payload).encode()).hexdigest()


def parse_timestamp(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def to_shop_customer(data: Mapping[str, Any], meta: ShopMetadata | None) -> ShopCustomer:
    """Shop JSON (with ``defaultBillingAddress`` when it was requested) -> ``ShopCustomer``."""
    billing = data.get("defaultBillingAddress") or {}
    salutation = None
    sal = data.get("salutation") or {}
    key = sal.get("salutationKey") or (meta.salutation_key(data.get("salutationId")) if meta else None)
    if key:
        salutation = _SALUTATION_BACK.get(key)
    country = (billing.get("country") or {}).get("iso")
    if country is None and meta is not None and billing.get("countryId"):
        country = meta.country_iso(billing.get("countryId"))
    return ShopCustomer(
        id=data["id"],
        email=data.get("email") or "",
        customer_number=data.get("customerNumber"),
        first_name=data.get("firstName"),
        last_name=data.get("lastName"),
        company=data.get("company") or billing.get("company"),
        salutation=salutation,
        street=billing.get("street"),
        zip=billing.get("zipcode"),
        city=billing.get("city"),
        country=country,
        phone=billing.get("phoneNumber"),
        active=bool(data.get("active", True)),
        guest=bool(data.get("guest", False)),
        order_count=int(data.get("orderCount") or 0),
        created_at=parse_timestamp(data.get("createdAt")),
        updated_at=_newest(parse_timestamp(data.get("updatedAt")), parse_timestamp(billing.get("updatedAt"))),
        last_login=parse_timestamp(data.get("lastLogin")),
        requested_group=_group_name(data.get("requestedGroupId"), meta),
    )


def _group_name(group_id: Any, meta: ShopMetadata | None) -> str | None:
    if not group_id:
        return None
    if meta is not None:
        for name, gid in meta.groups.items():
            if gid == group_id:
                return name
    return str(group_id)


def _newest(*stamps: datetime | None) -> datetime | None:
    """The customer's last change: its own ``updatedAt`` or its billing address's (an address
    edit in the storefront moves only the address's)."""
    found = [s for s in stamps if s is not None]
    return max(found) if found else None

"""What differs between the Shopware versions syncd supports (see shared shopware-notes §0, §2).

One frozen record per detected version, so mapping and push code ask a question ("does this
shop still require ``defaultPaymentMethodId``?") instead of comparing version tuples everywhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from syncd.core.errors import PermanentError

MIN_SUPPORTED = (6, 5, 0, 0)
# Below 6.5 the sync API wrote per operation (``fail-on-error``); our error mapping assumes the
# 6.5+ all-or-nothing behaviour, so older shops are refused instead of half-supported.

_VERSION = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)(?:\.(\d+))?")


def parse_version(text: str) -> tuple[int, int, int, int]:
    match = _VERSION.match((text or "").strip())
    if not match:
        raise PermanentError(f"unreadable Shopware version {text!r} from /api/_info/version")
    return tuple(int(g or 0) for g in match.groups())  # type: ignore[return-value]


@dataclass(frozen=True)
class VersionTraits:
    version: str
    parts: tuple[int, int, int, int]
    # 6.4-6.6 require a default payment method on the customer; 6.7 removed the field.
    requires_payment_method: bool
    # accountType exists since 6.5.1.0.
    has_account_type: bool
    # Per-field maximum lengths of the customer and its address, as the shop validates them.
    customer_caps: dict[str, int]
    address_caps: dict[str, int]
    # Largest search page: ``shopware.api.max_limit`` is 100 in 6.5.0, unset later in 6.5, 500 in 6.6+.
    page_limit: int

    @property
    def supported(self) -> bool:
        return self.parts >= MIN_SUPPORTED and self.parts < (6, 8, 0, 0)


def traits_for(version: str) -> VersionTraits:
    parts = parse_version(version)
    address_caps = {
        "firstName": 255,
        "lastName": 255,
        "street": 255,
        "zipcode": 255,
        "city": 255,
        "company": 255,
        "phoneNumber": 255,
    }
    if parts >= (6, 6, 4, 0):
        # Since 6.6.4.0 address names, zip and phone are capped (notes §2 customer_address).
        address_caps.update(firstName=50, lastName=60, zipcode=50, phoneNumber=40)
    customer_caps = {"firstName": 255, "lastName": 255, "company": 255, "email": 255, "customerNumber": 255}
    return VersionTraits(
        version=version,
        parts=parts,
        requires_payment_method=parts < (6, 7, 0, 0),
        has_account_type=parts >= (6, 5, 1, 0),
        customer_caps=customer_caps,
        address_caps=address_caps,
        page_limit=500 if parts >= (6, 5, 1, 0) else 100,
    )

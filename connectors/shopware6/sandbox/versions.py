"""Which Shopware behaviour the sandbox plays, per version.

Every version-dependent rule lives here, named after what it changes, so a test can read the
differences in one place. Sources are in ``/work/shared/shopware-notes.md``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)\.(\d+)$")

# Shopware PR #17170 (enforce customer e-mail uniqueness on every write) was merged in June 2026;
# the first patch release carrying it is not documented. 6.7.10.0 is the first release after the
# last one known without it (issue #17037 was reported on 6.7.9.1).
EMAIL_UNIQUE_SINCE = (6, 7, 10, 0)
# PR #18306 then moved that violation's pointer from "/<customerId>/email" to the sync path
# ("/write-customer/0/email"); again the release is undocumented, assumed one minor later.
EMAIL_POINTER_FIXED_SINCE = (6, 7, 11, 0)


@dataclass(frozen=True)
class ShopVersion:
    text: str
    parts: tuple[int, int, int, int]

    @classmethod
    def parse(cls, text: str) -> ShopVersion:
        m = _VERSION.match(text.strip())
        if not m:
            raise ValueError(f"Shopware version must look like 6.6.10.0, got {text!r}")
        parts = tuple(int(g) for g in m.groups())
        if parts[:2] < (6, 5) or parts[:2] > (6, 7):
            raise ValueError(f"the sandbox plays Shopware 6.5, 6.6 and 6.7, not {text!r}")
        return cls(text.strip(), parts)  # type: ignore[arg-type]

    def at_least(self, *parts: int) -> bool:
        return self.parts >= tuple(parts) + (0,) * (4 - len(parts))

    # --- customer entity -------------------------------------------------------------------
    @property
    def payment_method_on_customer(self) -> bool:
        """``defaultPaymentMethodId`` is a required customer field up to 6.6 and gone in 6.7."""
        return not self.at_least(6, 7)

    @property
    def has_account_type(self) -> bool:
        return self.at_least(6, 5, 1)

    @property
    def fills_default_salutation(self) -> bool:
        """Since 6.5.4 a customer or address written without salutation gets ``not_specified``."""
        return self.at_least(6, 5, 4)

    @property
    def address_name_caps(self) -> bool:
        """Since 6.6.4 address firstName/lastName are capped at 50/60 (zipcode 50, phone 40, title 100)."""
        return self.at_least(6, 6, 4)

    @property
    def enforces_unique_email(self) -> bool:
        return self.parts >= EMAIL_UNIQUE_SINCE

    @property
    def email_violation_points_at_payload(self) -> bool:
        return self.parts >= EMAIL_POINTER_FIXED_SINCE

    # --- search ----------------------------------------------------------------------------
    @property
    def max_limit(self) -> int | None:
        """``shopware.api.max_limit``: 100 in 6.5.0, unset in later 6.5, 500 since 6.6."""
        if self.at_least(6, 6):
            return 500
        if self.at_least(6, 5, 1):
            return None
        return 100

    # --- store api -------------------------------------------------------------------------
    @property
    def imitates_customers(self) -> bool:
        """"Log in as customer" (customer impersonation, NEXT-36854) shipped in 6.6.5.0: the Admin
        API token route, the Store API and storefront ``account/login/imitate-customer`` routes."""
        return self.at_least(6, 6, 5)

    @property
    def inactive_login_code(self) -> str:
        """6.5 names an inactive account; 6.6 replaced InactiveCustomerException by bad credentials."""
        if self.at_least(6, 6):
            return "CHECKOUT__CUSTOMER_AUTH_BAD_CREDENTIALS"
        return "CHECKOUT__CUSTOMER_IS_INACTIVE"

    @property
    def login_hides_unknown_email(self) -> bool:
        """GHSA-gqc5-xv7m-gcjq: unknown e-mails answer CUSTOMER_NOT_FOUND before 6.6.10.15 / 6.7.8.1."""
        if self.at_least(6, 7):
            return self.at_least(6, 7, 8, 1)
        return self.at_least(6, 6, 10, 15)

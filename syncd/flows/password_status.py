"""Whose password an account has: the state store knows what syncd mailed, the shop what the
customer did since (``syncd accounts list/export``; never a password, only a status).

* ``none``: syncd never mailed credentials for the account;
* ``initial``: the credentials mail (or set-password link) of the account's creation;
* ``reset by staff``: an operator's ``send-credentials`` / ``reset-password``;
* ``own password``: the customer set one of their own after syncd's newest mail. Shopware keeps
  no password timestamp and never shows the hash (notes §11), so this rests on what each cycle
  sees happen and on the customer fields the shop keeps:

  - evidence recorded by the erp-to-shop cycle, exact: a "forgot password" request of the
    customer (``recovery_watch``) whose recovery is no longer open, and a write of the account
    that no visible field explains (``password_writes``: not a login, not syncd, e-mail and the
    fields syncd compares unchanged);
  - a login (``lastLogin``) after a set-password link: a link mail carries no password;
  - inferred, for a write since the last cycle only (the watch's bookmark): a write to the
    account (``updatedAt``) after syncd's newest mail and syncd's own last write that is not a
    login (a login bumps ``updatedAt`` to its ``lastLogin``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

INITIAL = "initial"  # syncd mailed the first credentials when it created the account
RESET_BY_STAFF = "reset by staff"  # an operator sent new credentials (send-credentials / reset-password)
OWN = "own password"  # the customer set a password of their own after syncd's newest mail
NONE = "none"  # syncd never mailed credentials for this account
STATUS_BY_REASON = {"created": INITIAL, "resend": RESET_BY_STAFF, "reset": RESET_BY_STAFF,
                    "reminder": INITIAL}  # an activation reminder carries syncd's new password

# Clocks of syncd and the shop differ a little; a shop write this close to syncd's own is syncd's.
SKEW = timedelta(seconds=5)


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def from_shop(mailed_at: datetime | None, mode: str | None, our_last_write: datetime | None,
              customer: Any, recovered_at: datetime | None = None,
              examined_until: datetime | None = None) -> bool:
    """Did the customer set a password of their own after syncd's newest mail (``mailed_at``)?
    ``mode``: that mail's credential mode; ``our_last_write``: when syncd last wrote the account;
    ``customer``: the shop's account (``last_login``, ``updated_at``); ``recovered_at``: the
    customer's own recovery request seen by ``recovery_watch`` that is no longer open (used)."""
    mailed = _utc(mailed_at)
    if mailed is None or customer is None:
        return False
    login, updated = _utc(getattr(customer, "last_login", None)), _utc(getattr(customer, "updated_at", None))
    recovered = _utc(recovered_at)
    if recovered is not None and recovered > mailed and updated is not None and updated >= recovered - SKEW:
        return True  # exact: the request was seen, its row is gone, the account was written since
    if mode == "link" and login is not None and login > mailed:
        return True
    baseline = max(t for t in (mailed, _utc(our_last_write)) if t is not None)
    if updated is None or updated <= baseline + SKEW:
        return False
    examined = _utc(examined_until)
    if examined is not None and updated <= examined:
        # The cycle's watch looked at this write (its bookmark is a shop time): the evidence above
        # classified it; the inference below is only for a write since the last cycle.
        return False
    return login is None or abs(updated - login) > SKEW  # the newest write was not a login


def refine(statuses: Mapping[int, tuple[datetime | None, str | None, datetime | None, str | None]],
           customers: Mapping[str, Any], recovered: Mapping[int, datetime] | None = None, *,
           examined_until: datetime | None = None) -> dict[int, bool]:
    """ERP number -> own password, for (mailed_at, mode, our_last_write, shop_id) per number;
    ``recovered``: number -> evidence of the customer's own password (a used recovery request,
    a password write seen by the cycle); ``examined_until``: the watch's bookmark."""
    return {n: from_shop(at, mode, ours, customers.get(sid or ""), (recovered or {}).get(n), examined_until)
            for n, (at, mode, ours, sid) in statuses.items()}

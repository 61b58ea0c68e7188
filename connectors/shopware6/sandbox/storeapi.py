"""Store API routes (``/store-api/...``): customer login and password recovery.

These prove what a customer experiences: a mailed password logs in, an inactive account does not,
a recovery link sets a new password.
"""

from __future__ import annotations

import secrets
import string
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import bcrypt

from . import errors as e
from .api import Request, Response
from .errors import ApiError
from .faults import TokenLimiter
from .schema import RECOVER_URL
from .store import Store, now_iso, parse_dt
from .versions import ShopVersion

RECOVERY_TTL = 2 * 3600  # ResetPasswordRoute: a hash is valid for 2 hours
ALPHANUMERIC = string.ascii_letters + string.digits  # Random::getAlphanumericString


@dataclass(frozen=True)
class RecoveryMail:
    """The ``customer.recovery.request`` mail the shop would send."""

    customer_id: str
    email: str
    hash: str
    reset_url: str


class StoreApi:
    def __init__(
        self,
        store: Store,
        version: ShopVersion,
        *,
        sales_channel_id: str,
        access_key: str,
        password_min: int,
        bcrypt_rounds: int,
    ):
        self.store = store
        self.version = version
        self.sales_channel_id = sales_channel_id
        self.access_key = access_key
        self.password_min = password_min
        self.bcrypt_rounds = bcrypt_rounds
        self.recovery_mails: list[RecoveryMail] = []
        self._lock = threading.Lock()
        self.login_limiter = TokenLimiter()  # the "login" policy has the oauth steps
        self.imitation: Any = None  # set by the sandbox ("log in as customer", imitation.py)
        self.contexts: dict[str, str] = {}  # context token -> the customer logged in with it

    def handle(self, req: Request) -> Response:
        if req.headers.get("sw-access-key") != self.access_key:
            raise e.simple(
                412, "FRAMEWORK__ROUTING_SALES_CHANNEL_NOT_FOUND", "No matching sales channel found."
            )
        if req.method == "POST" and req.path == "/store-api/account/login":
            return self.login(req.json(), req.client_ip)
        if req.method == "POST" and req.path == "/store-api/account/recovery-password":
            return self.recover(req.json())
        if req.method == "POST" and req.path == "/store-api/account/recovery-password-confirm":
            return self.confirm(req.json())
        if req.method == "POST" and req.path == "/store-api/account/change-password":
            return self.change_password(req)
        if req.method == "POST" and req.path == "/store-api/account/login/imitate-customer" \
                and self.imitation is not None:
            return self.imitation.store_api(req)
        raise e.simple(404, "FRAMEWORK__ROUTE_NOT_FOUND", f'No route found for "{req.method} {req.path}"')

    # --- login -----------------------------------------------------------------------------
    def login(self, body: Any, client_ip: str) -> Response:
        body = body if isinstance(body, dict) else {}
        email = str(body.get("email") or body.get("username") or "")
        password = str(body.get("password") or "")
        limiter_key = f"{email.lower()}-{client_ip}"
        wait = self.login_limiter.attempt(limiter_key)
        if wait:
            raise ApiError(
                429,
                [
                    e.error(
                        429,
                        "CHECKOUT__CUSTOMER_AUTH_THROTTLED",
                        f"Customer auth throttled for {wait} seconds.",
                        title="Too Many Requests",
                        parameters={"seconds": wait},
                    )
                ],
            )
        bad = e.simple(401, "CHECKOUT__CUSTOMER_AUTH_BAD_CREDENTIALS", "Invalid username and/or password.")
        with self.store.lock:
            customer = self._customer_by_email(email, active_only=False)
            if customer is None:
                if self.version.login_hides_unknown_email:
                    raise bad
                raise e.simple(
                    401,
                    "CHECKOUT__CUSTOMER_NOT_FOUND",
                    f'No matching customer for the email "{email}" was found.',
                    parameters={"email": email},
                )
            stored = self.store.passwords.get(customer["id"])
        if len(password) > 4096 or stored is None or not verify_password(password, stored):
            raise bad
        if not customer.get("active"):
            raise e.simple(
                401,
                self.version.inactive_login_code,
                f'The customer with the id "{customer["id"]}" is inactive.',
                parameters={"customerId": customer["id"]},
            )
        with self.store.lock:
            # AccountService writes lastLogin through the DAL, which bumps updatedAt
            current = self.store.get("customer", customer["id"])
            if current is not None:
                stamp = now_iso()
                self.store.put("customer", {**current, "lastLogin": stamp, "updatedAt": stamp})
        self.login_limiter.success(limiter_key)
        token = secrets.token_urlsafe(24)
        with self._lock:
            self.contexts[token] = customer["id"]  # the context token is the customer's session
        return 200, {"sw-context-token": token}, {"contextToken": token, "apiAlias": "array_struct"}

    def _customer_by_email(self, email: str, *, active_only: bool) -> dict[str, Any] | None:
        """The first non-guest customer of this sales channel with that e-mail (creation order),
        like ``AccountService::getCustomerByEmail`` — a duplicate e-mail shadows the later account."""
        matches = []
        for cid in self.store.ids_by("customer", "email", email):
            c = self.store.get("customer", cid)
            if c.get("guest") or c.get("boundSalesChannelId") not in (None, self.sales_channel_id):
                continue
            if active_only and not c.get("active"):
                continue
            matches.append(c)
        matches.sort(key=lambda c: c.get("createdAt") or "")
        return matches[0] if matches else None

    # --- change password (account page) ----------------------------------------------------
    def change_password(self, req: Request) -> Response:
        """``ChangePasswordRoute`` (login required): ``password`` must be the current one,
        ``newPassword`` at least the minimum and equal to ``newPasswordConfirm``; the password is
        written through the DAL (``updatedAt`` moves, ``lastLogin`` does not) and the shop fires
        ``CustomerPasswordChangedEvent``, which it keeps nowhere the Admin API could read."""
        with self._lock:
            customer_id = self.contexts.get(req.headers.get("sw-context-token", ""))
        if customer_id is None:
            raise e.simple(403, "CHECKOUT__CUSTOMER_NOT_LOGGED_IN", "Customer is not logged in.")
        body = req.json()
        body = body if isinstance(body, dict) else {}
        new, repeat = body.get("newPassword"), body.get("newPasswordConfirm")
        violations = []
        if not isinstance(new, str) or not new:
            violations.append(e.not_blank("/newPassword"))
        elif self.password_min and len(new) < self.password_min:
            violations.append(e.too_short("/newPassword", self.password_min))
        if new != repeat:
            violations.append(e.violation("/newPassword", "FRAMEWORK__EQUAL_TO",
                                          "This value should be equal to the confirmation."))
        with self.store.lock:
            stored = self.store.passwords.get(customer_id)
        if stored is None or not verify_password(str(body.get("password") or ""), stored):
            violations.append(e.violation("/password", "VIOLATION::CUSTOMER_PASSWORD_NOT_CORRECT",
                                          "Password does not match."))
        if violations:
            raise ApiError(400, violations)
        hashed = bcrypt.hashpw(str(new).encode(), bcrypt.gensalt(self.bcrypt_rounds))
        with self.store.lock:
            current = self.store.get("customer", customer_id)
            self.store.passwords[customer_id] = hashed
            self.store.put("customer", {**current, "updatedAt": now_iso()})
        return 200, {"sw-context-token": req.headers["sw-context-token"]}, {
            "contextToken": req.headers["sw-context-token"], "apiAlias": "array_struct"}

    # --- recovery --------------------------------------------------------------------------
    def recover(self, body: Any) -> Response:
        """``SendPasswordRecoveryMailRoute``: replace the customer's open recovery by a new
        ``customer_recovery`` (32 alphanumeric characters) and send the shop's recovery mail."""
        body = body if isinstance(body, dict) else {}
        email = str(body.get("email") or "")
        url = body.get("storefrontUrl")
        with self.store.lock:
            domains = [
                d["url"]
                for d in self.store.tables["sales_channel_domain"].values()
                if d.get("salesChannelId") == self.sales_channel_id
            ]
            if url not in domains:
                raise ApiError(400, [e.no_such_choice("/storefrontUrl", url)])
            matches = [
                c
                for cid in self.store.ids_by("customer", "email", email)
                if (c := self.store.get("customer", cid))
                and c.get("active")
                and not c.get("guest")
                and c.get("boundSalesChannelId") in (None, self.sales_channel_id)
            ]
        if len(matches) != 1:
            # exactly one match is required; duplicates break recovery (notes §5)
            raise e.simple(
                401,
                "CHECKOUT__CUSTOMER_NOT_FOUND",
                f'No matching customer for the email "{email}" was found.',
                parameters={"email": email},
            )
        recovery_hash = "".join(secrets.choice(ALPHANUMERIC) for _ in range(32))
        with self.store.lock:
            for old in list(self.store.ids_by("customer_recovery", "customerId", matches[0]["id"])):
                self.store.remove("customer_recovery", old)
            self.store.put("customer_recovery", {
                "id": uuid.uuid4().hex, "hash": recovery_hash, "customerId": matches[0]["id"],
                "createdAt": now_iso(), "updatedAt": None, "apiAlias": "customer_recovery",
            })
        with self._lock:
            self.recovery_mails.append(
                RecoveryMail(
                    matches[0]["id"],
                    matches[0]["email"],
                    recovery_hash,
                    url + RECOVER_URL.replace("%%RECOVERHASH%%", recovery_hash),
                )
            )
        return 200, {}, {"success": True, "apiAlias": "response"}

    def confirm(self, body: Any) -> Response:
        """``ResetPasswordRoute``: the new password is validated first (400, one violation per
        field), then the hash: unknown or older than 2 h is the same 410 ``HASH_EXPIRED``. The
        password is written (``updatedAt`` moves; no login, so ``lastLogin`` does not), the
        recovery deleted, and the answer is a plain success."""
        body = body if isinstance(body, dict) else {}
        recovery_hash = str(body.get("hash") or "")
        new, repeat = body.get("newPassword"), body.get("newPasswordConfirm")
        violations = []
        if not isinstance(new, str) or not new:
            violations.append(e.not_blank("/newPassword"))
        elif self.password_min and len(new) < self.password_min:
            violations.append(e.too_short("/newPassword", self.password_min))
        if new != repeat:
            violations.append(
                e.violation(
                    "/newPassword", "FRAMEWORK__EQUAL_TO",
                    # tryValidateEqualtoConstraint puts the raw confirmation into the message
                    f"This value should be equal to {repeat if isinstance(repeat, str) else ''}.",
                )
            )
        if violations:
            raise ApiError(400, violations)
        expired = e.simple(
            410, "CHECKOUT__CUSTOMER_RECOVERY_HASH_EXPIRED", f'The hash "{recovery_hash}" is expired.',
            parameters={"hash": recovery_hash},
        )
        with self.store.lock:
            recovery = self._recovery(recovery_hash)
            if recovery is None or not recovery_valid(recovery):
                raise expired
            current = self.store.get("customer", recovery["customerId"])
            if current is None:
                raise e.simple(
                    404, "CHECKOUT__CUSTOMER_NOT_FOUND_BY_HASH",
                    f'No matching customer for the hash "{recovery_hash}" was found.',
                    parameters={"hash": recovery_hash},
                )
        hashed = bcrypt.hashpw(str(new).encode(), bcrypt.gensalt(self.bcrypt_rounds))
        with self.store.lock:
            current = self.store.get("customer", recovery["customerId"])
            if current is None or self._recovery(recovery_hash) is None:
                raise expired  # used or deleted while the password was hashed
            self.store.passwords[current["id"]] = hashed
            self.store.put("customer", {**current, "updatedAt": now_iso()})
            self.store.remove("customer_recovery", recovery["id"])
        return 200, {}, {"success": True, "apiAlias": "response"}

    def _recovery(self, recovery_hash: str) -> dict[str, Any] | None:
        """The recovery row with exactly this hash (the MySQL index compares case-insensitively,
        the hash itself is compared as stored)."""
        for rid in self.store.ids_by("customer_recovery", "hash", recovery_hash):
            row = self.store.get("customer_recovery", rid)
            if row is not None and row.get("hash") == recovery_hash:
                return row
        return None

    def recovery_hashes(self) -> dict[str, str]:
        with self.store.lock:
            return {r["hash"]: r["customerId"] for r in self.store.tables["customer_recovery"].values()}


def recovery_valid(recovery: dict[str, Any], now: datetime | None = None) -> bool:
    """``ResetPasswordRoute::checkHash``: created less than 2 h ago."""
    created = parse_dt(recovery.get("createdAt"))
    now = now or datetime.now(UTC)
    return created is not None and now - timedelta(seconds=RECOVERY_TTL) < created


def verify_password(password: str, stored: bytes) -> bool:
    # PHP writes $2y$; the bcrypt library reads it as $2b$ (same algorithm)
    if stored.startswith(b"$2y$"):
        stored = b"$2b$" + stored[4:]
    try:
        return bcrypt.checkpw(password.encode(), stored)
    except ValueError:
        return False

"""Log in as customer (customer impersonation, Shopware 6.6.5.0+, notes §10).

* Admin users (the Administration's logins, ``grant_type=password``, ``client_id=administration``):
  an integration cannot imitate, the token route needs a *user* source.
* ``POST /api/_proxy/generate-imitate-customer-token`` ``{customerId, salesChannelId}`` (ACL
  ``api_proxy_imitate-customer``) -> ``{"token"}``: the ``ImitateCustomerTokenGenerator`` token,
  an HMAC over sales channel, customer and user with the time it was made; valid 3600 s, bound to
  those three ids, and *stateless*: Shopware does not consume it, a second use within the hour
  works again (the one-time property of ``syncd accounts login-as`` is syncd's own link).
* ``POST /store-api/account/login/imitate-customer`` ``{token, customerId, userId}`` -> a context
  token of the customer, with the imitating user recorded.
* Storefront ``POST /account/login/imitate-customer`` (form fields ``token``, ``customerId``,
  ``userId``; POST only, as the Administration submits a form) -> a storefront session of the
  customer, redirect to ``/account``; ``GET /account`` shows whose session it is.

The token here is HMAC-SHA256 + time wrapped with a random IV and a SHA-256 keystream (Shopware
encrypts with AES-256-CBC under the app secret): opaque to clients either way.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from . import errors as e
from .api import Request, Response
from .errors import ApiError
from .store import Store
from .versions import ShopVersion

TOKEN_LIFETIME = 3600  # ImitateCustomerTokenGenerator::TOKEN_LIFETIME
ACL = "api_proxy_imitate-customer"
ENTITY_EXISTS = "f1e5c873-5baf-4d5b-8ab7-e422bfce91f1"  # EntityExists constraint violation code
SESSION_COOKIE = "session-"


@dataclass
class AdminUser:
    id: str
    username: str
    password: str
    admin: bool = False
    privileges: frozenset[str] = frozenset()

    def may(self, privilege: str) -> bool:
        return self.admin or privilege in self.privileges


@dataclass
class StorefrontSession:
    customer_id: str | None = None
    imitating_user_id: str | None = None
    context_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))


class Imitation:
    def __init__(self, store: Store, version: ShopVersion, sales_channel_id: str) -> None:
        self.store = store
        self.version = version
        self.sales_channel_id = sales_channel_id
        self._secret = secrets.token_bytes(32)  # APP_SECRET
        self.users: dict[str, AdminUser] = {}
        self.sessions: dict[str, StorefrontSession] = {}
        self.clock_skew = 0.0  # seconds added to "now" when validating (a test ages tokens with it)
        self.tokens_issued = 0
        self._lock = threading.Lock()

    # --- admin users ---------------------------------------------------------------------
    def add_user(self, username: str, password: str, *, admin: bool = False,
                 privileges: tuple[str, ...] = (ACL,)) -> str:
        user = AdminUser(uuid.uuid4().hex, username, password, admin, frozenset(privileges))
        with self._lock:
            self.users[username] = user
        return user.id

    def login(self, username: str, password: str) -> AdminUser | None:
        user = self.users.get(username)
        if user is None or not secrets.compare_digest(user.password.encode(), password.encode()):
            return None
        return user

    def user_by_id(self, user_id: str | None) -> AdminUser | None:
        return next((u for u in self.users.values() if u.id == user_id), None)

    def me(self, user_id: str | None) -> Response:
        user = self.user_by_id(user_id)
        if user is None:  # an integration's token has no user behind it
            raise e.simple(403, "FRAMEWORK__API_USER_NOT_LOGGED_IN", "User is not logged in.")
        return 200, {}, {"data": {"id": user.id, "username": user.username, "admin": user.admin,
                                  "apiAlias": "user"}}

    # --- the token ------------------------------------------------------------------------
    def _hmac(self, sales_channel_id: str, customer_id: str, user_id: str) -> str:
        data = json.dumps({"salesChannelId": sales_channel_id, "customerId": customer_id, "userId": user_id},
                          separators=(",", ":"))
        return hmac.new(self._secret, data.encode(), hashlib.sha256).hexdigest()

    def _stream(self, iv: bytes, n: int) -> bytes:
        out = b""
        counter = 0
        while len(out) < n:
            out += hashlib.sha256(self._secret + iv + counter.to_bytes(4, "big")).digest()
            counter += 1
        return out[:n]

    def _now(self) -> float:
        return time.time() + self.clock_skew

    def generate(self, user_id: str | None, req: Request) -> Response:
        if not self.version.imitates_customers:
            raise e.simple(404, "FRAMEWORK__ROUTE_NOT_FOUND", f'No route found for "{req.method} {req.path}"')
        user = self.user_by_id(user_id)
        if user is not None and not user.may(ACL):
            raise e.simple(403, "FRAMEWORK__MISSING_PRIVILEGE_ERROR",
                           json.dumps({"message": "missing privileges", "missingPrivileges": [ACL]}))
        body = req.json()
        body = body if isinstance(body, dict) else {}
        violations = []
        for key, entity in (("salesChannelId", "sales_channel"), ("customerId", "customer")):
            value = body.get(key)
            if not isinstance(value, str) or not value:
                violations.append(e.not_blank(f"/{key}"))
            elif self.store.get(entity, value) is None:
                violations.append(e.violation(f"/{key}", ENTITY_EXISTS,
                                              f'The {entity} entity with id "{value}" does not exist.'))
        if violations:
            raise ApiError(400, violations)
        if user is None:  # SalesChannelProxyController: an integration source has no user id
            raise e.simple(403, "FRAMEWORK__API_USER_NOT_LOGGED_IN", "User is not logged in.")
        mac = self._hmac(body["salesChannelId"], body["customerId"], user.id)
        plain = f"{mac}.{int(self._now())}".encode()
        iv = secrets.token_bytes(16)
        token = base64.b64encode(iv + bytes(a ^ b for a, b in zip(plain, self._stream(iv, len(plain)),
                                                                    strict=True))).decode()
        with self._lock:
            self.tokens_issued += 1
        return 200, {}, {"token": token}

    def valid(self, token: str, customer_id: str, user_id: str) -> bool:
        """``ImitateCustomerTokenGenerator::validate`` for this sales channel."""
        try:
            raw = base64.b64decode(token, validate=True)
        except ValueError:
            return False
        iv, sealed = raw[:16], raw[16:]
        if len(iv) != 16 or not sealed:
            return False
        plain = bytes(a ^ b for a, b in zip(sealed, self._stream(iv, len(sealed)), strict=True))
        mac, _, stamp = plain.decode("latin-1").partition(".")
        if not stamp.isdigit() or self._now() - int(stamp) > TOKEN_LIFETIME:
            return False
        return hmac.compare_digest(mac, self._hmac(self.sales_channel_id, customer_id, user_id))

    # --- logging in -------------------------------------------------------------------------
    def _login(self, fields: dict[str, Any], session: StorefrontSession) -> None:
        """``ImitateCustomerRoute``: validate, then ``AccountService::loginById`` (which refuses
        an inactive customer, 401) with the imitating user on the context."""
        token, customer_id, user_id = (str(fields.get(k) or "") for k in ("token", "customerId", "userId"))
        if not token or not self.valid(token, customer_id, user_id):
            raise e.simple(403, "CHECKOUT__INVALID_IMITATE_CUSTOMER_TOKEN",
                           "The token is invalid.")
        with self.store.lock:
            customer = self.store.get("customer", customer_id)
            if customer is None:
                raise e.simple(404, "CHECKOUT__CUSTOMER_NOT_FOUND_BY_ID",
                               f'No matching customer for the id "{customer_id}" was found.')
            if not customer.get("active"):
                raise e.simple(401, self.version.inactive_login_code,
                               f'The customer with the id "{customer_id}" is inactive.')
        session.customer_id, session.imitating_user_id = customer_id, user_id
        session.context_token = secrets.token_urlsafe(24)  # a login gets a new context token

    def store_api(self, req: Request) -> Response:
        if not self.version.imitates_customers:
            raise e.simple(404, "FRAMEWORK__ROUTE_NOT_FOUND", f'No route found for "{req.method} {req.path}"')
        body = req.json()
        session = StorefrontSession()
        self._login(body if isinstance(body, dict) else {}, session)
        return 200, {"sw-context-token": session.context_token}, {"contextToken": session.context_token,
                                                                  "apiAlias": "array_struct"}

    def handle(self, req: Request) -> Response:
        """The storefront's own pages (``/account...``) that "log in as customer" needs."""
        sid = _cookie(req.headers.get("cookie", ""), SESSION_COOKIE)
        with self._lock:
            session = self.sessions.get(sid or "")
        if req.path == "/account/login/imitate-customer" and self.version.imitates_customers:
            if req.method != "POST":
                raise e.simple(405, "FRAMEWORK__METHOD_NOT_ALLOWED", "Method not allowed, use POST.")
            fields = dict(parse_qsl(req.body.decode("utf-8", "replace")))
            fresh = StorefrontSession()
            try:
                self._login(fields, fresh)
            except ApiError as exc:
                if exc.status == 403:  # an invalid or expired token: back to the login page, logged out
                    return 302, {"Location": "/account/login", "Content-Type": "text/html"}, b""
                raise
            sid = secrets.token_urlsafe(24)  # the session id is migrated at login
            with self._lock:
                self.sessions[sid] = fresh
            return 302, {"Location": "/account", "Content-Type": "text/html",
                         "Set-Cookie": f"{SESSION_COOKIE}={sid}; path=/; httponly; samesite=lax"}, b""
        if req.path == "/account" and req.method == "GET":
            if session is None or session.customer_id is None:
                return 302, {"Location": "/account/login", "Content-Type": "text/html"}, b""
            customer = self.store.get("customer", session.customer_id) or {}
            page = (f'<html><body><h1>Mein Konto / My account</h1><p id="customer" '
                    f'data-id="{customer.get("id")}">{html.escape(str(customer.get("email")))}</p></body></html>')
            return 200, {"Content-Type": "text/html; charset=utf-8"}, page.encode()
        raise e.simple(404, "FRAMEWORK__ROUTE_NOT_FOUND", f'No route found for "{req.method} {req.path}"')

    def session_of(self, sid: str) -> StorefrontSession | None:
        with self._lock:
            return self.sessions.get(sid)


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None

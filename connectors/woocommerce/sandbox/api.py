"""The routes of the WooCommerce sandbox (``/wp-json/wc/v3/...`` and ``/wp-login.php``).

Authentication as WooCommerce does it on a plain-HTTP site: OAuth 1.0a one-legged (query
parameters, HMAC-SHA1 or -SHA256, timestamp within 15 minutes, a nonce used once). Basic auth
counts only over HTTPS, which this loopback server never is, so it is refused like no auth.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from syncd.connectors.woocommerce.http import oauth1_signature

from .customers import Customers, ItemError, now_gmt

BATCH_LIMIT = 100  # filter woocommerce_rest_batch_items_limit
PREFIX = "/wp-json/wc/v3"
Response = tuple[int, dict[str, str], Any]


def _fields(rows: list[dict[str, Any]], query: dict[str, str]) -> list[dict[str, Any]]:
    """WordPress's global ``_fields`` parameter: only the named top-level fields."""
    if not query.get("_fields"):
        return rows
    wanted = {f.strip() for f in query["_fields"].split(",") if f.strip()}
    return [{k: v for k, v in row.items() if k in wanted} for row in rows]


class WooApi:
    def __init__(self, data: Customers, consumer_key: str, consumer_secret: str, base_url: Callable[[], str]):
        self.data = data
        self.key, self.secret = consumer_key, consumer_secret
        self.base_url = base_url
        self.nonces: dict[str, float] = {}

    # --- auth ------------------------------------------------------------------------------
    def authenticate(self, method: str, path: str, query: dict[str, str]) -> None:
        if "oauth_consumer_key" not in query:
            raise ItemError(401, "woocommerce_rest_cannot_view", "Sorry, you cannot list resources.")
        if query["oauth_consumer_key"] != self.key:
            raise ItemError(401, "woocommerce_rest_authentication_error", "Consumer key is invalid.")
        if query.get("oauth_signature_method") not in ("HMAC-SHA1", "HMAC-SHA256"):
            raise ItemError(
                401,
                "woocommerce_rest_authentication_error",
                "Invalid signature - signature method is invalid.",
            )
        if query.get("oauth_signature_method") == "HMAC-SHA1":
            raise ItemError(
                401,
                "woocommerce_rest_authentication_error",
                "Invalid signature - the sandbox checks HMAC-SHA256 only.",
            )
        expected = oauth1_signature(method, self.base_url() + path, query, self.secret)
        if query.get("oauth_signature") != expected:
            raise ItemError(
                401,
                "woocommerce_rest_authentication_error",
                "Invalid signature - provided signature does not match.",
            )
        stamp = int(query.get("oauth_timestamp") or 0)
        now = time.time()
        if abs(now - stamp) > 15 * 60:
            raise ItemError(401, "woocommerce_rest_authentication_error", "Invalid timestamp.")
        nonce = query.get("oauth_nonce", "")
        self.nonces = {n: t for n, t in self.nonces.items() if now - t < 15 * 60}
        if nonce in self.nonces:
            raise ItemError(
                401, "woocommerce_rest_authentication_error", "Invalid nonce - nonce has already been used."
            )
        self.nonces[nonce] = now

    # --- dispatch --------------------------------------------------------------------------
    def handle(self, method: str, path: str, query: dict[str, str], body: bytes) -> Response:
        self.authenticate(method, path, query)
        route = path[len(PREFIX) :]
        data = None
        if body:
            try:
                data = json.loads(body)
            except ValueError:
                raise ItemError(400, "rest_invalid_json", "Invalid JSON body passed.") from None
        if route == "/customers" and method == "GET":
            return self.list_customers(query)
        if route == "/customers" and method == "POST":
            created = self.data.create(data)
            return 201, {"Location": f"{self.base_url()}{PREFIX}/customers/{created['id']}"}, created
        if route == "/customers/batch" and method in ("POST", "PUT", "PATCH"):
            return 200, {}, self.batch(data)
        if route.startswith("/customers/"):
            ident = route.rsplit("/", 1)[1]
            if method == "GET":
                user = self.data.users.get(int(ident)) if ident.isdigit() else None
                if user is None:
                    raise ItemError(404, "woocommerce_rest_invalid_id", "Invalid resource ID.")
                return 200, {}, self.data.public(user)
            if method in ("PUT", "PATCH", "POST"):
                return 200, {}, self.data.update(ident, data)
            if method == "DELETE":
                if query.get("force") not in ("true", "1"):
                    raise ItemError(
                        501, "woocommerce_rest_trash_not_supported", "Customers do not support trashing."
                    )
                return 200, {}, self.data.delete(ident)
        if route == "/orders" and method == "GET":
            return self.list_orders(query)
        if route == "/settings/email_customer_new_account/enabled" and method == "GET":
            value = "yes" if self.data.new_account_email else "no"
            return (
                200,
                {},
                {
                    "id": "enabled",
                    "label": "Enable/Disable",
                    "type": "checkbox",
                    "default": "yes",
                    "value": value,
                },
            )
        raise ItemError(404, "rest_no_route", "No route was found matching the URL and request method.")

    def batch(self, data: Any) -> dict[str, list[Any]]:
        if not isinstance(data, dict):
            raise ItemError(400, "rest_invalid_json", "Invalid JSON body passed.")
        total = sum(len(data.get(k) or []) for k in ("create", "update", "delete"))
        if total > BATCH_LIMIT:
            raise ItemError(
                413,
                "woocommerce_rest_request_entity_too_large",
                f"Unable to accept more than {BATCH_LIMIT} items for this request.",
            )
        out: dict[str, list[Any]] = {}

        def each(kind: str, fn: Callable[[Any], dict[str, Any]], ident: Callable[[Any], Any]) -> None:
            if kind not in data:
                return
            out[kind] = []
            for item in data.get(kind) or []:
                try:
                    out[kind].append(fn(item))
                except ItemError as exc:
                    out[kind].append({"id": ident(item), "error": exc.body()})

        each("create", self.data.create, lambda item: 0)
        each(
            "update",
            lambda item: self.data.update((item or {}).get("id"), item),
            lambda item: (item or {}).get("id", 0),
        )
        each("delete", self.data.delete, lambda item: item)
        return out

    @staticmethod
    def _page(query: dict[str, str]) -> tuple[int, int]:
        try:
            per_page, page = int(query.get("per_page", 10)), int(query.get("page", 1))
        except ValueError:
            raise ItemError(400, "rest_invalid_param", "Invalid parameter(s): per_page") from None
        if not 1 <= per_page <= 100:
            raise ItemError(400, "rest_invalid_param", "Invalid parameter(s): per_page")
        if page < 1:
            raise ItemError(400, "rest_invalid_param", "Invalid parameter(s): page")
        return per_page, page

    def _paged(self, rows: list[dict[str, Any]], query: dict[str, str]) -> Response:
        per_page, page = self._page(query)
        total = len(rows)
        headers = {"X-WP-Total": str(total), "X-WP-TotalPages": str(math.ceil(total / per_page))}
        return 200, headers, rows[(page - 1) * per_page : page * per_page]

    def list_customers(self, query: dict[str, str]) -> Response:
        with self.data.lock:
            users = list(self.data.users.values())
            role = query.get("role", "customer")
            if role != "all":
                users = [u for u in users if u["role"] == role]
            if query.get("email"):
                users = [u for u in users if u["email"].lower() == query["email"].strip().lower()]
            if query.get("include"):
                wanted = {int(i) for i in query["include"].split(",") if i.strip().isdigit()}
                users = [u for u in users if u["id"] in wanted]
            orderby = query.get("orderby", "name")
            key = {
                "id": lambda u: u["id"],
                "registered_date": lambda u: (u["date_created_gmt"], u["id"]),
                "include": lambda u: u["id"],
            }.get(orderby, lambda u: (u["username"].lower(), u["id"]))
            users.sort(key=key, reverse=query.get("order", "asc") == "desc")
            return self._paged(_fields([self.data.public(u) for u in users], query), query)

    def list_orders(self, query: dict[str, str]) -> Response:
        """``WC_REST_CRUD_Controller::prepare_objects_query``: ``after``/``before`` on the created
        date, ``modified_after``/``modified_before`` on the modified one, both strict and compared
        in GMT only with ``dates_are_gmt`` (else in the site's local time, which is GMT here);
        ``orderby`` ``date``/``modified`` with the id as tie-breaker, or ``id``; default newest first."""
        with self.data.lock:
            orders = [dict(o) for o in self.data.orders]
        for param, column, keep in (
            ("after", "date_created_gmt", lambda v, b: v > b),
            ("before", "date_created_gmt", lambda v, b: v < b),
            ("modified_after", "date_modified_gmt", lambda v, b: v > b),
            ("modified_before", "date_modified_gmt", lambda v, b: v < b),
        ):
            if query.get(param):
                bound = query[param][:19]
                orders = [o for o in orders if keep(o[column], bound)]
        if query.get("customer"):
            orders = [o for o in orders if str(o["customer_id"]) == query["customer"]]
        status = query.get("status", "any")
        if status != "any":
            wanted = {s.strip() for s in status.split(",")}
            orders = [o for o in orders if o["status"] in wanted]
        columns = {"modified": "date_modified_gmt", "id": "id"}
        column = columns.get(query.get("orderby", "date"), "date_created_gmt")
        orders.sort(key=lambda o: (o[column], o["id"]), reverse=query.get("order", "desc") == "desc")
        return self._paged(_fields(orders, query), query)

    # --- the customer's login (wp-login.php) -----------------------------------------------
    def login(self, body: bytes) -> Response:
        """WordPress's login form: ``log`` (username or e-mail) and ``pwd``. Success: 302 with the
        ``wordpress_logged_in_…`` cookie; failure: 200, the form again with ``login_error``."""
        form = dict(parse_qsl(body.decode("utf-8", "replace")))
        login, password = form.get("log", ""), form.get("pwd", "")
        if login and password and self.data.check_password(login, password):
            token = hashlib.sha256(f"{login}:{now_gmt()}".encode()).hexdigest()
            cookie = f"wordpress_logged_in_sandbox={token}; path=/; HttpOnly"
            return 302, {"Location": form.get("redirect_to") or "/my-account/", "Set-Cookie": cookie}, None
        return (
            200,
            {"Content-Type": "text/html"},
            '<div id="login_error"><strong>Error:</strong> The password you entered is incorrect.</div>',
        )

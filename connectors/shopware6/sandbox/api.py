"""Admin API routes (``/api/...``): token, info, search, CRUD, sync, a few actions.

``AdminApi.handle`` takes a parsed request and returns ``(status, headers, body)``; HTTP glue,
fault injection and logging live in ``server.py``.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from . import errors as e
from .aggregations import aggregate
from .criteria import Searcher
from .errors import ApiError
from .faults import Faults, TokenLimiter
from .orders import transition
from .render import Renderer, json_api_resource, json_api_search
from .schema import RECOVER_URL, WRITABLE, Entity, url_to_entity
from .store import Store, now_iso
from .writer import Writer

_TRUE = ("1", "true", "yes", "on")


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes
    client_ip: str = "127.0.0.1"
    base_url: str = ""
    _json: Any = field(default=None, repr=False)

    def json(self) -> Any:
        if self._json is None:
            if not self.body.strip():
                self._json = {}
            else:
                try:
                    self._json = json.loads(self.body)
                except ValueError:
                    raise e.simple(
                        400, "FRAMEWORK__INVALID_REQUEST_PARAMETER", "The JSON payload is malformed."
                    ) from None
        return self._json

    @property
    def wants_json(self) -> bool:
        return "application/json" in self.headers.get("accept", "")

    def flag(self, name: str) -> bool:
        return self.headers.get(name, "").strip().lower() in _TRUE


Response = tuple[int, dict[str, str], Any]


class Credentials:
    """The integration's access key and the bearer tokens handed out for it."""

    def __init__(self, token_lifetime: float):
        self.client_id = "SWIA" + secrets.token_hex(11).upper()
        self.client_secret = secrets.token_urlsafe(39)
        self.token_lifetime = token_lifetime
        self._tokens: dict[str, float] = {}
        self._lock = threading.Lock()

    def issue(self, user_id: str | None = None) -> str:
        """A bearer token; ``user_id``: an Administration user's login (password grant), None:
        the integration's (client credentials)."""
        token = secrets.token_urlsafe(48)
        with self._lock:
            now = time.monotonic()
            self._tokens = {t: exp for t, exp in self._tokens.items() if exp > now}
            self._tokens[token] = now + self.token_lifetime
            self._users = {t: u for t, u in getattr(self, "_users", {}).items() if t in self._tokens}
            if user_id is not None:
                self._users[token] = user_id
        return token

    def check(self, header: str | None) -> str | None:
        """The user id behind the token (None for the integration); 401 when it is not valid."""
        if not header:
            raise _oauth_denied('Missing "Authorization" header')
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise _oauth_denied("Access token could not be verified")
        with self._lock:
            expires = self._tokens.get(token.strip())
            user_id = getattr(self, "_users", {}).get(token.strip())
        if expires is None or expires <= time.monotonic():
            raise _oauth_denied("Access token could not be verified")
        return user_id

    def revoke_all(self) -> None:
        with self._lock:
            self._tokens.clear()


def _oauth_denied(hint: str) -> ApiError:
    return ApiError(
        401,
        [
            e.error(
                401,
                "9",
                "The resource owner or authorization server denied the request.",
                title="The resource owner or authorization server denied the request.",
            )
            | {"detail": hint}
        ],
        {"WWW-Authenticate": 'Bearer realm="OAuth"'},
    )


_SEARCH = re.compile(r"^/api/(search|search-ids)/([a-z-]+)$")
_ENTITY = re.compile(r"^/api/([a-z-]+)(?:/([0-9A-Za-z]+))?$")
_PROXY = re.compile(r"^/api/_proxy/store-api/([0-9a-f]{32})(/account/.*)$")
_STATE = re.compile(r"^/api/_action/(order|order_transaction|order_delivery)/([0-9a-f]{32})/state/([a-z_]+)$")
_GROUP_REGISTRATION = re.compile(r"^/api/_action/customer-group-registration/(accept|decline)$")
_RESERVE = re.compile(r"^/api/_action/number-range/reserve/customer(?:/([0-9a-f]{32}))?$")


class AdminApi:
    def __init__(
        self,
        store: Store,
        searcher: Searcher,
        writer: Writer,
        credentials: Credentials,
        faults: Faults,
        version_text: str,
        settings: dict[str, Any],
    ):
        self.store = store
        self.searcher = searcher
        self.renderer = Renderer(searcher)
        self.writer = writer
        self.credentials = credentials
        self.faults = faults
        self.limiter = TokenLimiter()
        self.version_text = version_text
        self.settings = settings
        self.store_api: Any = None  # set by the sandbox; the proxy route forwards to it
        self.on_flow_mail: Any = None  # set by the sandbox: records a business event's default mail
        self.imitation: Any = None  # set by the sandbox: admin users and "log in as customer"

    def handle(self, req: Request) -> Response:
        if req.path == "/api/oauth/token":
            if req.method != "POST":
                raise e.simple(405, "FRAMEWORK__METHOD_NOT_ALLOWED", "Method not allowed, use POST.")
            return self.token(req)
        user_id = self.credentials.check(req.headers.get("authorization"))
        if req.path == "/api/_info/version" and req.method == "GET":
            return 200, {}, {"version": self.version_text}
        if req.path == "/api/_info/me" and req.method == "GET" and self.imitation is not None:
            return self.imitation.me(user_id)
        if req.path == "/api/_proxy/generate-imitate-customer-token" and req.method == "POST" \
                and self.imitation is not None:
            return self.imitation.generate(user_id, req)
        if req.path == "/api/_action/sync" and req.method == "POST":
            return self.sync(req)
        if (m := _SEARCH.match(req.path)) and req.method == "POST":
            return self.search(req, self._entity(m.group(2)), ids_only=m.group(1) == "search-ids")
        if (m := _STATE.match(req.path)) and req.method == "POST":
            state = transition(self.store, m.group(1), m.group(2), m.group(3))
            return 200, {}, {"data": state} if not req.wants_json else state
        if (m := _RESERVE.match(req.path)) and req.method == "GET":
            return 200, {}, {"number": self.reserve_customer_number()}
        if req.path == "/api/_admin/check-customer-email-valid" and req.method == "POST":
            return self.check_email(req)
        if (m := _PROXY.match(req.path)) and req.method == "POST":
            return self.proxy_store_api(req, m.group(1), m.group(2))
        if (m := _GROUP_REGISTRATION.match(req.path)) and req.method == "POST":
            return self.group_registration(req, accept=m.group(1) == "accept")
        if req.path == "/api/_action/system-config" and req.method == "GET":
            return 200, {}, self._system_config(req.query.get("domain", ""))
        if m := _ENTITY.match(req.path):
            return self.crud(req, self._entity(m.group(1)), m.group(2))
        raise e.simple(404, "FRAMEWORK__ROUTE_NOT_FOUND", f'No route found for "{req.method} {req.path}"')

    @property
    def next_customer_number(self) -> int:
        """The last customer number handed out (the range state's ``lastValue``); setting it moves
        the state, as tests written before the number range entities do."""
        from .seed import CUSTOMER_RANGE_ID

        with self.store.lock:
            state = next((r for r in self.store.tables["number_range_state"].values()
                          if r.get("numberRangeId") == CUSTOMER_RANGE_ID), None)
            return int(state.get("lastValue") or 0) if state else 0

    @next_customer_number.setter
    def next_customer_number(self, value: int) -> None:
        from .seed import CUSTOMER_RANGE_ID

        with self.store.lock:
            for state in list(self.store.tables["number_range_state"].values()):
                if state.get("numberRangeId") == CUSTOMER_RANGE_ID:
                    self.store.put("number_range_state", {**state, "lastValue": int(value)})

    def reserve_customer_number(self) -> str:
        """The next number of the customer range (``IncrementStorage``: the state's ``lastValue``
        + 1, at least ``start``), rendered through its ``pattern``; the state is kept in the store,
        so a test reads and moves it like an operator in the Administration."""
        from .seed import CUSTOMER_RANGE_ID
        from .store import now_iso

        with self.store.lock:
            rng = self.store.get("number_range", CUSTOMER_RANGE_ID)
            if rng is None:
                raise e.simple(404, "FRAMEWORK__RESOURCE_NOT_FOUND", "no customer number range")
            state = next((r for r in self.store.tables["number_range_state"].values()
                          if r.get("numberRangeId") == CUSTOMER_RANGE_ID), None)
            start = int(rng.get("start") or 1)
            value = start if state is None else max(int(state.get("lastValue") or 0) + 1, start)
            record = dict(state or {"id": CUSTOMER_RANGE_ID[::-1], "numberRangeId": CUSTOMER_RANGE_ID,
                                    "createdAt": now_iso(), "apiAlias": "number_range_state"})
            record.update(lastValue=value, updatedAt=now_iso())
            self.store.put("number_range_state", record)
            return str(rng.get("pattern") or "{n}").replace("{n}", str(value))

    # --- auth ------------------------------------------------------------------------------
    def token(self, req: Request) -> Response:
        if req.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            body: Any = dict(parse_qsl(req.body.decode("utf-8", "replace")))  # RFC 6749 form body
        else:
            body = req.json() if req.body.strip() else {}
        if not isinstance(body, dict):
            body = {}
        body = {**req.query, **body}
        grant = body.get("grant_type")
        key = f"{body.get('client_id') or body.get('username') or ''}-{req.client_ip}"
        wait = self.faults.token_wait() or self.limiter.attempt(key)
        if wait:
            raise ApiError(
                429,
                [
                    e.error(
                        429,
                        "FRAMEWORK__AUTH_THROTTLED",
                        f"Auth throttled for {wait} seconds.",
                        title="Too Many Requests",
                        parameters={"seconds": wait},
                    )
                ],
            )
        if grant == "password" and self.imitation is not None:
            return self._user_token(body, key)
        if grant != "client_credentials":
            raise ApiError(
                400,
                [
                    e.error(
                        400,
                        "2",
                        "The authorization grant type is not supported by the authorization server.",
                        title="The authorization grant type is not supported by the authorization server.",
                    )
                    | {"detail": "Check that all required parameters have been provided"}
                ],
            )
        if body.get("client_id") != self.credentials.client_id or not secrets.compare_digest(
            str(body.get("client_secret", "")), self.credentials.client_secret
        ):
            raise ApiError(
                401, [e.error(401, "4", "Client authentication failed", title="Client authentication failed")]
            )
        self.limiter.success(key)
        lifetime = (
            int(self.credentials.token_lifetime)
            if self.credentials.token_lifetime >= 1
            else self.credentials.token_lifetime
        )
        return (
            200,
            {},
            {"token_type": "Bearer", "expires_in": lifetime, "access_token": self.credentials.issue()},
        )

    def _user_token(self, body: dict[str, Any], key: str) -> Response:
        """The Administration's login: ``client_id`` must be ``administration`` (ClientRepository),
        wrong user credentials are league's ``invalid_grant`` (code 6, 400)."""
        if body.get("client_id") != "administration":
            raise ApiError(
                401, [e.error(401, "4", "Client authentication failed", title="Client authentication failed")]
            )
        user = self.imitation.login(str(body.get("username") or ""), str(body.get("password") or ""))
        if user is None:
            raise ApiError(400, [e.error(400, "6", "The user credentials were incorrect.",
                                         title="The user credentials were incorrect.")])
        self.limiter.success(key)
        return 200, {}, {"token_type": "Bearer", "expires_in": int(self.credentials.token_lifetime),
                         "access_token": self.credentials.issue(user.id),
                         "refresh_token": secrets.token_urlsafe(32)}

    # --- search ----------------------------------------------------------------------------
    def _entity(self, url_name: str) -> Entity:
        entity = self.store.entities.get(url_to_entity(url_name))
        if entity is None or "_" in url_name:
            raise e.simple(
                404, "FRAMEWORK__DEFINITION_NOT_FOUND", f'Definition for entity "{url_name}" does not exist.'
            )
        return entity

    def search(self, req: Request, entity: Entity, *, ids_only: bool) -> Response:
        # Symfony decodes a POST body into request parameters only when it is declared JSON; the
        # criteria builder reads those, so a body sent without the header is silently ignored
        declared_json = "json" in req.headers.get("content-type", "")
        criteria = req.json() if declared_json or req.method == "GET" else {}
        if not isinstance(criteria, dict):
            raise e.simple(400, "FRAMEWORK__INVALID_CRITERIA", "The criteria must be a JSON object.")
        for key in ("total-count-mode", "limit", "page", "sort", "ids"):
            if key not in criteria and key in req.query:  # GET lists take criteria as query parameters
                criteria[key] = req.query[key]
        with self.store.lock:
            total, rows = self.searcher.search(entity, criteria)
            if ids_only:
                return 200, {}, {"total": total, "data": [r["id"] for r in rows]}
            data = [
                self.renderer.record(entity, r, criteria.get("associations"), criteria.get("includes"))
                for r in rows
            ]
            aggregations = (
                aggregate(
                    self.searcher, entity, criteria["aggregations"], self.searcher.filtered(entity, criteria)
                )
                if criteria.get("aggregations")
                else {}
            )
        if not req.wants_json:
            return (
                200,
                {"Content-Type": "application/vnd.api+json"},
                json_api_search(entity, total, data, req.base_url),
            )
        return 200, {}, {"total": total, "data": data, "aggregations": aggregations}

    # --- CRUD ------------------------------------------------------------------------------
    def crud(self, req: Request, entity: Entity, rid: str | None) -> Response:
        skip_flow = req.flag("sw-skip-trigger-flow")
        language = req.headers.get("sw-language-id")
        writable = entity.name in WRITABLE
        if req.method == "GET" and rid is None:
            return self.search(req, entity, ids_only=False)
        if req.method == "GET":
            with self.store.lock:
                record = self.store.get(entity.name, rid)
                if record is None:
                    raise self._not_found(entity, rid)
                data = self.renderer.record(entity, record, None, None)
            if not req.wants_json:
                return (
                    200,
                    {"Content-Type": "application/vnd.api+json"},
                    {"data": json_api_resource(entity, data, req.base_url)},
                )
            return 200, {}, {"data": data}
        if not writable:
            raise e.simple(
                403,
                "FRAMEWORK__MISSING_PRIVILEGE_ERROR",
                json.dumps({"message": "Missing privilege", "missingPrivileges": [f"{entity.name}:write"]}),
            )
        if req.method == "POST" and rid is None:
            if isinstance(req.json(), list):
                raise e.simple(
                    400,
                    "FRAMEWORK__INVALID_REQUEST_PARAMETER",
                    "Only single write operations are supported. Please send the entities one by "
                    "one or use the /sync api endpoint.",
                )
            written = self.writer.write_one(
                entity.name, req.json(), rid=None, insert=True, skip_flow=skip_flow, language_id=language
            )
            return self._written(req, entity, written, 204)
        if req.method == "PATCH" and rid is not None:
            if self.store.get(entity.name, rid) is None:
                raise self._not_found(entity, rid)
            written = self.writer.write_one(
                entity.name, req.json(), rid=rid, insert=False, skip_flow=skip_flow, language_id=language
            )
            return self._written(req, entity, written, 204)
        if req.method == "DELETE" and rid is not None:
            if not self.writer.delete_one(entity.name, rid):
                raise self._not_found(entity, rid)
            return 204, {}, None
        raise e.simple(405, "FRAMEWORK__METHOD_NOT_ALLOWED", f"Method {req.method} not allowed here.")

    def _written(self, req: Request, entity: Entity, rid: str, status: int) -> Response:
        location = f"{req.base_url}/api/{entity.name.replace('_', '-')}/{rid}"
        if "_response" not in req.query:
            return status, {"Location": location}, None
        with self.store.lock:
            data = self.renderer.record(entity, self.store.get(entity.name, rid), None, None)
        return 200, {"Location": location}, {"data": data}

    @staticmethod
    def _not_found(entity: Entity, rid: str) -> ApiError:
        return e.simple(
            404,
            "FRAMEWORK__RESOURCE_NOT_FOUND",
            f"The {entity.name} resource with the following primary key was not found: id({rid})",
            parameters={"entity": entity.name, "primaryKey": f"id({rid})"},
        )

    # --- sync ------------------------------------------------------------------------------
    def sync(self, req: Request) -> Response:
        body = req.json()
        if isinstance(body, list):
            operations = [(str(i), op) for i, op in enumerate(body)]
        elif isinstance(body, dict):
            operations = [(str(k), op) for k, op in body.items()]
        else:
            raise e.simple(
                400, "FRAMEWORK__INVALID_SYNC_OPERATION", "The sync payload must be a list or object."
            )
        result = self.writer.sync(
            operations,
            skip_flow=req.flag("sw-skip-trigger-flow"),
            language_id=req.headers.get("sw-language-id"),
        )
        return 200, {}, result

    # --- actions ---------------------------------------------------------------------------
    def proxy_store_api(self, req: Request, sales_channel_id: str, route: str) -> Response:
        """SalesChannelProxyController: Store API routes with an admin token instead of an access key."""
        with self.store.lock:
            channel = self.store.get("sales_channel", sales_channel_id)
        if channel is None or self.store_api is None:
            raise e.simple(
                400, "FRAMEWORK__INVALID_SALES_CHANNEL", f"Sales channel {sales_channel_id} not found."
            )
        headers = {k: v for k, v in req.headers.items() if k != "authorization"}
        headers["sw-access-key"] = channel["accessKey"]
        return self.store_api.handle(
            Request(
                req.method, f"/store-api{route}", req.query, headers, req.body, req.client_ip, req.base_url
            )
        )

    def group_registration(self, req: Request, *, accept: bool) -> Response:
        """CustomerGroupRegistrationActionController (Shopware 6.4.x+ with the NEXT-17874 body form):
        ``{"customerIds": [...], "silentError": bool}``. Accept moves ``requestedGroupId`` to
        ``groupId``; decline clears it; both answer 204 and dispatch
        ``customer.group.registration.accepted|declined`` (default flow: a mail to the customer),
        unless the request carries ``sw-skip-trigger-flow: 1``. Errors as Shopware's
        ``CustomerException``: no ids 400 CHECKOUT__CUSTOMER_IDS_PARAMETER_IS_MISSING, none found
        404 CHECKOUT__CUSTOMERS_NOT_FOUND, a customer without a request 400
        CHECKOUT__CUSTOMER_GROUP_REQUEST_NOT_FOUND (skipped with ``silentError``)."""
        body = req.json() if isinstance(req.json(), dict) else {}
        ids = body.get("customerIds")
        if not isinstance(ids, list) or not ids:
            raise e.simple(400, "CHECKOUT__CUSTOMER_IDS_PARAMETER_IS_MISSING",
                           'Parameter "customerIds" is missing.')
        silent = bool(body.get("silentError"))
        ids = list(dict.fromkeys(str(i) for i in ids))
        with self.store.lock:
            found = [c for i in ids if (c := self.store.get("customer", i)) is not None]
            if not found:
                raise e.simple(404, "CHECKOUT__CUSTOMERS_NOT_FOUND",
                               f"These customers \"{', '.join(ids)}\" are not found",
                               parameters={"ids": ", ".join(ids)})
            chosen = []
            for c in found:
                if not c.get("requestedGroupId"):
                    if not silent:
                        raise e.simple(400, "CHECKOUT__CUSTOMER_GROUP_REQUEST_NOT_FOUND",
                                       f'Group request for customer "{c["id"]}" is not found',
                                       parameters={"id": c["id"]})
                    continue
                chosen.append(c)
            for c in chosen:
                updated = dict(c)
                if accept:
                    updated["groupId"] = c["requestedGroupId"]
                updated["requestedGroupId"] = None
                updated["updatedAt"] = now_iso()
                self.store.put("customer", updated)
        if not req.flag("sw-skip-trigger-flow") and self.on_flow_mail is not None:
            event = "accepted" if accept else "declined"
            for c in chosen:
                self.on_flow_mail(f"customer.group.registration.{event}",
                                  f"customer_group_registration_{event}", c)
        return 204, {}, None

    def check_email(self, req: Request) -> Response:
        body = req.json() if isinstance(req.json(), dict) else {}
        email = str(body.get("email") or "")
        own_id = body.get("id")
        bound = body.get("boundSalesChannelId")
        with self.store.lock:
            for cid in self.store.ids_by("customer", "email", email):
                other = self.store.get("customer", cid)
                if cid == own_id or other.get("guest"):
                    continue
                if bound is None or other.get("boundSalesChannelId") in (None, bound):
                    raise ApiError(400, [e.email_not_unique("/email", email)])
        return 200, {}, {"isValid": True}

    def _system_config(self, domain: str) -> dict[str, Any]:
        if domain != "core.loginRegistration":
            return {}
        return {
            "core.loginRegistration.passwordMinLength": self.settings["password_min"],
            "core.loginRegistration.doubleOptInRegistration": False,
            "core.loginRegistration.pwdRecoverUrl": RECOVER_URL,
        }

"""``WooSandbox``: a WooCommerce REST API v3 look-alike on a loopback port, for tests and
``syncd demo --platform woocommerce``. Fault switches are the Shopware sandbox's (``Faults``),
applied to ``/wp-json/`` only; the customer login (``/wp-login.php``) stays clean."""

from __future__ import annotations

import json
import secrets
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, urlsplit

from syncd.connectors.shopware6.sandbox.faults import Faults, Injected

from .api import PREFIX, WooApi
from .customers import Customers, ItemError


class LoggedRequest(NamedTuple):
    """The Shopware sandbox's log entry, plus the query (OAuth parameters left out): a test can
    tell a look-up by e-mail from a read of the whole customer list."""

    method: str
    path: str
    headers: dict[str, str]  # lower-case names, without Authorization
    status: int
    query: dict[str, str] = {}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64
    sandbox: WooSandbox


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def do_GET(self) -> None:
        sb = self.server.sandbox
        split = urlsplit(self.path)
        headers = {k.lower(): v for k, v in self.headers.items()}
        length = int(headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        query = dict(parse_qsl(split.query))
        status, out_headers, payload = sb._respond(self.command, split.path, query, body)
        sb._log(
            LoggedRequest(
                self.command, split.path, {k: v for k, v in headers.items() if k != "authorization"}, status,
                {k: v for k, v in query.items() if not k.startswith("oauth_")},
            )
        )
        if status < 0:
            self.close_connection = True
            return
        if isinstance(payload, str):
            data = payload.encode()
        else:
            data = b"" if payload is None else json.dumps(payload, ensure_ascii=False).encode()
        try:
            self.send_response(status)
            if payload is not None:
                self.send_header(
                    "Content-Type", out_headers.pop("Content-Type", "application/json; charset=UTF-8")
                )
            for name, value in out_headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if data:
                self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET


def _injected(injected: Injected) -> tuple[int, dict[str, str], Any]:
    headers = {"Retry-After": str(injected.retry_after)} if injected.retry_after is not None else {}
    code = "woocommerce_rest_too_many_requests" if injected.status == 429 else "internal_server_error"
    return (
        injected.status,
        headers,
        {"code": code, "message": injected.detail, "data": {"status": injected.status}},
    )


class WooSandbox:
    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        random_seed: int = 0,
        generate_username: bool = True,
        generate_password: bool = True,
        new_account_email: bool = False,
    ) -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"the sandbox binds loopback addresses only, not {host!r}")
        self._host, self._port = host, port
        self.consumer_key = "ck_" + secrets.token_hex(20)
        self.consumer_secret = "cs_" + secrets.token_hex(20)
        self.faults = Faults(random_seed)
        self.request_log: list[LoggedRequest] = []
        self._log_lock = threading.Lock()
        self.data = Customers(
            generate_username=generate_username,
            generate_password=generate_password,
            new_account_email=new_account_email,
        )
        self.api = WooApi(self.data, self.consumer_key, self.consumer_secret, lambda: self.url)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> WooSandbox:
        if self._server is not None:
            return self
        self._server = _Server((self._host, self._port), _Handler)
        self._server.sandbox = self
        self._port = self._server.server_address[1]
        self.url = f"http://{self._host}:{self._port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"woocommerce-sandbox:{self._port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> WooSandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _log(self, entry: LoggedRequest) -> None:
        with self._log_lock:
            self.request_log.append(entry)

    # --- serving ---------------------------------------------------------------------------
    def _respond(
        self, method: str, path: str, query: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], Any]:
        if path == "/wp-login.php" and method == "POST":
            return self.api.login(body)
        if not path.startswith(PREFIX):
            return (
                404,
                {},
                {"code": "rest_no_route", "message": "No route was found.", "data": {"status": 404}},
            )
        if self.faults.take_drop():
            return -1, {}, None
        delay = self.faults.latency + self.faults.hang
        if delay:
            time.sleep(delay)
        injected = self.faults.decide()
        if injected is not None:
            return _injected(injected)
        try:
            status, headers, payload = self.api.handle(method, path, query, body)
        except ItemError as exc:
            status, headers, payload = exc.status, {}, exc.body()
        except Exception as exc:  # a sandbox bug must look like a shop 500, and be visible
            traceback.print_exc()
            status, headers, payload = (
                500,
                {},
                {"code": "internal_server_error", "message": repr(exc), "data": {"status": 500}},
            )
        if self.faults.hang_after_write:
            time.sleep(self.faults.hang_after_write)
            return -1, {}, None
        late = self.faults.after_write()
        if late is not None:
            return _injected(late)
        return status, headers, payload

    # --- helpers for tests and the demo (no HTTP) -------------------------------------------
    @property
    def new_account_mails(self) -> list[dict[str, Any]]:
        return self.data.new_account_mails

    def customers(self) -> list[dict[str, Any]]:
        with self.data.lock:
            return [self.data.public(u) for u in sorted(self.data.users.values(), key=lambda u: u["id"])]

    def customer(self, customer_id: int | str) -> dict[str, Any] | None:
        with self.data.lock:
            user = self.data.users.get(int(customer_id))
            return self.data.public(user) if user else None

    def create_customer_as_shop_user(self, email: str, password: str, **fields: Any) -> dict[str, Any]:
        """Registration on the storefront (My account): no ERP number in the meta data."""
        return self.data.create({"email": email, "password": password, **fields})

    def delete_customer(self, customer_id: int | str) -> None:
        self.data.delete(customer_id)

    def add_order(self, customer_id: int | str, **order: Any) -> dict[str, Any]:
        return self.data.add_order(int(customer_id), **order)

    def set_order_status(self, order_id: int | str, status: str, **when: Any) -> dict[str, Any]:
        return self.data.set_order_status(int(order_id), status, **when)

    def lose_customers(self, ids: list[int] | None = None) -> None:
        """The shop loses those (or all) accounts: a restored backup."""
        with self.data.lock:
            for cid in list(self.data.users if ids is None else ids):
                self.data.forget(int(cid))

    def check_password(self, login: str, password: str) -> bool:
        return self.data.check_password(login, password)

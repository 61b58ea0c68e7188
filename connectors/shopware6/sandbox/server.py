"""HTTP glue: a threading stdlib server speaking HTTP/1.1 keep-alive, fault injection, request log."""

from __future__ import annotations

import json
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import parse_qsl, urlsplit

from . import errors as e
from .api import Request
from .errors import ApiError
from .faults import Injected

if TYPE_CHECKING:
    from .sandbox import Sandbox


class LoggedRequest(NamedTuple):
    method: str
    path: str
    headers: dict[str, str]  # lower-case names, without Authorization
    status: int


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64
    sandbox: Sandbox


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # headers and body go out as separate writes; without TCP_NODELAY every keep-alive response
    # waits ~40 ms for the client's delayed ACK
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # the sandbox keeps its own request log

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PATCH = do_DELETE = do_PUT = do_GET

    def _dispatch(self) -> None:
        sb = self.server.sandbox
        split = urlsplit(self.path)
        headers = {k.lower(): v for k, v in self.headers.items()}
        length = int(headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        req = Request(
            self.command,
            split.path,
            dict(parse_qsl(split.query)),
            headers,
            body,
            self.client_address[0],
            sb.url,
        )
        status, out_headers, payload = self._respond(sb, req)
        logged = {k: v for k, v in headers.items() if k != "authorization"}
        sb._log(LoggedRequest(req.method, req.path, logged, status))
        if status < 0:  # dropped, or hang_after_write: no answer at all
            self.close_connection = True
            return
        self._send(status, out_headers, payload)

    def _respond(self, sb: Sandbox, req: Request) -> tuple[int, dict[str, str], Any]:
        is_admin = req.path.startswith("/api/")
        if is_admin and sb.faults.take_drop():
            return -1, {}, None  # closed unanswered, nothing processed
        try:
            if is_admin:
                injected = self._delay_and_inject(sb)
                if injected is not None:
                    return injected
            handler = (
                sb.admin_api if is_admin else sb.store_api if req.path.startswith("/store-api/")
                else sb.imitation if req.path.startswith("/account") else None
            )
            if handler is None:
                raise e.simple(
                    404, "FRAMEWORK__ROUTE_NOT_FOUND", f'No route found for "{req.method} {req.path}"'
                )
            status, out_headers, payload = handler.handle(req)
        except ApiError as exc:
            status, out_headers, payload = exc.status, exc.headers, exc.body()
        except Exception as exc:  # a sandbox bug must look like a shop 500, and be visible
            traceback.print_exc()
            status, out_headers, payload = (
                500,
                {},
                {"errors": [e.error(500, "0", f"sandbox error: {exc!r}", title="Internal Server Error")]},
            )
        if is_admin and sb.faults.hang_after_write:
            time.sleep(sb.faults.hang_after_write)
            return -1, {}, None
        late = sb.faults.after_write() if is_admin else None
        if late is not None:
            return _injected_response(late)
        return status, out_headers, payload

    @staticmethod
    def _delay_and_inject(sb: Sandbox) -> tuple[int, dict[str, str], Any] | None:
        delay = sb.faults.latency + sb.faults.hang
        if delay:
            time.sleep(delay)
        injected = sb.faults.decide()
        return None if injected is None else _injected_response(injected)

    def _send(self, status: int, headers: dict[str, str], payload: Any) -> None:
        data = (
            b""
            if payload is None
            else payload if isinstance(payload, bytes)  # a storefront page (HTML), sent as it is
            else json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        )
        try:
            self.send_response(status)
            if payload is not None:
                self.send_header("Content-Type", headers.pop("Content-Type", "application/json"))
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if data:
                self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client timed out and left


def _injected_response(injected: Injected) -> tuple[int, dict[str, str], Any]:
    headers = {"Retry-After": str(injected.retry_after)} if injected.retry_after is not None else {}
    body = {
        "errors": [e.error(injected.status, injected.code, injected.detail, title=e.title(injected.status))]
    }
    return injected.status, headers, body


def serve(sandbox: Sandbox, host: str, port: int) -> tuple[_Server, threading.Thread]:
    server = _Server((host, port), _Handler)
    server.sandbox = sandbox
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.05},
        name=f"shopware-sandbox:{server.server_address[1]}",
        daemon=True,
    )
    thread.start()
    return server, thread

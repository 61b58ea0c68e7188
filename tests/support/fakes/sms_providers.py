"""Loopback fakes of the two SMS providers' HTTP APIs, answering as their documentation says.

seven.io (https://docs.seven.io/en/rest-api/endpoints/sms): ``POST /api/sms`` with the API key in
``X-Api-Key``; parameters ``to``, ``text``, ``from`` as JSON or form; the answer is HTTP 200 with a
*return code* (``success``: "100" sent, 202 bad recipient, 402 reload lock - the same text to the
same number within 180 s is not sent again -, 403 daily limit per number, 500 no credit, 900 bad
key, 903 IP not allowed ...) and ``messages`` (``id``, ``success``, ``error``, ``error_text``).
Rate limit: HTTP 429 with ``Retry-After`` (assumed shape: the documentation names the limit,
not the header).

LOX24 (https://doc.lox24.eu/api/operations/api_sms_post_collection/): ``POST /sms`` with
``X-LOX24-AUTH-TOKEN: <client id>:<api key>`` and JSON ``sender_id``, ``phone`` (E.164),
``text``, ``service_code``; 201 with the new resource (``uuid``) on success; 400 with an API
Platform ``ConstraintViolationList`` (``violations``: ``propertyPath``, ``message``); 401 bad
token; 402 not enough credit; 403 account blocked; more than three failed logins from one IP
within a minute block that IP with 429 for ten minutes.

Both record every accepted SMS in ``sent`` (to, text, sender) and every request in ``requests``.
Fault switches: ``throttle_next(n, retry_after)``, ``fail_next(n, status)``, ``credit = 0``,
``drop_next(n)`` (read the request, then close the connection without an answer: the provider
may have sent it - it does, here), ``allowed_ips`` (seven).
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

E164 = re.compile(r"^\+[1-9]\d{1,14}$")


@dataclass
class SentSms:
    to: str
    text: str
    sender: str
    id: str
    at: float = field(default_factory=time.monotonic)


class _Base:
    path = "/"

    def __init__(self) -> None:
        self.sent: list[SentSms] = []
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.credit = 1000
        self._throttle: list[float] = []
        self._fail: list[int] = []
        self._drop = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    # -- control
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{self.path}"

    def throttle_next(self, n: int = 1, retry_after: float = 0.0) -> None:
        with self.lock:
            self._throttle += [retry_after] * n

    def fail_next(self, n: int = 1, status: int = 503) -> None:
        with self.lock:
            self._fail += [status] * n

    def drop_next(self, n: int = 1) -> None:
        with self.lock:
            self._drop += n

    def __enter__(self) -> _Base:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- HTTP
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                with fake.lock:
                    fake.requests.append({"path": self.path, "headers": headers, "body": raw})
                    throttled = fake._throttle.pop(0) if fake._throttle else None
                    failed = fake._fail.pop(0) if fake._fail else None
                    drop = fake._drop > 0
                    fake._drop -= 1 if drop else 0
                if throttled is not None:
                    return self.answer(429, {"message": "Too Many Requests"}, {"Retry-After": str(throttled)})
                if failed is not None:
                    return self.answer(failed, {"message": "Service Unavailable"})
                status, body, extra = fake.handle(self.path, headers, raw, self.client_address[0])
                if drop:  # acted on it, then the answer is lost
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return None
                return self.answer(status, body, extra)

            def answer(self, status: int, body: Any, extra: dict[str, str] | None = None) -> None:
                data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json" if not isinstance(body, str)
                                 else "text/plain")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        return Handler

    def handle(self, path: str, headers: dict[str, str], raw: bytes, ip: str
               ) -> tuple[int, Any, dict[str, str]]:
        raise NotImplementedError


class FakeSeven(_Base):
    path = "/api/sms"

    def __init__(self, api_key: str = "seven-test-key-123") -> None:
        super().__init__()
        self.api_key = api_key
        self.allowed_ips: set[str] | None = None
        self.daily_limit: dict[str, int] = {}  # number -> remaining today
        self.reload_lock = 180.0

    def handle(self, path: str, headers: dict[str, str], raw: bytes, ip: str
               ) -> tuple[int, Any, dict[str, str]]:
        if path.split("?")[0] != self.path:
            return 404, {"message": "Not Found"}, {}
        key = headers.get("x-api-key") or headers.get("authorization", "").removeprefix("basic ").strip()
        if key != self.api_key:
            return 200, {"success": "900"}, {}
        if self.allowed_ips is not None and ip not in self.allowed_ips:
            return 200, {"success": "903"}, {}
        if "json" in headers.get("content-type", ""):
            params = json.loads(raw or b"{}")
        else:
            params = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
        to, text = str(params.get("to") or ""), str(params.get("text") or "")
        sender = params.get("from") or ""
        if not to:
            return 200, {"success": "301"}, {}
        if not text:
            return 200, {"success": "305"}, {}
        if len(text) > 1520:
            return 200, {"success": "401"}, {}
        if sender and not re.fullmatch(r"[A-Za-z0-9 ]{1,11}|\+?\d{1,16}", sender):
            return 200, {"success": "201"}, {}
        number = "+" + to.lstrip("+").removeprefix("00") if to.lstrip("+").isdigit() else to
        if not E164.match(number):
            return 200, {"success": "202"}, {}
        with self.lock:
            now = time.monotonic()
            if any(s.to == number and s.text == text and now - s.at < self.reload_lock for s in self.sent):
                return 200, {"success": "402"}, {}
            if self.daily_limit.get(number, 1) <= 0:
                return 200, {"success": "403"}, {}
            if self.credit <= 0:
                return 200, {"success": "500"}, {}
            self.credit -= 1
            sms = SentSms(number, text, sender, str(77_000_000 + len(self.sent)))
            self.sent.append(sms)
            if number in self.daily_limit:
                self.daily_limit[number] -= 1
        return 200, {
            "success": "100", "total_price": 0.075, "balance": self.credit, "debug": "false",
            "sms_type": "direct",
            "messages": [{"id": sms.id, "sender": sender, "recipient": number.lstrip("+"), "text": text,
                          "encoding": "gsm", "parts": 1, "price": 0.075, "success": True,
                          "error": None, "error_text": None}],
        }, {}


class FakeLox24(_Base):
    path = "/sms"

    def __init__(self, client_id: str = "1234567", api_key: str = "lox24-test-key-abc") -> None:
        super().__init__()
        self.token = f"{client_id}:{api_key}"
        self.blocked = False
        self._auth_failures: list[float] = []
        self.block_until = 0.0

    def handle(self, path: str, headers: dict[str, str], raw: bytes, ip: str
               ) -> tuple[int, Any, dict[str, str]]:
        now = time.monotonic()
        with self.lock:
            if now < self.block_until:
                return 429, {"code": 429, "message": "Too Many Requests"}, {}
            if headers.get("x-lox24-auth-token") != self.token:
                self._auth_failures = [t for t in self._auth_failures if now - t < 60] + [now]
                if len(self._auth_failures) > 3:
                    self.block_until = now + 600
                return 401, {"code": 401, "message": "Invalid credentials."}, {}
        if path != self.path:
            return 404, {"@type": "hydra:Error", "hydra:title": "An error occurred",
                         "hydra:description": "Not Found"}, {}
        if self.blocked:
            return 403, {"@type": "hydra:Error", "hydra:title": "An error occurred",
                         "hydra:description": "Access Denied."}, {}
        try:
            data = json.loads(raw or b"{}")
        except ValueError:
            return 400, {"@type": "hydra:Error", "hydra:title": "An error occurred",
                         "hydra:description": "Syntax error"}, {}
        violations = []
        for name in ("sender_id", "phone", "text"):
            if not data.get(name):
                violations.append({"propertyPath": name, "message": "This value should not be blank."})
        phone = str(data.get("phone") or "")
        if phone and not E164.match(phone):
            violations.append({"propertyPath": "phone", "message": "This value is not a valid phone number."})
        if len(str(data.get("text") or "")) > 1530:
            violations.append({"propertyPath": "text", "message": "This value is too long."})
        if violations:
            return 400, {
                "@context": "/contexts/ConstraintViolationList", "@type": "ConstraintViolationList",
                "hydra:title": "An error occurred",
                "hydra:description": "\n".join(f"{v['propertyPath']}: {v['message']}" for v in violations),
                "violations": violations,
            }, {}
        with self.lock:
            if self.credit <= 0:
                return 402, {"@type": "hydra:Error", "hydra:title": "An error occurred",
                             "hydra:description": "Not enough money on the balance"}, {}
            self.credit -= 1
            sms = SentSms(phone, str(data["text"]), str(data["sender_id"]), uuid.uuid4().hex)
            self.sent.append(sms)
        return 201, {"@context": "/contexts/Sms", "@id": f"/sms/{sms.id}", "@type": "Sms", "uuid": sms.id,
                     "phone": phone, "text": sms.text, "sender_id": sms.sender, "status_code": 0,
                     "service_code": data.get("service_code", "direct"), "is_unicode": data.get("is_unicode"),
                     "price": 0.079}, {}

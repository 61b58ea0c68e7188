"""The one-time link of `syncd accounts login-as`.

Shopware's storefront takes the login-as token only as a POSTed form (the Administration submits
one), so a plain link cannot carry it, and the token itself stays valid for an hour however often
it is used. syncd therefore prints a link to itself instead: a loopback address with a random
path, answered exactly once with a page that posts the form to the storefront from the staff
member's browser, and gone after that (or when it expires unused). The token is only ever in this
process's memory and in that one page; the printed link holds no token.

Loopback only: the browser runs on the machine that runs the command (over SSH: forward the
port, ``ssh -L PORT:127.0.0.1:PORT``).
"""

from __future__ import annotations

import html
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from syncd.core import redaction
from syncd.core.domain import StorefrontLogin

PATH = "/login-as/"


class OneTimeLink:
    def __init__(self, form: StorefrontLogin, *, port: int = 0) -> None:
        self.form = form
        self._nonce = secrets.token_urlsafe(24)
        redaction.register(self._nonce)
        for value in form.fields.values():
            redaction.register(value)
        self.used = threading.Event()
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", port), _Handler)
        self._server.link = self
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}{PATH}{self._nonce}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="syncd-login-as", daemon=True)

    def __enter__(self) -> OneTimeLink:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def wait(self, timeout: float) -> bool:
        """True when the link was used within ``timeout`` seconds."""
        return self.used.wait(timeout)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def take(self, path: str) -> bool | None:
        """True: this request is the one use; False: the link, used before; None: not the link."""
        if not secrets.compare_digest(path, PATH + self._nonce):
            return None
        with self._lock:
            if self.used.is_set():
                return False
            self.used.set()
            return True

    def page(self, script_nonce: str) -> bytes:
        inputs = "".join(f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
                         for k, v in self.form.fields.items())
        return (
            '<!doctype html><html lang="de"><head><meta charset="utf-8">'
            "<title>Anmeldung als Kunde / Log in as customer</title></head><body>"
            f'<form id="f" method="post" action="{html.escape(self.form.action)}">{inputs}'
            "<p>Anmeldung im Shop als Kunde ... / Logging in to the shop as the customer ...</p>"
            '<noscript><button type="submit">Weiter / Continue</button></noscript></form>'
            f'<script nonce="{script_nonce}">document.getElementById("f").submit();</script>'
            "</body></html>"
        ).encode()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    link: OneTimeLink


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the path is the link: never logged
        pass

    def do_GET(self) -> None:
        taken = self.server.link.take(urlsplit(self.path).path)
        if taken is None:
            self._answer(404, b"not found / nicht gefunden\n", "text/plain; charset=utf-8")
        elif not taken:
            self._answer(410, b"this link was used already / dieser Link wurde schon benutzt\n",
                         "text/plain; charset=utf-8")
        else:
            script_nonce = secrets.token_urlsafe(16)
            origin = "{0.scheme}://{0.netloc}".format(urlsplit(self.server.link.form.action))
            self._answer(200, self.server.link.page(script_nonce), "text/html; charset=utf-8", {
                "Content-Security-Policy": f"default-src 'none'; script-src 'nonce-{script_nonce}'; "
                                           f"form-action {origin}",
                "Referrer-Policy": "no-referrer",
            })

    def _answer(self, status: int, body: bytes, kind: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Cache-Control", "no-store")  # the page holds the shop's token
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

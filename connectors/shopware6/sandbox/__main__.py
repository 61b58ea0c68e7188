"""``python -m syncd.connectors.shopware6.sandbox --port N --version V``: a sandbox for manual use."""

from __future__ import annotations

import argparse
import signal
import threading

from .sandbox import Sandbox


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m syncd.connectors.shopware6.sandbox",
        description="Shopware 6 Admin/Store API sandbox on a loopback port",
    )
    parser.add_argument("--port", type=int, default=0, help="port to bind (0 = a free one)")
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    parser.add_argument("--version", default="6.6.10.0", help="Shopware version to play, e.g. 6.5.8.0")
    parser.add_argument("--token-lifetime", type=float, default=600, help="access token lifetime (s)")
    args = parser.parse_args(argv)
    try:
        sandbox = Sandbox(args.version, token_lifetime=args.token_lifetime, host=args.host, port=args.port)
    except ValueError as exc:
        parser.error(str(exc))
    sandbox.start()
    print(f"Shopware {sandbox.version} sandbox on {sandbox.url}", flush=True)
    print(f"  client_id     = {sandbox.client_id}", flush=True)
    print(f"  client_secret = {sandbox.client_secret}", flush=True)
    print(f"  sw-access-key = {sandbox.access_key}", flush=True)
    print(f"  sales channel = Storefront ({sandbox.sales_channel_id})", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    sandbox.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``python -m syncd.connectors.woocommerce.sandbox --port N``: a WooCommerce sandbox for manual use
(and for the push benchmark, which runs the shop in its own process)."""

from __future__ import annotations

import argparse
import signal
import threading

from .sandbox import WooSandbox


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m syncd.connectors.woocommerce.sandbox",
        description="WooCommerce REST API v3 sandbox on a loopback port",
    )
    parser.add_argument("--port", type=int, default=0, help="port to bind (0 = a free one)")
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    parser.add_argument("--new-account-email", action="store_true",
                        help="the shop's own 'New account' mail on")
    args = parser.parse_args(argv)
    try:
        sandbox = WooSandbox(host=args.host, port=args.port, new_account_email=args.new_account_email)
    except ValueError as exc:
        parser.error(str(exc))
    sandbox.start()
    print(f"WooCommerce sandbox on {sandbox.url}", flush=True)
    print(f"  consumer_key    = {sandbox.consumer_key}", flush=True)
    print(f"  consumer_secret = {sandbox.consumer_secret}", flush=True)
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

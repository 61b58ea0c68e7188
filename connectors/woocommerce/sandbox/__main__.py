"""``python -m syncd.connectors.woocommerce.sandbox --port N``: a WooCommerce sandbox for manual use
(and for the push benchmark, which runs the shop in its own process)."""

from __future__ import annotations

import argparse

from syncd.connectors.sandbox_main import serve

from .sandbox import WooSandbox


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--new-account-email", action="store_true",
                        help="the shop's own 'New account' mail on")


def _banner(sandbox: WooSandbox) -> list[str]:
    return [
        f"WooCommerce sandbox on {sandbox.url}",
        f"  consumer_key    = {sandbox.consumer_key}",
        f"  consumer_secret = {sandbox.consumer_secret}",
    ]


def main(argv: list[str] | None = None) -> int:
    return serve(
        "python -m syncd.connectors.woocommerce.sandbox",
        "WooCommerce REST API v3 sandbox on a loopback port",
        options=_options,
        build=lambda a: WooSandbox(host=a.host, port=a.port, new_account_email=a.new_account_email),
        banner=_banner, argv=argv,
    )


if __name__ == "__main__":
    raise SystemExit(main())

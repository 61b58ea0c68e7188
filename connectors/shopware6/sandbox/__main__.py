"""``python -m syncd.connectors.shopware6.sandbox --port N --version V``: a sandbox for manual use."""

from __future__ import annotations

import argparse

from syncd.connectors.sandbox_main import serve

from .sandbox import Sandbox


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--version", default="6.6.10.0", help="Shopware version to play, e.g. 6.5.8.0")
    parser.add_argument("--token-lifetime", type=float, default=600, help="access token lifetime (s)")


def _banner(sandbox: Sandbox) -> list[str]:
    return [
        f"Shopware {sandbox.version} sandbox on {sandbox.url}",
        f"  client_id     = {sandbox.client_id}",
        f"  client_secret = {sandbox.client_secret}",
        f"  sw-access-key = {sandbox.access_key}",
        f"  sales channel = Storefront ({sandbox.sales_channel_id})",
    ]


def main(argv: list[str] | None = None) -> int:
    return serve(
        "python -m syncd.connectors.shopware6.sandbox",
        "Shopware 6 Admin/Store API sandbox on a loopback port",
        options=_options,
        build=lambda a: Sandbox(a.version, token_lifetime=a.token_lifetime, host=a.host, port=a.port),
        banner=_banner, argv=argv,
    )


if __name__ == "__main__":
    raise SystemExit(main())

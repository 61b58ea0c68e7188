"""A WooCommerce sandbox: a real HTTP server playing the REST API v3 subset syncd uses, plus the
WordPress login form. Shipped with syncd because ``syncd demo --platform woocommerce`` and the
tests start it; nothing here talks to a real shop. See README.md beside this file."""

from .sandbox import WooSandbox

__all__ = ["WooSandbox"]

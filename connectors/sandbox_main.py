"""What ``python -m`` of each shop sandbox (Shopware 6, WooCommerce) does around its own options:
a loopback host and port, the banner with what a config needs to reach it, and running until
SIGTERM or Ctrl-C. For manual use and for benchmarks that run the shop in a process of its own."""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Callable
from typing import Any


def serve(prog: str, description: str, *, options: Callable[[argparse.ArgumentParser], None],
          build: Callable[[argparse.Namespace], Any], banner: Callable[[Any], list[str]],
          argv: list[str] | None = None) -> int:
    """Parse ``argv`` (``--port``, ``--host`` and the sandbox's ``options``), ``build`` the
    sandbox (a ValueError is a usage error naming the option), start it, print ``banner`` and
    serve until stopped; the exit code."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--port", type=int, default=0, help="port to bind (0 = a free one)")
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    options(parser)
    args = parser.parse_args(argv)
    try:
        sandbox = build(args)
    except ValueError as exc:
        parser.error(str(exc))
    sandbox.start()
    for line in banner(sandbox):
        print(line, flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    sandbox.stop()
    return 0

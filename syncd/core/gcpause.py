"""One switch for the cyclic garbage collector during bulk work (see ``gc_paused``).

The owner of the pause is the cycle runner (``syncd.shell.scheduler.CycleRunner``): every cycle runs
with the collector paused, and `syncd sync --dry-run` does the same around the jobs it calls
directly. Connectors and flows do not switch it. The calls still inside the credential run
(``syncd.flows.credentials``) and the shop push (``syncd.connectors.shopware6.shop``) are redundant
under a runner; they share the runner's pause (nesting is free) and go with those modules'
rework. Tools that call a connector outside a cycle (``benchmarks/shop_push.py``) pause around
their own bulk work.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_gc_lock = threading.Lock()
_gc_holders = 0  # bulk jobs currently running with the cyclic GC paused
_gc_was_enabled = False
_depth = threading.local()  # this thread's nesting: an inner pause (a push in a cycle) ends quietly


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a bulk job runs (a cycle: a push, a credential
    batch run, an import).

    Such a job keeps thousands of short-lived objects in flight (payload dicts between the
    mapping and the writing thread, rows, rendered mails); they outlive the young generations,
    so full collections, which scan every object of the process, run again and again and hold
    the GIL each time: ~10% of a 100,000-customer push, ~3% of a 2,000-mail credential run.
    What these jobs allocate is freed by reference counting; the few cycles (tracebacks of
    handled errors) wait for the collector's return. Nested or concurrent jobs share one pause;
    the collector's previous state comes back when the last one ends.

    A job that ends while other threads keep the pause collects the young generations once: in
    a daemon whose cycles overlap back to back (several platforms, two directions each) the
    pause may never end, and the garbage cycles of every finished cycle would pile up meanwhile.
    A pause nested in the same thread (the shop push inside a cycle) ends without collecting.
    """
    global _gc_holders, _gc_was_enabled
    depth = getattr(_depth, "n", 0)
    _depth.n = depth + 1
    with _gc_lock:
        if _gc_holders == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_holders += 1
    try:
        yield
    finally:
        _depth.n = depth
        with _gc_lock:
            _gc_holders -= 1
            others = _gc_holders > 0
            if not others and _gc_was_enabled:
                gc.enable()
        if others and depth == 0 and _gc_was_enabled:
            # Only what was allocated since the last collection is scanned, not the whole heap.
            gc.collect(1)

"""Reminders over N open orders (default 100,000): scheduling them, then idle polls.

The Shopware sandbox runs in its own process (as a real shop would) holding N unpaid prepayment
orders placed over the last 10 days plus their state-change history; this process runs the real
reminder poll (``syncd.flows.reminders.poll``) over HTTP against it with a SQLite state store.

Prints:
  - the first poll: read N orders page by page, schedule N reminders (wall time, orders/s);
  - idle polls (nothing changed, nothing due; goal <= 50 ms): each in order, then median / p95 /
    max of 20, and syncd's own share (the poll minus the time waiting for the shop's answers);
  - a poll after 100 payments (O(changes)): wall time;
  - peak memory of this process (ru_maxrss; goal <= 150 MB) and the Python heap peak of the
    first poll (tracemalloc is off for the timings: it slows allocation-heavy code ~2x).

    python benchmarks/reminders.py [--orders 100000]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from syncd.config.messaging import ReminderSettings  # noqa: E402
from syncd.config.model import DaemonSettings, ErpSettings, PlatformSettings, Settings  # noqa: E402
from syncd.connectors.shopware6 import open_shop  # noqa: E402
from syncd.flows.context import CycleReport, PlatformContext  # noqa: E402
from syncd.flows.reminders import poll  # noqa: E402
from syncd.shell.logs import configure_logging  # noqa: E402
from syncd.state.db import open_state  # noqa: E402

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)


def _sandbox_child(conn: Any, orders: int) -> None:
    from syncd.connectors.shopware6.sandbox import Sandbox

    with Sandbox() as sb:
        customers = [sb.create_customer_as_shop_user(f"kunde{i}@beispiel.example", "geheim-passwort-1")["id"]
                     for i in range(200)]
        ids = []
        span = 10 * 86400
        for i in range(orders):
            at = NOW - timedelta(seconds=span - i * span // orders)
            ids.append(sb.add_order(customers[i % len(customers)], 59.0 + i % 40,
                                    payment="payment_prepayment", at=at))
        conn.send((sb.url, sb.client_id, sb.client_secret))
        while (msg := conn.recv()) != "stop":
            if msg == "pay":  # 100 payments, stamped now
                for oid in ids[:100]:
                    sb.transition("order_transaction", oid, "paid", at=NOW + timedelta(minutes=1))
                conn.send("paid")


@contextmanager
def sandbox(orders: int) -> Any:
    parent, kid = mp.Pipe()
    proc = mp.get_context("spawn").Process(target=_sandbox_child, args=(kid, orders), daemon=True)
    proc.start()
    try:
        yield parent
    finally:
        try:
            parent.send("stop")
        except OSError:
            pass
        proc.join(10)
        if proc.is_alive():
            proc.kill()


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--idle", type=int, default=20)
    args = parser.parse_args()
    configure_logging("console", "warning", stream=sys.stderr)
    print(f"reminders benchmark: {args.orders:,} open prepayment orders")
    started = time.perf_counter()
    with sandbox(args.orders) as shop_conn, tempfile.TemporaryDirectory() as tmp:
        url, client_id, secret = shop_conn.recv()
        print(f"  sandbox ready in {time.perf_counter() - started:.1f} s")
        settings = Settings(
            daemon=DaemonSettings(state_url=f"sqlite:///{tmp}/state.db"),
            erp=ErpSettings(url="sqlite://"),
            platforms=(PlatformSettings(name="shop", url=url, client_id=client_id, client_secret="env:X",
                                        timeout="120s"),),
            reminders=(ReminderSettings(name="pay", kind="prepayment", delay="30d", repeat="7d",
                                        max_messages=3, layout="prepayment_reminder"),),
        )
        store = open_state(settings.daemon.state_url)
        now = [NOW]
        ctx = PlatformContext(settings=settings, platform=settings.platforms[0], erp=None,  # type: ignore[arg-type]
                              shop=open_shop(settings.platforms[0], client_secret=secret), state=store,
                              clock=lambda: now[0])
        # How long each poll waits for the shop's answers: the rest is syncd's own work.
        waited = [0.0]
        session = ctx.shop.http.session if hasattr(ctx.shop, "http") else None
        if session is not None:
            send = session.send

            def timed_send(*a: Any, **kw: Any) -> Any:
                t = time.perf_counter()
                try:
                    return send(*a, **kw)
                finally:
                    waited[0] += time.perf_counter() - t

            session.send = timed_send  # type: ignore[method-assign]
        base_rss = rss_mb()
        t0 = time.perf_counter()
        poll(ctx, CycleReport("shop", "erp-to-shop"))
        first = time.perf_counter() - t0
        counts = __import__("syncd.state.reminders", fromlist=["Reminders"]).Reminders(store).counts("shop")
        print(f"  first poll: {first:.1f} s for {counts.get('scheduled', 0):,} scheduled reminders "
              f"({args.orders / first:,.0f} orders/s)")
        idle, own = [], []
        for _ in range(args.idle):
            now[0] += timedelta(seconds=60)
            waited[0] = 0.0
            t0 = time.perf_counter()
            poll(ctx, CycleReport("shop", "erp-to-shop"))
            idle.append((time.perf_counter() - t0) * 1000)
            own.append(idle[-1] - waited[0] * 1000)
        print("  idle polls in order (ms): " + " ".join(f"{v:.0f}" for v in idle))
        print(f"  of which syncd's own work (not waiting for the shop): median "
              f"{statistics.median(own):.1f} ms, max {max(own):.1f} ms; in order: "
              + " ".join(f"{v:.0f}" for v in own))
        idle.sort()
        p95 = idle[max(0, int(len(idle) * 0.95) - 1)]
        print(f"  idle poll: median {statistics.median(idle):.1f} ms, p95 {p95:.1f} ms, max {idle[-1]:.1f} ms"
              f" (goal <= 50 ms)")
        shop_conn.send("pay")
        shop_conn.recv()
        now[0] += timedelta(minutes=5)
        t0 = time.perf_counter()
        poll(ctx, CycleReport("shop", "erp-to-shop"))
        changed = (time.perf_counter() - t0) * 1000
        counts = __import__("syncd.state.reminders", fromlist=["Reminders"]).Reminders(store).counts("shop")
        print(f"  poll after 100 payments: {changed:.0f} ms (stopped: {counts.get('stopped', 0)})")
        print(f"  peak RSS of this process: {rss_mb():.0f} MB (before the first poll {base_rss:.0f} MB; "
              "goal <= 150 MB)")
        store.close()


if __name__ == "__main__":
    main()

"""Reconciliation of N addresses (default 100,000): a SQLite ERP, the Shopware sandbox in its own
process holding N accounts already linked, a SQLite state store with N links, and a small share
of drift (accounts lost in the shop, ERP rows changed without a new stamp, addresses without
link, links whose address is gone).

Measured in the same run, each in a fresh child process (so its peak RSS is its own):
  - baseline: a plain stream of the three sources without comparison - every ERP address in
    number-ordered pages, every link in pages, every linked account read from the shop by id
    with the same fields and page size;
  - reconcile: ``syncd.flows.reconcile.reconcile`` - the comparison and the repairs.
The baseline runs before and after the reconciliation (the faster counts: a shared machine's
load drifts). Figures: wall time, CPU of the client and of the sandbox process, the ratio to the
baseline, peak RSS of the child (ru_maxrss) and its growth over the RSS after start-up, and the
drift found. Goal (issue 11): <= 60 s and <= 150 MB.
Seeding (not timed) posts the accounts through the bulk sync route, as ``shop_push.py`` does.

    python benchmarks/reconcile.py [--addresses 100000] [--drift 0.01]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import requests  # noqa: E402
import sqlalchemy as sa  # noqa: E402

TABLE = "Adressen"
FIRST = 200000
GOAL_SECONDS, GOAL_MB = 60.0, 150.0


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _current_rss_mb() -> float:
    with open("/proc/self/status") as status:
        line = next(x for x in status if x.startswith("VmRSS"))
    return int(line.split()[1]) / 1024


def _cpu_seconds(pid: int) -> float:
    """user + system CPU of a process so far (Linux /proc): robust to a busy machine."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- set-up (parent) ----------------------------------------------------------------------------

def fill_erp(url: str, n: int) -> None:
    from tests.support.erp_fixtures import create_address_table

    create_address_table(url, TABLE)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(
            "WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < :last) "
            f'INSERT INTO "{TABLE}" ("AdrNr", "Firma", "Anrede", "Vorname", "Nachname", "Strasse", "PLZ", '
            '"Ort", "Land", "EMail", "Telefon", "Gesperrt", "Geaendert") '
            "SELECT :first + i, CASE WHEN i % 5 = 0 THEN 'Firma ' || i END, "
            "CASE WHEN i % 2 = 0 THEN 'Herr' ELSE 'Frau' END, 'Jürgen', 'Müller' || i, "
            "'Hauptstraße ' || (i % 200 + 1), printf('%05d', 48000 + i % 1000), 'Münster', "
            "CASE WHEN i % 7 = 0 THEN 'AT' ELSE 'DE' END, 'kunde' || (:first + i) || '@example.com', "
            "'0251 123456', 'N', datetime('2025-01-01', '+' || i || ' seconds') || '.000000' FROM s"
        ), {"last": n - 1, "first": FIRST})
    engine.dispose()


def start_sandbox() -> tuple[subprocess.Popen, dict[str, str]]:
    proc = subprocess.Popen([sys.executable, "-m", "syncd.connectors.shopware6.sandbox", "--port", "0"],
                            stdout=subprocess.PIPE, text=True)
    lines = [proc.stdout.readline() for _ in range(3)]
    shop = {"url": re.search(r"(http://\S+)", lines[0]).group(1),
            "client_id": lines[1].split("=", 1)[1].strip(),
            "client_secret": lines[2].split("=", 1)[1].strip()}
    return proc, shop


def settings(erp_url: str, state_url: str, shop: dict[str, str]):
    from syncd.config.model import (
        AddressSettings,
        DaemonSettings,
        ErpColumns,
        ErpSettings,
        PlatformSettings,
        Settings,
    )
    from tests.support.erp_fixtures import COLUMNS

    erp = ErpSettings(url=erp_url, profile="generic", address_table=TABLE, columns=ErpColumns(**COLUMNS))
    platform = PlatformSettings(name="bench", url=shop["url"], client_id=shop["client_id"],
                                client_secret="env:SYNCD_BENCH_SECRET", timeout="60s",
                                addresses=AddressSettings(send_credentials=False, shop_to_erp=False,
                                                          deactivate_blocked=True))
    return Settings(daemon=DaemonSettings(state_url=state_url), erp=erp, platforms=(platform,))


def context(s, shop: dict[str, str]):
    from syncd.connectors.erp import open_erp
    from syncd.connectors.shopware6 import open_shop
    from syncd.flows.context import PlatformContext
    from syncd.state.db import open_state

    platform = s.platforms[0]
    return PlatformContext(settings=s, platform=platform, erp=open_erp(s.erp),
                           shop=open_shop(platform, client_secret=shop["client_secret"]),
                           state=open_state(s.daemon.state_url))


def seed(erp_url: str, state_url: str, shop: dict[str, str], n: int, drift: float) -> dict[str, int]:
    """N accounts in the shop and N links in the state store, then the drift. Returns what was
    made to drift."""
    from syncd.connectors.shopware6.mapping import customer_id
    from syncd.connectors.shopware6.sync import SYNC_PATH, WRITE_HEADERS
    from syncd.core.clock import utcnow
    from syncd.flows.push_addresses import address_fingerprint
    from syncd.state.db import upsert
    from syncd.state.schema import links

    s = settings(erp_url, state_url, shop)
    ctx = context(s, shop)
    mapper = ctx.shop.mapper()
    session = requests.Session()
    token = session.post(f"{shop['url']}/api/oauth/token", json={
        "grant_type": "client_credentials", "client_id": shop["client_id"],
        "client_secret": shop["client_secret"]}, timeout=30).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json", **WRITE_HEADERS}
    now = utcnow()
    for page in ctx.erp.iter_all(batch_size=500):
        payloads = [mapper.map(a).payload for a in page]
        body = {"w": {"entity": "customer", "action": "upsert", "payload": payloads}}
        session.post(shop["url"] + SYNC_PATH, json=body, headers=headers, timeout=120).raise_for_status()
        rows = [{"platform": "bench", "shop_id": customer_id("bench", a.number), "erp_number": a.number,
                 "kind": "erp", "email": a.email, "erp_blocked": False, "shop_active": True,
                 "fingerprint": address_fingerprint(a), "created_at": now, "updated_at": now} for a in page]
        with ctx.state.begin() as conn:
            upsert(conn, links, rows, keys=["platform", "shop_id"], update=["fingerprint"])
    each = max(1, int(n * drift / 4))
    step = n // (4 * each + 1)
    picks = [FIRST + step * (i + 1) for i in range(4 * each)]
    lost, changed, unlinked, gone = picks[0::4], picks[1::4], picks[2::4], picks[3::4]
    body = {"d": {"entity": "customer", "action": "delete",
                  "payload": [{"id": customer_id("bench", x)} for x in lost]}}
    session.post(shop["url"] + SYNC_PATH, json=body, headers=headers, timeout=120).raise_for_status()
    engine = sa.create_engine(erp_url)
    with engine.begin() as conn:
        # Written behind the change scan's back: the stamps stay as they were.
        conn.execute(sa.text(f'UPDATE "{TABLE}" SET "Ort" = \'Greven\' WHERE "AdrNr" IN ({_list(changed)})'))
        conn.execute(sa.text(f'DELETE FROM "{TABLE}" WHERE "AdrNr" IN ({_list(gone)})'))
    engine.dispose()
    with ctx.state.begin() as conn:
        conn.execute(links.delete().where(links.c.erp_number.in_(unlinked)))
    ctx.state.close()
    ctx.erp.close()
    ctx.shop.close()
    return {"lost": len(lost), "changed": len(changed), "unlinked": len(unlinked), "gone": len(gone)}


def _list(numbers: list[int]) -> str:
    return ",".join(str(int(n)) for n in numbers)


# --- measurements (child) -----------------------------------------------------------------------

def measure(kind: str, erp_url: str, state_url: str, shop: dict[str, str]) -> dict:
    from syncd.flows.context import CycleReport
    from syncd.shell.logs import configure_logging

    configure_logging("json", "warning", stream=io.StringIO())
    s = settings(erp_url, state_url, shop)
    ctx = context(s, shop)
    ctx.erp.layout  # reflect, and fetch shop metadata, before the clock starts
    ctx.shop.mapper()
    start_rss = _current_rss_mb()
    cpu = time.process_time()
    started = time.perf_counter()
    result: dict = {}
    if kind == "baseline":
        result["counts"] = baseline(ctx)
    else:
        from syncd.flows.reconcile import reconcile

        result["counts"] = reconcile(ctx, CycleReport("bench", "erp-to-shop"))
    result["seconds"] = time.perf_counter() - started
    result["cpu_seconds"] = time.process_time() - cpu
    result["peak_rss_mb"] = _rss_mb()
    result["start_rss_mb"] = start_rss
    return result


def baseline(ctx) -> dict[str, int]:
    """The three sources read as the reconciliation reads them, nothing compared or written."""
    from syncd.connectors.shopware6.drift import INCLUDES
    from syncd.state.links import Links

    limit = ctx.shop.traits().page_limit
    addresses = accounts = 0
    links = Links(ctx.state)
    for page in ctx.erp.iter_all(batch_size=ctx.settings.erp.batch_size):
        addresses += len(page)
        found = links.get_many("bench", [a.number for a in page])
        ids = [lk.shop_id for lk in found.values()]
        for start in range(0, len(ids), limit):
            criteria = {"filter": [{"type": "equalsAny", "field": "id", "value": ids[start:start + limit]}],
                        "associations": {"defaultBillingAddress": {}}, "includes": INCLUDES}
            accounts += sum(1 for _ in ctx.shop.search("customer", criteria))
    link_count = sum(1 for _ in links.iter("bench"))
    return {"erp_addresses": addresses, "links": link_count, "shop_accounts": accounts}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--addresses", type=int, default=100_000)
    parser.add_argument("--drift", type=float, default=0.01, help="share of addresses made to drift")
    parser.add_argument("--measure", choices=["baseline", "reconcile"], help=argparse.SUPPRESS)
    parser.add_argument("--env", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.addresses < 100 or not 0 < args.drift < 0.5:
        parser.error("--addresses must be >= 100 and --drift between 0 and 0.5")
    if args.measure:
        env = json.loads(args.env)
        os.environ["SYNCD_BENCH_SECRET"] = env["shop"]["client_secret"]
        print(json.dumps(measure(args.measure, env["erp_url"], env["state_url"], env["shop"])))
        return 0

    from syncd.shell.logs import configure_logging

    configure_logging("json", "warning", stream=io.StringIO())
    with tempfile.TemporaryDirectory() as tmp:
        erp_url = f"sqlite:///{Path(tmp) / 'erp.db'}"
        state_url = f"sqlite:///{Path(tmp) / 'state.db'}"
        proc, shop = start_sandbox()
        os.environ["SYNCD_BENCH_SECRET"] = shop["client_secret"]
        try:
            t0 = time.perf_counter()
            fill_erp(erp_url, args.addresses)
            made = seed(erp_url, state_url, shop, args.addresses, args.drift)
            seeded = time.perf_counter() - t0
            print(f"{args.addresses} addresses, accounts and links seeded in {seeded:.0f} s; "
                  f"drift made: {made}")
            env = json.dumps({"erp_url": erp_url, "state_url": state_url, "shop": shop})
            # The baseline before and after (the machine may be shared: its load drifts); the
            # reconciliation between them, once (it repairs what it finds).
            results = {}
            for kind in ("baseline", "reconcile", "baseline again"):
                shop_cpu = _cpu_seconds(proc.pid)
                out = subprocess.run([sys.executable, __file__, "--measure", kind.split()[0], "--env", env],
                                     capture_output=True, text=True, check=True)
                results[kind] = json.loads(out.stdout.strip().splitlines()[-1])
                results[kind]["shop_cpu_seconds"] = _cpu_seconds(proc.pid) - shop_cpu
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    rec = results["reconcile"]
    base = min(results["baseline"], results["baseline again"], key=lambda r: r["seconds"])
    header = ("", "seconds", "client cpu s", "shop cpu s", "peak RSS MB", "growth MB")
    print("{:>14} {:>8} {:>13} {:>11} {:>12} {:>10}".format(*header))
    for kind, r in results.items():
        print(f"{kind:>14} {r['seconds']:>8.1f} {r['cpu_seconds']:>13.1f} {r['shop_cpu_seconds']:>11.1f} "
              f"{r['peak_rss_mb']:>12.0f} {r['peak_rss_mb'] - r['start_rss_mb']:>10.0f}")
    print(f"ratio reconcile/baseline (faster baseline): {rec['seconds'] / base['seconds']:.2f}x wall, "
          f"{rec['cpu_seconds'] / base['cpu_seconds']:.2f}x client cpu")
    print(f"baseline read: {base['counts']}")
    print(f"drift found: {rec['counts']}")
    ok = rec["seconds"] <= GOAL_SECONDS and rec["peak_rss_mb"] <= GOAL_MB
    print(f"goal: <= {GOAL_SECONDS:.0f} s and <= {GOAL_MB:.0f} MB peak RSS: {'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

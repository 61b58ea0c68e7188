"""Connector overhead: N customers pushed through ``ShopwareShop.push`` vs a bare loop posting the
same sync payloads to the same kind of sandbox endpoint, in the same run.

The bare loop is the floor: one token, pre-built payloads, one ``POST /api/_action/sync`` per
batch, no lookups, no error mapping. The connector additionally maps ERP rows, resolves metadata
and searches existing accounts by id and e-mail per batch (what makes replays and self-registered
accounts safe). Each side gets a fresh sandbox so both write into an empty shop. The sandbox
runs in its own process (``python -m syncd.connectors.shopware6.sandbox``), as a real shop would: in
this process it would compete with the client for the GIL and measure that instead.

    python benchmarks/shop_push.py                 # 20,000 and 100,000 customers
    python benchmarks/shop_push.py --sizes 5000    # a quick look
    python benchmarks/shop_push.py --lost-store    # also: the same push again without links
    python benchmarks/shop_push.py --platform woocommerce   # WooCommerce: WooShop.push vs a bare batch loop

``--lost-store`` adds what a lost state store costs: after the timed create (and an untimed
update, so every account has been written since its insert), the same addresses are pushed
with no links at all, as after ``mv state.db``; every one must come back ADOPTED. Its time and
requests are shown against an update push of the same addresses with their links, the
same round (writing existing accounts is what both do).

``--platform woocommerce``: the same comparison on the WooCommerce sandbox (its own process,
``python -m syncd.connectors.woocommerce.sandbox``): the bare loop posts the connector's own
create items (``create_item``, built before the clock starts) to ``POST /customers/batch`` in
batches of 100, OAuth 1.0a-signed as any client over plain HTTP must; the connector maps, records
nothing (no intents, as in the Shopware run) and maps each per-item answer back.
"""

from __future__ import annotations

import argparse
import gc
import io
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import requests

from syncd.config.model import PlatformSettings
from syncd.connectors.shopware6 import open_shop
from syncd.connectors.shopware6.sync import SYNC_PATH, WRITE_HEADERS
from syncd.core.domain import ErpAddress
from syncd.core.gcpause import gc_paused
from syncd.core.rules import PushOutcome
from syncd.shell.logs import configure_logging


def addresses(n: int) -> list[ErpAddress]:
    return [
        ErpAddress(
            number=100000 + i,
            email=f"kunde{i}@example.com",
            salutation="Frau" if i % 2 else "Herr",
            first_name="Jürgen" if i % 3 else "Anna",
            last_name=f"Müller{i}",
            company="Muster GmbH" if i % 5 == 0 else None,
            street=f"Hauptstraße {i % 200 + 1}",
            zip=f"{48000 + i % 1000}",
            city="Münster",
            country="DE" if i % 7 else "AT",
            phone="0251 123456",
        )
        for i in range(n)
    ]


@dataclass
class Shop:
    url: str
    client_id: str
    client_secret: str
    pid: int

    def cpu_seconds(self) -> float:
        """user + system CPU of the sandbox process so far (Linux /proc): robust to a busy machine."""
        fields = open(f"/proc/{self.pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def sandbox_process(version: str) -> Iterator[Shop]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "syncd.connectors.shopware6.sandbox", "--version", version],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        lines = [proc.stdout.readline() for _ in range(3)]
        url = re.search(r"on (http://\S+)", lines[0]).group(1)
        yield Shop(url, lines[1].split("=", 1)[1].strip(), lines[2].split("=", 1)[1].strip(), proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def count_customers(session: requests.Session, sb: Shop, headers: dict[str, str]) -> int:
    resp = session.post(
        f"{sb.url}/api/search-ids/customer",
        json={"limit": 1, "total-count-mode": 1},
        headers=headers,
        timeout=60,
    )
    resp.raise_for_status()
    return resp.json()["total"]


def token_headers(session: requests.Session, sb: Shop) -> dict[str, str]:
    token = session.post(
        f"{sb.url}/api/oauth/token",
        json={
            "grant_type": "client_credentials",
            "client_id": sb.client_id,
            "client_secret": sb.client_secret,
        },
        timeout=30,
    ).json()["access_token"]
    return {"Authorization": f"Bearer {token}", "Accept": "application/json", **WRITE_HEADERS}


def platform(sb: Shop, batch_size: int) -> PlatformSettings:
    return PlatformSettings(
        name="bench", url=sb.url, client_id=sb.client_id, client_secret="env:X", batch_size=batch_size
    )


def run_connector(
    version: str, rows: list[ErpAddress], batch_size: int,
    lost_store: list[tuple[float, float, int]] | None = None,
) -> tuple[float, int, tuple[float, float]]:
    with sandbox_process(version) as sb:
        shop = open_shop(platform(sb, batch_size), client_secret=sb.client_secret)
        server_cpu, client_cpu = sb.cpu_seconds(), time.process_time()
        started = time.perf_counter()
        with gc_paused():  # the pause a cycle runs under (syncd.shell.scheduler.CycleRunner)
            results = shop.push(rows, {})
        elapsed = time.perf_counter() - started
        cpu = (sb.cpu_seconds() - server_cpu, time.process_time() - client_cpu)
        created = sum(r.outcome == PushOutcome.CREATED for r in results)
        assert created == len(rows), f"only {created} of {len(rows)} created"
        requests_sent = shop.http.requests_sent
        if lost_store is not None:
            started = time.perf_counter()
            shop.push(rows, {r.number: r.shop_id for r in results})  # every account written once more
            update_time = time.perf_counter() - started
            shop.close()
            shop = open_shop(platform(sb, batch_size), client_secret=sb.client_secret)
            before = shop.http.requests_sent
            started = time.perf_counter()
            again = shop.push(rows, {})
            adopt_time = time.perf_counter() - started
            adopted = sum(r.outcome == PushOutcome.ADOPTED for r in again)
            assert adopted == len(rows), f"only {adopted} of {len(rows)} adopted"
            lost_store.append((adopt_time, update_time, shop.http.requests_sent - before))
        shop.close()
        with requests.Session() as session:
            assert count_customers(session, sb, token_headers(session, sb)) == len(rows)
    return elapsed, requests_sent, cpu


def run_bare(version: str, rows: list[ErpAddress], batch_size: int) -> tuple[float, int, tuple[float, float]]:
    with sandbox_process(version) as sb:
        # Payloads built by the connector's own mapper, before the clock starts: the same bytes.
        shop = open_shop(platform(sb, batch_size), client_secret=sb.client_secret)
        mapper = shop.mapper()
        payloads = [mapper.map(a).payload for a in rows]
        shop.close()
        session = requests.Session()
        server_cpu, client_cpu = sb.cpu_seconds(), time.process_time()
        started = time.perf_counter()
        headers = token_headers(session, sb)
        count = 1
        for start in range(0, len(payloads), batch_size):
            body = {
                "write-customer": {
                    "entity": "customer",
                    "action": "upsert",
                    "payload": payloads[start : start + batch_size],
                }
            }
            resp = session.post(sb.url + SYNC_PATH, json=body, headers=headers, timeout=60)
            count += 1
            resp.raise_for_status()
        elapsed = time.perf_counter() - started
        cpu = (sb.cpu_seconds() - server_cpu, time.process_time() - client_cpu)
        assert count_customers(session, sb, headers) == len(rows)
        session.close()
    return elapsed, count, cpu


@contextmanager
def woo_process() -> Iterator[Shop]:
    proc = subprocess.Popen([sys.executable, "-m", "syncd.connectors.woocommerce.sandbox"],
                            stdout=subprocess.PIPE, text=True)
    try:
        lines = [proc.stdout.readline() for _ in range(3)]
        url = re.search(r"on (http://\S+)", lines[0]).group(1)
        yield Shop(url, lines[1].split("=", 1)[1].strip(), lines[2].split("=", 1)[1].strip(), proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def woo_platform(sb: Shop, batch_size: int) -> PlatformSettings:
    return PlatformSettings(name="bench", kind="woocommerce", url=sb.url, consumer_key=sb.client_id,
                            consumer_secret="env:X", batch_size=batch_size,
                            addresses={"deactivate_blocked": False})


def woo_total(sb: Shop) -> int:
    from syncd.connectors.woocommerce.http import API_PREFIX, oauth1_params

    url = sb.url + API_PREFIX + "/customers"
    params = oauth1_params("GET", url, {"per_page": "1", "role": "all"}, sb.client_id, sb.client_secret)
    return int(requests.get(url, params=params, timeout=60).headers["X-WP-Total"])


def run_woo_connector(rows: list[ErpAddress], batch_size: int) -> tuple[float, int, tuple[float, float]]:
    from syncd.connectors.woocommerce import open_shop as open_woo

    with woo_process() as sb:
        shop = open_woo(woo_platform(sb, batch_size), consumer_secret=sb.client_secret)
        server_cpu, client_cpu = sb.cpu_seconds(), time.process_time()
        started = time.perf_counter()
        with gc_paused():
            results = shop.push(rows, {})
        elapsed = time.perf_counter() - started
        cpu = (sb.cpu_seconds() - server_cpu, time.process_time() - client_cpu)
        created = sum(r.outcome == PushOutcome.CREATED for r in results)
        assert created == len(rows), f"only {created} of {len(rows)} created"
        sent = shop.http.requests_sent
        shop.close()
        assert woo_total(sb) == len(rows)
    return elapsed, sent, cpu


def run_woo_bare(rows: list[ErpAddress], batch_size: int) -> tuple[float, int, tuple[float, float]]:
    from syncd.connectors.woocommerce.http import API_PREFIX, oauth1_params
    from syncd.connectors.woocommerce.mapping import create_item, map_address

    with woo_process() as sb:
        items = [create_item(map_address(a)) for a in rows]  # the connector's bytes, built untimed
        url = sb.url + API_PREFIX + "/customers/batch"
        session = requests.Session()
        server_cpu, client_cpu = sb.cpu_seconds(), time.process_time()
        started = time.perf_counter()
        count = 0
        for start in range(0, len(items), batch_size):
            params = oauth1_params("POST", url, {}, sb.client_id, sb.client_secret)
            body = {"create": items[start:start + batch_size]}
            resp = session.post(url, params=params, json=body, timeout=60)
            count += 1
            resp.raise_for_status()
        elapsed = time.perf_counter() - started
        cpu = (sb.cpu_seconds() - server_cpu, time.process_time() - client_cpu)
        session.close()
        assert woo_total(sb) == len(rows)
    return elapsed, count, cpu


def main_woo(sizes: list[int], rounds: int, batch_size: int) -> None:
    print(f"WooCommerce sandbox, batch size {batch_size}, {rounds} rounds per size")
    header = ("customers", "", "bare s", "connector s", "ratio", "bare req", "conn req")
    print("{:>10} {:>7} {:>8} {:>12} {:>7} {:>9} {:>9}".format(*header))
    for n in sizes:
        rows = addresses(n)
        bare_times, conn_times, bare_cpu, conn_cpu = [], [], [], []
        for _ in range(rounds):
            bare, bare_requests, cpu = run_woo_bare(rows, batch_size)
            bare_times.append(bare)
            bare_cpu.append(cpu)
            gc.collect()
            conn, conn_requests, cpu = run_woo_connector(rows, batch_size)
            conn_times.append(conn)
            conn_cpu.append(cpu)
            gc.collect()
        for label, pick in (("best", min), ("median", statistics.median)):
            b, c = pick(bare_times), pick(conn_times)
            print(f"{n:>10} {label:>7} {b:>8.2f} {c:>12.2f} {c / b:>6.2f}x {bare_requests:>9} "
                  f"{conn_requests:>9}")
        bs, bc = min(x[0] for x in bare_cpu), min(x[1] for x in bare_cpu)
        cs, cc = min(x[0] for x in conn_cpu), min(x[1] for x in conn_cpu)
        print(f"{'':>10} {'cpu':>7}  shop process: bare {bs:.2f}s, connector {cs:.2f}s; "
              f"client: bare {bc:.2f}s, connector {cc:.2f}s")
    print("goal: connector <= 1.20x the bare loop (best of rounds; the machine may be shared)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 100_000])
    parser.add_argument("--version", default="6.6.10.0")
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternating runs per size; best and median shown"
    )
    parser.add_argument(
        "--lost-store", action="store_true", help="also time the push again without links (adoption)"
    )
    parser.add_argument("--platform", choices=["shopware6", "woocommerce"], default="shopware6")
    args = parser.parse_args()
    configure_logging("json", "warning", stream=io.StringIO())  # per-request debug lines off
    if args.platform == "woocommerce":
        main_woo(args.sizes, args.rounds, min(args.batch_size, 100))
        return

    print(f"Shopware sandbox {args.version}, batch size {args.batch_size}, {args.rounds} rounds per size")
    header = ("customers", "", "bare s", "connector s", "ratio", "bare req", "conn req")
    print("{:>10} {:>7} {:>8} {:>12} {:>7} {:>9} {:>9}".format(*header))
    for n in args.sizes:
        rows = addresses(n)
        bare_times, conn_times, bare_cpu, conn_cpu = [], [], [], []
        lost: list[tuple[float, float, int]] | None = [] if args.lost_store else None
        for _ in range(args.rounds):
            bare, bare_requests, cpu = run_bare(args.version, rows, args.batch_size)
            bare_times.append(bare)
            bare_cpu.append(cpu)
            gc.collect()
            conn, conn_requests, cpu = run_connector(args.version, rows, args.batch_size, lost)
            conn_times.append(conn)
            conn_cpu.append(cpu)
            gc.collect()
        for label, pick in (("best", min), ("median", statistics.median)):
            b, c = pick(bare_times), pick(conn_times)
            ratio = f"{c / b:.2f}x"
            print(f"{n:>10} {label:>7} {b:>8.2f} {c:>12.2f} {ratio:>7} {bare_requests:>9} {conn_requests:>9}")
        if lost:
            for label, pick in (("best", min), ("median", statistics.median)):
                a, u = pick(x[0] for x in lost), pick(x[1] for x in lost)
                print(f"{n:>10} {'adopt':>7} {label}: {a:.2f}s for {n} adopted (no links) vs {u:.2f}s "
                      f"updating them linked ({a / u:.2f}x), {lost[0][2]} requests")
        bs, bc = min(x[0] for x in bare_cpu), min(x[1] for x in bare_cpu)
        cs, cc = min(x[0] for x in conn_cpu), min(x[1] for x in conn_cpu)
        print(
            f"{'':>10} {'cpu':>7}  shop process: bare {bs:.2f}s, connector {cs:.2f}s ({cs / bs:.2f}x); "
            f"client: bare {bc:.2f}s, connector {cc:.2f}s"
        )
    print("goal: connector <= 1.20x the bare loop (best of rounds; the machine may be shared)")


if __name__ == "__main__":
    main()

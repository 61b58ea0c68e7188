"""Throughput of the sandbox itself: ``python benchmarks/sandbox.py [--customers N]``.

The sandbox runs in a child process, so its memory can be measured apart from the client. Figures:
- customer sync requests of 250: median and p95 time;
- the baseline: the same bodies posted to a route that parses JSON and answers a small reply
  (``/api/search/salutation``). The ratio is what validation and storage cost on top of HTTP and JSON;
- a password push, a look-up of 100 e-mails, and paging through everything 100 at a time;
- the child's RSS per stored customer.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from syncd.connectors.shopware6.sandbox.seed import GERMAN_LANGUAGE_ID, sid  # noqa: E402


def _payload(n: int) -> dict:
    cid = hashlib.md5(f"bench:{n}".encode(), usedforsecurity=False).hexdigest()
    aid = hashlib.md5(f"bench:{n}:a".encode(), usedforsecurity=False).hexdigest()
    return {
        "id": cid,
        "customerNumber": str(n),
        "groupId": sid("customer_group", "Standard-Kundengruppe"),
        "salesChannelId": sid("sales_channel", "Storefront"),
        "languageId": GERMAN_LANGUAGE_ID,
        "defaultPaymentMethodId": sid("payment_method", "payment_invoice"),
        "salutationId": sid("salutation", "mr"),
        "firstName": "Max",
        "lastName": f"Mustermann{n}",
        "email": f"k{n}@example.com",
        "company": "ACME GmbH",
        "accountType": "business",
        "addresses": [
            {
                "id": aid,
                "countryId": sid("country", "DE"),
                "firstName": "Max",
                "lastName": f"M{n}",
                "street": "Musterstr. 1",
                "zipcode": "48624",
                "city": "Schöppingen",
                "phoneNumber": "+49 2555 123",
            }
        ],
        "defaultBillingAddressId": aid,
        "defaultShippingAddressId": aid,
    }


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        line = next(x for x in status if x.startswith("VmRSS"))
    return int(line.split()[1]) / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=250)
    args = parser.parse_args(argv)
    child = subprocess.Popen(
        [sys.executable, "-m", "syncd.connectors.shopware6.sandbox", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = child.stdout.readline().rsplit(" ", 1)[1].strip()
        client_id = child.stdout.readline().split("=", 1)[1].strip()
        secret = child.stdout.readline().split("=", 1)[1].strip()
        s = requests.Session()
        token = s.post(
            f"{url}/api/oauth/token",
            json={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
        )
        s.headers.update(
            {
                "Authorization": f"Bearer {token.json()['access_token']}",
                "Accept": "application/json",
                "Content-Type": "application/json",
                "sw-skip-trigger-flow": "1",
            }
        )
        rss_before = _rss_mb(child.pid)
        sync, baseline = [], []
        for start in range(0, args.customers, args.batch):
            batch = [_payload(n) for n in range(start, min(start + args.batch, args.customers))]
            body = json.dumps({"w": {"entity": "customer", "action": "upsert", "payload": batch}})
            t = time.perf_counter()
            resp = s.post(f"{url}/api/search/salutation", data=body)
            baseline.append(time.perf_counter() - t)
            assert resp.status_code == 200, resp.text[:300]
            t = time.perf_counter()
            resp = s.post(f"{url}/api/_action/sync", data=body)
            sync.append(time.perf_counter() - t)
            assert resp.status_code == 200, resp.text[:300]
        rss_after = _rss_mb(child.pid)
        passwords = [dict(_payload(n), password=f"passwort{n}") for n in range(args.batch)]
        t = time.perf_counter()
        s.post(
            f"{url}/api/_action/sync",
            data=json.dumps({"w": {"entity": "customer", "action": "upsert", "payload": passwords}}),
        )
        with_passwords = time.perf_counter() - t
        emails = [f"k{n}@example.com" for n in range(100)]
        t = time.perf_counter()
        s.post(
            f"{url}/api/search/customer",
            json={"filter": [{"type": "equalsAny", "field": "email", "value": emails}], "limit": 100},
        )
        lookup = time.perf_counter() - t
        t = time.perf_counter()
        pages = 0
        crit = {
            "limit": 100,
            "sort": [{"field": "createdAt"}, {"field": "id"}],
            "filter": [{"type": "range", "field": "createdAt", "parameters": {"gte": "2000-01-01"}}],
        }
        while True:
            pages += 1
            if len(s.post(f"{url}/api/search/customer", json={**crit, "page": pages}).json()["data"]) < 100:
                break
        paging = time.perf_counter() - t
    finally:
        child.terminate()
        child.wait(timeout=10)
        child.stdout.close()

    def ms(values: list[float], q: float) -> float:
        return sorted(values)[min(len(values) - 1, int(len(values) * q))] * 1000

    n = args.customers
    print(f"customers={n} batch={args.batch} requests={len(sync)}")
    print(f"sync {args.batch}: median {ms(sync, 0.5):.1f} ms, p95 {ms(sync, 0.95):.1f} ms; ", end="")
    print(f"total {sum(sync):.1f} s")
    print(
        f"baseline (same body, parse-and-answer route): median {ms(baseline, 0.5):.1f} ms; "
        f"ratio sync/baseline {statistics.median(sync) / statistics.median(baseline):.1f}x"
    )
    print(
        f"sync {args.batch} with passwords (bcrypt cost 4): {with_passwords * 1000:.0f} ms; "
        f"100 e-mails among {n}: {lookup * 1000:.1f} ms; all {pages} pages of 100: {paging:.1f} s"
    )
    per_customer = (rss_after - rss_before) * 1024 / n
    print(f"sandbox RSS {rss_before:.0f} -> {rss_after:.0f} MB ({per_customer:.1f} KB/customer)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Cost of the write-ahead create intents (``syncd.state.intents``) on the state store.

A push records one intent statement per create request (``batch_size`` records) and the flow
removes them in the link transaction. Measured here against the baseline of the same run: the
link upsert the flow already commits per batch. Prints milliseconds per batch and the ratio.

    python -m benchmarks.create_intents [--state-url URL] [--records 20000] [--batch-size 250]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from syncd.state.db import open_state, upsert
from syncd.state.intents import CreateIntents
from syncd.state.schema import links


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--state-url", help="default: a SQLite file in a temporary folder")
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, default=250)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = open_state(args.state_url or f"sqlite:///{Path(tmp) / 'state.db'}")
        try:
            now = datetime.now(UTC)
            intents = CreateIntents(store, lambda: now)
            numbers = list(range(100_000, 100_000 + args.records))
            batches = [numbers[i:i + args.batch_size] for i in range(0, len(numbers), args.batch_size)]
            link_time = intent_time = 0.0
            for batch in batches:
                started = time.perf_counter()
                intents.record("bench", [(n, f"id{n}") for n in batch])
                intent_time += time.perf_counter() - started
                rows = [{"platform": "bench", "shop_id": f"id{n}", "erp_number": n, "kind": "erp",
                         "email": None, "erp_blocked": False, "shop_active": True, "fingerprint": "f",
                         "created_at": now, "updated_at": now} for n in batch]
                started = time.perf_counter()
                with store.begin() as conn:
                    upsert(conn, links, rows, keys=["platform", "shop_id"], update=["fingerprint"])
                link_time += time.perf_counter() - started
                started = time.perf_counter()
                intents.settle("bench", batch)  # one transaction, as in the flow's unit of work
                intent_time += time.perf_counter() - started
        finally:
            store.close()
    n = len(batches)
    print(f"{args.records} records, {n} batches of {args.batch_size}, {store.engine.dialect.name}")
    print(f"link upsert (baseline): {link_time / n * 1000:.2f} ms/batch")
    print(f"intent record + settle: {intent_time / n * 1000:.2f} ms/batch "
          f"({intent_time / link_time:.2f}x the baseline)")


if __name__ == "__main__":
    main()

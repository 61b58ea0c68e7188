"""ERP change-detection cost on 100,000 addresses: SQLite file and PostgreSQL (and MariaDB over
ODBC when ``SYNCD_TEST_MARIADB_URL`` is set).

Per backend it prints, measured in the same run:
  - a bare ``SELECT count(*)`` on the table (the baseline),
  - one idle poll (no changes) and a poll with 100 changed rows, with their ratio to the count,
  - rows read and statements per poll (the O(changes) claim, independent of machine speed),
  - peak Python memory (tracemalloc) and the process's peak RSS growth during a full first read.
Goals (issue 3): idle poll <= 50 ms and <= 5x the bare count; first-read peak <= 150 MB.

    python benchmarks/erp_poll.py [--rows 100000] [--repeat 15] [--backend sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
import tracemalloc
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sqlalchemy as sa  # noqa: E402

from syncd.connectors.erp import open_erp  # noqa: E402
from tests.support.erp_fixtures import create_address_table, drop_table, fill_addresses, utcnow  # noqa: E402

PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/syncd_test"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:8.2f} ms"


def _median(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _poll(erp, cursor, batch_size=500):
    scan = erp.scan_changes(cursor, batch_size=batch_size)
    n = sum(len(b) for b in scan.batches())
    return n, scan.cursor()


def run(name: str, url: str, rows: int, repeat: int) -> dict:
    table = f"bench_erp_{uuid.uuid4().hex[:10]}"
    settings = create_address_table(url, table)
    try:
        t0 = time.perf_counter()
        fill_addresses(url, table, rows, step_seconds=60)
        fill_time = time.perf_counter() - t0
        erp = open_erp(settings, password_field="Sel5")
        erp.layout  # reflect once, outside the timings
        if erp.engine.dialect.name == "postgresql":
            with erp.engine.begin() as conn:
                conn.exec_driver_sql(f'ANALYZE "{table}"')

        # Full first read: once for time, once under tracemalloc (which slows it) for memory.
        t0 = time.perf_counter()
        count, cursor = _poll(erp, None)
        first_time = time.perf_counter() - t0
        assert count == rows, (count, rows)
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        tracemalloc.start()
        _poll(erp, None)
        _cur, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        rss_growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024  # KiB -> MiB

        count_stmt = sa.text(f"SELECT count(*) FROM {erp.engine.dialect.identifier_preparer.quote(table)}")

        def bare_count():
            with erp.engine.connect() as conn:
                conn.execute(count_stmt).scalar()

        bare_count()
        count_time = _median(bare_count, repeat)

        state = {"cursor": cursor}

        def idle():
            n, state["cursor"] = _poll(erp, state["cursor"])
            assert n == 0, n

        idle()
        s0, r0 = erp.stats.statements, erp.stats.rows_read
        idle_time = _median(idle, repeat)
        idle_statements = (erp.stats.statements - s0) / repeat
        idle_rows = (erp.stats.rows_read - r0) / repeat

        md = sa.MetaData()
        tbl = sa.Table(table, md, autoload_with=erp.engine)
        change_times, change_rows, change_statements = [], [], []
        for i in range(5):
            numbers = [100000 + (i * 977 + k * 997) % rows for k in range(100)]
            with erp.engine.begin() as conn:
                conn.execute(
                    sa.update(tbl).where(tbl.c.AdrNr.in_(numbers)).values(Geaendert=utcnow(), Ort=f"R{i}")
                )
            s0, r0 = erp.stats.statements, erp.stats.rows_read
            t0 = time.perf_counter()
            n, state["cursor"] = _poll(erp, state["cursor"])
            change_times.append(time.perf_counter() - t0)
            change_rows.append(erp.stats.rows_read - r0)
            change_statements.append(erp.stats.statements - s0)
            assert n == len(set(numbers)), (n, len(set(numbers)))
        erp.close()
        return {
            "backend": name,
            "fill": fill_time,
            "first_read": first_time,
            "peak_mb": peak / 2**20,
            "rss_growth_mb": rss_growth,
            "count": count_time,
            "idle": idle_time,
            "idle_rows": idle_rows,
            "idle_statements": idle_statements,
            "change": statistics.median(change_times),
            "change_rows": change_rows,
            "change_statements": statistics.median(change_statements),
        }
    finally:
        drop_table(url, table)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument(
        "--backend",
        default="sqlite,postgresql" + (",mariadb" if os.environ.get("SYNCD_TEST_MARIADB_URL") else ""),
    )
    args = parser.parse_args()
    urls = {}
    tmp = tempfile.TemporaryDirectory()
    for name in args.backend.split(","):
        if name == "sqlite":
            urls[name] = f"sqlite:///{tmp.name}/erp_bench.sqlite"
        elif name == "postgresql":
            urls[name] = os.environ.get("SYNCD_TEST_PG_URL", PG_DEFAULT)
        elif name == "mariadb":
            urls[name] = os.environ["SYNCD_TEST_MARIADB_URL"]
    ok = True
    print(f"ERP change detection, {args.rows:,} addresses, median of {args.repeat} runs\n")
    for name, url in urls.items():
        r = run(name, url, args.rows, args.repeat)
        ratio_idle = r["idle"] / r["count"] if r["count"] else float("inf")
        ratio_change = r["change"] / r["count"] if r["count"] else float("inf")
        goal_idle = r["idle"] <= 0.050 and ratio_idle <= 5
        goal_mem = r["peak_mb"] <= 150 and r["rss_growth_mb"] <= 150
        ok &= goal_idle and goal_mem
        print(f"[{name}]  (bulk fill {r['fill']:.1f} s)")
        print(f"  bare SELECT count(*)   {_ms(r['count'])}")
        print(
            f"  idle poll              {_ms(r['idle'])}   {ratio_idle:5.2f}x count   "
            f"rows read {r['idle_rows']:.0f}, statements {r['idle_statements']:.0f}   "
            f"{'OK' if goal_idle else 'MISSED'} (goal <= 50 ms and <= 5x)"
        )
        print(
            f"  poll with 100 changes  {_ms(r['change'])}   {ratio_change:5.2f}x count   "
            f"rows read per round {r['change_rows']}, statements {r['change_statements']:.0f}"
        )
        print("    (each round re-reads the earlier rounds' rows still inside the 300 s overlap window)")
        print(
            f"  full first read        {r['first_read']:8.2f} s    peak Python memory {r['peak_mb']:.1f} MB, "
            f"RSS growth {r['rss_growth_mb']:.1f} MB   {'OK' if goal_mem else 'MISSED'} (goal <= 150 MB)\n"
        )
    tmp.cleanup()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

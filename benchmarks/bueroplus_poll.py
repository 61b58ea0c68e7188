"""Cost of watching the büro+ joined stamps (Adressen, Anschriften, Ansprechpartner LtzAend) on
100,000 addresses: SQLite file and PostgreSQL (and MariaDB over ODBC when
``SYNCD_TEST_MARIADB_URL`` is set).

Per backend it prints, measured in the same run:
  - the baseline: a bare ``SELECT count(*)`` over the three-table join,
  - one idle poll, and a poll after 100 changes made only in ``Anschriften``, with their ratio
    to the baseline, rows read and statements (three streams: one range query each),
  - the plan the database picks for the Anschriften stream's page query (index or scan).
Goal: an idle or 100-change poll reads O(changes + windows) rows, not O(table).

    python benchmarks/bueroplus_poll.py [--rows 100000] [--repeat 9] [--backend sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sqlalchemy as sa  # noqa: E402
from sqlalchemy import event  # noqa: E402

from syncd.connectors.erp import open_erp  # noqa: E402
from tests.support.erp_fixtures import create_bueroplus_tables, drop_schema, utcnow  # noqa: E402

PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/syncd_test"
TABLES = ("Adressen", "Anschriften", "Ansprechpartner")


def _fill(engine: sa.Engine, schema: str | None, rows: int, base) -> None:
    """Server-side bulk insert: address i has number 100000+i, Anschrift 1, contact 1, all
    stamped base + i minutes (five rows per table inside a 300 s overlap window)."""
    name = engine.dialect.name
    q = engine.dialect.identifier_preparer.quote
    t = {n: (f"{q(schema)}.{q(n)}" if schema else q(n)) for n in TABLES}
    b = base.strftime("%Y-%m-%d %H:%M:%S")
    if name == "postgresql":
        src, i = f"generate_series(0, {rows - 1}) AS s(i)", "i"
        stamp = f"TIMESTAMP '{b}' + i * INTERVAL '1 minute'"
    elif name in ("mysql", "mariadb"):
        src, i = f"seq_0_to_{rows - 1}", "seq"
        stamp = f"DATE_ADD('{b}', INTERVAL seq MINUTE)"
    else:
        i = "i"
        src = f"(WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < {rows - 1}) "
        src += "SELECT i FROM s)"
        stamp = f"datetime('{b}', '+' || i || ' minutes') || '.000000'"
    mysql = name in ("mysql", "mariadb")
    mail = f"CONCAT('k', {i}, '@example.com')" if mysql else f"'k' || {i} || '@example.com'"
    nr = f"CAST(100000 + {i} AS {'CHAR' if mysql else 'VARCHAR(20)'})"
    false = "false" if name == "postgresql" else "0"

    def insert(table: str, columns: str, values: str) -> str:
        names = ", ".join(q(c) for c in columns.split())
        return f"INSERT INTO {t[table]} ({names}) SELECT {values} FROM {src}"

    statements = [
        insert("Adressen", "AdrNr ReAnsNr Status GspKz LtzAend", f"{nr}, 1, 'Kunde', {false}, {stamp}"),
        insert("Anschriften", "AdrNr AnsNr Ort EMail1 AspNr LtzAend", f"{nr}, 1, 'Ort', {mail}, 1, {stamp}"),
        insert("Ansprechpartner", "AdrNr AnsNr AspNr VNa NNa LtzAend", f"{nr}, 1, 1, 'V', 'N', {stamp}"),
    ]
    with engine.begin() as conn:
        for s in statements:
            conn.exec_driver_sql(s)
    if name == "postgresql":
        with engine.begin() as conn:
            for n in TABLES:
                conn.exec_driver_sql(f"ANALYZE {t[n]}")


def _median(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _poll(erp, cursor):
    scan = erp.scan_changes(cursor, batch_size=500)
    n = sum(len(b) for b in scan.batches())
    return n, scan.cursor()


def _plan(engine: sa.Engine, statement: str, params) -> str:
    name = engine.dialect.name
    prefix = {"postgresql": "EXPLAIN ", "sqlite": "EXPLAIN QUERY PLAN "}.get(name, "EXPLAIN ")
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(prefix + statement, params).fetchall()
    lines = [" | ".join(str(v) for v in r if v is not None) for r in rows]
    return "\n      ".join(lines[:8])


def run(name: str, url: str, rows: int, repeat: int) -> dict:
    schema = None if name == "sqlite" else f"bench_bp_{uuid.uuid4().hex[:10]}"
    settings = create_bueroplus_tables(url, schema=schema)
    try:
        base = (utcnow() - timedelta(days=400)).replace(microsecond=0)
        newest = base + timedelta(minutes=rows - 1)
        erp = open_erp(settings, password_field="Sel10")
        t0 = time.perf_counter()
        _fill(erp.engine, schema, rows, base)
        fill_time = time.perf_counter() - t0
        erp.layout  # reflect once, outside the timings

        captured: list[tuple[str, object]] = []

        @event.listens_for(erp.engine, "before_cursor_execute")
        def _capture(_conn, _cursor, statement, params, _context, _many):
            if "LtzAend" in statement and ">=" in statement:
                captured.append((statement, params))

        t0 = time.perf_counter()
        count, cursor = _poll(erp, None)
        first_time = time.perf_counter() - t0
        assert count == rows, (count, rows)

        join = erp.layout.read_from()
        count_stmt = sa.select(sa.func.count()).select_from(join)

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

        md = sa.MetaData(schema=schema)
        ans = sa.Table("Anschriften", md, autoload_with=erp.engine)
        change_times, change_rows = [], []
        for i in range(5):
            numbers = [str(100000 + (i * 977 + k * 997) % rows) for k in range(100)]
            stamp = newest + timedelta(minutes=10 * (i + 1))
            with erp.engine.begin() as conn:
                conn.execute(sa.update(ans).where(ans.c.AdrNr.in_(numbers), ans.c.AnsNr == 1)
                             .values(LtzAend=stamp, Ort=f"R{i}"))
            captured.clear()
            r0 = erp.stats.rows_read
            t0 = time.perf_counter()
            n, state["cursor"] = _poll(erp, state["cursor"])
            change_times.append(time.perf_counter() - t0)
            change_rows.append(erp.stats.rows_read - r0)
            assert n == len(set(numbers)), (n, len(set(numbers)))
        joined = [c for c in captured if "Anschriften.LtzAend >=" in c[0].replace('"', "").replace("`", "")]
        plan = _plan(erp.engine, *joined[0]) if joined else "(statement not captured)"
        erp.close()
        return {
            "fill": fill_time,
            "first_read": first_time,
            "count": count_time,
            "idle": idle_time,
            "idle_rows": idle_rows,
            "idle_statements": idle_statements,
            "change": statistics.median(change_times),
            "change_rows": change_rows,
            "plan": plan,
        }
    finally:
        if schema:
            drop_schema(url, schema)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument(
        "--backend",
        default="sqlite,postgresql" + (",mariadb" if os.environ.get("SYNCD_TEST_MARIADB_URL") else ""),
    )
    args = parser.parse_args()
    if args.rows < 1000 or args.repeat < 1:
        parser.error("--rows must be at least 1000 and --repeat at least 1")
    tmp = tempfile.TemporaryDirectory()
    urls = {}
    for name in args.backend.split(","):
        if name == "sqlite":
            urls[name] = f"sqlite:///{tmp.name}/bp_bench.sqlite"
        elif name == "postgresql":
            urls[name] = os.environ.get("SYNCD_TEST_PG_URL", PG_DEFAULT)
        elif name == "mariadb":
            urls[name] = os.environ["SYNCD_TEST_MARIADB_URL"]
        else:
            parser.error(f"--backend: unknown backend {name!r} (sqlite, postgresql, mariadb)")
    ok = True
    print(f"büro+ joined change detection, {args.rows:,} addresses x 3 tables, median of {args.repeat}\n")
    for name, url in urls.items():
        r = run(name, url, args.rows, args.repeat)
        ratio_idle = r["idle"] / r["count"] if r["count"] else float("inf")
        ratio_change = r["change"] / r["count"] if r["count"] else float("inf")
        bounded = r["idle_rows"] <= 3 * 6 and max(r["change_rows"]) <= 3 * 6 + 5 * 100
        ok &= bounded
        print(f"[{name}]  (bulk fill {r['fill']:.1f} s, full first read {r['first_read']:.2f} s)")
        print(f"  baseline count(*) over the join  {r['count'] * 1000:8.2f} ms")
        print(
            f"  idle poll                        {r['idle'] * 1000:8.2f} ms  {ratio_idle:6.3f}x baseline  "
            f"rows read {r['idle_rows']:.0f}, statements {r['idle_statements']:.0f}"
        )
        print(
            f"  poll, 100 Anschriften changes    {r['change'] * 1000:8.2f} ms  "
            f"{ratio_change:6.3f}x baseline  rows read per round {r['change_rows']}"
        )
        print(f"  rows read bounded by changes + windows: {'OK' if bounded else 'MISSED'}")
        print(f"  plan of the Anschriften stream's page:\n      {r['plan']}\n")
    tmp.cleanup()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

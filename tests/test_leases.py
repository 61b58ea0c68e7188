"""Leases: exclusive across processes on PostgreSQL and SQLite; a dead holder's lease expires."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, event, text

from syncd.state.leases import Leases, make_holder
from syncd.state.schema import leases as leases_table
from tests.dbs import pg_url, unique_name

# The child builds the same kind of store as the test: a schema-translated engine on PostgreSQL
# (every test has its own schema: other engineers share the database), a WAL file on SQLite.
CHILD = textwrap.dedent(
    """
    import json, os, sys, time
    from sqlalchemy import create_engine, event
    from syncd.state.leases import Leases, make_holder

    url, schema, out, seconds, ttl, hold = sys.argv[1:7]
    seconds, ttl, hold = float(seconds), float(ttl), float(hold)

    class Store:
        def __init__(self, engine):
            self.engine = engine
        def begin(self):
            return self.engine.begin()

    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})
        @event.listens_for(engine, "connect")
        def _wal(dbapi, _):
            dbapi.execute("PRAGMA journal_mode=WAL")
    else:
        engine = create_engine(url).execution_options(schema_translate_map={None: schema})
    leases = Leases(Store(engine))
    holder = make_holder()
    print(json.dumps({"ready": holder}), flush=True)
    sys.stdin.readline()  # the test starts all children at once
    deadline = time.time() + seconds
    with open(out, "a") as fh:
        while time.time() < deadline:
            if leases.acquire("shop/erp-to-shop", holder, ttl):
                start = time.time()
                time.sleep(hold)
                end = time.time()
                fh.write(json.dumps([holder, start, end]) + "\\n")
                fh.flush()
                assert leases.release("shop/erp-to-shop", holder)
                time.sleep(0.005)
            else:
                time.sleep(0.002)
    """
)


class _Store:
    def __init__(self, engine) -> None:
        self.engine = engine

    def begin(self):
        return self.engine.begin()


@contextmanager
def sqlite_store(path: Path):
    url = f"sqlite:///{path}"
    engine = create_engine(url, connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _wal(dbapi, _):
        dbapi.execute("PRAGMA journal_mode=WAL")

    leases_table.create(engine)
    try:
        yield _Store(engine), url, ""
    finally:
        engine.dispose()


@contextmanager
def pg_store():
    url = pg_url()
    schema = unique_name("leases")
    admin = create_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = create_engine(url).execution_options(schema_translate_map={None: schema})
    try:
        leases_table.create(engine)
        yield _Store(engine), url, schema
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    if request.param == "sqlite":
        with sqlite_store(tmp_path / "state.db") as s:
            yield s
    else:
        with pg_store() as s:
            yield s


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def test_second_holder_is_refused_until_release(store):
    s, _url, _schema = store
    leases = Leases(s)
    assert leases.acquire("shop/erp-to-shop", "a", 60)
    assert not leases.acquire("shop/erp-to-shop", "b", 60)
    # another lease name is independent
    assert leases.acquire("shop/shop-to-erp", "b", 60)
    # the holder may re-acquire (extend) its own lease
    assert leases.acquire("shop/erp-to-shop", "a", 60)
    assert leases.holder_of("shop/erp-to-shop") == "a"
    assert not leases.release("shop/erp-to-shop", "b"), "only the holder may release"
    assert leases.release("shop/erp-to-shop", "a")
    assert leases.acquire("shop/erp-to-shop", "b", 60)


def test_expired_lease_is_taken_over_and_old_holder_cannot_renew(store):
    s, _url, _schema = store
    clock = Clock()
    leases = Leases(s, clock=clock)
    assert leases.acquire("p/d", "a", 30)
    clock.advance(29)
    assert not leases.acquire("p/d", "b", 30)
    assert leases.renew("p/d", "a", 30)  # now valid until t0 + 59
    clock.advance(29)
    assert not leases.acquire("p/d", "b", 30)
    clock.advance(31)
    assert leases.holder_of("p/d") is None
    assert leases.acquire("p/d", "b", 30)
    assert not leases.renew("p/d", "a", 30), "a lost the lease: renewing must say so"
    assert not leases.release("p/d", "a")
    assert leases.holder_of("p/d") == "b"


def test_bad_ttl_is_refused(store):
    s, _url, _schema = store
    with pytest.raises(ValueError, match="ttl"):
        Leases(s).acquire("x", "a", 0)


def _run_children(url: str, schema: str, out: Path, *, n: int, seconds: float, ttl: float, hold: float):
    script = out.parent / "lease_child.py"
    script.write_text(CHILD)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), url, schema, str(out), str(seconds), str(ttl), str(hold)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(n)
    ]
    holders = [json.loads(p.stdout.readline())["ready"] for p in procs]
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    for p in procs:
        assert p.wait(timeout=60) == 0
    return holders


@pytest.mark.realdb
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_two_processes_never_hold_the_lease_at_once(backend, tmp_path):
    ctx = sqlite_store(tmp_path / "state.db") if backend == "sqlite" else pg_store()
    with ctx as (_s, url, schema):
        out = tmp_path / "intervals.jsonl"
        holders = _run_children(url, schema, out, n=2, seconds=2.0, ttl=30, hold=0.01)
        intervals = sorted(json.loads(line) for line in out.read_text().splitlines())
    intervals.sort(key=lambda row: row[1])
    assert len(intervals) > 10, "the processes barely got the lease: the test proves nothing"
    assert {row[0] for row in intervals} == set(holders), "both processes should win some rounds"
    for (h1, _s1, e1), (h2, s2, _e2) in zip(intervals, intervals[1:], strict=False):
        assert s2 >= e1, f"{h2} entered at {s2} while {h1} held the lease until {e1}"


@pytest.mark.realdb
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_killed_holder_lease_expires(backend, tmp_path):
    ctx = sqlite_store(tmp_path / "state.db") if backend == "sqlite" else pg_store()
    with ctx as (s, url, schema):
        script = tmp_path / "holder.py"
        script.write_text(
            CHILD.replace(
                "sys.stdin.readline()",
                "assert leases.acquire('shop/erp-to-shop', holder, ttl); print('held', flush=True); "
                "time.sleep(600)",
            )
        )
        env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
        proc = subprocess.Popen(
            [sys.executable, str(script), url, schema, str(tmp_path / "o"), "1", "1.5", "0"],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            dead = json.loads(proc.stdout.readline())["ready"]
            assert proc.stdout.readline().strip() == "held"
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
        leases = Leases(s)
        me = make_holder()
        assert leases.holder_of("shop/erp-to-shop") == dead
        assert not leases.acquire("shop/erp-to-shop", me, 30), "the dead holder's lease is still valid"
        deadline = time.monotonic() + 10
        while not leases.acquire("shop/erp-to-shop", me, 30):
            assert time.monotonic() < deadline, "the dead holder's lease never expired"
            time.sleep(0.1)
        assert leases.holder_of("shop/erp-to-shop") == me

"""Leases: exclusive across processes on PostgreSQL and SQLite; a killed holder's lease is
taken over at once (its lock died with it), while a holder that may be alive elsewhere keeps
its lease until the row expires."""

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
from sqlalchemy import insert, text

from syncd.state.db import open_state
from syncd.state.leases import Leases, make_holder
from syncd.state.locks import Process, holder_process
from syncd.state.schema import leases as leases_table
from tests.support.dbs import pg_schema_url

REPO = Path(__file__).resolve().parents[2]

CHILD = textwrap.dedent(
    """
    import json, sys, time
    from syncd.state.db import open_state
    from syncd.state.leases import Leases, make_holder

    url, out, seconds, ttl, hold = sys.argv[1:6]
    seconds, ttl, hold = float(seconds), float(ttl), float(hold)
    leases = Leases(open_state(url, migrate=False))
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

HOLDER = textwrap.dedent(
    """
    import json, sys, time
    from syncd.state.db import open_state
    from syncd.state.leases import Leases, make_holder

    leases = Leases(open_state(sys.argv[1], migrate=False))
    holder = make_holder()
    assert leases.acquire("shop/erp-to-shop", holder, 300)
    print(json.dumps({"held": holder}), flush=True)
    time.sleep(600)
    """
)


@contextmanager
def store_url(kind: str, folder: Path):
    if kind == "sqlite":
        url = f"sqlite:///{folder / 'state.db'}"
        open_state(url).close()
        yield url
    else:
        with pg_schema_url("leases") as url:
            open_state(url).close()
            yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.realdb)])
def kind(request):
    return request.param


@pytest.fixture
def url(kind, tmp_path):
    with store_url(kind, tmp_path) as u:
        yield u


@pytest.fixture
def store(url):
    s = open_state(url, migrate=False)
    yield s
    s.close()


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def test_second_holder_is_refused_until_release(store):
    leases = Leases(store)
    assert leases.acquire("shop/erp-to-shop", "a", 60)
    assert not leases.acquire("shop/erp-to-shop", "b", 60)
    # another Leases object of the same process is refused too: the process-wide registry
    assert not Leases(store).acquire("shop/erp-to-shop", "b", 60)
    # another lease name is independent
    assert leases.acquire("shop/shop-to-erp", "b", 60)
    # the holder may re-acquire (extend) its own lease
    assert leases.acquire("shop/erp-to-shop", "a", 60)
    assert leases.holder_of("shop/erp-to-shop") == "a"
    assert not leases.release("shop/erp-to-shop", "b"), "only the holder may release"
    assert leases.release("shop/erp-to-shop", "a")
    assert leases.acquire("shop/erp-to-shop", "b", 60)
    assert leases.release("shop/erp-to-shop", "b") and leases.release("shop/shop-to-erp", "b")


def test_a_held_lease_is_not_taken_even_when_its_row_expired(store):
    """The lock decides, not the clock: a cycle that stalls past the ttl keeps its lease."""
    clock = Clock()
    leases = Leases(store, clock=clock)
    assert leases.acquire("p/d", "a", 30)
    clock.advance(600)
    assert not Leases(store, clock=clock).acquire("p/d", "b", 30)
    assert leases.renew("p/d", "a", 30)
    assert leases.release("p/d", "a")


def test_bad_ttl_is_refused(store):
    with pytest.raises(ValueError, match="ttl"):
        Leases(store).acquire("x", "a", 0)


def _row(store, holder: str, expires: datetime) -> None:
    """A lease row without a lock behind it: what a holder leaves when it dies."""
    with store.begin() as conn:
        conn.execute(insert(leases_table).values(name="shop/erp-to-shop", holder=holder, expires_at=expires))


def test_a_row_without_its_lock_from_another_host(store, kind):
    """SQLite is one host: a free file lock proves the holder gone, the row is taken at once.
    PostgreSQL: the holder on another host may be alive but cut off from the server; its row
    is taken only once expired (the fallback), and then it cannot renew."""
    clock = Clock()
    other = "elsewhere:4711:1700000000:0123456789ab:erp-to-shop"
    _row(store, other, clock() + timedelta(seconds=60))
    leases = Leases(store, clock=clock)
    if kind == "sqlite":
        assert leases.take("shop/erp-to-shop", "me", 30).previous == other
    else:
        assert leases.take("shop/erp-to-shop", "me", 30) is None
        assert leases.holder_of("shop/erp-to-shop") == other
        clock.advance(61)
        assert leases.holder_of("shop/erp-to-shop") is None
        assert leases.take("shop/erp-to-shop", "me", 30).previous == other
    assert leases.holder_of("shop/erp-to-shop") == "me"
    assert not leases.renew("shop/erp-to-shop", other, 30), "the old holder lost it"
    assert leases.release("shop/erp-to-shop", "me")


def test_a_dead_process_on_this_host_is_taken_over_at_once(store):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    dead = make_holder().replace(f":{os.getpid()}:", f":{proc.pid}:", 1)
    assert holder_process(dead) is Process.DEAD
    assert holder_process(make_holder()) is Process.ALIVE
    _row(store, dead, datetime.now(UTC) + timedelta(minutes=5))
    leases = Leases(store)
    assert not leases.is_alive("shop/erp-to-shop", dead)
    assert leases.holder_of("shop/erp-to-shop") is None
    assert leases.take("shop/erp-to-shop", "me", 30).previous == dead
    assert leases.release("shop/erp-to-shop", "me")


def _run_children(url: str, out: Path, *, n: int, seconds: float, ttl: float, hold: float):
    script = out.parent / "lease_child.py"
    script.write_text(CHILD)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), url, str(out), str(seconds), str(ttl), str(hold)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
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


def test_two_processes_never_hold_the_lease_at_once(url, tmp_path):
    out = tmp_path / "intervals.jsonl"
    holders = _run_children(url, out, n=2, seconds=2.0, ttl=30, hold=0.01)
    intervals = sorted((json.loads(line) for line in out.read_text().splitlines()), key=lambda r: r[1])
    assert len(intervals) > 10, "the processes barely got the lease: the test proves nothing"
    assert {row[0] for row in intervals} == set(holders), "both processes should win some rounds"
    for (h1, _s1, e1), (h2, s2, _e2) in zip(intervals, intervals[1:], strict=False):
        assert s2 >= e1, f"{h2} entered at {s2} while {h1} held the lease until {e1}"


def test_a_killed_holders_lease_is_taken_over_at_once(store, url, tmp_path):
    """The lease row of a SIGKILLed holder is valid for minutes; its lock died with it."""
    script = tmp_path / "holder.py"
    script.write_text(HOLDER)
    proc = subprocess.Popen([sys.executable, str(script), url], stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=str(REPO)))
    try:
        dead = json.loads(proc.stdout.readline())["held"]
        leases = Leases(store)
        me = make_holder()
        assert leases.holder_of("shop/erp-to-shop") == dead and leases.is_alive("shop/erp-to-shop", dead)
        assert not leases.acquire("shop/erp-to-shop", me, 30), "a live holder keeps its lease"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    assert leases.get("shop/erp-to-shop").expires_at > datetime.now(UTC) + timedelta(minutes=4)
    assert not leases.is_alive("shop/erp-to-shop", dead)
    started = time.monotonic()
    grant = None
    while grant is None and time.monotonic() - started < 5:  # PostgreSQL: the server ends the session
        grant = leases.take("shop/erp-to-shop", me, 30)
        time.sleep(0.05)
    assert grant is not None and grant.previous == dead, "the dead holder's lease was not taken over"
    assert time.monotonic() - started < 2
    assert leases.holder_of("shop/erp-to-shop") == me
    assert leases.release("shop/erp-to-shop", me)


@pytest.mark.realdb
def test_postgresql_lock_keys_are_per_schema(tmp_path):
    """Two state stores on one server (schemas): the same lease name does not collide."""
    with store_url("postgresql", tmp_path) as a_url, store_url("postgresql", tmp_path) as b_url:
        a, b = open_state(a_url, migrate=False), open_state(b_url, migrate=False)
        try:
            assert Leases(a).acquire("shop/erp-to-shop", "a", 30)
            assert Leases(b).acquire("shop/erp-to-shop", "b", 30)
            assert Leases(a).is_alive("shop/erp-to-shop", "a")
            assert Leases(a).release("shop/erp-to-shop", "a") and Leases(b).release("shop/erp-to-shop", "b")
        finally:
            a.close()
            b.close()


@pytest.mark.realdb
def test_postgresql_session_lost_is_re_taken_on_renew(tmp_path):
    """The server ended the lock's session (restart, admin): the keeper takes the lock again
    while it is free; once another holder has it, renewing says the lease is lost."""
    with store_url("postgresql", tmp_path) as url:
        store = open_state(url, migrate=False)
        try:
            leases = Leases(store)
            assert leases.acquire("p/d", "a", 30)

            def kill_lock_sessions() -> None:
                with store.engine.connect() as conn:
                    conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                      "WHERE application_name = 'syncd lease p/d'"))
                    conn.commit()

            kill_lock_sessions()
            assert leases.renew("p/d", "a", 30), "the free lock is taken again"
            assert leases.is_alive("p/d", "a")
            kill_lock_sessions()
            # Another instance (on another host: it cannot prove us dead) takes the free lock and,
            # our row having expired, the lease.
            clock = Clock()
            clock.advance(60)
            thief = Leases(store, clock=clock)
            from syncd.state import leases as module

            mine = module._HELD.pop(thief._locks.key("p/d"))  # as if in another process
            try:
                assert thief.take("p/d", "b", 30) is not None
            finally:
                theirs = module._HELD.pop(thief._locks.key("p/d"))
                module._HELD[thief._locks.key("p/d")] = mine
            assert not leases.renew("p/d", "a", 30), "lost: another holder has the lock"
            leases.release("p/d", "a")
            theirs.handle.close()
        finally:
            store.close()

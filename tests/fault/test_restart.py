"""`syncd run` SIGKILLed mid-work and restarted at once (systemd's Restart=on-failure), on a
SQLite and a PostgreSQL state store: the restart settles every password field before new work and
pushes again in its first cycle (the dead process's lease is taken over, not waited out; the
seconds it takes are benchmarks/restart_recovery.py's figure), `status` shows the dead
cycle as interrupted, `syncd sync` right after the kill runs (exit 0); and a restart loop of
20+ kills at random points while the ERP changes ends, after one clean run, with I1-I5 intact.
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support import erp_fixtures
from tests.support.dbs import pg_schema_url
from tests.support.restart_env import (
    Syncd,
    address,
    build_env,
    filled_fields,
    mails_by_recipient,
    shop_numbers,
    state_text,
    wait_for,
)
from tests.support.shops import shop  # noqa: F401 - the fixture: every case for each platform kind
from tests.support.wired_env import SECRET_ENV, TABLE, Env

pytestmark = [pytest.mark.slow, pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")]

POLL = "1h"  # the restarted daemon's poll interval and lease ttl: nothing it does early waits for them
BOUND = 120  # seconds; far below POLL, far above the 1-3 s the benchmark measures (spec I2: "seconds")
KILLS = 20  # the restart loop (issue 11: at least 20)
# Kill points of the loop's rounds, in turn: half of them in the credential stream, so that the
# kills cutting into it do not hang on a few lucky timings.
MODES = ("delay", "credentials", "push", "credentials")


@dataclass
class Install:
    env: Env
    state_url: str | None  # None: the SQLite file under the env's root
    numbers: list[int] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)
    procs: list[Syncd] = field(default_factory=list)

    def start(self, *args: str) -> Syncd:
        p = Syncd(self.env, self.env.root / f"syncd-{len(self.logs)}.log", *args)
        self.logs.append(p.log)
        self.procs.append(p)
        return p

    def add(self, numbers: list[int]) -> None:
        erp_fixtures.insert_addresses(self.env.erp_url, TABLE, [address(n) for n in numbers])
        self.numbers += numbers


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.realdb)])
def install(request, tmp_path, shop, monkeypatch) -> Iterator[Install]:  # noqa: F811
    monkeypatch.setenv(SECRET_ENV, shop.secret)  # for the in-process `status`
    monkeypatch.delenv("SYNCD_CONFIG", raising=False)
    with ExitStack() as stack:
        state_url = None if request.param == "sqlite" else stack.enter_context(pg_schema_url("restart"))
        numbers = list(range(30000, 30024))
        inst = Install(build_env(tmp_path, shop.sandbox, [address(n) for n in numbers], state_url=state_url),
                       state_url, numbers)
        try:
            yield inst
        finally:
            for p in inst.procs:
                if p.proc.poll() is None:
                    p.proc.kill()
                    p.proc.wait()


def check_invariants(inst: Install) -> None:
    e = inst.env
    counts: dict[str, int] = {}
    for n in shop_numbers(e):
        counts[n] = counts.get(n, 0) + 1
    # every address in the shop, and one customer per address (I4)
    assert sorted(counts) == sorted(str(n) for n in inst.numbers), "addresses missing from the shop"
    assert {n: c for n, c in counts.items() if c != 1} == {}, "a second customer for one address"
    mails = mails_by_recipient(e)
    passwords = set()
    for n in inst.numbers:
        email = address(n)["email"].lower()
        got = mails.get(email, [])
        assert got, f"no credentials mail for {n} (I1)"
        assert len(got) <= 2 and len(set(got)) == 1, f"{n}: {len(got)} mails, {len(set(got))} passwords (I5)"
        assert e.kit.login(email, got[-1]), f"the mailed password of {n} does not log in (I1)"
        passwords.add(got[-1])
    assert filled_fields(e) == {}, "a password left in an ERP field (I2)"
    logs = "\n".join(p.read_text(errors="replace") for p in inst.logs).encode()
    state = state_text(e, inst.state_url)
    for pw in passwords:  # I3
        assert pw.encode() not in logs and pw.encode() not in state


def kill_in_flight(inst: Install, p: Syncd) -> dict[int, str]:
    """SIGKILL ``p`` the moment a password field holds a password; the fields it left."""
    wait_for(lambda: filled_fields(inst.env), "a password field in flight", 90, every=0.005, alive=p)
    p.kill()
    left = filled_fields(inst.env)
    assert left, "the kill came too late to leave a password in flight"
    return left


def last_cycle(inst: Install, capsys) -> dict:
    code, out, err = inst.env.cli(capsys, "status", "--json")
    assert code == 0, err
    return json.loads(out)["platforms"][0]["last_cycle"]


def _first(p: Syncd, event: str) -> int | None:
    """Index of the first log event ``event`` of ``p``."""
    return next((i for i, ev in enumerate(p.events()) if ev.get("event") == event), None)


def test_restart_after_sigkill_settles_and_resumes_in_its_first_cycle(install: Install, capsys):
    inst, e = install, install.env
    e.shop.faults.latency = 0.03  # a slower shop keeps passwords in flight longer

    # 1. Killed mid-credentials: `status` says interrupted, and `syncd sync` runs at once.
    kill_in_flight(inst, inst.start())
    wait_for(lambda: last_cycle(inst, capsys)["state"] == "interrupted", "status: interrupted", 5,
             every=0.1)
    last = last_cycle(inst, capsys)
    assert last["finished"] is None and last["ok"] is False
    sync = inst.start("sync")
    assert sync.proc.wait(timeout=120) == 0, sync.log.read_text()[-3000:]
    assert filled_fields(e) == {} and len(shop_numbers(e)) == len(inst.numbers)

    # 2. More addresses; the daemon is killed in flight again and restarted at once, while the ERP
    # has changed meanwhile.
    inst.add(list(range(30100, 30124)))
    killed = inst.start()
    kill_in_flight(inst, killed)
    fresh = [30200, 30201]
    inst.add(fresh)
    before = set(shop_numbers(e))
    # The restart polls once an hour and would wait an hour for a lease: whatever it settles and
    # pushes within the bound below it does in its first cycle, not after a poll interval or a
    # lease expiry. (How many seconds that takes is benchmarks/restart_recovery.py's figure; a
    # wall-clock bound here only measured the machine's load.)
    slow = e.config.read_text().replace('poll_interval = "1s"', f'poll_interval = "{POLL}"')
    stop = 'shutdown_timeout = "20s"'
    e.config.write_text(slow.replace(stop, f'{stop}\nlease_ttl = "{POLL}"'))
    assert f'lease_ttl = "{POLL}"' in e.config.read_text()
    restarted = inst.start()
    t0 = restarted.started
    settled = wait_for(lambda: not filled_fields(e), "settled password fields", BOUND, alive=restarted) - t0
    pushed = wait_for(lambda: set(shop_numbers(e)) - before, "a new push", BOUND, alive=restarted) - t0
    print(f"restart: fields settled after {settled:.2f}s, first new push after {pushed:.2f}s")
    took_over = [ev for ev in restarted.events() if ev.get("event", "").startswith("took over the lease")]
    assert took_over, "the restart should have taken over the dead process's lease"
    waited_for_the_dead = [ev for ev in restarted.events() if f":{killed.proc.pid}:" in str(ev.get("holder"))]
    assert waited_for_the_dead == [], "the restart waited for the killed process's lease"
    # In order: the sweep (every field settled) before any new work, and the new push in the
    # first erp-to-shop cycle.
    wait_for(lambda: _first(restarted, "address pushed") is not None, "the push in the log", 30,
             alive=restarted)
    sweep_done, pushed_at = _first(restarted, "start-up sweep done"), _first(restarted, "address pushed")
    assert sweep_done is not None and sweep_done < pushed_at, "new work before the start-up sweep"
    cycles_before_push = [ev for ev in restarted.events()[:pushed_at]
                          if ev.get("event") == "cycle started" and ev.get("direction") == "erp-to-shop"]
    assert len(cycles_before_push) == 1, "the new push should come from the restart's first cycle"

    wait_for(lambda: len(shop_numbers(e)) == len(inst.numbers) and len(e.outbox_files()) >= len(inst.numbers)
             and not filled_fields(e), "all addresses pushed and mailed", 120, every=0.1, alive=restarted)
    assert restarted.stop() == 0
    check_invariants(inst)


def test_restart_loop_with_the_erp_changing(install: Install):
    """SIGKILL `syncd run` 20 times at random points while addresses are added and changed
    between kills: after a random delay (start-up, sweep), in the push (a new customer just
    reached the shop), in the credential stream (a password field just written by this
    process - half of the rounds); then one clean `syncd sync`."""
    inst, e = install, install.env
    e.shop.faults.latency = 0.02
    rng = random.Random(11_2026)
    next_number = 31000
    cut_in = 0
    for round_ in range(KILLS):
        new = list(range(next_number, next_number + 4))
        next_number += 4
        inst.add(new)
        for n in rng.sample(inst.numbers, 2):
            erp_fixtures.update_address(e.erp_url, TABLE, n, {"city": f"Neustadt {rng.randrange(1000)}"})
        before = set(shop_numbers(e))
        # Fields a previous kill left filled are the start-up sweep's; a kill "in the credential
        # stream" must meet a password this process wrote.
        left = set(filled_fields(e))
        p = inst.start()

        def fresh_fields() -> set[int]:
            return set(filled_fields(e)) - left

        mode = MODES[round_ % len(MODES)]
        moment = {"delay": lambda: False, "push": lambda: set(shop_numbers(e)) - before,
                  "credentials": fresh_fields}[mode]
        try:
            wait_for(moment, "the kill point", rng.uniform(0.5, 2.5) if mode == "delay" else 15,
                     every=0.002, alive=p)
            if mode != "credentials":
                time.sleep(rng.uniform(0, 0.2))  # a field is in flight for tens of ms only
        except AssertionError:
            pass  # the delay ran out, or the point was never reached: kill anyway
        cut_in += bool(fresh_fields())
        p.kill()
    clean = inst.start("sync")
    assert clean.proc.wait(timeout=180) == 0, clean.log.read_text()[-3000:]
    print(f"kills with a password of the killed process in flight: {cut_in} of {KILLS}")
    assert cut_in >= 5, "the kills must really cut into the credential work"
    check_invariants(inst)
    # the shop holds the addresses as the ERP has them now, changes made between kills included
    cities = {str(a.number): {a.city} for a in e.kit.accounts()}
    stale = {n: city for n, city in erp_cities(e).items() if city not in cities[str(n)]}
    assert stale == {}, f"changes not in the shop: {stale}"


def erp_cities(e: Env) -> dict[int, str]:
    import sqlite3

    with sqlite3.connect(e.erp_db) as conn:
        return dict(conn.execute(f'SELECT "AdrNr", "Ort" FROM "{TABLE}"').fetchall())

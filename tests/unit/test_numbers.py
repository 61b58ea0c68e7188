"""Address-number allocation: the persisted counter and the skip / range / conflict rules.

The counter runs on the real state store (SQLite file, and PostgreSQL in its own schema); the
ERP side here is a small in-memory set of taken numbers, because the rules are about which
number comes next. The flow tests run the same allocator against real ERP tables.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text

from syncd.core.errors import PermanentError
from syncd.flows.numbers import NumberAllocator, NumberPolicy, NumberRefused
from syncd.state.allocations import Allocations
from syncd.state.db import open_state
from tests.support.dbs import pg_url, unique_name


class TakenNumbers:
    """The part of an ERP the allocator asks: which numbers exist."""

    def __init__(self, taken: set[int] | None = None) -> None:
        self.taken = set(taken or ())
        self.asked: list[int] = []

    def number_exists(self, number: int) -> bool:
        self.asked.append(number)
        return number in self.taken


@pytest.fixture
def store(tmp_path):
    s = open_state(f"sqlite:///{tmp_path / 'state.db'}")
    yield s
    s.close()


@pytest.fixture
def pg_store() -> Iterator:
    url = pg_url()
    schema = unique_name("alloc")
    admin = create_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    s = open_state(f"{url}?options=-csearch_path%3D{schema}")
    try:
        yield s
    finally:
        s.close()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def policy(start=10019, rng=(10000, 69999), allow=False, platform="shop") -> NumberPolicy:
    return NumberPolicy(platform=platform, start=start, debtor_range=rng, allow_outside=allow)


# --- the counter -----------------------------------------------------------------------------


def test_counter_starts_at_floor_and_never_hands_out_a_number_twice(tmp_path):
    url = f"sqlite:///{tmp_path / 'state.db'}"
    with open_state(url) as s:
        a = Allocations(s)
        assert a.peek("shop") is None
        assert [a.reserve("shop", floor=10019) for _ in range(3)] == [10019, 10020, 10021]
    # a restart continues where the last process stopped
    with open_state(url) as s:
        a = Allocations(s)
        assert a.peek("shop") == 10022
        assert a.reserve("shop", floor=10019) == 10022


def test_counter_is_per_platform(store):
    a = Allocations(store)
    assert a.reserve("one", floor=100) == 100
    assert a.reserve("two", floor=500) == 500
    assert a.reserve("one", floor=100) == 101


def test_raised_floor_jumps_ahead_lowered_floor_does_not_go_back(store):
    a = Allocations(store)
    assert a.reserve("shop", floor=10019) == 10019
    assert a.reserve("shop", floor=20000) == 20000  # operator moved next_address_number up
    assert a.reserve("shop", floor=10019) == 20001  # ...and back down: no reuse of 10020..20000
    assert a.peek("shop") == 20002


def test_refused_candidate_is_not_consumed(store):
    a = Allocations(store)

    def refuse(number: int) -> None:
        raise ValueError(number)

    with pytest.raises(ValueError):
        a.reserve("shop", floor=7, accept=refuse)
    assert a.peek("shop") is None
    assert a.reserve("shop", floor=7) == 7
    with pytest.raises(ValueError):
        a.reserve("shop", floor=7, accept=refuse)
    assert a.peek("shop") == 8


def test_release_only_gives_back_the_newest_number(store):
    a = Allocations(store)
    first = a.reserve("shop", floor=1)
    second = a.reserve("shop", floor=1)
    assert not a.release("shop", first)  # someone holds a later number: a gap beats a reuse
    assert a.release("shop", second)
    assert a.reserve("shop", floor=1) == second


def _hammer(store, threads=8, each=25) -> list[int]:
    got: list[int] = []
    lock = threading.Lock()
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads)

    def worker() -> None:
        try:
            barrier.wait()
            a = Allocations(store)
            mine = [a.reserve("shop", floor=5000) for _ in range(each)]
            with lock:
                got.extend(mine)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    ts = [threading.Thread(target=worker) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors
    return got


def test_concurrent_reservations_on_sqlite_are_distinct_and_gapless(store):
    got = _hammer(store)
    assert sorted(got) == list(range(5000, 5000 + 200))


@pytest.mark.realdb
def test_concurrent_reservations_on_postgresql_are_distinct_and_gapless(pg_store):
    got = _hammer(pg_store)
    assert sorted(got) == list(range(5000, 5000 + 200))


# --- the allocator rules ---------------------------------------------------------------------


def test_taken_numbers_are_skipped_and_stay_consumed(store):
    erp = TakenNumbers({10019, 10020, 10022})
    alloc = NumberAllocator(Allocations(store), erp, policy())
    assert alloc.reserve_free() == 10021
    assert alloc.reserve_free() == 10023
    assert Allocations(store).peek("shop") == 10024


def test_a_long_taken_block_is_crossed_in_one_reservation(store):
    erp = TakenNumbers(set(range(10019, 10519)))
    calls = []
    allocations = Allocations(store)
    original = allocations.reserve

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    allocations.reserve = counting  # type: ignore[method-assign]
    assert NumberAllocator(allocations, erp, policy()).reserve_free() == 10519
    assert len(calls) == 2  # not 500 state-store round trips


def test_gaps_in_the_erp_are_used(store):
    erp = TakenNumbers({10019, 10021})
    alloc = NumberAllocator(Allocations(store), erp, policy())
    assert [alloc.reserve_free() for _ in range(3)] == [10020, 10022, 10023]


def test_key_conflict_at_insert_takes_the_next_number(store):
    """The ERP gets 10019 between our existence check and our insert."""
    erp = TakenNumbers()
    alloc = NumberAllocator(Allocations(store), erp, policy())
    tried = []

    def insert(number: int) -> bool:
        tried.append(number)
        if number == 10019:
            erp.taken.add(number)  # the concurrent writer won
            return False
        erp.taken.add(number)
        return True

    assert alloc.place(insert) == 10020
    assert tried == [10019, 10020]
    assert alloc.reserve_free() == 10021


def test_permanent_insert_error_gives_the_number_back(store):
    alloc = NumberAllocator(Allocations(store), TakenNumbers(), policy())

    def insert(number: int) -> bool:
        raise PermanentError("zip too long")

    with pytest.raises(PermanentError):
        alloc.place(insert)
    assert alloc.reserve_free() == 10019


def test_number_outside_debtor_range_is_refused_and_not_consumed(store):
    erp = TakenNumbers({69999})
    alloc = NumberAllocator(Allocations(store), erp, policy(start=69998))
    assert alloc.reserve_free() == 69998
    with pytest.raises(NumberRefused) as info:
        alloc.reserve_free()  # 69999 taken, 70000 outside
    assert info.value.number == 70000
    message = str(info.value)
    assert "70000" in message and "10000-69999" in message and "allow_numbers_outside_debtor_range" in message
    assert Allocations(store).peek("shop") == 70000  # 69999 is taken: consumed; 70000 is not


def test_start_below_the_range_is_refused(store):
    alloc = NumberAllocator(Allocations(store), TakenNumbers(), policy(start=500))
    with pytest.raises(NumberRefused):
        alloc.reserve_free()
    assert Allocations(store).peek("shop") is None


def test_outside_range_allowed(store):
    alloc = NumberAllocator(Allocations(store), TakenNumbers({69999}), policy(start=69999, allow=True))
    assert alloc.reserve_free() == 70000


def test_preview_reserves_nothing(store):
    erp = TakenNumbers({10020})
    allocations = Allocations(store)
    allocations.reserve("shop", floor=10019)  # 10019 already handed out earlier
    alloc = NumberAllocator(allocations, erp, policy())
    preview = alloc.preview()
    assert [next(preview) for _ in range(3)] == [10021, 10022, 10023]
    assert allocations.peek("shop") == 10020
    assert alloc.reserve_free() == 10021


def test_preview_stops_at_the_range_end(store):
    alloc = NumberAllocator(Allocations(store), TakenNumbers(), policy(start=69998))
    preview = alloc.preview()
    assert next(preview) == 69998 and next(preview) == 69999
    with pytest.raises(NumberRefused):
        next(preview)

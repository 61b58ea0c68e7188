"""The GC pause shared by concurrent cycles (``syncd.core.gcpause``)."""

from __future__ import annotations

import gc
import threading
import weakref

from syncd.core.gcpause import gc_paused


class Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector frees it


def test_a_job_ending_under_a_still_held_pause_collects_its_garbage_cycles() -> None:
    """Cycles of several platforms may overlap for hours: each one that ends still frees the
    cyclic garbage it left, though the collector stays paused for the others."""
    held, release = threading.Event(), threading.Event()

    def long_cycle() -> None:
        with gc_paused():
            held.set()
            release.wait(10)

    other = threading.Thread(target=long_cycle)
    other.start()
    try:
        assert held.wait(10)
        with gc_paused():
            garbage = Node()
            ref = weakref.ref(garbage)
            del garbage
            assert ref() is not None, "kept while the collector is paused"
        assert not gc.isenabled(), "the other cycle still runs"
        assert ref() is None, "collected when its cycle ended"
    finally:
        release.set()
        other.join(10)
    assert gc.isenabled()


def test_the_last_job_restores_the_collector_even_when_it_fails() -> None:
    assert gc.isenabled()
    try:
        with gc_paused():
            assert not gc.isenabled()
            raise RuntimeError("cycle failed")
    except RuntimeError:
        pass
    assert gc.isenabled()


def test_a_collector_disabled_by_the_host_stays_disabled() -> None:
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_pause_nested_in_the_same_thread_ends_without_collecting(monkeypatch) -> None:
    """The shop push inside a cycle: its end is no reason for a collection."""
    calls = []
    monkeypatch.setattr(gc, "collect", lambda *a: calls.append(a))
    with gc_paused():
        with gc_paused():
            pass
        assert not gc.isenabled()
    assert gc.isenabled() and calls == []

"""Push internals the benchmark relies on: the GC pause always ends, lookup groups tile the push."""

from __future__ import annotations

import gc
import threading

import pytest

from syncd.connectors.shopware6.push import FIRST_LOOKUP_GROUP, LOOKUP_GROUP, lookup_groups
from syncd.core.gcpause import gc_paused


def test_gc_pause_restores_the_collector_even_when_the_push_fails() -> None:
    assert gc.isenabled()
    with pytest.raises(RuntimeError), gc_paused():
        assert not gc.isenabled()
        raise RuntimeError("push failed")
    assert gc.isenabled()


def test_concurrent_pushes_share_one_pause_and_a_disabled_collector_stays_disabled() -> None:
    inner_started, release = threading.Event(), threading.Event()

    def other_push() -> None:
        with gc_paused():
            inner_started.set()
            release.wait(5)

    with gc_paused():
        worker = threading.Thread(target=other_push)
        worker.start()
        inner_started.wait(5)
    assert not gc.isenabled()  # the other push still runs
    release.set()
    worker.join(5)
    assert gc.isenabled()

    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()  # the operator's (or host's) choice is kept
    finally:
        gc.enable()


@pytest.mark.parametrize("total,batch", [(0, 3), (7, 3), (20_000, 250), (100_000, 250), (12_345, 500)])
def test_lookup_groups_cover_every_address_once_in_whole_batches(total: int, batch: int) -> None:
    groups = list(lookup_groups(total, batch))
    covered = [i for start, end in groups for i in range(start, end)]
    assert covered == list(range(total))
    for start, end in groups[:-1]:
        assert (end - start) % batch == 0
        assert end - start <= max(LOOKUP_GROUP, batch)
    if groups:
        first = groups[0][1] - groups[0][0]
        assert first <= max(FIRST_LOOKUP_GROUP + batch, batch) or first == total

"""One cycle (``CycleRunner``): run under its lease, after the platform's start-up sweep,
with the cyclic GC paused, recorded in the state store, measured, and never allowed to take the
scheduler down.

When cycles run (APScheduler, one job per platform and direction) is ``syncd.shell.timetable``; the
daemon (``syncd.shell.daemon``) owns signals, notifications and reloads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import structlog

from syncd.core.domain import Direction
from syncd.core.gcpause import gc_paused
from syncd.core.redaction import error_text
from syncd.state.cycles import Cycles
from syncd.state.leases import LeaseKeeper, Leases, lease_name

if TYPE_CHECKING:
    from syncd.flows.context import CycleReport, PlatformContext
    from syncd.shell.metrics import Metrics
    from syncd.state.db import StateStore

log = structlog.get_logger("syncd.scheduler")

Job = Callable[["PlatformContext"], "CycleReport"]
Sweep = Callable[["PlatformContext"], object]  # a returned CycleReport's counts are logged

# The start-up sweep settles password fields, which only the erp-to-shop direction writes: it
# runs under that direction's lease so it never overlaps another instance's credential work.
SWEEP_LEASE_DIRECTION = str(Direction.ERP_TO_SHOP)




class CycleOutcome(StrEnum):
    OK = "ok"
    FAILED = "failed"
    STANDBY = "standby"  # another instance holds the lease
    WAITING = "waiting"  # the platform's start-up sweep has not completed yet
    STOPPED = "stopped"  # the daemon is stopping: no new cycle starts




@dataclass
class CycleResult:
    platform: str
    direction: str
    outcome: CycleOutcome
    cycle_id: int | None = None
    report: CycleReport | None = None
    error: str | None = None
    duration: float = 0.0



@dataclass
class SweepGate:
    """Per platform: has the start-up sweep completed? Cycles of a platform wait until it has."""

    done: set[str] = field(default_factory=set)
    locks: dict[str, threading.Lock] = field(default_factory=dict)
    _guard: threading.Lock = field(default_factory=threading.Lock)

    def lock_for(self, platform: str) -> threading.Lock:
        with self._guard:
            return self.locks.setdefault(platform, threading.Lock())


class CycleRunner:
    """One cycle of one platform/direction: lease, sweep gate, record, run (with the cyclic GC
    paused, see ``syncd.core.gcpause``), record, release."""

    def __init__(
        self,
        store: StateStore,
        *,
        holder: str,
        lease_ttl: float,
        metrics: Metrics | None = None,
        sweep: Sweep | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.store = store
        self.holder = holder
        self.lease_ttl = float(lease_ttl)
        self.metrics = metrics
        self.sweep = sweep
        self.leases = Leases(store, clock=clock) if clock else Leases(store)
        self.cycles = Cycles(store, clock=clock) if clock else Cycles(store)
        self.gate = SweepGate()
        self._inflight: dict[int, tuple[str, str]] = {}
        self._inflight_lock = threading.Condition()
        self._active = 0
        self._closed = False

    # A distinct holder per direction: the sweep (under the erp-to-shop lease) started by a
    # shop-to-erp cycle of this very process must still be refused while our own erp-to-shop
    # cycle runs.
    def _holder(self, direction: str) -> str:
        return f"{self.holder}:{direction}"

    # --- in-flight bookkeeping (graceful shutdown waits on it) --------------------------
    @property
    def active(self) -> int:
        with self._inflight_lock:
            return self._active

    def wait_idle(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._inflight_lock:
            while self._active:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._inflight_lock.wait(remaining)
        return True

    def abandon_inflight(self, reason: str) -> list[int]:
        """Close the records of cycles still running at exit, so `syncd status` does not show
        them running forever."""
        with self._inflight_lock:
            ids = dict(self._inflight)
            self._inflight.clear()  # the threads, should they ever finish, must not overwrite this
        for cycle_id, (platform, direction) in ids.items():
            try:
                self.cycles.finish(cycle_id, ok=False, counts={}, error=reason)
            except Exception as exc:
                log.warning("could not close cycle record", cycle=cycle_id, error=error_text(exc))
            log.error("cycle abandoned", platform=platform, direction=direction, cycle=cycle_id,
                      reason=reason)
        return list(ids)

    def record_failed(self, platform: str, direction: str, error: str) -> None:
        """A cycle that could not even start (its platform's adapters cannot be built): a
        failed record all the same, so `syncd status` shows it. Best effort."""
        try:
            cycle_id = self.cycles.start(platform, direction, self._holder(direction))
            self.cycles.finish(cycle_id, ok=False, counts={}, error=error)
        except Exception as exc:
            log.warning("could not record the failed cycle", platform=platform, direction=direction,
                        error=error_text(exc))
        if self.metrics is not None:
            self.metrics.record_cycle(platform, direction, None, 0.0, False, error)

    def release_all(self, platforms: list[str], directions: list[str]) -> None:
        for platform in platforms:
            for direction in directions:
                self._release(lease_name(platform, direction), self._holder(direction))
            self._release(lease_name(platform, SWEEP_LEASE_DIRECTION), self._holder("sweep"))

    # --- the sweep ----------------------------------------------------------------------
    def ensure_swept(self, ctx: PlatformContext, *, held_holder: str | None = None) -> bool:
        """Run the platform's start-up sweep unless done. True when done (now or before).

        ``held_holder``: the caller already holds the sweep lease under this holder id."""
        platform = ctx.platform.name
        if self.sweep is None or platform in self.gate.done:
            return True
        lock = self.gate.lock_for(platform)
        # A sibling direction of ours may be sweeping right now: wait for it rather than skip
        # a whole poll interval.
        if not lock.acquire(timeout=self.lease_ttl):
            return False
        try:
            if platform in self.gate.done:
                return True
            name = lease_name(platform, SWEEP_LEASE_DIRECTION)
            holder = held_holder or self._holder("sweep")
            if held_holder is None:
                grant = self.leases.take(name, holder, self.lease_ttl)
                if grant is None:
                    log.info("start-up sweep waits: lease held elsewhere", platform=platform,
                             holder=self.leases.holder_of(name))
                    return False
                if grant.previous is not None:
                    self._took_over(platform, SWEEP_LEASE_DIRECTION, grant.previous, holder)
            try:
                started = time.monotonic()
                log.info("start-up sweep", platform=platform)
                with LeaseKeeper(self.leases, name, holder, self.lease_ttl):
                    outcome = self.sweep(ctx)
                self.gate.done.add(platform)
                counts = getattr(outcome, "counts", None)  # the real sweep returns a CycleReport
                log.info("start-up sweep done", platform=platform,
                         seconds=round(time.monotonic() - started, 3), counts=dict(counts or {}))
                return True
            except Exception as exc:
                log.error("start-up sweep failed; the platform waits until it succeeds",
                          platform=platform, error=error_text(exc), exc_info=True)
                return False
            finally:
                if held_holder is None:
                    self._release(name, holder)
        finally:
            lock.release()

    # --- one cycle ----------------------------------------------------------------------
    def close(self) -> None:
        """No cycle starts after this; those running finish (see ``wait_idle``)."""
        with self._inflight_lock:
            self._closed = True

    def run(self, ctx: PlatformContext, direction: str, job: Job) -> CycleResult:
        # Counted from the very start, under the same lock as ``close``: a cycle either starts
        # before the stop (and the stop waits for it) or not at all.
        with self._inflight_lock:
            if self._closed:
                return CycleResult(ctx.platform.name, direction, CycleOutcome.STOPPED)
            self._active += 1
        try:
            return self._run(ctx, direction, job)
        finally:
            with self._inflight_lock:
                self._active -= 1
                self._inflight_lock.notify_all()

    def _run(self, ctx: PlatformContext, direction: str, job: Job) -> CycleResult:
        platform = ctx.platform.name
        name = lease_name(platform, direction)
        holder = self._holder(direction)
        bound = log.bind(platform=platform, direction=direction)
        if self.sweep is not None and platform not in self.gate.done:
            # Sweep (or wait for a sibling direction's sweep) before taking the cycle's own lease:
            # the sweep runs under the erp-to-shop lease, so a cycle that took that lease while
            # this very process was sweeping was skipped as "another instance" for a whole poll.
            # False (the lease is held by another instance) falls through to the usual answer.
            self.ensure_swept(ctx)
        grant = self.leases.take(name, holder, self.lease_ttl)
        if grant is None:
            other = self.leases.holder_of(name)
            bound.info("cycle skipped: another instance holds the lease", holder=other)
            if self.metrics is not None:
                self.metrics.record_standby(platform, direction, other)
            return CycleResult(platform, direction, CycleOutcome.STANDBY)
        try:
            if grant.previous is not None:
                self._took_over(platform, direction, grant.previous, holder)
            held = holder if direction == SWEEP_LEASE_DIRECTION else None
            if not self.ensure_swept(ctx, held_holder=held):
                bound.info("cycle skipped: start-up sweep not done yet")
                return CycleResult(platform, direction, CycleOutcome.WAITING)
            return self._run_recorded(ctx, platform, direction, job, name, holder, bound)
        finally:
            self._release(name, holder)

    def _took_over(self, platform: str, direction: str, previous: str, holder: str) -> None:
        """The lease's row named another holder: a clean release deletes it, so that holder
        ended (or was cut off) mid-work, maybe with passwords in flight. Its unfinished cycles
        are marked interrupted, and the platform is swept again before new work, as if this
        process had just started (I2)."""
        sweeps = direction == SWEEP_LEASE_DIRECTION and self.sweep is not None
        log.warning("took over the lease of a holder that did not release it", platform=platform,
                    direction=direction, previous_holder=previous, sweep_first=sweeps)
        try:
            marked = self.cycles.mark_interrupted(
                platform, direction,
                f"interrupted: its process ended without finishing (holder {previous}); "
                f"taken over by {holder}",
            )
        except Exception as exc:
            log.warning("could not mark the interrupted cycle", platform=platform, error=error_text(exc))
        else:
            if marked:
                log.warning("cycle interrupted by the end of its process", platform=platform,
                            direction=direction, cycles=marked, previous_holder=previous)
        if sweeps:
            self.gate.done.discard(platform)

    def _release(self, name: str, holder: str) -> None:
        try:
            self.leases.release(name, holder)
        except Exception as exc:  # it expires by itself; say so rather than fail the cycle
            log.warning("lease release failed; it expires after its ttl", lease=name, error=error_text(exc))

    def _run_recorded(
        self, ctx: PlatformContext, platform: str, direction: str, job: Job, name: str, holder: str,
        bound: Any,
    ) -> CycleResult:
        cycle_id = self.cycles.start(platform, direction, holder)
        with self._inflight_lock:
            self._inflight[cycle_id] = (platform, direction)
        started = time.monotonic()
        report: CycleReport | None = None
        error: str | None = None
        keeper = LeaseKeeper(self.leases, name, holder, self.lease_ttl)
        try:
            # The cycle is bulk work (a push, a credential run, an import): the runner pauses the
            # cyclic GC for all of it, so neither a connector nor a flow switches it.
            with keeper, gc_paused():
                bound.info("cycle started", cycle=cycle_id)
                report = job(ctx)
        except Exception as exc:
            error = error_text(exc)
            bound.error("cycle failed", cycle=cycle_id, error=error, exc_info=True)
        if keeper.lost and error is None:
            # The work is done, but another instance may have done the same at the same time:
            # visible as a failed cycle, so that the operator sees the database trouble behind it.
            error = (f"lease {name} lost during the cycle: its database session ended and its row was "
                     f"taken over after lease_ttl ({self.lease_ttl:g}s); another instance may have run "
                     "it too")
        if error is None and report is not None and report.config_faults:
            # Work waits for the operator (a refused SMTP login, a missing mapping target): the
            # cycle ran, but cron and monitoring must see it as failed, with the reason.
            error = report.config_fault_text()
            bound.error("cycle deferred by configuration", cycle=cycle_id, error=error)
        duration = time.monotonic() - started
        counts = dict(report.counts) if report is not None else {}
        ok = error is None
        try:
            with self._inflight_lock:
                still_ours = self._inflight.pop(cycle_id, None) is not None
            if still_ours:
                self.cycles.finish(cycle_id, ok=ok, counts=counts, error=error)
        except Exception as exc:
            bound.error("could not record the cycle's end", cycle=cycle_id, error=error_text(exc))
        if self.metrics is not None:
            self.metrics.record_cycle(platform, direction, report, duration, ok, error)
        if ok:
            bound.info("cycle finished", cycle=cycle_id, seconds=round(duration, 3), counts=counts)
        outcome = CycleOutcome.OK if ok else CycleOutcome.FAILED
        return CycleResult(platform, direction, outcome, cycle_id, report, error, duration)

"""When cycles run: APScheduler with one daemon thread per run, one interval job per platform
and direction, and the pruning of old cycle records. What a cycle does is
``syncd.shell.scheduler.CycleRunner``.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from apscheduler.executors.base import BaseExecutor, run_job
from apscheduler.schedulers.background import BackgroundScheduler

from syncd.state.leases import lease_name

if TYPE_CHECKING:
    from syncd.config.model import PlatformSettings
    from syncd.state.db import StateStore


def poll_interval(settings_interval: float, platform: PlatformSettings) -> float:
    return float(platform.poll_interval if platform.poll_interval is not None else settings_interval)


class DaemonThreadExecutor(BaseExecutor):
    """Each run in its own daemon thread. The stock thread pool's workers are joined at
    interpreter exit, so a cycle hung in a network call would keep a stopping daemon alive past
    its shutdown timeout; the daemon bounds that wait itself (``CycleRunner.wait_idle``)."""

    def _do_submit_job(self, job: Any, run_times: list[datetime]) -> None:
        def target() -> None:
            try:
                events = run_job(job, job._jobstore_alias, run_times, self._logger.name)
            except BaseException:
                self._run_job_error(job.id, *sys.exc_info()[1:])
            else:
                self._run_job_success(job.id, events)

        threading.Thread(target=target, name=f"job:{job.id}", daemon=True).start()


def build_scheduler() -> BackgroundScheduler:
    return BackgroundScheduler(
        executors={"default": DaemonThreadExecutor()},
        job_defaults={"coalesce": True, "max_instances": 1},
        timezone=UTC,
    )


def schedule_cycles(
    scheduler: BackgroundScheduler,
    jobs: Mapping[str, Callable[[str, str], object]],
    intervals: Mapping[str, float],
    *,
    first_run: datetime | None = None,
) -> list[str]:
    """Add one interval job per (platform, direction); ``jobs`` maps direction to the function
    the scheduler calls with (platform, direction). Returns the job ids."""
    ids = []
    start = first_run or datetime.now(UTC)
    for platform, interval in intervals.items():
        for direction, fn in jobs.items():
            job_id = lease_name(platform, direction)
            scheduler.add_job(
                fn,
                "interval",
                seconds=interval,
                args=(platform, direction),
                id=job_id,
                name=job_id,
                replace_existing=True,
                next_run_time=start,
                # A run delayed by a long sibling or a suspended host still runs once (coalesced)
                # within one interval; later than that, the next regular run takes over.
                misfire_grace_time=max(1, int(interval)),
            )
            ids.append(job_id)
    return ids


# Cycle records older than this are deleted: `syncd status` needs the newest only, and a
# minute-by-minute poll writes about a million rows a year per platform and direction.
CYCLE_RETENTION_DAYS = 30


def prune_history(store: StateStore, *, now: datetime, days: int) -> int:
    """Delete ``syncd history`` events older than ``days`` (``[daemon] history_days``); how many.
    Idempotent like ``prune_cycles``."""
    from datetime import timedelta

    from syncd.state.history import History

    return History(store, lambda: now).prune(now - timedelta(days=days))


def prune_cycles(
    store: StateStore, *, now: datetime | None = None, days: float = CYCLE_RETENTION_DAYS
) -> int:
    """Delete cycle records started more than ``days`` ago (also those a crash left open: no
    cycle runs for a month); the number deleted. Idempotent: instances may run it at once."""
    from datetime import timedelta

    from syncd.state.schema import cycles

    cutoff = (now or datetime.now(UTC)) - timedelta(days=days)
    with store.begin() as conn:
        result = conn.execute(
            cycles.delete().where(cycles.c.started < cutoff)
        )
    return int(result.rowcount or 0)

"""The long-running daemon (`syncd run`): scheduler, systemd notifications, pid file, metrics,
reload. Signals and the Windows service's stop event arrive through ``syncd.shell.daemon_signals``;
restarting a running daemon from outside is ``syncd.shell.service_control``.

What runs is injected (``build_context``, ``jobs``, ``sweep``, ``reload``): the CLI plugs in
the real flows, tests plug in small functions. Everything else here is the same in both.

Life cycle: pid file → state store → scheduler (each platform's first cycle starts at once,
after that platform's start-up sweep) → READY → loop (watchdog pings, reloads) → SIGTERM →
STOPPING → no new cycles, the running ones finish within ``shutdown_timeout`` → leases
released → pid file removed → exit 0 (1 when a cycle had to be abandoned).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from syncd.core import redaction
from syncd.core.clock import Clock, utcnow
from syncd.core.errors import ConfigError, SyncdError
from syncd.core.text import clip
from syncd.shell import notify, reloads
from syncd.shell.daemon_signals import external_stop, trap_signals
from syncd.shell.metrics import Metrics, MetricsServer
from syncd.shell.pidfile import AlreadyRunning, PidFile, default_pid_file, store_identity
from syncd.shell.scheduler import (
    CycleOutcome,
    CycleResult,
    CycleRunner,
    Job,
    Sweep,
    error_text,
)
from syncd.shell.timetable import build_scheduler, poll_interval, prune_cycles, prune_history, schedule_cycles
from syncd.state.leases import make_holder
from syncd.state.mailsends import MailSends

if TYPE_CHECKING:
    from syncd.config.model import PlatformSettings, Settings
    from syncd.flows.context import PlatformContext
    from syncd.state.db import StateStore

log = structlog.get_logger("syncd.daemon")

BuildContext = Callable[["PlatformSettings"], "PlatformContext"]
Reload = Callable[[], "Settings"]
HEARTBEAT_ID = "_heartbeat"
HOUSEKEEPING_ID = "_housekeeping"
SEND_LOG_KEEP = timedelta(days=1)  # mail_sends rows older than this count for nothing
HOUSEKEEPING_EVERY = 3600.0
INTERNAL_JOBS = (HEARTBEAT_ID, HOUSEKEEPING_ID)
BOUNCES_JOB = "mail/bounces"  # [mail.bounces]: the bounce mailbox check
RECONCILE_JOB = "reconcile"  # job id suffix: "<platform>/reconcile"
RECONCILE_DIRECTION = "erp-to-shop"  # the direction whose cycle reconciles when due


class Daemon:
    def __init__(
        self,
        settings: Settings,
        *,
        build_context: BuildContext,
        jobs: Mapping[str, Job],
        sweep: Sweep | None = None,
        reload: Reload | None = None,
        reconcile: Job | None = None,
        store: StateStore | None = None,
        pid_file: str | os.PathLike[str] | None | bool = None,
        metrics: Metrics | None = None,
        install_signals: bool = True,
        stop_event: threading.Event | None = None,
        clock: Clock = utcnow,
    ) -> None:
        """``pid_file``: a path, None for the default (``syncd.runtime.default_pid_file``), or
        False for none (Windows service). ``stop_event``: set it to stop the daemon from another
        thread (the Windows service manager). ``reconcile``: the erp-to-shop job in full (a
        cycle plus the reconciliation), run instead of the ordinary one once per platform every
        ``[daemon] reconcile_interval``. ``clock``: the time housekeeping prunes by."""
        if not jobs:
            raise ValueError("the daemon needs at least one job")
        self.settings = settings
        self.clock = clock
        self._build_context = build_context
        self._jobs = dict(jobs)
        self._sweep = sweep
        self._reconcile = reconcile
        self._reconcile_due: set[str] = set()  # platforms whose next erp-to-shop cycle reconciles
        self._reload_fn = reload
        self._store = store
        self._pid_file = pid_file
        self.metrics = metrics if metrics is not None else Metrics()
        self._install_signals = install_signals
        self.stop_event = stop_event or external_stop() or threading.Event()
        self._force_stop = threading.Event()
        self._reload_requested = threading.Event()
        self.holder = make_holder()
        self._contexts: dict[str, PlatformContext] = {}
        self._contexts_lock = threading.Lock()
        self._last_beat = time.monotonic()
        self._beat_every = 1.0
        self.runner: CycleRunner | None = None
        self.metrics_server: MetricsServer | None = None
        self._scheduler: Any = None

    # --- control from outside ------------------------------------------------------------
    def request_stop(self) -> None:
        if self.stop_event.is_set():
            self._force_stop.set()  # a second Ctrl-C: stop waiting for the cycle in flight
        self.stop_event.set()

    def request_reload(self) -> None:
        self._reload_requested.set()

    # --- main ----------------------------------------------------------------------------
    def run(self) -> int:
        """Run until stopped; the process exit code."""
        try:
            with ExitStack() as stack:
                path = self._pid_path()
                if path is not None:
                    stack.enter_context(PidFile(path, store=store_identity(self.settings.daemon.state_url)))
                return self._run(stack)
        except AlreadyRunning as exc:
            log.error("not starting", reason=str(exc))
            return 1
        except ConfigError as exc:
            log.error("configuration error", error=str(exc))
            return 2
        except SyncdError as exc:
            log.error("daemon failed", error=error_text(exc))
            return 1

    def _pid_path(self) -> Path | None:
        if self._pid_file is False:
            return None
        if self._pid_file is None or self._pid_file is True:
            return default_pid_file(self.settings)
        return Path(self._pid_file)

    def _run(self, stack: ExitStack) -> int:
        if self._store is None:
            from syncd.state.db import open_state

            store = open_state(self.settings.daemon.state_url)
            stack.callback(store.close)
        else:
            store = self._store
        self.store = store
        reloads.forget(store)  # a refused reload of an earlier process says nothing about this one
        self.runner = CycleRunner(
            store, holder=self.holder, lease_ttl=self.settings.daemon.lease_ttl, metrics=self.metrics,
            sweep=self._sweep,
        )
        self._contexts = self._build_contexts(self.settings)
        if self._install_signals:
            trap_signals(stack, on_stop=self.request_stop, on_reload=self.request_reload)
        self._start_metrics(stack)
        if logging.getLogger("apscheduler").level == logging.NOTSET:
            # "Running job ..." twice per cycle says nothing our own cycle events do not.
            logging.getLogger("apscheduler").setLevel(logging.WARNING)

        watchdog = notify.watchdog_interval()
        self._beat_every = min(5.0, watchdog / 4) if watchdog else 5.0
        scheduler = build_scheduler()
        self._scheduler = scheduler
        self._schedule(self.settings)
        scheduler.add_job(self._heartbeat, "interval", seconds=self._beat_every, id=HEARTBEAT_ID,
                          misfire_grace_time=None)
        scheduler.add_job(self._housekeeping, "interval", seconds=HOUSEKEEPING_EVERY, id=HOUSEKEEPING_ID,
                          next_run_time=datetime.now(UTC) + timedelta(minutes=1), misfire_grace_time=None)
        scheduler.start()
        self._last_beat = time.monotonic()
        platforms = ", ".join(p.name for p in self.settings.platforms)
        log.info("daemon started", platforms=platforms, jobs=sorted(self._jobs), holder=self.holder,
                 watchdog=watchdog)
        notify.ready(f"running: {platforms}")

        next_ping = 0.0
        tick = min(0.5, watchdog / 4) if watchdog else 0.5
        try:
            while not self.stop_event.wait(tick):
                if self._reload_requested.is_set():
                    self._reload_requested.clear()
                    self._reload()
                if watchdog and time.monotonic() >= next_ping and self.healthy():
                    notify.watchdog()
                    next_ping = time.monotonic() + watchdog / 2
        except BaseException:
            # A bug in the loop itself: no new cycles, and let the caller report it (exit 1).
            self.runner.close()
            scheduler.shutdown(wait=False)
            notify.stopping("failed, see log")
            raise
        return self._shutdown()

    def _shutdown(self) -> int:
        assert self.runner is not None
        timeout = float(self.settings.daemon.shutdown_timeout)
        busy = self.runner.active
        log.info("daemon stopping", cycles_in_flight=busy, timeout=timeout)
        notify.stopping("stopping: finishing the cycle in flight" if busy else "stopping")
        self.runner.close()
        self._scheduler.shutdown(wait=False)
        deadline = time.monotonic() + timeout
        while not self.runner.wait_idle(0.2):
            if self._force_stop.is_set() or time.monotonic() >= deadline:
                break
        code = 0
        if self.runner.active:
            why = "forced stop" if self._force_stop.is_set() else f"shutdown timeout ({timeout:g}s)"
            self.runner.abandon_inflight(f"abandoned at {why}: the next start settles its records")
            code = 1
        self.runner.release_all([p.name for p in self.settings.platforms], list(self._jobs))
        log.info("daemon stopped", exit_code=code)
        return code

    # --- pieces ----------------------------------------------------------------------------
    def _start_metrics(self, stack: ExitStack) -> None:
        port = self.settings.daemon.metrics_port
        if port is None:
            return
        try:
            server = MetricsServer(self.metrics, self.settings.daemon.metrics_host, port)
        except OSError as exc:
            raise SyncdError(
                f"cannot serve metrics on {self.settings.daemon.metrics_host}:{port}: {exc.strerror}; "
                "change [daemon] metrics_port or stop what uses it"
            ) from exc
        self.metrics_server = server.start()
        stack.callback(server.stop)

    def _build_contexts(self, settings: Settings) -> dict[str, PlatformContext]:
        """A context per platform. A ConfigError is fatal (exit 2 at start; at reload the old
        configuration stays). Any other error leaves the platform out for now: its cycles try
        again and record the failure, so a shop that is down at start does not stop the rest."""
        contexts = {}
        for platform in settings.platforms:
            try:
                contexts[platform.name] = self._build_context(platform)
            except ConfigError:
                raise
            except Exception as exc:
                log.error("platform not ready; its cycles retry", platform=platform.name,
                          error=error_text(exc), exc_info=True)
        return contexts

    def _context(self, platform: str) -> PlatformContext:
        with self._contexts_lock:
            ctx = self._contexts.get(platform)
            if ctx is not None:
                return ctx
            settings = next((p for p in self.settings.platforms if p.name == platform), None)
        if settings is None:
            raise KeyError(f"platform {platform!r} is no longer configured")
        ctx = self._build_context(settings)
        with self._contexts_lock:
            return self._contexts.setdefault(platform, ctx)

    def _intervals(self, settings: Settings) -> dict[str, float]:
        return {p.name: poll_interval(settings.daemon.poll_interval, p) for p in settings.platforms}

    def _schedule(self, settings: Settings) -> None:
        intervals = self._intervals(settings)
        wanted = set(schedule_cycles(self._scheduler, dict.fromkeys(self._jobs, self._cycle), intervals))
        wanted.update(self._schedule_reconcile(settings))
        if settings.mail.bounces.enabled:  # [mail.bounces]: one reader for every platform
            wanted.add(self._scheduler.add_job(
                self._bounces, "interval", seconds=settings.mail.bounces.poll_interval, id=BOUNCES_JOB,
                replace_existing=True, next_run_time=datetime.now(UTC) + timedelta(seconds=5)).id)
        for job in self._scheduler.get_jobs():
            if job.id not in INTERNAL_JOBS and job.id not in wanted:
                job.remove()
        self.metrics.set_jobs((p, d, i) for p, i in intervals.items() for d in self._jobs)

    def _schedule_reconcile(self, settings: Settings) -> list[str]:
        """One job per platform marking it due for reconciliation; its next erp-to-shop cycle
        (under that direction's lease, so never beside another cycle of it) then reconciles.
        The first run is one interval after the last stored reconciliation, so restarts do not
        postpone it; the stored counts are published as metrics at once."""
        every = float(settings.daemon.reconcile_interval)
        if self._reconcile is None or every <= 0 or RECONCILE_DIRECTION not in self._jobs:
            return []
        from syncd.state.drift import DriftReports

        ids = []
        now = datetime.now(UTC)
        for p in settings.platforms:
            job_id = f"{p.name}/{RECONCILE_JOB}"
            existing = self._scheduler.get_job(job_id)
            if existing is not None and existing.trigger.interval.total_seconds() == every:
                ids.append(job_id)  # a reload with the same interval keeps the date it is due
                continue
            last = None
            try:
                last = DriftReports(self.store).get(p.name)
            except Exception as exc:  # the first cycle will say what is wrong with the store
                log.warning("last reconciliation not readable", platform=p.name, error=error_text(exc))
            if last is not None:
                self.metrics.record_drift(p.name, last.counts, last.finished.timestamp())
            interval = timedelta(seconds=every)
            first = max(now, last.finished + interval) if last else now + interval
            self._scheduler.add_job(self._mark_reconcile, "interval", seconds=every, args=(p.name,),
                                    id=job_id, name=job_id, replace_existing=True, next_run_time=first,
                                    misfire_grace_time=None)
            ids.append(job_id)
        return ids

    def _mark_reconcile(self, platform: str) -> None:
        log.info("reconciliation due; the next erp-to-shop cycle runs it", platform=platform)
        self._reconcile_due.add(platform)

    def _bounces(self) -> None:
        from syncd.shell.bounces import scheduled_check

        scheduled_check(self.settings, self.store, self._context, clock=self.clock)

    def _heartbeat(self) -> None:
        self._last_beat = time.monotonic()

    def _housekeeping(self) -> None:
        try:
            deleted = prune_cycles(self.store, now=self.clock())
            events = prune_history(self.store, now=self.clock(), days=self.settings.daemon.history_days)
            # The mail budget's send log: only the last hour counts (syncd.flows.mailbudget).
            MailSends(self.store).prune(self.clock() - SEND_LOG_KEEP)
        except Exception as exc:
            log.warning("housekeeping failed; it runs again in an hour", error=error_text(exc))
            return
        if deleted:
            log.info("old cycle records deleted", count=deleted)
        if events:
            log.info("old history events deleted", count=events,
                     history_days=self.settings.daemon.history_days)

    def healthy(self) -> bool:
        """The scheduler still dispatches jobs: its heartbeat job ran recently."""
        if self._scheduler is None or not self._scheduler.running:
            return False
        return time.monotonic() - self._last_beat < max(3 * self._beat_every, 2.0)

    def _cycle(self, platform: str, direction: str) -> CycleResult | None:
        """What APScheduler calls. Never raises: a cycle that fails is recorded and logged, and
        the next one runs on schedule."""
        assert self.runner is not None
        try:
            ctx = self._context(platform)
        except Exception as exc:
            error = error_text(exc)
            log.error("cycle failed: platform not ready", platform=platform, direction=direction, error=error)
            self.runner.record_failed(platform, direction, f"platform not ready: {error}")
            return None
        job = self._jobs[direction]
        due = platform in self._reconcile_due
        full = self._reconcile is not None and direction == RECONCILE_DIRECTION and due
        if full:
            job = self._reconcile  # type: ignore[assignment]
            self._reconcile_due.discard(platform)  # before the run: a mark set meanwhile is kept
        try:
            result = self.runner.run(ctx, direction, job)
        except Exception as exc:  # the state store itself failed (lease, cycle record)
            error = error_text(exc)
            log.error("cycle failed", platform=platform, direction=direction, error=error, exc_info=True)
            self.metrics.record_cycle(platform, direction, None, 0.0, False, error)
            if full:
                self._reconcile_due.add(platform)
            return None
        if full and result.outcome != CycleOutcome.OK:
            self._reconcile_due.add(platform)  # standby, waiting or failed: the next cycle tries again
        if result.outcome in (CycleOutcome.OK, CycleOutcome.FAILED):
            if result.report is not None:
                summary = ", ".join(f"{k} {v}" for k, v in sorted(dict(result.report.counts).items()))
            else:
                summary = result.error or ""
            stamp = time.strftime("%H:%M:%S")
            notify.status(clip(f"{platform} {direction}: {result.outcome} {stamp} {summary}", 200))
        return result

    def _reload(self) -> None:
        notify.reloading("reloading configuration")
        try:
            settings = self._reload_fn() if self._reload_fn is not None else self.settings
            contexts = self._build_contexts(settings)
        except Exception as exc:
            # A ConfigError is the operator's line (file: key: what (got value)), already without
            # secret values; it is stored for `status`, so held secrets are masked here too.
            error = (clip(redaction.redact(str(exc)), 1000) if isinstance(exc, ConfigError)
                     else error_text(exc))
            log.error("reload refused; the running configuration stays", error=error)
            self._record_reload(ok=False, error=error)
            notify.ready("running (reload refused, see log)")
            return
        changed = reloads.changed_keys(self.settings, settings)
        cleared = self._clear_cache()
        for key in ("state_url", "pid_file", "metrics_port", "metrics_host"):
            if getattr(settings.daemon, key) != getattr(self.settings.daemon, key):
                log.warning("changed setting takes effect at the next restart", key=f"daemon.{key}")
        with self._contexts_lock:
            self.settings = settings
            self._contexts = contexts
        assert self.runner is not None
        self.runner.lease_ttl = float(settings.daemon.lease_ttl)
        self._schedule(settings)
        log.info("configuration reloaded", platforms=[p.name for p in settings.platforms],
                 cache_cleared=cleared, changed=changed)
        self._record_reload(ok=True, changed=changed)
        notify.ready("running (reloaded)")

    def _record_reload(self, **outcome: Any) -> None:
        try:
            reloads.record(self.store, at=datetime.now(UTC), **outcome)
        except Exception as exc:  # the log has said it; status merely lacks it
            log.warning("reload outcome not recorded", error=error_text(exc))

    def _clear_cache(self) -> int | None:
        from syncd.state.cache import Cache

        try:
            return Cache(self.store).clear()
        except Exception as exc:
            log.error("cache not cleared", error=error_text(exc))
            return None


def run_daemon(
    settings: Settings,
    *,
    build_context: BuildContext,
    jobs: Mapping[str, Job],
    sweep: Sweep | None = None,
    reload: Reload | None = None,
    **options: Any,
) -> int:
    """`syncd run`: the daemon in the foreground; returns the exit code."""
    daemon = Daemon(settings, build_context=build_context, jobs=jobs, sweep=sweep, reload=reload, **options)
    return daemon.run()

"""Prometheus metrics and the health endpoint (optional ``[daemon] metrics_port``).

An own ``CollectorRegistry`` (not prometheus_client's global one): two daemons in one test
process, or a reload, never collide on metric names. Labels carry platform and direction
only — never an address, e-mail or anything a customer typed.

``/healthz`` answers 200 when the last cycle of every scheduled job is recent (at most three
poll intervals old) and ok, else 503 with a JSON reason per job. A job whose lease is held by
another instance counts as healthy ("standby"): that instance does the work.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import structlog
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

if TYPE_CHECKING:
    from syncd.flows.context import CycleReport

log = structlog.get_logger("syncd.metrics")

# Report actions that wrote a customer to the shop (erp-to-shop) ...
PUSHED_ACTIONS = ("created", "linked", "adopted", "updated", "deactivated", "reactivated")
# ... and those that made a new record on the other side (a shop account, or an ERP address).
CREATED_ACTIONS = ("created", "imported")
STALE_FACTOR = 3.0
DURATION_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)


@dataclass
class _Observation:
    at: float
    ok: bool
    kind: str  # "cycle" | "standby"
    error: str | None = None


class Metrics:
    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._clock = clock
        self._lock = threading.Lock()
        self._started = clock()
        self._jobs: dict[tuple[str, str], float] = {}
        self._last: dict[tuple[str, str], _Observation] = {}
        r = self.registry
        self.records = Counter(
            "syncd_cycle_records", "Records handled, by report action", ["platform", "direction", "action"],
            registry=r,
        )
        self.pushed = Counter(
            "syncd_records_pushed", "Customers written to the shop", ["platform"], registry=r
        )
        self.created = Counter(
            "syncd_records_created", "New records made (shop accounts, imported ERP addresses)", ["platform"],
            registry=r,
        )
        self.mailed = Counter("syncd_records_mailed", "Credential mails sent", ["platform"], registry=r)
        self.failed = Counter(
            "syncd_records_failed", "Records that failed permanently", ["platform"], registry=r
        )
        self.cycles = Counter(
            "syncd_cycles", "Cycles by result (ok, failed, standby)", ["platform", "direction", "result"],
            registry=r,
        )
        self.duration = Histogram(
            "syncd_cycle_duration_seconds", "Duration of a cycle", ["platform", "direction"],
            buckets=DURATION_BUCKETS, registry=r,
        )
        self.drift = Gauge(
            "syncd_drift_records", "Drift the last reconciliation found, by kind (syncd.state.drift.KEYS)",
            ["platform", "kind"], registry=r,
        )
        self.last_reconcile = Gauge(
            "syncd_last_reconcile_timestamp_seconds", "Unix time the last reconciliation finished",
            ["platform"], registry=r,
        )
        self.mailed_unused = Gauge(
            "syncd_accounts_mailed_unused", "Accounts mailed credentials but never logged in to (activation)",
            ["platform"], registry=r,
        )
        self.last_success = Gauge(
            "syncd_last_success_timestamp_seconds", "Unix time of the last successful cycle",
            ["platform", "direction"], registry=r,
        )

    # --- what is scheduled -------------------------------------------------------------
    def set_jobs(self, jobs: Iterable[tuple[str, str, float]]) -> None:
        """The jobs the health check expects: (platform, direction, poll interval seconds).
        Called at start and after a reload; observations of dropped jobs are forgotten."""
        with self._lock:
            self._jobs = {(p, d): float(interval) for p, d, interval in jobs}
            self._last = {k: v for k, v in self._last.items() if k in self._jobs}

    # --- what happened -----------------------------------------------------------------
    def record_cycle(
        self, platform: str, direction: str, report: CycleReport | None, duration: float, ok: bool,
        error: str | None = None,
    ) -> None:
        counts = report.counts if report is not None else {}
        for action, n in counts.items():
            if n > 0:
                self.records.labels(platform, direction, action).inc(n)
        pushed = sum(counts.get(a, 0) for a in PUSHED_ACTIONS) if direction == "erp-to-shop" else 0
        self._inc(self.pushed, platform, pushed)
        self._inc(self.created, platform, sum(counts.get(a, 0) for a in CREATED_ACTIONS))
        self._inc(self.mailed, platform, counts.get("mailed", 0))
        self._inc(self.failed, platform, counts.get("failed", 0))
        drift = getattr(report, "drift", None)
        if drift is not None:
            self.record_drift(platform, drift, self._clock())
        unused = getattr(report, "mailed_unused", None)
        if unused is not None:
            self.mailed_unused.labels(platform).set(unused)
        self.cycles.labels(platform, direction, "ok" if ok else "failed").inc()
        self.duration.labels(platform, direction).observe(max(0.0, duration))
        now = self._clock()
        if ok:
            self.last_success.labels(platform, direction).set(now)
        with self._lock:
            self._last[(platform, direction)] = _Observation(now, ok, "cycle", error)

    def record_drift(self, platform: str, counts: dict[str, int], finished: float) -> None:
        """The counts of a reconciliation (also those stored by an earlier process, at start)."""
        for kind, n in counts.items():
            self.drift.labels(platform, kind).set(n)
        self.last_reconcile.labels(platform).set(finished)

    def record_standby(self, platform: str, direction: str, holder: str | None) -> None:
        self.cycles.labels(platform, direction, "standby").inc()
        with self._lock:
            self._last[(platform, direction)] = _Observation(
                self._clock(), True, "standby", f"lease held by {holder}" if holder else None
            )

    @staticmethod
    def _inc(counter: Counter, platform: str, n: int) -> None:
        child = counter.labels(platform)  # created at 0 so the series exists before the first event
        if n > 0:
            child.inc(n)

    # --- health ------------------------------------------------------------------------
    def health(self) -> tuple[bool, dict[str, Any]]:
        now = self._clock()
        with self._lock:
            jobs = dict(self._jobs)
            last = dict(self._last)
        report: dict[str, Any] = {}
        healthy = bool(jobs)
        for (platform, direction), interval in sorted(jobs.items()):
            key = f"{platform}/{direction}"
            obs = last.get((platform, direction))
            limit = STALE_FACTOR * interval
            if obs is None:
                entry = {"ok": False, "reason": "no cycle finished yet"}
            elif not obs.ok:
                entry = {"ok": False, "reason": f"last cycle failed: {obs.error or 'see log'}"}
            elif now - obs.at > limit:
                entry = {"ok": False, "reason": f"last cycle {now - obs.at:.0f}s ago (limit {limit:.0f}s)"}
            else:
                entry = {"ok": True, "reason": obs.kind if obs.kind != "cycle" else "ok"}
            if obs is not None:
                entry["age_seconds"] = round(now - obs.at, 1)
            healthy = healthy and entry["ok"]
            report[key] = entry
        if not jobs:
            report["scheduler"] = {"ok": False, "reason": "no jobs scheduled"}
        return healthy, {"status": "ok" if healthy else "unhealthy", "jobs": report}


class _Handler(BaseHTTPRequestHandler):
    metrics: Metrics  # set on the per-server subclass

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._send(200, CONTENT_TYPE_LATEST, generate_latest(self.metrics.registry))
        elif path == "/healthz":
            ok, body = self.metrics.health()
            self._send(200 if ok else 503, "application/json", json.dumps(body, sort_keys=True).encode())
        else:
            self._send(404, "text/plain; charset=utf-8", b"not found: try /metrics or /healthz\n")

    def _send(self, code: int, content_type: str, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature of the base
        log.debug("metrics request", line=format % args)


class MetricsServer:
    """``/metrics`` and ``/healthz`` on ``host:port`` (port 0: any free port; see ``.port``)."""

    def __init__(self, metrics: Metrics, host: str = "127.0.0.1", port: int = 0) -> None:
        handler = type("MetricsHandler", (_Handler,), {"metrics": metrics})
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self.host = host
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="syncd-metrics", daemon=True)

    def start(self) -> MetricsServer:
        self._thread.start()
        log.info("metrics listening", url=f"http://{self.host}:{self.port}/metrics")
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def serve(metrics: Metrics, host: str = "127.0.0.1", port: int = 0) -> MetricsServer:
    return MetricsServer(metrics, host, port).start()

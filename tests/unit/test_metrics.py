"""Metrics and /healthz over real HTTP on a loopback port."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from syncd.flows.context import CycleReport
from syncd.shell.metrics import Metrics, serve


class Clock:
    def __init__(self) -> None:
        self.t = 1_700_000_123.0

    def __call__(self) -> float:
        return self.t


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.headers["Content-Type"], resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.headers["Content-Type"], err.read().decode()


def report(platform: str, direction: str, **counts: int) -> CycleReport:
    r = CycleReport(platform, direction)
    for action, n in counts.items():
        for i in range(n):
            r.add(10000 + i, action)
    return r


@pytest.fixture
def served():
    clock = Clock()
    metrics = Metrics(clock=clock)
    server = serve(metrics, "127.0.0.1", 0)
    base = f"http://127.0.0.1:{server.port}"
    yield metrics, clock, base
    server.stop()


def test_metrics_endpoint_counts_per_platform(served):
    metrics, clock, base = served
    metrics.set_jobs([("shop", "erp-to-shop", 60), ("shop", "shop-to-erp", 60)])
    metrics.record_cycle("shop", "erp-to-shop", report("shop", "erp-to-shop", created=3, updated=2, mailed=3,
                                                       failed=1), 2.5, True)
    metrics.record_cycle("shop", "shop-to-erp", report("shop", "shop-to-erp", imported=4), 0.7, True)
    metrics.record_cycle("shop", "erp-to-shop", None, 0.1, False, "RuntimeError: boom")
    status, ctype, body = get(base + "/metrics")
    assert status == 200 and ctype.startswith("text/plain")
    assert 'syncd_records_pushed_total{platform="shop"} 5.0' in body
    assert 'syncd_records_created_total{platform="shop"} 7.0' in body  # 3 accounts + 4 imported addresses
    assert 'syncd_records_mailed_total{platform="shop"} 3.0' in body
    assert 'syncd_records_failed_total{platform="shop"} 1.0' in body
    assert 'syncd_cycles_total{direction="erp-to-shop",platform="shop",result="failed"} 1.0' in body
    assert 'syncd_cycle_duration_seconds_count{direction="erp-to-shop",platform="shop"} 2.0' in body
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }
    key = ("syncd_last_success_timestamp_seconds", (("direction", "shop-to-erp"), ("platform", "shop")))
    assert samples[key] == clock.t
    assert "python_gc" not in body, "an own registry, not the process-global default one"


def test_healthz_reports_each_job(served):
    metrics, clock, base = served
    metrics.set_jobs([("shop", "erp-to-shop", 60), ("shop", "shop-to-erp", 60)])
    status, ctype, body = get(base + "/healthz")
    assert status == 503 and ctype == "application/json"
    assert json.loads(body)["jobs"]["shop/erp-to-shop"]["reason"] == "no cycle finished yet"

    metrics.record_cycle("shop", "erp-to-shop", report("shop", "erp-to-shop", created=1), 1.0, True)
    metrics.record_standby("shop", "shop-to-erp", "other:1:x")
    status, _, body = get(base + "/healthz")
    assert status == 200, body
    assert json.loads(body)["jobs"]["shop/shop-to-erp"]["reason"] == "standby"

    clock.t += 181  # more than 3 x 60 s since the last cycle
    status, _, body = get(base + "/healthz")
    assert status == 503 and "ago (limit 180s)" in json.loads(body)["jobs"]["shop/erp-to-shop"]["reason"]

    metrics.record_cycle("shop", "erp-to-shop", None, 1.0, False, "TransientError: shop 503")
    metrics.record_standby("shop", "shop-to-erp", None)
    status, _, body = get(base + "/healthz")
    data = json.loads(body)
    assert status == 503 and data["status"] == "unhealthy"
    assert data["jobs"]["shop/erp-to-shop"]["reason"] == "last cycle failed: TransientError: shop 503"
    assert data["jobs"]["shop/shop-to-erp"]["ok"] is True

    assert get(base + "/nope")[0] == 404


def test_no_jobs_is_not_healthy():
    ok, body = Metrics().health()
    assert not ok and body["jobs"]["scheduler"]["reason"] == "no jobs scheduled"


def test_reload_forgets_dropped_jobs():
    m = Metrics()
    m.set_jobs([("a", "erp-to-shop", 60), ("b", "erp-to-shop", 60)])
    m.record_cycle("a", "erp-to-shop", None, 1, True)
    m.set_jobs([("a", "erp-to-shop", 60)])
    ok, body = m.health()
    assert ok and set(body["jobs"]) == {"a/erp-to-shop"}


def test_daemon_serves_metrics_port(tmp_path):
    """[daemon] metrics_port is honoured by the daemon itself (port taken at run time)."""
    import socket
    import threading
    import time

    from syncd.shell.daemon import Daemon
    from syncd.state.db import open_state
    from tests.e2e.test_daemon import Recorder, build_context_for, make_settings

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = make_settings(tmp_path, metrics_port=port)
    store = open_state(settings.daemon.state_url)
    rec = Recorder()
    daemon = Daemon(settings, build_context=build_context_for(store), jobs={"erp-to-shop": rec.erp_to_shop},
                    store=store, install_signals=False)
    t = threading.Thread(target=daemon.run, daemon=True)
    t.start()
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                status, _, body = get(f"http://127.0.0.1:{port}/healthz")
                if status == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "healthz never became 200"
            time.sleep(0.05)
        assert 'syncd_records_created_total{platform="shop"}' in get(f"http://127.0.0.1:{port}/metrics")[2]
    finally:
        daemon.request_stop()
        t.join(10)
        store.close()
    with pytest.raises(OSError):
        get(f"http://127.0.0.1:{port}/healthz")


def test_reconciliation_drift_is_a_gauge_per_kind(served):
    metrics, clock, base = served
    r = report("shop", "erp-to-shop", created=3)
    r.drift = {"missing_in_shop": 3, "repaired": 3, "still_failed": 1}
    metrics.record_cycle("shop", "erp-to-shop", r, 4.0, True)
    clock.t += 86400
    later = report("shop", "erp-to-shop")
    later.drift = {"missing_in_shop": 0, "repaired": 0, "still_failed": 1}
    metrics.record_cycle("shop", "erp-to-shop", later, 1.0, True)
    plain = report("shop", "erp-to-shop", updated=1)  # an ordinary cycle leaves the gauges alone
    metrics.record_cycle("shop", "erp-to-shop", plain, 1.0, True)
    _status, _type, body = get(f"{base}/metrics")
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(body) for s in f.samples}
    drift = {dict(labels)["kind"]: v for (name, labels), v in samples.items()
             if name == "syncd_drift_records"}
    assert drift == {"missing_in_shop": 0, "repaired": 0, "still_failed": 1}  # the last reconciliation's
    assert samples[("syncd_last_reconcile_timestamp_seconds", (("platform", "shop"),))] == clock.t


def test_adopted_accounts_count_as_pushed_not_created(served):
    """After a lost state store the cycle adopts accounts (written, never created or mailed)."""
    metrics, _clock, base = served
    metrics.record_cycle("shop", "erp-to-shop", report("shop", "erp-to-shop", adopted=6, created=1, mailed=1),
                         1.0, True)
    _status, _ctype, body = get(base + "/metrics")
    assert 'syncd_records_pushed_total{platform="shop"} 7.0' in body
    assert 'syncd_records_created_total{platform="shop"} 1.0' in body
    assert 'syncd_cycle_records_total{action="adopted",direction="erp-to-shop",platform="shop"} 6.0' in body

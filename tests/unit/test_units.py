"""The shipped systemd units: .ci/check-units passes on them and catches what systemd-analyze
alone lets through (typos exit 0), weak hardening, and a unit that is not the notify service
the daemon implements."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / ".ci" / "check-units"
UNITS = [REPO / "systemd" / "syncd.service", REPO / "systemd" / "syncd@.service"]

needs_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed (apt package systemd)"
)


def settings(path: Path) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^([A-Za-z]+)=(.*)$", line)
        if m:
            values.setdefault(m.group(1), []).append(m.group(2))
    return values


def run(*units: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPT), *map(str, units)], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_unit_is_the_notify_service_the_daemon_implements(unit):
    s = settings(unit)
    assert s["Type"] == ["notify"] and s["NotifyAccess"] == ["main"]
    assert s["Restart"] == ["on-failure"]
    assert s["WatchdogSec"] and s["TimeoutStopSec"]
    assert s["DynamicUser"] == ["yes"] and s["User"]
    assert s["StateDirectory"][0].startswith("syncd")
    assert s["CapabilityBoundingSet"] == [""]
    for key, value in {"ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
                       "NoNewPrivileges": "yes"}.items():
        assert s[key] == [value], key
    assert s["RestrictAddressFamilies"] == ["AF_UNIX AF_INET AF_INET6"]
    assert "@system-service" in s["SystemCallFilter"]
    assert any(v.startswith("shop-secret:") for v in s["LoadCredential"])
    assert s["ExecReload"] == ["/bin/kill -HUP $MAINPID"], "reload is the daemon's SIGHUP"


def test_template_unit_reads_the_tenant_config():
    s = settings(UNITS[1])
    # --config is a global option: it goes before the verb (`syncd run --config` is a usage error).
    assert s["ExecStart"][0].endswith("syncd --config /etc/syncd/%i.toml run")
    assert s["StateDirectory"] == ["syncd/%i"]


def test_watchdog_leaves_room_for_the_daemons_ping_period():
    s = settings(UNITS[0])
    seconds = int(s["WatchdogSec"][0].rstrip("s"))
    assert seconds >= 10, "the daemon pings every WatchdogSec/2 from a loop that ticks every 0.5 s"
    stop = int(s["TimeoutStopSec"][0].rstrip("s"))
    assert stop > 30, "must exceed the default [daemon] shutdown_timeout of 30s"


@needs_analyze
def test_check_units_passes_on_shipped_units():
    result = run()
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("verify is silent") == 2
    scores = [float(x) for x in re.findall(r"exposure ([0-9.]+)", result.stdout)]
    assert len(scores) == 2 and all(s < 3.0 for s in scores)


@needs_analyze
@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda t: t.replace("ProtectSystem=strict", "ProtectSytem=strict"), "Unknown key 'ProtectSytem'"),
        (lambda t: t.replace("WatchdogSec=60s", "WatchdogSec=sixty"), "sixty"),
        (lambda t: re.sub(r"(?ms)^# Hardening.*?^\[Install\]", "[Install]", t), "exposure"),
        (lambda t: t.replace("/opt/syncd/venv/bin/syncd", "/usr/bin/true"), "ExecStart"),
    ],
    ids=["typo", "bad-value", "no-hardening", "other-execstart"],
)
def test_check_units_fails_on_what_verify_lets_through(tmp_path, mutate, expected):
    unit = tmp_path / "syncd.service"
    unit.write_text(mutate(UNITS[0].read_text()))
    result = run(unit)
    assert result.returncode != 0, result.stdout
    assert expected in result.stderr


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_unit_pins_a_keyring_backend_that_never_stores_plain_text(unit, monkeypatch):
    import keyring.core

    from syncd.config.secrets import resolve_secret
    from syncd.core.errors import ConfigError

    env = dict(
        item.split("=", 1) for line in settings(unit)["Environment"] for item in line.split() if "=" in item
    )
    backend = env["PYTHON_KEYRING_BACKEND"]
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", backend)
    keyring.core.set_keyring(keyring.core.load_env())  # what the service's process would pick
    with pytest.raises(ConfigError) as info:
        resolve_secret("keyring:syncd/shop", file="/etc/syncd/config.toml", key="platforms[0].client_secret")
    assert "keyring:syncd/shop" in str(info.value) and "credential:" in str(info.value)

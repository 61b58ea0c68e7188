"""One syncd ERP -> shop cycle in its own process, for the kill tests.

    python -m tests.support.kill_runner CONFIG.json

CONFIG.json is written by ``tests.support.flow_harness.Harness.config_file`` (where the ERP table, the
sandbox, the SMTP server and the state store are, plus the resolved shop secret). The runner
builds the real ports itself, runs the start-up sweep, then one cycle, and prints the report
counts as JSON on stdout (after a line "READY" once it is set up).
Logs go to stderr as JSON lines through the production redaction chain.

Environment:
    SYNCD_KILL_AT=NAME[:N]   SIGKILL itself the N-th time (default 1st) checkpoint NAME is reached
    SYNCD_PAUSE_AT=NAME[:N]  print "PAUSED NAME" on stdout and sleep until killed
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections import Counter
from pathlib import Path

from syncd.flows.erp_to_shop import run_erp_to_shop, settle_password_fields
from syncd.flows.push_addresses import checkpoint
from syncd.shell.logs import configure_logging
from syncd.state.db import open_state
from tests.support.flow_harness import build_context, settings_from_config


def _target(variable: str) -> tuple[str, int] | None:
    value = os.environ.get(variable, "").strip()
    if not value:
        return None
    name, _, count = value.partition(":")
    return name, int(count or 1)


def install_hooks() -> None:
    kill_at = _target("SYNCD_KILL_AT")
    pause_at = _target("SYNCD_PAUSE_AT")
    seen: Counter[str] = Counter()

    def hook(name: str) -> None:
        seen[name] += 1
        if kill_at and kill_at == (name, seen[name]):
            os.kill(os.getpid(), signal.SIGKILL)
        if pause_at and pause_at == (name, seen[name]):
            print(f"PAUSED {name}", flush=True)
            while True:
                time.sleep(60)

    checkpoint.hook = hook


def main(argv: list[str]) -> int:
    config = json.loads(Path(argv[1]).read_text())
    configure_logging("json", "info", stream=sys.stderr)
    settings = settings_from_config(config)
    install_hooks()
    state = open_state(settings.daemon.state_url)
    try:
        ctx = build_context(settings, config["client_secret"], state, config.get("sms_key"))
        print("READY", flush=True)  # imports and set-up done: the random kill timings start here
        counts: Counter[str] = Counter()
        counts.update(settle_password_fields(ctx).counts)
        counts.update(run_erp_to_shop(ctx).counts)
    finally:
        state.close()
    print(json.dumps(dict(counts)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""What the kill tests share (no tests here): the kill runner as a subprocess
(``tests/support/kill_runner.py``) that keeps everything it printed, the addresses they insert,
and the invariants every credential mode must keep after a kill and a restart.

    from tests.support.kill_scaffold import Runner, check_mailed_once, person

The ``runner`` fixture (tests/fault/conftest.py) starts them on the test module's ``harness``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

from syncd.state.jobs import CredentialJobs
from tests.support.flow_harness import PLATFORM, Harness

ROOT = Path(__file__).resolve().parents[2]


def person(n: int) -> dict:
    return {"number": n, "email": f"kunde{n}@example.com", "first_name": "Jörg", "last_name": f"Kühn-{n}",
            "street": "Weg 1", "zip": "01067", "city": "Dresden", "country": "DE"}


class Runner:
    """Starts kill runners and keeps everything they printed, for the leak check."""

    def __init__(self, config: Path) -> None:
        self.config = config
        self.output: list[str] = []
        self.procs: list[subprocess.Popen] = []

    def close(self) -> None:
        """Kill what a failed test left running (a paused runner would sleep forever)."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()

    def start(self, **env: str) -> subprocess.Popen:
        full = dict(os.environ)
        full.pop("SYNCD_KILL_AT", None)
        full.pop("SYNCD_PAUSE_AT", None)
        full.update(env)
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.kill_runner", str(self.config)], cwd=ROOT, env=full,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.procs.append(proc)
        return proc

    def finish(self, proc: subprocess.Popen, timeout: float = 120) -> int:
        out, err = proc.communicate(timeout=timeout)
        self.output += [out, err]
        return proc.returncode

    def run(self, **env: str) -> int:
        return self.finish(self.start(**env))


def check_mailed_once(h: Harness, numbers: list[int], runner: Runner, *,
                      secret_of: Callable[[EmailMessage], str],
                      works: Callable[[int, str, str], bool]) -> None:
    """After the restart: one shop account per address and none for anything else (I4); each
    address mailed, at most once more, every mail with the same secret (I5), and the newest
    one's secret works (I1: ``works(number, email, secret)``); every password field empty (I2);
    every job done; no secret in the state store or in anything the runners printed (I3)."""
    by_number = h.accounts_by_number()
    assert sorted(int(n) for n in by_number) == sorted(numbers)
    dupes = {n: len(v) for n, v in by_number.items() if len(v) != 1}
    assert not dupes, f"duplicate shop customers: {dupes}"
    emails = [c.email.lower() for c in h.kit.accounts()]
    assert len(emails) == len(set(emails))
    secrets: list[str] = []
    for n in numbers:
        email = f"kunde{n}@example.com"
        mails = h.mails_to(email)
        assert mails, f"no credentials mail for {n}"
        assert len(mails) <= 2, f"{len(mails)} mails for {n}"
        mailed = {secret_of(m) for m in mails}
        assert len(mailed) == 1, f"two different secrets mailed to {n}"
        newest = secret_of(mails[-1])
        assert works(n, email, newest), f"the newest mailed secret of {n} does not work"
        secrets.append(newest)
    assert h.password_fields() == {}
    counts = CredentialJobs(h.state).counts(PLATFORM)
    assert set(counts) <= {"done"}, counts
    state_bytes = b"".join(p.read_bytes() for p in h.tmp.glob("state.db*"))
    printed = "\n".join(runner.output)
    for secret in secrets:
        assert secret.encode() not in state_bytes
        assert secret not in printed

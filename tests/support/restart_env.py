"""`syncd run` as a real process that gets SIGKILLed and restarted, against a SQLite ERP, the
shop sandbox of either kind and the outbox, with the state store on SQLite or PostgreSQL. Shared by
``tests/fault/test_restart.py`` and ``benchmarks/restart_recovery.py`` (no tests here).

The addresses are shaped unlike the wired-CLI sample: companies without a first name, umlauts,
numbers from 30000 up, Austrian and Swiss addresses.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from tests.support import erp_fixtures
from tests.support.wired_env import FIELD, SECRET_ENV, TABLE, Env, config_text, read_mail

ROOT = Path(__file__).resolve().parents[2]
_CITIES = [("1010", "Wien", "AT"), ("8001", "Zürich", "CH"), ("04109", "Leipzig", "DE"),
           ("6020", "Innsbruck", "AT"), ("99084", "Erfurt", "DE")]


def address(n: int) -> dict[str, Any]:
    zip_code, city, country = _CITIES[n % len(_CITIES)]
    row: dict[str, Any] = {"number": n, "last_name": f"Größer-{n}", "street": f"Ölweg {n % 97 + 1}",
                           "zip": zip_code, "city": city, "country": country,
                           "email": f"einkauf.{n}@kunde-{n % 7}.example.org"}
    if n % 3 == 0:
        row.update(company=f"Übel & Söhne {n} GmbH", salutation="Firma")
    else:
        row.update(first_name="Zoë" if n % 2 else "Jürgen", salutation="Frau" if n % 2 else "Herr")
    return row


def build_env(root: Path, shop: Any, rows: Iterable[dict[str, Any]], *, state_url: str | None = None,
              poll: str = "1s") -> Env:
    """ERP table with ``rows``, outbox, config (poll interval ``poll``; the state store at
    ``state_url``, default a SQLite file under ``root``)."""
    erp_db = root / "erp.db"
    url = f"sqlite:///{erp_db.as_posix()}"
    erp_fixtures.create_address_table(url, TABLE, password_field=FIELD)
    erp_fixtures.insert_addresses(url, TABLE, list(rows))
    outbox = root / "outbox"
    outbox.mkdir()
    e = Env(root=root, config=root / "config.toml", erp_url=url, erp_db=erp_db,
            state_db=root / "state" / "state.db", outbox=outbox, shop=shop)
    text = config_text(e, poll=poll)
    if state_url is not None:
        text = text.replace(f'state_url = "sqlite:///{e.state_db.as_posix()}"', f'state_url = "{state_url}"')
    e.config.write_text(text)
    return e


def child_env(e: Env) -> dict[str, str]:
    out = dict(os.environ)
    out[SECRET_ENV] = e.kit.secret
    for key in ("SYNCD_CONFIG", "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
        out.pop(key, None)
    return out


class Syncd:
    """`syncd run` (or another verb) as a child process logging JSON to its own file."""

    def __init__(self, e: Env, log: Path, *args: str) -> None:
        self.log = log
        self.started = time.monotonic()
        self.wall = time.time()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "syncd", "--config", str(e.config), "--log-format", "json",
             *(args or ("run",))],
            stdout=subprocess.DEVNULL, stderr=log.open("wb"), env=child_env(e), cwd=ROOT,
        )

    def kill(self) -> float:
        """SIGKILL; the monotonic time it was sent."""
        at = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        return at

    def stop(self, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def event_offset(self, event: str) -> float | None:
        """Seconds from the process start to the first log event ``event``."""
        from datetime import datetime

        for ev in self.events():
            if ev.get("event") == event and "timestamp" in ev:
                stamp = datetime.fromisoformat(ev["timestamp"].replace("Z", "+00:00")).timestamp()
                return stamp - self.wall
        return None

    def events(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out


def wait_for(predicate: Callable[[], Any], what: str, timeout: float, *, every: float = 0.02,
             alive: Syncd | None = None) -> float:
    """Poll until ``predicate()`` is true; the monotonic time it became true."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return time.monotonic()
        if alive is not None and alive.proc.poll() is not None:
            raise AssertionError(f"syncd exited {alive.proc.returncode} before {what}:\n"
                                 f"{alive.log.read_text(errors='replace')[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(every)


def filled_fields(e: Env) -> dict[int, str]:
    return {n: v for n, v in e.password_fields().items() if v not in (None, "")}


def shop_numbers(e: Env) -> list[str]:
    return [str(a.number) for a in e.kit.accounts()]


def mails_by_recipient(e: Env) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for path in e.outbox_files():
        to, password = read_mail(path)
        out.setdefault(to.lower(), []).append(password)
    return out


def state_text(e: Env, state_url: str | None) -> bytes:
    """Everything the state store holds, for the I3 check: the SQLite files, or every row of
    every table of the PostgreSQL schema."""
    if state_url is None:
        return b"".join(p.read_bytes() for p in e.state_db.parent.glob("state.db*") if p.is_file())
    from sqlalchemy import MetaData, create_engine, select

    engine = create_engine(state_url)
    try:
        meta = MetaData()
        meta.reflect(engine)
        with engine.connect() as conn:
            return "\n".join(repr(conn.execute(select(t)).all()) for t in meta.sorted_tables).encode()
    finally:
        engine.dispose()

"""Issue 18, kill -9 of the bounce reader: ``syncd bounces check`` as a real process over a
maildir of several bounces (and one unrelated mail), SIGKILLed inside the batch, then run again.
Every bounce is recorded once, its ``mail_bounced`` event written once, its ERP field
(``[erp.columns] email_undeliverable``) set once, every bounce moved once, nothing lost, no mail
marked twice. SQLite and PostgreSQL state; the config file is the operator's TOML."""

from __future__ import annotations

import mailbox
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from syncd.core.clock import utcnow
from syncd.core.returnpath import envelope_sender, make_tag
from syncd.state.bounces import Bounces
from syncd.state.db import open_state
from syncd.state.history import History
from syncd.state.schema import credential_jobs
from tests.support import bounce_samples as samples
from tests.support import wired_env as wired
from tests.support.dbs import pg_schema_url
from tests.support.flow_harness import STATE_STORES
from tests.support.shops import shop  # noqa: F401 - the fixture
from tests.support.wired_env import Env

ROOT = Path(__file__).resolve().parents[2]
N = 5
NUMBERS = [20001 + i for i in range(N)]
COLUMN = "Sel3"
RP = "bounces@example.com"
pytestmark = pytest.mark.slow


def _rows() -> list[dict]:
    return [{"number": n, "first_name": "Jörg", "last_name": f"Kühn-{n}", "street": "Weg 1", "zip": "01067",
             "city": "Dresden", "country": "DE", "email": f"kunde{n}@example.com"} for n in NUMBERS]


@pytest.fixture(params=STATE_STORES)
def env(request, tmp_path, shop, monkeypatch) -> Iterator[tuple[Env, str]]:  # noqa: F811
    with ExitStack() as stack:
        e = wired.make_env(tmp_path, shop.sandbox, monkeypatch, rows=_rows())
        state_url = (stack.enter_context(pg_schema_url()) if request.param == "postgresql"
                     else f"sqlite:///{e.state_db.as_posix()}")
        folder = tmp_path / "bounces"
        mailbox.Maildir(str(folder), create=True).close()
        section = f'\n[mail.bounces]\nenabled = true\nreturn_path = "{RP}"\nmaildir = "{folder.as_posix()}"\n'
        text = wired.config_text(e, mail=section)
        text = text.replace(f'state_url = "sqlite:///{e.state_db.as_posix()}"', f'state_url = "{state_url}"')
        text = text.replace("[erp.columns]\n", f'[erp.columns]\nemail_undeliverable = "{COLUMN}"\n')
        e.config.write_text(text)
        yield e, state_url


def _syncd(e: Env, *args: str, **env: str) -> subprocess.CompletedProcess:
    full = wired.subprocess_env(e)
    full.pop("SYNCD_KILL_AT", None)
    full.update(env)
    command = [sys.executable, "-m", "tests.support.bounce_kill_runner", "--config", str(e.config), *args]
    return subprocess.run(command, cwd=ROOT, env=full, capture_output=True, text=True, timeout=300)


def _deliver_bounces(e: Env, state_url: str) -> None:
    store = open_state(state_url)
    try:
        with store.connect() as conn:
            jobs = {r.erp_number: r for r in conn.execute(credential_jobs.select())}
        key = Bounces(store).tag_key(utcnow())
    finally:
        store.close()
    assert sorted(jobs) == NUMBERS and key is not None
    mails = [samples.postfix_dsn(envelope_sender("bounces@example.com", make_tag(key, "c", jobs[n].id,
                                                                                 jobs[n].email)),
                                 jobs[n].email, message_id=f"<dsn-{n}@mx.example.net>") for n in NUMBERS]
    samples.deliver(e.root / "bounces", mails[0], mails[1], samples.unrelated(), *mails[2:])


def _count_erp_writes(e: Env) -> None:
    """Every UPDATE of the ERP field, and whether it changed the value, by a trigger on the table
    (the syncd process cannot hide one)."""
    with sqlite3.connect(e.erp_db) as conn:
        conn.execute("CREATE TABLE undeliverable_writes (number INTEGER, value TEXT, changed INTEGER)")
        conn.execute(f'CREATE TRIGGER count_writes AFTER UPDATE OF "{COLUMN}" ON "{wired.TABLE}" '
                     f'BEGIN INSERT INTO undeliverable_writes VALUES (new."AdrNr", new."{COLUMN}", '
                     f'old."{COLUMN}" IS NOT new."{COLUMN}"); END')


# The maildir's key order mixes the unrelated mail in among the bounces.
@pytest.mark.parametrize("point", [
    "bounce_after_record:3",  # the 3rd bounce and its event committed; ERP field not written, not moved
    "bounce_before_done:3",   # the 3rd message handled (ERP field written), not moved or marked seen
    "bounce_before_done:2",
])
def test_kill_inside_the_bounce_batch_loses_nothing_and_marks_once(env, point: str) -> None:
    e, state_url = env
    sync = _syncd(e, "sync")
    assert sync.returncode == 0, sync.stderr[-3000:]
    _deliver_bounces(e, state_url)
    _count_erp_writes(e)

    killed = _syncd(e, "bounces", "check", SYNCD_KILL_AT=point)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    box = mailbox.Maildir(str(e.root / "bounces"), create=False)
    moved_before = len(box.get_folder("syncd-processed")) if "syncd-processed" in box.list_folders() else 0
    assert 0 < moved_before < N  # killed inside the batch: some handled, some not
    again = _syncd(e, "bounces", "check")
    assert again.returncode == 0, again.stderr[-3000:]

    store = open_state(state_url)
    try:
        open_ = Bounces(store).open("shop")
        assert sorted(b.erp_number for b in open_) == NUMBERS  # each recorded, once
        events = Counter(ev.erp_number for n in NUMBERS for ev in History(store, utcnow).of_address(n)
                         if ev.event == "mail_bounced")
        assert events == dict.fromkeys(NUMBERS, 1)
    finally:
        store.close()
    box = mailbox.Maildir(str(e.root / "bounces"), create=False)
    ids = Counter(m["Message-ID"] for m in box.get_folder("syncd-processed"))
    assert ids == {f"<dsn-{n}@mx.example.net>": 1 for n in NUMBERS}  # each moved once
    [left] = list(box.iterkeys())  # the unrelated mail stays, seen
    assert "S" in box.get_message(left).get_flags()
    with sqlite3.connect(e.erp_db) as conn:
        writes = conn.execute("SELECT number, value, changed FROM undeliverable_writes").fetchall()
        values = dict(conn.execute(f'SELECT "AdrNr", "{COLUMN}" FROM "{wired.TABLE}"').fetchall())
    assert Counter(n for n, _, changed in writes if changed) == dict.fromkeys(NUMBERS, 1)  # set once
    # Written again (the same value) at most for the one bounce the kill caught after its ERP write.
    again_written = Counter(n for n, _, _ in writes) - Counter(NUMBERS)
    assert sum(again_written.values()) <= (1 if point.startswith("bounce_before_done") else 0), writes
    assert len({v for n, v, _ in writes if n in again_written}) <= 1
    assert all(str(values[n]).startswith("E-Mail unzustellbar 20") for n in NUMBERS), values

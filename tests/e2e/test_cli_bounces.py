"""`syncd bounces check` / `bounces list` as the operator runs them: a config file with
[mail.bounces] on a maildir, a SQLite ERP, the sandbox of each kind, the state store in tmp_path;
the bounce is an Exim text bounce for the first customer's credentials mail. Output in German and English."""

from __future__ import annotations

import json
import mailbox

import pytest

from syncd.core.clock import utcnow
from syncd.core.returnpath import envelope_sender, make_tag
from syncd.state.bounces import Bounces
from syncd.state.db import open_state
from syncd.state.schema import credential_jobs
from tests.support import bounce_samples as samples
from tests.support import wired_env as wired
from tests.support.wired_env import Env

env, shop = wired.kind_env, wired.shop  # fixtures: ``env`` for each platform kind


def _bounces(e: Env, *, enabled: bool = True) -> str:
    folder = e.root / "bounces"
    mailbox.Maildir(str(folder), create=True).close()
    return (f'\n[mail.bounces]\nenabled = {str(enabled).lower()}\nreturn_path = "bounces@example.com"\n'
            f'maildir = "{folder.as_posix()}"\n')


def test_bounces_check_and_list(env: Env, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    env.write_config(mail=_bounces(env))
    code, _, err = env.cli(capsys, "sync")
    assert code == 0, err
    store = open_state(f"sqlite:///{env.state_db.as_posix()}")
    try:
        with store.connect() as conn:
            job = conn.execute(credential_jobs.select().where(credential_jobs.c.erp_number == 10001)).first()
        key = Bounces(store).tag_key(utcnow())
    finally:
        store.close()
    assert job is not None and key is not None
    sender = envelope_sender("bounces@example.com", make_tag(key, "c", job.id, "anna@example.com"))
    samples.deliver(env.root / "bounces", samples.exim_bounce(sender, "anna@example.com"),
                    samples.unrelated())

    monkeypatch.setenv("LANG", "de_DE.UTF-8")
    code, out, err = env.cli(capsys, "bounces", "check")
    assert code == 0, err
    assert "1 hard bounces / unzustellbar" in out and "1 not syncd's / nicht von syncd" in out
    assert "hard: shop/10001: credentials to anna@example.com: 5.1.1" in out

    code, out, err = env.cli(capsys, "bounces", "list", "--json")
    assert code == 0, err
    [row] = [json.loads(line) for line in out.splitlines()]
    assert (row["address"], row["severity"], row["status"]) == (10001, "hard", "5.1.1")
    assert row["cleared_at"] is None

    code, out, _ = env.cli(capsys, "status")
    assert "1 Adresse(n) unzustellbar" in out
    code, out, _ = env.cli(capsys, "accounts", "list", "--format", "json")
    listed = {a["address"]: a["bounced_at"] for a in json.loads(out)["accounts"]}
    assert listed[10001] is not None and listed[10002] is None

    code, out, _ = env.cli(capsys, "bounces", "check")
    assert code == 0 and "nichts zu lesen" in out


def test_bounces_check_refused_when_off(env: Env, capsys) -> None:
    env.write_config(mail=_bounces(env, enabled=False))
    code, _, err = env.cli(capsys, "bounces", "check")
    assert code == 2 and "mail.bounces.enabled" in err

"""A path syncd cannot use is one line naming it and what to do, exit 2 - never "internal
error" with a traceback (issue 14): an export target in a missing folder, a configuration file
the service user cannot read, a state folder it cannot write. Where permissions matter the
command runs as ``nobody`` (``tests.support.as_user``)."""

from __future__ import annotations

import os
import types

import pytest

from syncd.shell.cli import run_cli
from syncd.shell.logs import reset_logging
from tests.support import wired_env
from tests.support.as_user import open_folder, run_unprivileged

SHOP = types.SimpleNamespace(url="http://127.0.0.1:9", client_id="SWIAX", client_secret="Not-Used-Secret-1")


@pytest.fixture
def folder():
    with open_folder() as path:
        yield path


@pytest.fixture
def env(folder, monkeypatch):
    """A valid configuration (SQLite ERP, outbox; the shop is never reached) in a folder
    ``nobody`` can read; ERP and outbox open to everyone."""
    e = wired_env.make_env(folder, SHOP, monkeypatch)
    e.config.write_text(e.config.read_text().replace("send_credentials = true", "send_credentials = false"))
    for path in (e.erp_db, e.outbox):
        path.chmod(0o777 if path.is_dir() else 0o666)
    e.config.chmod(0o644)
    return e


def _one_line_exit_2(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "internal error" not in err and "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def _cli(capsys, *args) -> tuple[int, str, str]:
    try:
        code = run_cli([str(a) for a in args])
    finally:
        reset_logging()
    out, err = capsys.readouterr()
    return code, out, err


def _nobody(e, *args):
    env = dict(os.environ, **{wired_env.SECRET_ENV: SHOP.client_secret}, COLUMNS="400")
    return run_unprivileged(["--log-format", "json", "--config", str(e.config), *map(str, args)], env=env)


# --- accounts export -o ------------------------------------------------------------------------

def test_export_into_a_missing_folder(env, capsys, folder):
    target = folder / "missing" / "dir" / "x.csv"
    code, _, err = _cli(capsys, "--config", env.config, "accounts", "export", "-o", target)
    _one_line_exit_2(code, err, str(target), "No such file or directory",
                     f"create the folder {target.parent}")
    assert not target.parent.exists()


def test_export_into_a_folder_the_user_may_not_write(env, folder):
    closed = folder / "closed"
    closed.mkdir(mode=0o755)  # root's, not writable for nobody
    target = closed / "x.csv"
    proc = _nobody(env, "accounts", "export", "-o", target)
    _one_line_exit_2(proc.returncode, proc.stderr, str(target), "Permission denied", "-o")
    assert list(closed.iterdir()) == []


def test_export_writes_the_file_whole(env, capsys, folder):
    target = folder / "accounts.csv"
    code, _, err = _cli(capsys, "--config", env.config, "accounts", "export", "-o", target)
    assert code == 0, err
    assert target.read_text().startswith("platform,address")
    assert [p.name for p in folder.iterdir() if p.name.endswith(".tmp")] == []


# --- the configuration file ---------------------------------------------------------------------

def test_an_unreadable_config_file(env):
    env.config.chmod(0o600)  # root's only
    proc = _nobody(env, "status")
    _one_line_exit_2(proc.returncode, proc.stderr, str(env.config), "Permission denied", "read access")


def test_a_config_file_in_a_closed_folder_is_not_called_missing(env, folder):
    closed = folder / "etc"
    closed.mkdir(mode=0o700)
    moved = closed / "config.toml"
    env.config.rename(moved)
    env.config = moved
    proc = _nobody(env, "check")
    _one_line_exit_2(proc.returncode, proc.stderr, str(moved), "Permission denied")
    assert "does not exist" not in proc.stderr


# --- the state folder ---------------------------------------------------------------------------

@pytest.mark.parametrize("verb", [["sync", "--direction", "erp-to-shop"], ["run"]], ids=["sync", "run"])
def test_a_state_folder_the_user_may_not_write(env, verb):
    env.state_db.parent.mkdir(mode=0o755)  # root's
    proc = _nobody(env, *verb)
    _one_line_exit_2(proc.returncode, proc.stderr, str(env.state_db), "Permission denied", "state_url")
    assert not env.state_db.exists()


def test_an_existing_state_store_in_a_folder_the_user_may_not_write(env, capsys):
    # Created by root (say, a first `syncd sync` run with sudo), then the service runs as nobody:
    # SQLite's journal and syncd's lock files beside the database cannot be created.
    code, _, err = _cli(capsys, "--config", env.config, "sync", "--direction", "shop-to-erp")
    assert env.state_db.exists(), err
    env.state_db.chmod(0o666)
    env.state_db.parent.chmod(0o755)
    for leftover in env.state_db.parent.glob("state.db-*"):
        leftover.chmod(0o666)
    proc = _nobody(env, "sync", "--direction", "erp-to-shop")
    _one_line_exit_2(proc.returncode, proc.stderr, str(env.state_db.parent), "state folder", "state_url")


def test_a_state_url_below_a_file(env, capsys):
    blocker = env.root / "not-a-folder"
    blocker.write_text("x")
    env.config.write_text(env.config.read_text().replace(str(env.state_db), str(blocker / "state.db")))
    code, _, err = _cli(capsys, "--config", env.config, "sync")
    _one_line_exit_2(code, err, str(blocker / "state.db"), "state_url")

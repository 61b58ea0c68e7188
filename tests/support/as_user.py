"""Run the `syncd` command line as an unprivileged user, for the tests where permissions matter.

The tests run as root, for whom every file is readable and writable. ``run_unprivileged`` starts
a Python subprocess that imports syncd (and what its commands import lazily) while still root -
the interpreter's own folder may be closed to other users - then drops to ``nobody`` with
``os.setuid`` and runs ``run_cli``. Not root: the command runs as the current user directly.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

NOBODY = 65534

_SCRIPT = r"""
import importlib, os, pkgutil, sys
import encodings
for info in pkgutil.iter_modules(encodings.__path__):
    try:
        importlib.import_module("encodings." + info.name)
    except Exception:
        pass
import csv, datetime, decimal, email, getpass, json, logging, sqlite3, tempfile, uuid
import sqlalchemy.dialects.sqlite, rich.console, rich.progress, rich.table
import syncd.shell.cli, syncd.shell.cli.sync, syncd.shell.bootstrap, syncd.shell.scheduler, syncd.shell.status
import syncd.state.db, syncd.flows.accounts, syncd.flows.erp_to_shop, syncd.flows.import_customers
import syncd.shell.daemon, syncd.shell.cli.run, syncd.shell.cli.check, syncd.render.store
uid = int(sys.argv[1])
if os.getuid() == 0:
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
from syncd.shell.cli import run_cli
sys.exit(run_cli(sys.argv[2:]))
"""


def run_unprivileged(args: Sequence[str], env: Mapping[str, str] | None = None,
                     timeout: float = 120) -> subprocess.CompletedProcess[str]:
    full = dict(os.environ if env is None else env)
    full.pop("SYNCD_CONFIG", None)
    return subprocess.run([sys.executable, "-c", _SCRIPT, str(NOBODY), *args], capture_output=True,
                          text=True, timeout=timeout, env=full, cwd="/")


@contextmanager
def open_folder() -> Iterator[Path]:
    """A folder ``nobody`` can reach (pytest's tmp_path lives under a 0700 folder of root)."""
    path = Path(tempfile.mkdtemp(prefix="syncd-perm-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)

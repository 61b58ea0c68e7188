"""The pid file of a foreground daemon: how `syncd clear-cache --restart` finds it, and what
stops a second daemon with the same configuration from starting next to it.

Created with O_EXCL so two daemons starting at once cannot both win; a file left behind by a
crashed daemon (its pid no longer runs) is stale and replaced.
"""

from __future__ import annotations

import errno
import hashlib
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from syncd.errors import SyncdError

if TYPE_CHECKING:
    from syncd.config.model import Settings

log = structlog.get_logger("syncd.pidfile")


class AlreadyRunning(SyncdError):
    """Another live daemon owns the pid file."""

    def __init__(self, path: Path, pid: int) -> None:
        super().__init__(
            f"another syncd is already running with pid {pid} (pid file {path}); "
            "stop it first, or give this one its own [daemon] pid_file"
        )
        self.path = path
        self.pid = pid


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        # It exists but belongs to another user: still a live process.
        return True
    except OSError as exc:  # pragma: no cover - e.g. Windows semantics
        return exc.errno == errno.EPERM
    return True


def read_pid(path: str | os.PathLike[str]) -> int | None:
    """The pid in ``path``, or None when the file is missing or does not hold a pid."""
    try:
        text = Path(path).read_text(encoding="ascii").strip()
    except (FileNotFoundError, UnicodeDecodeError):
        return None
    try:
        pid = int(text.splitlines()[0]) if text else 0
    except ValueError:
        return None
    return pid if pid > 0 else None


def running_pid(path: str | os.PathLike[str]) -> int | None:
    """The pid of the live process named by ``path``; None when absent or stale."""
    pid = read_pid(path)
    if pid is None or not pid_alive(pid):
        return None
    return pid


def write_pid(path: str | os.PathLike[str], pid: int | None = None) -> Path:
    """Create ``path`` holding ``pid`` (default: this process). Replaces a stale file; raises
    ``AlreadyRunning`` when a live process owns it."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    pid = os.getpid() if pid is None else pid
    for _attempt in range(3):
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            other = read_pid(target)
            if other is not None and other != pid and pid_alive(other):
                raise AlreadyRunning(target, other) from None
            log.info("replacing stale pid file", path=str(target), stale_pid=other)
            try:
                target.unlink()
            except FileNotFoundError:
                pass  # a concurrent starter removed it first; try again
            continue
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(f"{pid}\n")
        return target
    raise SyncdError(f"could not create pid file {target}: it keeps reappearing")


def remove_pid(path: str | os.PathLike[str], pid: int | None = None) -> bool:
    """Remove ``path`` if it still names ``pid`` (default: this process); a successor's file
    is left alone. True when removed."""
    target = Path(path)
    pid = os.getpid() if pid is None else pid
    if read_pid(target) != pid:
        return False
    try:
        target.unlink()
    except FileNotFoundError:
        return False
    return True


class PidFile:
    """``with PidFile(path): run()`` — written on enter, removed on exit."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def __enter__(self) -> PidFile:
        write_pid(self.path)
        return self

    def __exit__(self, *exc: object) -> None:
        remove_pid(self.path)


def default_pid_file(settings: Settings) -> Path:
    """Where the daemon writes its pid and `syncd clear-cache --restart` looks for it.

    ``[daemon] pid_file`` when set; else next to a SQLite state database (``state.db`` ->
    ``state.pid``: one per tenant, in the service's StateDirectory); else a runtime folder,
    named after the state URL so tenants sharing one PostgreSQL store do not collide."""
    if settings.daemon.pid_file:
        return Path(settings.daemon.pid_file).expanduser()
    from sqlalchemy.engine import make_url

    url = settings.daemon.state_url
    try:
        parsed = make_url(url)
    except Exception:
        parsed = None
    if parsed is not None and parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and parsed.query.get("mode") != "memory":
            return Path(database).expanduser().with_suffix(".pid")
    digest = hashlib.sha256(url.encode("utf-8")).hexdigest()[:12]
    name = f"syncd-{digest}.pid"
    for base in (os.environ.get("XDG_RUNTIME_DIR"), "/run/syncd"):
        if base and os.path.isdir(base) and os.access(base, os.W_OK):
            return Path(base) / name
    return Path(tempfile.gettempdir()) / name

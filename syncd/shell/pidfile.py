"""The pid file of a foreground daemon: how `syncd clear-cache --restart` finds it, and what
stops a second daemon with the same configuration from starting next to it.

Created with O_EXCL so two daemons starting at once cannot both win. A pid alone proves
nothing: after a crash or a reboot the number may belong to any process. So the file holds,
after the pid line (kept first for ``kill $(head -1 FILE)``), one JSON line with the process's
start time and the identity of its state store. A process counts as the daemon only when its
start time matches; only a daemon for this state store is signalled. Anything else is stale
and replaced, with a warning that says why. An old file holding only a pid is trusted no
further than its command line: a ``syncd ... run`` process keeps it (its store is unknown, so
it is neither signalled nor started next to), any other process does not.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil
import structlog

from syncd.core.errors import AccessError, SyncdError, whoami

if TYPE_CHECKING:
    from syncd.config.model import Settings

log = structlog.get_logger("syncd.pidfile")

# Start times are derived from the boot time, which the kernel reports to the second and may
# shift slightly with clock adjustments; a reused pid starts later by far more than this.
_START_TOLERANCE = 1.0


class AlreadyRunning(SyncdError):
    """Another live daemon owns the pid file."""

    def __init__(self, path: Path, pid: int, why: str = "") -> None:
        super().__init__(
            f"another syncd is already running with pid {pid} (pid file {path}{'; ' + why if why else ''}); "
            "stop it first, or give this one its own [daemon] pid_file"
        )
        self.path = path
        self.pid = pid


@dataclass(frozen=True)
class PidRecord:
    pid: int
    started: float | None = None  # None: an old file holding only the pid
    store: str | None = None


@dataclass(frozen=True)
class Owner:
    """What the pid file's process is. ``ours``: the syncd daemon for this state store (the one
    to signal). ``blocks``: a daemon that must not get a second one next to it on this file."""

    pid: int
    ours: bool
    blocks: bool
    reason: str


def store_identity(state_url: str) -> str:
    """A short fingerprint of the state store (no password): SQLite by its resolved file, any
    other store by its URL without the password."""
    from sqlalchemy.engine import make_url

    try:
        url = make_url(state_url)
    except Exception:
        key = state_url
    else:
        if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
            key = "sqlite:" + str(Path(url.database).expanduser().resolve())
        else:
            key = url.render_as_string(hide_password=True)
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


def pid_alive(pid: int) -> bool:
    return pid > 0 and psutil.pid_exists(pid)


def read_record(path: str | os.PathLike[str]) -> PidRecord | None:
    """The record in ``path``; None when the file is missing or does not start with a pid."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (FileNotFoundError, UnicodeDecodeError):
        return None
    try:
        pid = int(lines[0].strip()) if lines else 0
    except ValueError:
        return None
    if pid <= 0:
        return None
    try:
        extra: Any = json.loads(lines[1]) if len(lines) > 1 else {}
    except ValueError:
        extra = {}
    if not isinstance(extra, dict):
        extra = {}
    started = extra.get("started")
    store = extra.get("store")
    return PidRecord(
        pid,
        float(started) if isinstance(started, int | float) else None,
        store if isinstance(store, str) else None,
    )


def read_pid(path: str | os.PathLike[str]) -> int | None:
    """The pid in ``path``, or None when the file is missing or does not hold a pid."""
    record = read_record(path)
    return record.pid if record else None


def _looks_like_syncd_run(argv: list[str]) -> bool:
    names = [os.path.basename(a).lower() for a in argv]
    syncd = any(n in ("syncd", "syncd.exe") for n in names) or any(
        a == "-m" and i + 1 < len(argv) and argv[i + 1] == "syncd" for i, a in enumerate(argv)
    )
    return syncd and "run" in argv


def inspect(record: PidRecord, store: str | None) -> Owner:
    """Decide what ``record``'s process is (see the module text)."""
    pid = record.pid
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            raise psutil.NoSuchProcess(pid)
        started = proc.create_time()
    except psutil.NoSuchProcess:
        return Owner(pid, False, False, f"pid {pid} no longer runs")
    except psutil.AccessDenied:
        return Owner(pid, False, True, f"pid {pid} runs, but cannot be inspected")
    if record.started is None:
        try:
            argv, name = proc.cmdline(), proc.name()
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            return Owner(pid, False, False, f"pid {pid} no longer runs")
        except psutil.AccessDenied:
            return Owner(pid, False, True, f"old-format pid file; pid {pid} runs, but cannot be inspected")
        if _looks_like_syncd_run(argv):
            return Owner(pid, False, True, f"old-format pid file (pid only); pid {pid} is a `syncd run` "
                                           "whose state store cannot be verified")
        return Owner(pid, False, False, f"pid {pid} is not a syncd daemon but {name!r}")
    if abs(started - record.started) > _START_TOLERANCE:
        return Owner(pid, False, False, f"pid {pid} now belongs to another process (started "
                                        f"{started:.0f}, the daemon recorded {record.started:.0f})")
    if store is not None and record.store != store:
        return Owner(pid, False, True, f"pid {pid} is a syncd daemon for another state store")
    return Owner(pid, True, True, f"pid {pid} is the syncd daemon for this state store")


def owner_of(path: str | os.PathLike[str], store: str | None = None) -> Owner | None:
    """What the process named by ``path`` is; None when there is no pid in it."""
    record = read_record(path)
    return inspect(record, store) if record else None


def running_pid(path: str | os.PathLike[str], store: str | None = None) -> int | None:
    """The pid of the live syncd daemon (for ``store``, when given) named by ``path``."""
    owner = owner_of(path, store)
    return owner.pid if owner is not None and owner.ours else None


def _record_text(pid: int, store: str | None) -> str:
    try:
        proc = psutil.Process(pid)
        extra: dict[str, Any] = {"started": proc.create_time(), "store": store, "argv": proc.cmdline()}
    except psutil.Error:  # a pid we cannot inspect: the bare old format
        return f"{pid}\n"
    return f"{pid}\n{json.dumps(extra, separators=(',', ':'))}\n"


def write_pid(path: str | os.PathLike[str], pid: int | None = None, *, store: str | None = None) -> Path:
    """Create ``path`` for ``pid`` (default: this process) serving state store ``store``.
    Replaces a stale file (with a warning saying why); raises ``AlreadyRunning`` when a live
    daemon owns it."""
    target = Path(path)
    hint = (f"syncd runs as {whoami()}: make {target.parent} writable for that user, or set "
            "[daemon] pid_file to a path it may write")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AccessError.from_os(target, "create the pid file", exc, hint) from None
    pid = os.getpid() if pid is None else pid
    text = _record_text(pid, store)
    for _attempt in range(3):
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except PermissionError as exc:
            raise AccessError.from_os(target, "create the pid file", exc, hint) from None
        except FileExistsError:
            record = read_record(target)
            if record is not None and record.pid != pid:
                owner = inspect(record, store)
                if owner.blocks:
                    raise AlreadyRunning(target, owner.pid, owner.reason) from None
                log.warning("replacing stale pid file", path=str(target), stale_pid=record.pid,
                            reason=owner.reason)
            else:
                log.info("replacing stale pid file", path=str(target), stale_pid=None if record is None
                         else record.pid)
            try:
                target.unlink()
            except FileNotFoundError:
                pass  # a concurrent starter removed it first; try again
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
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
    """``with PidFile(path, store=...): run()`` — written on enter, removed on exit."""

    def __init__(self, path: str | os.PathLike[str], *, store: str | None = None) -> None:
        self.path = Path(path)
        self.store = store

    def __enter__(self) -> PidFile:
        write_pid(self.path, store=self.store)
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

"""What the last configuration reload (SIGHUP, `syncd clear-cache --restart`) did, kept in the
state store so that `syncd status` shows a refused reload: the daemon logs it, but an operator
who edited the file and sent SIGHUP looks at `status`, not at the journal.

One row in ``cursors`` (platform "", which no platform can be named): ``{"at", "ok", "error",
"changed"}``. ``changed`` lists the dotted keys a reload changed (names only: values may be
secrets). A daemon start removes the row: a refusal speaks of the process that refused it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from syncd.config.model import Settings
    from syncd.state.db import StateStore

SCOPE = ""  # not a valid platform name (loader: letters, digits, _ . -, at least one)
NAME = "reload"


def changed_keys(old: Settings, new: Settings) -> list[str]:
    """The dotted keys whose values differ (``mail.max_per_minute``, ``platforms[shop]`` for a
    platform added or removed, ``platforms[shop].addresses.canary``)."""
    out: list[str] = []
    _diff(_keyed(old.model_dump(mode="json")), _keyed(new.model_dump(mode="json")), "", out)
    return out


def _keyed(data: dict[str, Any]) -> dict[str, Any]:
    # Platforms by name, so that removing the first one does not show every key of the second
    # as changed; other arrays of tables compare by position.
    platforms = data.get("platforms")
    if isinstance(platforms, list):
        data = {**data, "platforms": {p.get("name"): p for p in platforms}}
    return data


def _diff(a: Any, b: Any, path: str, out: list[str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            sub = f"{path}[{key}]" if path == "platforms" else (f"{path}.{key}" if path else str(key))
            if key not in a or key not in b:
                out.append(sub)
            else:
                _diff(a[key], b[key], sub, out)
    elif a != b:
        out.append(path)


def record(store: StateStore, *, at: datetime, ok: bool, error: str | None = None,
           changed: list[str] | None = None) -> None:
    from syncd.state.cursors import Cursors

    Cursors(store).set(SCOPE, NAME, {"at": at.isoformat(), "ok": ok, "error": error,
                                     "changed": list(changed or [])})


def forget(store: StateStore) -> None:
    from syncd.state.cursors import Cursors

    Cursors(store).delete(SCOPE, NAME)


def last(conn: Any) -> dict[str, Any] | None:
    """The last reload of the running daemon as `status --json` shows it, None when it has not
    reloaded since it started."""
    from sqlalchemy import select

    from syncd.state.schema import cursors

    value = conn.execute(select(cursors.c.value).where(cursors.c.platform == SCOPE,
                                                       cursors.c.name == NAME)).scalar_one_or_none()
    if not isinstance(value, dict):
        return None
    at = value.get("at")
    if at:  # ISO 8601 UTC with "Z", as every time in `status --json`
        at = datetime.fromisoformat(at).astimezone(UTC).isoformat().replace("+00:00", "Z")
    return {"at": at, "ok": bool(value.get("ok")), "error": value.get("error"),
            "changed": list(value.get("changed") or [])}

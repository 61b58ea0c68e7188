"""Finding, parsing and validating the TOML configuration.

Every problem becomes one ``ConfigError`` naming the file, the key path
(``platforms[0].addresses.password_field``), the bad value and what is allowed, so the
operator can fix it without reading code. Secret-bearing keys never have their value echoed.
"""

from __future__ import annotations

import difflib
import os
import re
import sys
import tomllib
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from syncd.config.base import FieldProblem
from syncd.config.model import Settings
from syncd.config.profiles import effective_columns
from syncd.config.secret_keys import secret_fields
from syncd.core.errors import AccessError, ConfigError, whoami
from syncd.core.redaction import MASK, is_sensitive_key, redact_value, resembles_sensitive_key

ENV_VAR = "SYNCD_CONFIG"
# Keys that look sensitive by name but hold settings, not secrets: their bad values are shown.
_NOT_SECRET = frozenset(
    {"password_field", "password_length", "password_alphabet", "send_credentials", "credential_mode",
     "allow_password_by_sms", "send_credentials_since", "credentials_sent_at"}
)


class Hidden:
    """Shown in an error instead of a value that may be a secret: only its length, so the
    operator can still tell which line is meant (``(got <hidden: 14 characters>)``)."""

    def __init__(self, value: Any) -> None:
        self.length = len(value) if isinstance(value, str) else None

    def __repr__(self) -> str:
        return f"<hidden: {self.length} characters>" if self.length is not None else "<hidden>"


def _unknown_may_hold_secret(loc: tuple[str | int, ...]) -> bool:
    """An unknown key (``loc``) may hold a secret: its name resembles a secret key's, or it sits
    in a table that has secret keys (a misspelt ``client_secret`` need not look like one)."""
    names = [p for p in loc if isinstance(p, str)]
    if not names:
        return False
    if resembles_sensitive_key(names[-1]):
        return True
    parent = _model_at(loc[:-1])
    return parent is not None and bool(secret_fields(parent))


@dataclass(frozen=True)
class LoadedConfig:
    settings: Settings
    path: Path


def default_config_path() -> Path:
    if sys.platform == "win32":
        return Path(os.environ.get("PROGRAMDATA", r"C:\ProgramData")) / "syncd" / "config.toml"
    return Path("/etc/syncd/config.toml")


def find_config(path: str | os.PathLike[str] | None = None) -> Path:
    """``path``, else ``$SYNCD_CONFIG``, else the platform default; must exist."""
    if path:
        chosen, source = Path(path), "--config"
    elif os.environ.get(ENV_VAR):
        chosen, source = Path(os.environ[ENV_VAR]), f"${ENV_VAR}"
    else:
        chosen, source = default_config_path(), "the default location"
    chosen = chosen.expanduser().absolute()  # the daemon or service may change its working folder
    try:
        chosen.stat()
    except PermissionError as exc:  # a folder on the way is closed to this user: not "missing"
        reason = f"{exc.strerror} on a folder on its way (from {source})"
        raise AccessError(chosen, "read the configuration file", reason, _read_hint(chosen)) from None
    except OSError:
        pass
    if not chosen.is_file():
        what = "is a directory, not a file" if chosen.is_dir() else "does not exist"
        raise ConfigError(
            f"configuration file {what} (from {source})",
            file=str(chosen),
            allowed=f"pass --config PATH, set ${ENV_VAR}, or create {default_config_path()}",
        )
    return chosen


def load_settings(path: str | os.PathLike[str] | None = None) -> LoadedConfig:
    file = find_config(path)
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise AccessError.from_os(file, "read the configuration file", exc, _read_hint(file)) from None
    settings = parse_settings(raw, file=str(file))
    return LoadedConfig(settings=settings, path=file)


def _read_hint(file: Path) -> str:
    return (f"syncd runs as {whoami()}: give that user read access to the file and its folders "
            f"(e.g. chgrp syncd {file} && chmod 640 {file}), or run syncd as a user who may read it")


def parse_settings(raw: bytes | str, *, file: str = "<config>") -> Settings:
    """TOML text -> validated ``Settings``; raises ``ConfigError``."""
    try:
        text = raw.decode("utf-8-sig") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"the file is not UTF-8 text (byte {exc.start})", file=file, allowed="save it as UTF-8"
        ) from None
    data = _parse_toml(text, file)
    try:
        # Strict: TOML has real types, so "yes" for a flag or "587" for a port is a typo to
        # report, not something to coerce. Arrays become tuples, which strict tuples require.
        settings = Settings.model_validate(_arrays_as_tuples(data), strict=True)
    except ValidationError as exc:
        raise _validation_to_config_error(exc, data, file) from None
    _cross_checks(settings, file)
    return settings


def _arrays_as_tuples(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_arrays_as_tuples(v) for v in value)
    if isinstance(value, dict):
        return {k: _arrays_as_tuples(v) for k, v in value.items()}
    return value


# --- TOML syntax ----------------------------------------------------------------------------

_LINE_COL = re.compile(r"\(at line (\d+), column (\d+)\)")
_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_ASSIGN = re.compile(r"^\s*([A-Za-z0-9_.\"'-]+)\s*=")


def _parse_toml(text: str, file: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        m = _LINE_COL.search(message)
        if not m:
            raise ConfigError(f"invalid TOML: {message}", file=file) from None
        line, col = int(m.group(1)), int(m.group(2))
        reason = _LINE_COL.sub("", message).strip()
        lines = text.splitlines()
        source = lines[line - 1].strip() if 0 < line <= len(lines) else ""
        key = _key_at_line(lines, line)
        raise ConfigError(
            f"invalid TOML at line {line}, column {col}: {reason}",
            file=file,
            key=key,
            value=_mask_line(source, key) or None,
            allowed="TOML syntax: strings in quotes, durations as strings (\"60s\"), one key per line",
        ) from None


def _key_at_line(lines: list[str], line: int) -> str | None:
    """Dotted key of an assignment on ``line`` (1-based), with the table it sits in and the
    index of array tables (``platforms[1].addresses.password_field``)."""
    if not 0 < line <= len(lines):
        return None
    m = _ASSIGN.match(lines[line - 1])
    if not m:
        return None
    counts: dict[str, int] = {}
    table = ""
    for previous in lines[: line - 1]:
        h = _HEADER.match(previous)
        if not h:
            continue
        name = h.group(1).replace('"', "").replace("'", "").replace(" ", "")
        if previous.lstrip().startswith("[["):
            counts[name] = counts.get(name, 0) + 1
            table = f"{_indexed(name, counts)}[{counts[name] - 1}]"
        else:
            table = _indexed(name, counts)
    name = m.group(1).replace('"', "").replace("'", "")
    return f"{table}.{name}" if table else name


def _indexed(dotted: str, counts: dict[str, int]) -> str:
    """``platforms.addresses`` -> ``platforms[1].addresses`` after two ``[[platforms]]``."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        prefix = ".".join(parts[:cut])
        if prefix in counts and cut < len(parts):
            rest = ".".join(parts[cut:])
            return f"{_indexed(prefix, counts)}[{counts[prefix] - 1}].{rest}"
    return dotted


def _mask_line(source: str, key: str | None) -> str:
    last = key.rsplit(".", 1)[-1] if key else ""
    if last and last not in _NOT_SECRET and is_sensitive_key(last):
        return source.split("=", 1)[0] + "= " + MASK
    if key and "=" in source and _unknown_may_hold_secret(_loc_of(key)):
        parent = _model_at(_loc_of(key)[:-1])
        if parent is None or last not in _allowed_keys(parent):  # an unknown key: value hidden
            name, _, value = source.partition("=")
            return f"{name.rstrip()} = <hidden: {len(value.strip())} characters>"
    return source


def _loc_of(key: str) -> tuple[str | int, ...]:
    """``platforms[1].addresses.x`` -> ("platforms", 1, "addresses", "x")."""
    loc: list[str | int] = []
    for part in key.split("."):
        name, *indexes = part.split("[")
        loc.append(name)
        loc += [int(i.rstrip("]")) for i in indexes if i.rstrip("]").isdigit()]
    return tuple(loc)


# --- schema validation ----------------------------------------------------------------------

def format_loc(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _unwrap(annotation: Any) -> Any:
    """The model class a field holds, looking through Optional and tuple[...]."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, tuple, list):
        for arg in typing.get_args(annotation):
            if arg is not type(None) and arg is not Ellipsis:
                found = _unwrap(arg)
                if found is not None:
                    return found
        return None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _model_at(loc: tuple[str | int, ...]) -> type[BaseModel] | None:
    model: type[BaseModel] | None = Settings
    for part in loc:
        if model is None:
            return None
        if isinstance(part, int):
            continue
        field = next(
            (f for name, f in model.model_fields.items() if (f.alias or name) == part), None
        )
        if field is None:
            return None
        model = _unwrap(field.annotation)
    return model


def _allowed_keys(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


def _value_at(data: Any, loc: tuple[str | int, ...]) -> Any:
    for part in loc:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _shown(loc: tuple[str | int, ...], value: Any) -> Any:
    """The value as it may appear in an error: secret keys masked, also inside tables."""
    names = [p for p in loc if isinstance(p, str)]
    if names and names[-1] in _NOT_SECRET:
        return value
    if names and is_sensitive_key(names[-1]) and value not in (None, ""):
        return MASK
    return redact_value(value)


def _describe(error: Any, data: dict[str, Any]) -> tuple[str, str, Any, str | None]:
    """(key path, message, value, allowed) of one pydantic error."""
    loc = tuple(error["loc"])
    kind = error["type"]
    problem = (error.get("ctx") or {}).get("error")
    if isinstance(problem, FieldProblem):
        loc = loc + problem.path
        value = problem.value if problem.value is not None else _value_at(data, loc)
        return format_loc(loc), str(problem), _shown(loc, value), None
    key = format_loc(loc)
    if kind == "extra_forbidden":
        parent = _model_at(loc[:-1])
        allowed_keys = _allowed_keys(parent) if parent else []
        near = difflib.get_close_matches(str(loc[-1]), allowed_keys, n=1)
        message = "unknown key" + (f" (did you mean {near[0]!r}?)" if near else "")
        allowed = ", ".join(allowed_keys) if allowed_keys else None
        value = error.get("input")
        if _unknown_may_hold_secret(loc):
            return key, message, Hidden(value), allowed
        return key, message, _shown(loc, value), allowed
    if kind == "missing":
        return key, "required key is missing", None, None
    message = error["msg"]
    if kind == "value_error":
        message = message.removeprefix("Value error, ")
    allowed = None
    if kind == "literal_error":
        allowed = message.removeprefix("Input should be ")
        message = "not an allowed value"
    return key, message, _shown(loc, error.get("input")), allowed


def _validation_to_config_error(exc: ValidationError, data: dict[str, Any], file: str) -> ConfigError:
    errors = exc.errors()
    # A platform table with an error also makes the platforms list "too short": noise.
    errors = [
        e
        for e in errors
        if not (
            e["type"] == "too_short"
            and any(o is not e and tuple(o["loc"])[: len(e["loc"])] == tuple(e["loc"]) for o in errors)
        )
    ] or errors
    described = [_describe(e, data) for e in errors]
    key, message, value, allowed = described[0]
    if len(described) > 1:
        others = "; ".join(
            f"{k}: {m}" + (f" (got {v!r})" if v is not None else "") for k, m, v, _ in described[1:6]
        )
        more = len(described) - 6
        message += f" [also: {others}" + (f"; and {more} more" if more > 0 else "") + "]"
    return ConfigError(message, file=file, key=key, value=value, allowed=allowed)


# --- checks that need the whole configuration ------------------------------------------------

def _cross_checks(settings: Settings, file: str) -> None:
    owner = settings.erp.shop_id_platform
    if owner is not None and owner not in {p.name for p in settings.platforms}:
        raise ConfigError("names no configured platform", file=file, key="erp.shop_id_platform", value=owner,
                          allowed=[p.name for p in settings.platforms])
    columns = effective_columns(settings.erp)
    mapped = {col.lower(): logical for logical, col in columns.items() if col}
    lo, hi = settings.erp.debtor_range
    for index, platform in enumerate(settings.platforms):
        addresses = platform.addresses
        where = f"platforms[{index}].addresses"
        field = addresses.password_field
        if field and field.lower() in mapped:
            raise ConfigError(
                f"the password field is the ERP column already mapped as {mapped[field.lower()]!r} "
                f"(profile {settings.erp.profile!r} / [erp.columns]); it would be overwritten and cleared",
                file=file,
                key=f"{where}.password_field",
                value=field,
                allowed="a free text column reserved for the password, not one of: "
                + ", ".join(sorted(columns.values())),
            )
        if field and field.lower() in {c.lower() for c in addresses.copy_fields}:
            raise ConfigError(
                "copy_fields must not contain the password field: a template's in-flight password "
                "would be copied into a new address",
                file=file,
                key=f"{where}.copy_fields",
                value=list(addresses.copy_fields),
                allowed=f"ERP columns other than {field!r}",
            )
        number = addresses.next_address_number
        if number is not None and not addresses.allow_numbers_outside_debtor_range and not lo <= number <= hi:
            raise ConfigError(
                "next_address_number is outside erp.debtor_range",
                file=file,
                key=f"{where}.next_address_number",
                value=number,
                allowed=f"{lo}..{hi}, or set allow_numbers_outside_debtor_range = true",
            )

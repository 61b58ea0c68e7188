"""The configuration's reference documents the model, found by walking it (a key or table added
later is covered without touching this test): every key of every table of ``Settings`` is in
``config.example.toml`` in its table, set to its default or commented out (a commented-out key
that has a default shows that default), and named in README.md; the example loads; and every key
named like a secret either holds one (marked ``SECRET``) or is listed as a setting whose bad value
an error may show."""

from __future__ import annotations

import re
import tomllib
import types
import typing
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from syncd.config.durations import parse_duration
from syncd.config.loader import _NOT_SECRET, load_settings
from syncd.config.model import Settings
from syncd.config.secret_keys import is_secret_field
from syncd.core.redaction import is_sensitive_key

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config.example.toml"
README = ROOT / "README.md"
# Keys whose default is computed from the host or from other keys: the example shows a typical value.
COMPUTED = {"daemon.state_url"}
# Required for one platform kind only (the model defaults them to None for the other).
KIND_REQUIRED = {"client_id", "client_secret", "consumer_key", "consumer_secret"}


def _nested(annotation: Any) -> tuple[type[BaseModel] | None, str]:
    """The model a field holds and how: "one", "many" (array of tables) or "named" (a table
    of tables, ``[mail.accounts.NAME]``)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _nested(arg)
            if found[0] is not None:
                return found
    if origin in (tuple, list):
        inner = next((a for a in typing.get_args(annotation) if a is not Ellipsis), None)
        return (_nested(inner)[0], "many") if inner is not None else (None, "")
    if origin is dict:
        return _nested(typing.get_args(annotation)[1])[0], "named"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, "one"
    return None, ""


def model_keys(model: type[BaseModel] = Settings, section: str = "") -> list[tuple[str, str, Any]]:
    """(table, key, field) for every leaf key, tables as the example names them."""
    out = []
    for name, field in model.model_fields.items():
        key = field.alias or name
        inner, how = _nested(field.annotation)
        if inner is None:
            out.append((section, key, field))
            continue
        table = f"{section}.{key}" if section else key
        out += model_keys(inner, f"{table}.*" if how == "named" else table)
    return out


def example_lines() -> dict[str, dict[str, tuple[str, bool]]]:
    """table -> key -> (its value's TOML text, commented out?). A commented-out table header
    ("# [[reminders]]") documents its keys too; ``[mail.accounts.outlet]`` stands for every name."""
    out: dict[str, dict[str, tuple[str, bool]]] = {}
    table = ""
    for line in EXAMPLE.read_text(encoding="utf-8").splitlines():
        header = re.match(r"^(?:#\s*)?\[\[?([a-z_.]+)\]\]?", line)
        if header:
            table = re.sub(r"^mail\.accounts\.[a-z_]+$", "mail.accounts.*", header.group(1))
            continue
        found = re.match(r"^(#)?\s*([a-z_]+)\s*=\s*(.*?)\s*(?:#(?![^\"']*[\"'][^\"']*$).*)?$", line)
        if found:
            out.setdefault(table, {}).setdefault(found.group(2), (found.group(3), bool(found.group(1))))
    return out


KEYS = model_keys()


def _id(item: tuple[str, str, Any]) -> str:
    return f"{item[0]}.{item[1]}" if item[0] else item[1]


def test_the_walk_finds_the_tables_of_every_feature():
    tables = {t for t, _, _ in KEYS}
    assert {"daemon", "erp", "erp.columns", "mail", "mail.accounts.*", "sms", "messages", "reminders",
            "platforms", "platforms.addresses", "notifications"} <= tables
    assert ("mail", "max_per_minute") in {(t, k) for t, k, _ in KEYS}


def _same(default: Any, text: str) -> bool:
    value = tomllib.loads(f"v = {text}")["v"]
    if isinstance(default, float) and isinstance(value, str):
        return parse_duration(value) == default
    if isinstance(default, tuple):
        return tuple(value) == default
    if isinstance(default, dict):
        return value == default
    return value == default


@pytest.mark.parametrize("item", KEYS, ids=_id)
def test_every_key_is_in_the_example_with_its_default(item):
    table, key, field = item
    lines = example_lines()
    assert key in lines.get(table, {}), f"[{table}] {key} is not in config.example.toml"
    text, commented = lines[table][key]
    if field.is_required() or key in KIND_REQUIRED or _id(item) in COMPUTED:
        return
    default = field.get_default(call_default_factory=True)
    if commented and default is None:
        return  # "unset: ..." - the line shows an example value
    assert text, f"[{table}] {key}: no value shown"
    assert _same(default, text), f"[{table}] {key} = {text} in config.example.toml, default {default!r}"


@pytest.mark.parametrize("item", KEYS, ids=_id)
def test_every_key_is_named_in_the_readme(item):
    _, key, _ = item
    assert re.search(rf"(?<![a-z_]){re.escape(key)}(?![a-z_])", README.read_text(encoding="utf-8")), (
        f"{_id(item)} is not in README.md")


def test_the_example_loads():
    assert load_settings(str(EXAMPLE)).settings.platforms


@pytest.mark.parametrize("item", [i for i in KEYS if is_sensitive_key(i[1])], ids=_id)
def test_a_key_named_like_a_secret_holds_one_or_is_shown_in_errors(item):
    """Else the loader masks a bad value of a plain setting (the operator cannot see what is
    wrong), or shows a secret's."""
    table, key, _ = item
    owner = _owner(table)
    assert is_secret_field(owner, key) or key in _NOT_SECRET, f"{_id(item)}: mark it SECRET or list it"


def _owner(table: str) -> type[BaseModel]:
    model: type[BaseModel] = Settings
    for part in [p for p in table.split(".") if p and p != "*"]:
        field = model.model_fields[part]
        model = _nested(field.annotation)[0]  # type: ignore[assignment]
    return model

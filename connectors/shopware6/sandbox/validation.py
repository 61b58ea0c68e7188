"""Field-level write validation, one function per DAL field serializer the connector meets.

Each check returns the value to store, or appends violations (with JSON pointers) and returns
``_INVALID``. Nothing here touches the store.
"""

from __future__ import annotations

import re
import sys
from datetime import UTC, datetime
from typing import Any

from . import errors as e
from .schema import Field
from .store import format_dt

INVALID = object()

UUID = re.compile(r"^[0-9a-f]{32}$")
_TAGS = re.compile(r"<[^>]*>")
# Symfony's Email constraint: "html5" mode (Symfony 7, Shopware 6.6+) and "loose" mode (6.5).
EMAIL_HTML5 = re.compile(
    r"^[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?"
    r"(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)+$"
)
EMAIL_LOOSE = re.compile(r"^.+@\S+\.\S+$")
BCRYPT = re.compile(r"^\$2[aby]?\$\d\d\$[./A-Za-z0-9]{53}$")


def check(
    name: str,
    spec: Field,
    value: Any,
    pointer: str,
    violations: list[dict],
    *,
    email_pattern: re.Pattern[str],
    password_min: int,
) -> Any:
    """Validate one field value; ``None`` means "set to NULL" (and fails NotBlank when required)."""
    kind = spec.kind
    if kind in ("string", "email", "password") and value == "":
        value = None  # the DAL stores empty strings as NULL, then NotBlank applies
    if value is None:
        if spec.required or kind == "password":
            violations.append(e.not_blank(pointer))
            return INVALID
        return None
    if kind in ("id", "fk"):
        if not isinstance(value, str) or not UUID.match(value):
            violations.append(e.invalid_uuid(pointer, value))
            return INVALID
        # 100,000 customers share a handful of group/channel/country ids: keep one copy of each
        return sys.intern(value) if kind == "fk" else value
    if kind == "string":
        if not isinstance(value, str):
            violations.append(e.invalid_type(pointer, "string"))
            return INVALID
        if "<" in value:
            value = _TAGS.sub("", value)  # StringFieldSerializer strips HTML unless AllowHtml
            if not value and spec.required:
                violations.append(e.not_blank(pointer))
                return INVALID
        if spec.max_len is not None and len(value) > spec.max_len:
            violations.append(e.too_long(pointer, value, spec.max_len))
            return INVALID
        return value
    if kind == "email":
        if not isinstance(value, str):
            violations.append(e.invalid_type(pointer, "string"))
            return INVALID
        if not email_pattern.match(value):
            violations.append(e.invalid_email(pointer, value))
            return INVALID
        if len(value) > 255:
            violations.append(e.too_long(pointer, value, 255))
            return INVALID
        return value
    if kind == "password":
        if not isinstance(value, str):
            violations.append(e.invalid_type(pointer, "string"))
            return INVALID
        if BCRYPT.match(value):
            return value  # password_get_info() knows it: stored unchanged
        if password_min and len(value) < password_min:
            violations.append(e.too_short(pointer, password_min))
            return INVALID
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            violations.append(e.invalid_type(pointer, "bool"))
            return INVALID
        return value
    if kind == "choice":
        if value not in spec.choices:
            violations.append(e.no_such_choice(pointer, value))
            return INVALID
        return value
    if kind == "list":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            violations.append(e.invalid_type(pointer, "array"))
            return INVALID
        return value
    if kind == "json":
        if not isinstance(value, dict):
            violations.append(e.invalid_type(pointer, "array"))
            return INVALID
        return value
    if kind in ("datetime", "date"):
        try:
            parsed = datetime.fromisoformat(str(value).replace(" ", "T", 1).replace("Z", "+00:00"))
        except ValueError:
            violations.append(
                e.violation(
                    pointer, "FRAMEWORK__WRITE_CONSTRAINT_VIOLATION", "This value is not a valid datetime."
                )
            )
            return INVALID
        if kind == "date":
            return parsed.date().isoformat()
        return format_dt(parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC))
    return value

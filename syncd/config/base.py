"""The building blocks of the settings models: a strict frozen model, durations, the secret
marker, and the cross-field problem the loader reports with its key path."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict

from syncd.config.durations import parse_duration

Duration = Annotated[float, BeforeValidator(parse_duration)]
# A secret-bearing key: a reference or (with a warning) a plain secret. The marker, not the key's
# name, is what the loader reads to keep values out of error messages (``secret_key_paths``).
SECRET = {"secret": True}


class FieldProblem(ValueError):
    """A cross-field check failed; ``path`` names the key at fault relative to the model that
    raised it, so the loader reports ``platforms[0].addresses.password_field`` rather than
    just the enclosing table."""

    def __init__(self, path: str | tuple[str | int, ...], message: str, value: Any = None) -> None:
        super().__init__(message)
        self.path = (path,) if isinstance(path, str) else tuple(path)
        self.value = value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _since(value: Any) -> Any:
    # A TOML date (2026-01-31) or the same as a string ("2026-01-31"); "first-run" passes as is.
    if isinstance(value, str) and value != "first-run":
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise ValueError('a date such as 2026-01-31, or "first-run"') from None
    return value


Since = Annotated[date | Literal["first-run"] | None, BeforeValidator(_since)]

"""The building blocks of the settings models: a strict frozen model, durations, the secret
marker, and the cross-field problem the loader reports with its key path."""

from __future__ import annotations

from typing import Annotated, Any

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



"""Which configuration keys hold secrets: found by walking the settings models for the
``SECRET`` marker, so a secret key added later is covered by whatever uses this."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


def is_secret_field(model: type[BaseModel], key: str) -> bool:
    field = next((f for name, f in model.model_fields.items() if (f.alias or name) == key), None)
    extra = field.json_schema_extra if field is not None else None
    return isinstance(extra, dict) and bool(extra.get("secret"))


def secret_fields(model: type[BaseModel]) -> list[str]:
    """The keys of ``model``'s own table that hold secrets (marked ``SECRET``)."""
    keys = [f.alias or name for name, f in model.model_fields.items()]
    return [key for key in keys if is_secret_field(model, key)]


def secret_key_paths(model: type[BaseModel] | None = None) -> list[tuple[str | int, ...]]:
    """Every secret key of the configuration as a key path (``("platforms", 0, "client_secret")``),
    found by walking the models: a secret key added later is covered by whatever uses this."""
    import types
    import typing

    def nested(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
        origin = typing.get_origin(annotation)
        if origin in (typing.Union, types.UnionType, tuple, list):
            for arg in typing.get_args(annotation):
                if arg is not type(None) and arg is not Ellipsis:
                    found, _ = nested(arg)
                    if found is not None:
                        return found, origin in (tuple, list)
            return None, False
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            return annotation, False
        return None, False

    if model is None:
        from syncd.config.model import Settings

        model = Settings
    paths: list[tuple[str | int, ...]] = [(key,) for key in secret_fields(model)]
    for name, f in model.model_fields.items():
        inner, many = nested(f.annotation)
        if inner is not None:
            prefix: tuple[str | int, ...] = (f.alias or name, 0) if many else (f.alias or name,)
            paths += [prefix + path for path in secret_key_paths(inner)]
    return paths

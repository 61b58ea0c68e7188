"""Search aggregations (count, terms, min, max, sum, avg) over the filtered rows, before paging.

Results follow the Admin API JSON shape: ``{"<name>": {"count": 3, "extensions": []}}``,
``{"<name>": {"buckets": [{"key": …, "count": …, "extensions": []}], "extensions": []}}``.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from .criteria import Searcher, bad_request
from .schema import Entity

KINDS = ("count", "terms", "min", "max", "sum", "avg")


def aggregate(searcher: Searcher, entity: Entity, specs: Any, rows: list[dict[str, Any]]) -> dict[str, Any]:
    if not specs:
        return {}
    if not isinstance(specs, list):
        raise bad_request(
            "FRAMEWORK__INVALID_AGGREGATION_QUERY",
            "The aggregations parameter must be a list.",
            "/aggregations",
        )
    results: dict[str, Any] = {}
    for i, spec in enumerate(specs):
        pointer = f"/aggregations/{i}"
        if not isinstance(spec, dict) or spec.get("type") not in KINDS:
            kind = spec.get("type") if isinstance(spec, dict) else spec
            raise bad_request(
                "FRAMEWORK__INVALID_AGGREGATION_QUERY", f"Unsupported aggregation type: {kind}", pointer
            )
        name, field = spec.get("name"), spec.get("field")
        if not isinstance(name, str) or not name or not isinstance(field, str) or not field:
            raise bad_request(
                "FRAMEWORK__INVALID_AGGREGATION_QUERY", "An aggregation needs a name and a field.", pointer
            )
        path = field.removeprefix(f"{entity.name}.").split(".")
        searcher.check_field(entity, path, pointer)
        values = [v for r in rows for v in searcher.resolve(entity, r, path) if v is not None]
        kind = spec["type"]
        if kind == "count":
            results[name] = {"count": len(values), "extensions": []}
        elif kind == "terms":
            counts = Counter(v if not isinstance(v, (dict, list)) else str(v) for v in values)
            limit = spec.get("limit")
            buckets = [
                {"key": key, "count": n, "extensions": []}
                for key, n in counts.most_common(limit if isinstance(limit, int) else None)
            ]
            results[name] = {"buckets": buckets, "extensions": []}
        else:
            numbers = (
                values
                if kind in ("min", "max")
                else [float(v) for v in values if isinstance(v, (int, float))]
            )
            if kind == "min":
                value = min(numbers) if numbers else None
            elif kind == "max":
                value = max(numbers) if numbers else None
            elif kind == "sum":
                value = sum(numbers)
            else:
                value = sum(numbers) / len(numbers) if numbers else None
            results[name] = {kind: value, "extensions": []}
    return results

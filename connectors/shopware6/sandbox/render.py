"""Records as the Admin API returns them: associations loaded on request, ``includes`` applied.

With ``Accept: application/json`` Shopware answers plain JSON; with anything else (``*/*``, no
header) it answers JSON:API, which the sandbox imitates so a client that forgets the header fails
as it would against a real shop.
"""

from __future__ import annotations

from typing import Any

from .criteria import Searcher
from .schema import Entity


class Renderer:
    def __init__(self, searcher: Searcher):
        self.searcher = searcher
        self.entities = searcher.store.entities

    def record(
        self, entity: Entity, record: dict[str, Any], associations: Any, includes: Any
    ) -> dict[str, Any]:
        out = {k: v for k, v in record.items() if not _hidden(entity, k)}
        if isinstance(associations, dict):
            for name, sub in associations.items():
                assoc = entity.associations.get(name)
                if assoc is None:
                    continue
                target = self.entities[assoc.target]
                sub_assoc = sub.get("associations") if isinstance(sub, dict) else None
                related = [
                    self.record(target, r, sub_assoc, includes)
                    for r in self.searcher.related(record, entity, name)
                ]
                if assoc.kind in ("one", "rev_one"):
                    out[name] = related[0] if related else None
                else:
                    out[name] = related
        if isinstance(includes, dict) and isinstance(includes.get(entity.name), list):
            keep = set(includes[entity.name]) | {"apiAlias"}
            out = {k: v for k, v in out.items() if k in keep}
        out.setdefault("apiAlias", entity.name)
        return out


def _hidden(entity: Entity, key: str) -> bool:
    # id lists kept for many-to-many associations are storage, not fields
    return key not in entity.fields and key != "apiAlias" and key not in ("translated",)


def json_api_search(entity: Entity, total: int, rows: list[dict[str, Any]], base_url: str) -> dict[str, Any]:
    data = [json_api_resource(entity, r, base_url) for r in rows]
    return {"data": data, "included": [], "links": {}, "meta": {"total": total}, "aggregations": []}


def json_api_resource(entity: Entity, row: dict[str, Any], base_url: str) -> dict[str, Any]:
    attributes = {k: v for k, v in row.items() if k not in ("id", "apiAlias")}
    url_name = entity.name.replace("_", "-")
    return {
        "id": row["id"],
        "type": entity.name,
        "attributes": attributes,
        "links": {"self": f"{base_url}/api/{url_name}/{row['id']}"},
        "relationships": {},
        "meta": None,
    }

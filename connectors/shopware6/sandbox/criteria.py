"""Criteria evaluation for ``/api/search`` and ``/api/search-ids`` (the DAL subset an ERP connector uses).

Filters: equals, equalsAny, contains, prefix, suffix, range, multi, not. String comparison is
case-insensitive like MySQL's ``utf8mb4_unicode_ci``; range values on date fields accept the
storage format (``2024-10-01 00:00:00.000``) and ISO 8601, as MySQL does.
"""

from __future__ import annotations

import bisect
import json
import math
import operator
from datetime import UTC, datetime
from typing import Any

from .errors import ApiError, error
from .schema import DATETIME_FIELDS, Entity
from .store import Store, format_dt, index_key

_OPS = {"gte": operator.ge, "gt": operator.gt, "lte": operator.le, "lt": operator.lt}


def bad_request(code: str, detail: str, pointer: str) -> ApiError:
    return ApiError(400, [error(400, code, detail, title="Bad Request", pointer=pointer)])


def parse_datetime(value: Any, pointer: str) -> str:
    """Normalise a filter's date value to the fixed-width API format used for stored dates."""
    if not isinstance(value, str):
        raise bad_request("FRAMEWORK__INVALID_FILTER_QUERY", f"Invalid date value {value!r}", pointer)
    text = value.strip().replace(" ", "T", 1)
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise bad_request(
            "FRAMEWORK__INVALID_FILTER_QUERY", f"Invalid date value {value!r}", pointer
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)  # Shopware stores and compares UTC
    return format_dt(dt)


SORTED_INDEX_MIN = 1000  # below this a scan is as cheap as keeping the index


class Searcher:
    def __init__(self, store: Store, max_limit: int | None):
        self.store = store
        self.max_limit = max_limit
        self._cache: dict[str, tuple[int, list[dict[str, Any]]]] = {}  # callers hold the store lock
        # (entity, date field) -> (generation, sorted values, ids in that order): what a shop's
        # database index on a timestamp is, so "changed since" reads cost O(log n + answer).
        self._sorted: dict[tuple[str, str], tuple[int, list[str], list[str]]] = {}

    # --- field access ----------------------------------------------------------------------
    def resolve(self, entity: Entity, record: dict[str, Any], path: list[str]) -> list[Any]:
        """All values a dotted path reaches (to-many associations fan out: any match counts)."""
        head, rest = path[0], path[1:]
        if head in entity.associations:
            assoc = entity.associations[head]
            target = self.store.entities[assoc.target]
            related = self.related(record, entity, head)
            if not rest:
                return related
            values: list[Any] = []
            for rel in related:
                values.extend(self.resolve(target, rel, rest))
            return values
        value = record.get(head)
        if rest:
            # json fields (customFields.erp_no) and translated.name
            for part in rest:
                value = value.get(part) if isinstance(value, dict) else None
        return [value]

    def related(self, record: dict[str, Any], entity: Entity, name: str) -> list[dict[str, Any]]:
        assoc = entity.associations[name]
        table = self.store.tables[assoc.target]
        if assoc.kind == "one":
            rel = table.get(record.get(assoc.key) or "")
            return [rel] if rel is not None else []
        if assoc.kind == "m2m":
            return [table[i] for i in record.get(assoc.key) or () if i in table]
        if self.store.is_indexed(assoc.target, assoc.key):
            return [table[i] for i in self.store.ids_by(assoc.target, assoc.key, record["id"])]
        return [r for r in table.values() if r.get(assoc.key) == record["id"]]

    def check_field(self, entity: Entity, path: list[str], pointer: str) -> None:
        current = entity
        for i, part in enumerate(path):
            if part in current.associations:
                current = self.store.entities[current.associations[part].target]
                continue
            if part in current.fields and (
                i == len(path) - 1 or current.fields[part].kind == "json" or part == "translated"
            ):
                return
            raise bad_request(
                "FRAMEWORK__UNMAPPED_FIELD",
                f'Field "{".".join(path)}" in entity "{entity.name}" was not found.',
                pointer,
            )

    # --- filters ---------------------------------------------------------------------------
    def compile(self, entity: Entity, spec: Any, pointer: str):
        if not isinstance(spec, dict) or "type" not in spec:
            raise bad_request(
                "FRAMEWORK__INVALID_FILTER_QUERY", "Parameter type is required for a filter", pointer
            )
        kind = spec["type"]
        if kind in ("multi", "not"):
            op = str(spec.get("operator", "and")).lower()
            if op not in ("and", "or", "&&", "||"):
                raise bad_request("FRAMEWORK__INVALID_FILTER_QUERY", f"Unsupported operator {op}", pointer)
            subs = [
                self.compile(entity, q, f"{pointer}/queries/{i}")
                for i, q in enumerate(spec.get("queries") or [])
            ]
            combined = _any_of(subs) if op in ("or", "||") else _all_of(subs)
            if kind == "not":
                return lambda r: not combined(r)
            return combined
        fname = spec.get("field")
        if not isinstance(fname, str) or not fname:
            raise bad_request(
                "FRAMEWORK__INVALID_FILTER_QUERY", f"Parameter field for {kind} filter is missing.", pointer
            )
        path = fname.split(".")
        if path[0] == entity.name:  # "customer.email" is the same as "email"
            path = path[1:]
        self.check_field(entity, path, pointer)
        is_date = path[-1] in DATETIME_FIELDS
        plain = len(path) == 1 and path[0] not in entity.associations
        head = path[0]
        # a plain field is one dict lookup; only association paths need the general resolver
        get = (lambda r: (r.get(head),)) if plain else (lambda r: self.resolve(entity, r, path))
        if kind == "equals":
            want = _normalise(spec.get("value"), is_date, pointer)
            if plain:
                return lambda r: _equal(r.get(head), want)
            return lambda r: any(_equal(v, want) for v in get(r))
        if kind == "equalsAny":
            values = spec.get("value")
            if isinstance(values, str):
                values = values.split("|")
            if not isinstance(values, list):
                raise bad_request(
                    "FRAMEWORK__INVALID_FILTER_QUERY", "equalsAny needs a list of values.", pointer
                )
            wants = [_normalise(v, is_date, pointer) for v in values]
            return lambda r: any(_equal(v, w) for v in get(r) for w in wants)
        if kind in ("contains", "prefix", "suffix"):
            needle = str(spec.get("value", "")).casefold()
            test = {"contains": str.__contains__, "prefix": str.startswith, "suffix": str.endswith}[kind]
            return lambda r: any(v is not None and test(str(v).casefold(), needle) for v in get(r))
        if kind == "range":
            params = spec.get("parameters") or {}
            if not isinstance(params, dict):
                raise bad_request(
                    "FRAMEWORK__INVALID_FILTER_QUERY", "The range parameters must be an object.", pointer
                )
            bounds = []
            for op in ("gte", "gt", "lte", "lt"):
                if op in params:
                    bound = parse_datetime(params[op], pointer) if is_date else params[op]
                    bounds.append((op, bound))
            if plain and is_date:
                # stored dates and normalised bounds share one fixed-width format: compare as strings
                checks = [(_OPS[op], b) for op, b in bounds]
                if len(checks) == 1:
                    [(cmp, bound)] = checks
                    return lambda r: (v := r.get(head)) is not None and cmp(v, bound)
                return lambda r: (v := r.get(head)) is not None and all(cmp(v, b) for cmp, b in checks)
            return lambda r: any(
                v is not None and all(_compare(v, op, b) for op, b in bounds) for v in get(r)
            )
        raise bad_request("FRAMEWORK__INVALID_FILTER_QUERY", f"Unsupported filter type: {kind}", pointer)

    # --- search ----------------------------------------------------------------------------
    def search(self, entity: Entity, criteria: dict[str, Any]) -> tuple[int, list[dict[str, Any]]]:
        filters = criteria.get("filter") or []
        post = criteria.get("post-filter") or []
        if not isinstance(filters, list) or not isinstance(post, list):
            raise bad_request(
                "FRAMEWORK__INVALID_FILTER_QUERY", "The filter parameter has to be a list.", "/filter"
            )
        limit, page = self._paging(criteria)
        mode = _count_mode(criteria.get("total-count-mode"))
        rows = self._matching(entity, criteria, filters, post)
        offset = (page - 1) * limit if limit else 0
        page_rows = rows[offset : offset + limit] if limit else rows[offset:]
        if mode == 1:
            total = len(rows)
        elif mode == 2 and limit:
            # next-pages detection: the DAL fetches limit * 6 + 1 rows and counts those
            total = offset + min(len(rows) - offset, limit * 6 + 1)
        else:
            total = len(page_rows)
        return total, page_rows

    def filtered(self, entity: Entity, criteria: dict[str, Any]) -> list[dict[str, Any]]:
        """Rows matching ``filter`` only: aggregations ignore ``post-filter``, as in the DAL."""
        filters = criteria.get("filter") or []
        return self._matching(entity, {"ids": criteria.get("ids")}, filters, [])

    def _matching(self, entity: Entity, criteria: dict[str, Any], filters: list[Any], post: list[Any]):
        """All matching rows in order. Paging through a result re-asks the same question page after
        page; while nothing was written in between, the sorted answer is reused (O(limit) per page)."""
        try:
            key = json.dumps(
                [entity.name, filters, post, criteria.get("ids"), criteria.get("sort")], sort_keys=True
            )
        except (TypeError, ValueError):
            key = None
        hit = self._cache.get(key) if key is not None else None
        if hit is not None and hit[0] == self.store.generation:
            return hit[1]
        tests = [self.compile(entity, f, f"/filter/{i}") for i, f in enumerate(filters)]
        tests += [self.compile(entity, f, f"/post-filter/{i}") for i, f in enumerate(post)]
        candidates = self._candidates(entity, criteria.get("ids"), filters,
                                      sorted_after=bool(criteria.get("sort")))
        rows = list(candidates)
        for test in tests:  # one pass per filter: list comprehensions beat a generator per row
            rows = [r for r in rows if test(r)]
        self._sort(entity, rows, criteria.get("sort"))
        if key is not None:
            if len(self._cache) >= 16:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = (self.store.generation, rows)
        return rows

    def _candidates(self, entity: Entity, ids: Any, filters: list[Any], *, sorted_after: bool = False):
        table = self.store.tables[entity.name]
        if ids:
            if isinstance(ids, str):
                ids = ids.split("|")
            if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                raise bad_request(
                    "FRAMEWORK__INVALID_CRITERIA_IDS", "The ids parameter must be a list of ids.", "/ids"
                )
            return [table[i] for i in dict.fromkeys(ids) if i in table]
        # A top-level equals/equalsAny on id or an indexed field narrows the scan to a dict hit.
        for f in filters:
            if not isinstance(f, dict) or f.get("type") not in ("equals", "equalsAny"):
                continue
            fname = str(f.get("field", "")).removeprefix(f"{entity.name}.")
            values = f.get("value")
            values = values.split("|") if f["type"] == "equalsAny" and isinstance(values, str) else values
            values = values if f["type"] == "equalsAny" else [values]
            if not isinstance(values, list) or any(v is None for v in values):
                continue
            if fname == "id":
                return [table[v] for v in dict.fromkeys(index_key(v) for v in values) if v in table]
            if self.store.is_indexed(entity.name, fname):
                found: dict[str, None] = {}
                for v in values:
                    found.update(dict.fromkeys(self.store.ids_by(entity.name, fname, v)))
                return [table[i] for i in found]
        # With a sort the answer's order is the sort's, so the index order may stand in for the
        # table's; without one, callers see insertion order as before.
        since = self._lower_date_bound(entity, filters) if sorted_after else None
        if since is not None and len(table) >= SORTED_INDEX_MIN:
            values, ids = self._date_index(entity, since[0])
            # A superset (``gt`` included at the bound): the filter tests run on these rows anyway.
            return [table[i] for i in ids[bisect.bisect_left(values, since[1]):]]
        return list(table.values())

    @staticmethod
    def _lower_date_bound(entity: Entity, filters: list[Any]) -> tuple[str, str] | None:
        """(field, bound) of a top-level range filter with a lower bound on a plain date field."""
        for f in filters:
            if not isinstance(f, dict) or f.get("type") != "range":
                continue
            fname = str(f.get("field", "")).removeprefix(f"{entity.name}.")
            params = f.get("parameters")
            if fname not in DATETIME_FIELDS or "." in fname or not isinstance(params, dict):
                continue
            for op in ("gte", "gt"):
                if op in params:
                    try:
                        return fname, parse_datetime(params[op], "/filter")
                    except ApiError:
                        return None  # the filter's own compile reports it
        return None

    def _date_index(self, entity: Entity, field: str) -> tuple[list[str], list[str]]:
        key = (entity.name, field)
        hit = self._sorted.get(key)
        if hit is not None and hit[0] == self.store.generation:
            return hit[1], hit[2]
        rows = self.store.tables[entity.name].items()
        pairs = sorted((v, i) for i, r in rows if isinstance(v := r.get(field), str))
        values, ids = [v for v, _ in pairs], [i for _, i in pairs]
        self._sorted[key] = (self.store.generation, values, ids)
        return values, ids

    def _sort(self, entity: Entity, rows: list[dict[str, Any]], sort: Any) -> None:
        if not sort:
            return
        if isinstance(sort, str):  # query-string form "-createdAt,id"
            sort = [
                {"field": s.lstrip("-"), "order": "DESC" if s.startswith("-") else "ASC"}
                for s in sort.split(",")
            ]
        keys = []
        if not isinstance(sort, list) or not all(isinstance(spec, dict) for spec in sort):
            raise bad_request(
                "FRAMEWORK__INVALID_SORT_QUERY", "The sort parameter must be a list of objects.", "/sort"
            )
        for i, spec in enumerate(sort):
            path = str(spec.get("field", "")).removeprefix(f"{entity.name}.").split(".")
            self.check_field(entity, path, f"/sort/{i}")
            keys.append((self._sort_key(entity, path), str(spec.get("order", "ASC")).upper() == "DESC"))
        if len({desc for _, desc in keys}) == 1:  # one direction: a single sort on a composite key
            funcs = [k for k, _ in keys]
            if len(funcs) == 1:
                rows.sort(key=funcs[0], reverse=keys[0][1])
            elif len(funcs) == 2:
                first, second = funcs
                rows.sort(key=lambda r: (first(r), second(r)), reverse=keys[0][1])
            else:
                rows.sort(key=lambda r: tuple(f(r) for f in funcs), reverse=keys[0][1])
            return
        for key, desc in reversed(keys):  # mixed directions: stable sorts, last criterion first
            rows.sort(key=key, reverse=desc)

    def _sort_key(self, entity: Entity, path: list[str]):
        head = path[0]
        spec = entity.fields.get(head) if len(path) == 1 else None
        if spec is not None and (head in DATETIME_FIELDS or spec.kind in ("id", "fk")):
            # fixed-width lower-case strings: compare as they are; NULL ("") sorts first, as in MySQL
            return lambda r: r.get(head) or ""
        if spec is not None:

            def plain(r):
                v = r.get(head)
                return (0, "") if v is None else (1, v.casefold() if isinstance(v, str) else v)

            return plain

        def related(r):
            vals = [v for v in self.resolve(entity, r, path) if v is not None]
            if not vals:
                return (0, "")
            v = vals[0]
            return (1, v.casefold() if isinstance(v, str) else v)

        return related

    def _paging(self, criteria: dict[str, Any]) -> tuple[int | None, int]:
        limit = criteria.get("limit")
        try:
            limit = int(limit) if limit is not None else None
            page = int(criteria.get("page", 1))
        except (TypeError, ValueError):
            raise bad_request(
                "FRAMEWORK__INVALID_LIMIT_QUERY", "The limit parameter must be a positive integer.", "/limit"
            ) from None
        if limit is not None and limit < 1:
            raise bad_request(
                "FRAMEWORK__INVALID_LIMIT_QUERY", "The limit parameter must be a positive integer.", "/limit"
            )
        if page < 1:
            raise bad_request(
                "FRAMEWORK__INVALID_PAGE_QUERY", "The page parameter must be a positive integer.", "/page"
            )
        if self.max_limit is not None:
            if limit is None:
                limit = self.max_limit
            elif limit > self.max_limit:
                raise ApiError(
                    400,
                    [
                        error(
                            400,
                            "FRAMEWORK__QUERY_LIMIT_EXCEEDED",
                            f"The limit must be lower than or equal to MAX_LIMIT"
                            f"(={self.max_limit}). Given: {limit}",
                            title="Bad Request",
                            parameters={"maxLimit": self.max_limit, "limit": limit},
                        )
                    ],
                )
        return limit, page


_COUNT_MODES = {"none": 0, "exact": 1, "next-pages": 2}


def _count_mode(value: Any) -> int:
    """``total-count-mode`` as 0/1/2 or, since 6.4, "none"/"exact"/"next-pages"."""
    if value is None or value == "":
        return 0
    if isinstance(value, str) and value in _COUNT_MODES:
        return _COUNT_MODES[value]
    try:
        mode = int(value)
    except (TypeError, ValueError):
        mode = -1
    if mode not in (0, 1, 2):
        raise bad_request(
            "FRAMEWORK__INVALID_TOTAL_COUNT_MODE_PARAMETER",
            f'The total-count-mode parameter "{value}" is invalid.',
            "/total-count-mode",
        )
    return mode


def _any_of(tests):
    def match(r):
        for test in tests:
            if test(r):
                return True
        return False

    return match


def _all_of(tests):
    def match(r):
        for test in tests:
            if not test(r):
                return False
        return True

    return match


def _normalise(value: Any, is_date: bool, pointer: str) -> Any:
    if value is None:
        return None
    if is_date:
        return parse_datetime(value, pointer)
    return value


def _equal(stored: Any, wanted: Any) -> bool:
    if wanted is None or stored is None:
        return stored is None and wanted is None
    if isinstance(stored, bool):
        return stored == (wanted in (True, 1, "1", "true"))
    if isinstance(stored, (int, float)):
        try:
            return math.isclose(float(stored), float(wanted))
        except (TypeError, ValueError):
            return False
    return str(stored).casefold() == str(wanted).casefold()


def _compare(stored: Any, op: str, bound: Any) -> bool:
    if isinstance(stored, str):
        stored, bound = stored.casefold(), str(bound).casefold()
    else:
        try:
            bound = float(bound)
        except (TypeError, ValueError):
            return False
    if op == "gte":
        return stored >= bound
    if op == "gt":
        return stored > bound
    if op == "lte":
        return stored <= bound
    return stored < bound

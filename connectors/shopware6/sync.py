"""Bulk writes through ``POST /api/_action/sync`` with per-record error mapping.

Since 6.5 one invalid record rejects the whole request and nothing is written (notes §3 Sync
API). The writer maps each error's JSON pointer back to its record, drops those records and
resends the rest; when an error carries no usable pointer it bisects the request until the bad
record is alone. Every write sends ``sw-skip-trigger-flow: 1`` so the shop sends no
registration mail of its own (syncd sends the one credentials mail).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from syncd.core import redaction
from syncd.core.text import clip

from .http import RawJson, ShopwareHttp, encode_json, errors_of

SYNC_PATH = "/api/_action/sync"
WRITE_HEADERS = {"sw-skip-trigger-flow": "1", "indexing-behavior": "use-queue-indexing"}


def _operation_key(entity: str) -> str:
    return f"write-{entity.replace('_', '-')}"


def record_position(pointer: str | None, key: str, ids: dict[str, int], count: int) -> int | None:
    """Index of the payload record an error pointer names, or None.

    Accepts the shapes seen across versions: ``/<key>/<i>/field`` (keyed body),
    ``/<op>/payload/<i>/field``, ``/<i>/field`` and ``/<customerId>/email`` (6.7 e-mail check).
    """
    if not pointer:
        return None
    segments = [s.replace("~1", "/").replace("~0", "~") for s in pointer.split("/") if s]
    if not segments:
        return None
    if "payload" in segments:
        at = segments.index("payload") + 1
        candidate = segments[at] if at < len(segments) else None
    elif segments[0] == key:
        candidate = segments[1] if len(segments) > 1 else None
    else:
        candidate = segments[0]
    if candidate is None:
        return None
    if candidate in ids:
        return ids[candidate]
    if candidate.isdigit() and int(candidate) < count:
        return int(candidate)
    return None


class Refusal(NamedTuple):
    """Why the shop refused one record: its reason, error code and the field(s) it named."""

    reason: str
    code: str | None
    field: str | None = None


def describe_record_errors(errors: Sequence[dict[str, Any]]) -> Refusal:
    parts, fields = [], []
    for err in errors[:3]:
        pointer = (err.get("source") or {}).get("pointer") or ""
        field = pointer.rsplit("/", 1)[-1] if pointer else ""
        detail = err.get("detail") or err.get("title") or "rejected"
        if field and not field.isdigit():
            parts.append(f"{field}: {detail}")
            fields.append(field)
        else:
            parts.append(str(detail))
    code = errors[0].get("code") if errors else None
    reason = "Shopware rejected the record: " + "; ".join(parts) if parts else "Shopware rejected the record"
    return Refusal(redaction.redact(reason), str(code) if code is not None else None,
                   ", ".join(dict.fromkeys(fields)) or None)


class SyncWriter:
    def __init__(self, http: ShopwareHttp) -> None:
        self.http = http

    def upsert(
        self,
        entity: str,
        records: Sequence[dict[str, Any]],
        encoded: Sequence[str | None] | None = None,
    ) -> dict[int, Refusal]:
        """Upsert ``records``; returns {index: (reason, code)} for the rejected ones. Every other
        record is written when this returns. Transient faults are retried (and re-raised when
        they outlast the retry policy); other non-400 refusals raise ``PermanentError``.
        ``encoded``: per record its ``encode_json`` text when already at hand (None: encode here)."""
        rejected: dict[int, Refusal] = {}
        key = _operation_key(entity)
        head = "{" + encode_json(key) + ':{"entity":' + encode_json(entity) + ',"action":"upsert","payload":['
        stack: list[list[int]] = [list(range(len(records)))]
        while stack:
            group = stack.pop()
            if not group:
                continue
            payload = [records[i] for i in group]
            if encoded is None:
                body: Any = {key: {"entity": entity, "action": "upsert", "payload": payload}}
            else:
                parts = [encoded[i] or encode_json(records[i]) for i in group]
                body = RawJson(head + ",".join(parts) + "]}}")
            result = self.http.call(
                "POST",
                SYNC_PATH,
                body,
                headers=WRITE_HEADERS,
                pass_statuses=frozenset({400, 413}),
            )
            if result.status == 413:
                # A proxy or PHP body limit, not a bad record: halve until it fits.
                if len(group) == 1:
                    rejected[group[0]] = Refusal(
                        "the record alone exceeds the shop's request size limit (413)", "413"
                    )
                else:
                    middle = len(group) // 2
                    stack.append(group[middle:])
                    stack.append(group[:middle])
                continue
            if result.status != 400:
                continue
            errors = errors_of(result.body)
            ids = {str(r.get("id")): pos for pos, r in enumerate(payload) if r.get("id")}
            by_position: dict[int, list[dict[str, Any]]] = {}
            unplaced = []
            for err in errors:
                pos = record_position((err.get("source") or {}).get("pointer"), key, ids, len(group))
                if pos is None:
                    unplaced.append(err)
                else:
                    by_position.setdefault(pos, []).append(err)
            if by_position:
                for pos, errs in by_position.items():
                    rejected[group[pos]] = describe_record_errors(errs)
                stack.append([i for pos, i in enumerate(group) if pos not in by_position])
            elif len(group) == 1:
                rejected[group[0]] = describe_record_errors(
                    errors or [{"detail": clip(str(result.body), 200), "code": None}]
                )
            else:
                middle = len(group) // 2
                stack.append(group[middle:])
                stack.append(group[:middle])
        return rejected

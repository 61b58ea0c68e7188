"""Fingerprints of an ERP address: what the shop sees of it (an unchanged one means nothing to
push), and what decides a record's fate (stored with a failure, so a corrected row is seen)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import fields

from syncd.core.domain import ErpAddress

# ``business`` and ``for_shop`` are derived from fields hashed anyway (salutation, company) or
# decide whether the address goes to the shop at all; leaving them out keeps the fingerprints
# stored before they existed valid.
_NOT_FINGERPRINTED = ("row", "problems", "modified_at", "blocked", "business", "for_shop", "marked_deleted")
_FINGERPRINT_FIELDS = tuple(f.name for f in fields(ErpAddress) if f.name not in _NOT_FINGERPRINTED)


def address_fingerprint(a: ErpAddress) -> str:
    """What the shop sees of an address: an unchanged fingerprint means nothing to push."""
    # The same text as json.dumps(asdict(a) minus row/problems/modified_at/blocked) gave, without
    # asdict's deep copy of the raw row (most of the cost when a reconciliation hashes every row).
    data = {name: getattr(a, name) for name in _FINGERPRINT_FIELDS}
    blob = json.dumps(data, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


def row_fingerprint(a: ErpAddress) -> str:
    """What decides a record's fate: the shop's view of it plus its blocked flag and its
    validation problems. Stored with a failure (``failures.fingerprint``): a row whose
    fingerprint differs was corrected, even when its change stamp did not move. Never the raw
    row: it may hold the in-flight password of the password field (I3)."""
    blob = json.dumps([address_fingerprint(a), bool(a.blocked), sorted(a.problems or ())], ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()

"""Set-password links (``credential_mode = "link"``): Shopware's own recovery mechanism.

A link is a ``customer_recovery`` row (``id``, ``customerId``, ``hash``) and the storefront's
recover page, ``<sales channel domain>`` + ``core.loginRegistration.pwdRecoverUrl`` with the
hash in place of ``%%RECOVERHASH%%``; ``ResetPasswordRoute`` honours the hash for 2 h from the
row's ``createdAt`` and deletes it when used (notes §5). syncd writes the row itself through the
Admin API instead of calling the Store API recovery route: that route fires
``customer.recovery.request`` and the shop would send its own mail next to ours.

A customer has at most one open recovery (unique key on ``customer_id``), so writing one
replaces any other of the customer's. The row id is the caller's (deterministic per credential
job): after a crash the flow finds *its* row again and resends the same link (I5), and tells it
from a recovery the customer requested in the meantime. ``createdAt`` is written with the hash:
re-using the id must restart the 2 h, which an update would not do.

The hash is a secret like a password: registered with the redaction point for every call.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from syncd.core import redaction
from syncd.core.errors import PermanentError

from .http import ShopwareHttp, errors_of
from .mapping import parse_timestamp
from .sync import SYNC_PATH, WRITE_HEADERS, describe_record_errors

ENTITY = "customer_recovery"
DEFAULT_RECOVER_URL = "/account/recover/password?hash=%%RECOVERHASH%%"  # core.loginRegistration default
PLACEHOLDER = "%%RECOVERHASH%%"
VALIDITY = timedelta(hours=2)  # ResetPasswordRoute::checkHash
CHUNK = 100


@dataclass(frozen=True)
class Recovery:
    id: str
    customer_id: str
    hash: str
    created_at: datetime | None

    def valid_at(self, now: datetime, *, margin: timedelta = timedelta(0)) -> bool:
        """The shop still honours the hash at ``now`` (+ ``margin`` for the customer to click)."""
        return self.created_at is not None and now + margin < self.created_at + VALIDITY


def recovery_id(key: str) -> str:
    """The row id for a caller's key (``Uuid::fromStringToHex``: md5 hex)."""
    return hashlib.md5(f"syncd:recovery:{key}".encode()).hexdigest()  # noqa: S324 - an id, not a digest


def _shop_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


class Recoveries:
    def __init__(self, http: ShopwareHttp, search: Callable[..., Iterator[dict[str, Any]]],
                 storefront: Callable[[], str]) -> None:
        self.http = http
        self.search = search
        self.storefront = storefront
        self._pattern: str | None = None

    def url(self, recovery_hash: str) -> str:
        """The storefront link that sets a password with ``recovery_hash``."""
        if self._pattern is None:
            self._pattern = self._recover_url()
        path = self._pattern.replace(PLACEHOLDER, recovery_hash)
        return self.storefront().rstrip("/") + (path if path.startswith("/") else "/" + path)

    def _recover_url(self) -> str:
        result = self.http.call("GET", "/api/_action/system-config?domain=core.loginRegistration",
                                pass_statuses=frozenset({403}))
        if result.status == 403:  # no system_config:read for the integration: the shop's default
            return DEFAULT_RECOVER_URL
        value = (result.body or {}).get("core.loginRegistration.pwdRecoverUrl")
        return value if isinstance(value, str) and PLACEHOLDER in value else DEFAULT_RECOVER_URL

    def read(self, shop_ids: Sequence[str]) -> dict[str, Recovery]:
        """The open recovery of each customer that has one (shop id -> row). The hashes are
        secrets: the caller holds them under ``redaction.sensitive`` while it uses them."""
        out: dict[str, Recovery] = {}
        ids = list(dict.fromkeys(shop_ids))
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start:start + CHUNK]
            criteria = {"filter": [{"type": "equalsAny", "field": "customerId", "value": chunk}]}
            for row in self.search("customer-recovery", criteria):
                out[row["customerId"]] = Recovery(row["id"], row["customerId"], str(row.get("hash") or ""),
                                                  parse_timestamp(row.get("createdAt")))
        return out

    def since(self, since: datetime | None) -> Iterator[tuple[str, str, datetime]]:
        """(row id, customer id, createdAt) of every open recovery created at/after ``since``,
        oldest first; the hash is not fetched (a customer's own "forgot password" request)."""
        filters = [{"type": "range", "field": "createdAt", "parameters": {"gte": _shop_time(since)}}] \
            if since is not None else []
        criteria = {"filter": filters, "includes": {"customer_recovery": ["id", "customerId", "createdAt"]},
                    "sort": [{"field": "createdAt", "order": "ASC"}, {"field": "id", "order": "ASC"}]}
        for row in self.search("customer-recovery", criteria):
            at = parse_timestamp(row.get("createdAt"))
            if at is not None:
                yield str(row["id"]), str(row["customerId"]), at

    def replace(self, wanted: Mapping[str, tuple[str, str]], now: datetime) -> dict[str, str | None]:
        """Per customer (shop id -> (row id, hash)) make that row its one open recovery, created
        ``now``; returns shop id -> the shop's reason when refused (None: written)."""
        if not wanted:
            return {}
        # An account gone from the shop would fail the whole request with a foreign-key 500
        # (notes §4): name it instead, and write the others.
        missing = set(wanted) - self._existing(list(wanted))
        out: dict[str, str | None] = dict.fromkeys(missing, "the shop account no longer exists")
        wanted = {sid: row for sid, row in wanted.items() if sid not in missing}
        if not wanted:
            return out
        with redaction.sensitive(*[h for _, h in wanted.values()]):
            others = [r.id for sid, r in self.read(list(wanted)).items() if r.id != wanted[sid][0]]
            body = self._body(wanted, others, now)
            result = self.http.call("POST", SYNC_PATH, body, headers=WRITE_HEADERS,
                                    pass_statuses=frozenset({400}))
            if result.status != 400:
                return {**out, **dict.fromkeys(wanted)}
            if len(wanted) == 1:
                reason, _ = describe_record_errors(errors_of(result.body))
                return {**out, **dict.fromkeys(wanted, reason)}
            # One bad record refuses the whole request (6.5+): each alone, so the rest is written.
            for sid, row in wanted.items():
                out.update(self.replace({sid: row}, now))
            return out

    def _existing(self, shop_ids: list[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(shop_ids), CHUNK):
            chunk = shop_ids[start:start + CHUNK]
            body = {"filter": [{"type": "equalsAny", "field": "id", "value": chunk}], "limit": len(chunk)}
            data = self.http.call("POST", "/api/search-ids/customer", body).body or {}
            found.update(str(i) for i in data.get("data") or [])
        return found

    @staticmethod
    def _body(wanted: Mapping[str, tuple[str, str]], others: list[str], now: datetime) -> dict[str, Any]:
        stamp = _shop_time(now)
        body: dict[str, Any] = {}
        if others:
            body["drop-customer-recovery"] = {"entity": ENTITY, "action": "delete",
                                              "payload": [{"id": rid} for rid in others]}
        body["write-customer-recovery"] = {
            "entity": ENTITY, "action": "upsert",
            "payload": [{"id": rid, "customerId": sid, "hash": h, "createdAt": stamp}
                        for sid, (rid, h) in wanted.items()],
        }
        return body


def require_storefront(domains: Sequence[str], sales_channel: str) -> str:
    if not domains:
        raise PermanentError(f"sales channel {sales_channel!r} has no domain for the set-password link",
                             code="SYNCD__NO_STOREFRONT_DOMAIN")
    return domains[0]

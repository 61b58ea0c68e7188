"""Links: which shop account belongs to which ERP address, per platform (the "binding").

The single source of "already synced" (I4). Keyed by (platform, shop_id); an ERP number has at
most one link per platform, except the collective address, which many shop customers share.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, fields, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select, update

from syncd.core.clock import utcnow
from syncd.core.rules import LinkKind, contact_keys
from syncd.state.db import StateStore, chunked, upsert
from syncd.state.schema import links as t

KINDS = tuple(k.value for k in LinkKind)  # what the schema's kind column accepts
_PAGE = 1000


@dataclass(frozen=True)
class Link:
    platform: str
    shop_id: str
    erp_number: int
    kind: str = LinkKind.ERP.value
    email: str | None = None
    erp_blocked: bool = False
    shop_active: bool = True
    fingerprint: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


_FIELDS = tuple(f.name for f in fields(Link))


def _row_to_link(row: Any) -> Link:
    return Link(**{name: getattr(row, name) for name in _FIELDS})


def _prefer_own(found: Iterable[Link]) -> dict[int, Link]:
    """number -> link; a personal link wins over collective ones, among collective links the
    lowest shop id wins so the answer is stable."""
    out: dict[int, Link] = {}
    for link in sorted(found, key=lambda x: (x.kind == LinkKind.COLLECTIVE, x.shop_id)):
        out.setdefault(link.erp_number, link)
    return out


class Links:
    def __init__(self, store: StateStore, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.store = store
        self.clock = clock

    def get_by_erp(self, platform: str, number: int) -> Link | None:
        return self.get_many(platform, [number]).get(int(number))

    def get_many(self, platform: str, numbers: Iterable[int]) -> dict[int, Link]:
        wanted = sorted({int(n) for n in numbers})
        found: list[Link] = []
        with self.store.connect() as conn:
            for batch in chunked(wanted):
                rows = conn.execute(select(t).where(t.c.platform == platform, t.c.erp_number.in_(batch)))
                found.extend(_row_to_link(r) for r in rows)
        return _prefer_own(found)

    def of_contacts(self, platform: str, number: int) -> list[Link]:
        """The links of ERP address ``number``'s contact persons' accounts."""
        with self.store.connect() as conn:
            rows = conn.execute(select(t).where(t.c.platform == platform,
                                                t.c.erp_number.between(*contact_keys(number))))
            return [_row_to_link(r) for r in rows]

    def get_by_shop(self, platform: str, shop_id: str) -> Link | None:
        return self.get_by_shops(platform, [shop_id]).get(shop_id)

    def get_by_shops(self, platform: str, shop_ids: Iterable[str]) -> dict[str, Link]:
        wanted = sorted(set(shop_ids))
        out: dict[str, Link] = {}
        with self.store.connect() as conn:
            for batch in chunked(wanted):
                rows = conn.execute(select(t).where(t.c.platform == platform, t.c.shop_id.in_(batch)))
                out.update((r.shop_id, _row_to_link(r)) for r in rows)
        return out

    def email_owners(self, platform: str, keys: Iterable[str]) -> dict[str, int]:
        """E-mail key (``rules.email_key``) -> the ERP number whose personal link on ``platform``
        carries that e-mail; of several, the lowest number. Keys nobody owns are left out.

        Compared with SQL ``lower()``, which on SQLite folds ASCII letters only."""
        wanted = sorted({k for k in keys if k})
        owners: dict[str, int] = {}
        with self.store.connect() as conn:
            for batch in chunked(wanted):
                rows = conn.execute(
                    select(func.lower(t.c.email), t.c.erp_number)
                    .where(t.c.platform == platform, t.c.kind != LinkKind.COLLECTIVE.value,
                           func.lower(t.c.email).in_(batch))
                    .order_by(t.c.erp_number)
                )
                for email, number in rows:
                    owners.setdefault(email, int(number))
        return owners

    def upsert(self, link: Link | None = None, /, *, conn: Connection | None = None, **values: Any) -> Link:
        """Insert or update the link of (platform, shop_id). Pass a ``Link``, keyword fields, or
        a ``Link`` plus keyword overrides. ``created_at`` of an existing row is kept."""
        if link is None:
            link = Link(**values)
        elif values:
            link = replace(link, **values)
        return self.upsert_many([link], conn=conn)[0]

    def upsert_many(self, items: Iterable[Link], *, conn: Connection | None = None) -> list[Link]:
        """All in one transaction (the caller's ``conn`` if given): a batch of pushes is linked
        completely or not at all."""
        now = self.clock()
        prepared = []
        for link in items:
            if link.kind not in KINDS:
                raise ValueError(f"link kind must be one of {', '.join(KINDS)}, got {link.kind!r}")
            # The plain value: a flow passes ``LinkKind`` members, database drivers want a str.
            prepared.append(replace(link, kind=LinkKind(link.kind).value, erp_number=int(link.erp_number),
                                    created_at=now, updated_at=now))
        if not prepared:
            return []
        keep = [c for c in _FIELDS if c not in ("platform", "shop_id", "created_at")]
        with self.store.write(conn) as conn:
            for batch in chunked(prepared):
                rows = [{name: getattr(x, name) for name in _FIELDS} for x in batch]  # asdict deep-copies
                upsert(conn, t, rows, keys=["platform", "shop_id"], update=keep)
            # Read back so callers see the kept created_at.
            stored: dict[tuple[str, str], Link] = {}
            by_platform: dict[str, list[str]] = {}
            for x in prepared:
                by_platform.setdefault(x.platform, []).append(x.shop_id)
            for platform, ids in by_platform.items():
                for batch in chunked(ids):
                    rows = conn.execute(select(t).where(t.c.platform == platform, t.c.shop_id.in_(batch)))
                    stored.update(((r.platform, r.shop_id), _row_to_link(r)) for r in rows)
        return [stored[(x.platform, x.shop_id)] for x in prepared]

    def set_state(
        self,
        platform: str,
        number: int,
        *,
        erp_blocked: bool | None = None,
        shop_active: bool | None = None,
        fingerprint: str | None = None,
        conn: Connection | None = None,
    ) -> int:
        """Update the personal (non-collective) link of ``number``; returns rows changed."""
        values: dict[str, Any] = {}
        if erp_blocked is not None:
            values["erp_blocked"] = erp_blocked
        if shop_active is not None:
            values["shop_active"] = shop_active
        if fingerprint is not None:
            values["fingerprint"] = fingerprint
        if not values:
            return 0
        values["updated_at"] = self.clock()
        stmt = (
            update(t)
            .where(t.c.platform == platform, t.c.erp_number == int(number),
                   t.c.kind != LinkKind.COLLECTIVE.value)
            .values(**values)
        )
        with self.store.write(conn) as conn:
            return conn.execute(stmt).rowcount

    def delete(self, platform: str, shop_id: str, *, conn: Connection | None = None) -> bool:
        with self.store.write(conn) as conn:
            stmt = t.delete().where(t.c.platform == platform, t.c.shop_id == shop_id)
            return conn.execute(stmt).rowcount > 0

    def count(self, platform: str, kind: str | None = None) -> int:
        stmt = select(func.count()).select_from(t).where(t.c.platform == platform)
        if kind is not None:
            stmt = stmt.where(t.c.kind == kind)
        with self.store.connect() as conn:
            return int(conn.execute(stmt).scalar_one())

    def iter(self, platform: str, *, after: str | None = None,
             page_size: int | None = None) -> Iterator[Link]:
        """Every link of ``platform`` by shop id (those after shop id ``after``), fetched in
        pages: no connection is held while the caller works on a page, and memory stays flat for
        big shops. With ``page_size``: only the first page of that size."""
        while True:
            stmt = select(t).where(t.c.platform == platform).order_by(t.c.shop_id).limit(page_size or _PAGE)
            if after is not None:
                stmt = stmt.where(t.c.shop_id > after)
            with self.store.connect() as conn:
                page = [_row_to_link(r) for r in conn.execute(stmt)]
            yield from page
            if page_size is not None or len(page) < _PAGE:
                return
            after = page[-1].shop_id

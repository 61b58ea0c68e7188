"""ERP addresses -> shop customers, one batch at a time (``ShopwareShop.push``).

Per group of addresses (whole batches, see ``lookup_groups``): map every address (bad ones
are rejected before anything is sent), one customer search for the group's e-mails, decide each
record's outcome, then one sync upsert per ``batch_size`` records (``SyncWriter`` splits out
records the shop refuses). Reads are cheap for the shop and writes are not, so the lookup spans
more records than a write.

Outcomes: CREATED (no account for the address in the shop), UPDATED (linked), ADOPTED, LINKED,
UNCHANGED (only with ``fingerprints``), REJECTED.

An address without a link may still have an account: the state store was lost, replaced or
migrated, or an earlier push crashed before its link was stored. Per group, besides the e-mail
search, one search by syncd's deterministic ids and one by customer number (both indexed) find
such accounts, in this order (I4: never a second account, never a second password):

- under syncd's id with a create intent in the state store (``intents``: recorded and committed
  before the create request, removed with the link): the crash case - UPDATED with
  ``detail = "existed_with_deterministic_id"``, nothing written, and the flow gives it its
  credentials job. The intent, not the account's state, decides: the account may have been
  written again before the crash (a retried create request, a second push), which sets
  ``updatedAt`` but proves nothing about its mail;
- under syncd's id, no intent, never written since its insert (``updatedAt`` is NULL on insert
  and set by every later write, shopware-notes §2 "Timestamps"; setting the password is such a
  write): it never got a password - the crash case too (a store from before intents existed);
- under syncd's id, no intent, written since: ADOPTED - the payload is written, never a password;
- with the ERP number as customer number: REJECTED with the reason when another ERP address is
  linked to it or has its e-mail, or several such accounts have the address's e-mail (an operator
  decides, nothing is created); otherwise the e-mail rule decides. The number alone proves nothing: Shopware
  numbers self-registered customers from a range that overlaps ERP numbers;
- by e-mail: LINKED as below, unless the account's customer number is another ERP address of
  the same group or it is linked to another address (``claims``): REJECTED.

E-mail rules (Shopware up to 6.6 accepts duplicates, so syncd enforces them itself):
- two ERP addresses with one e-mail (in the call, or one already linked: ``linked_emails``):
  the later one is rejected naming both numbers;
- no account of ours yet, and a non-guest account with the e-mail exists in the shop:
  - it belongs to another ERP address (our id for that number, or linked to it) -> rejected;
  - otherwise the customer registered themselves -> LINKED. Only ``customerNumber`` is written
    on linking, nothing the customer entered is overwritten; later pushes of that address
    update it like our own accounts (names, company, group, active, and syncd's own address,
    made default) but keep its sales channel, language and payment method;
- an account of ours whose e-mail would change to one another account uses -> rejected.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from syncd.core.domain import ErpAddress, PushResult
from syncd.core.rules import PushOutcome, email_key
from syncd.core.rules import account_label as label  # a contact account as 10001-2

from .http import encode_json
from .mapping import CustomerMapper, MappedCustomer, Rejected, customer_id, fingerprint
from .numbers import erp_number, shop_number
from .sync import SyncWriter

DETAIL_EXISTED = "existed_with_deterministic_id"
# CREATED (or LINKED) although ``links`` named an account: that account no longer exists in the shop.
DETAIL_LINK_GONE = "linked_account_missing"
# Shopware's CustomerEmailUnique constraint (Store API always, Admin API/sync from 6.7 patches).
EMAIL_NOT_UNIQUE = "79d30fe0-febf-421e-ac9b-1bfd5c9007f7"
# Addresses per e-mail lookup: the first group is small so the first write goes out after little
# mapping; later ones grow (x4) up to LOOKUP_GROUP, mapped while the previous group is written.
# Each lookup costs a round trip (~10-15 ms under load) while the shop's read work is small.
FIRST_LOOKUP_GROUP = 500
# Mapping is pure Python and holds the GIL; the writer thread needs it back after every socket
# call, and CPython hands it over only every 5 ms (sys.getswitchinterval) to a busy thread - a
# stall per request on the push's critical path. A short sleep every YIELD_EVERY records (~1 ms
# of mapping) hands it over at once: 100k push 1.20x -> ~1.07x the bare loop, main thread +~2%.
YIELD_EVERY = 64
YIELD_FOR = 0.00005  # seconds
LOOKUP_GROUP = 5000


def lookup_groups(total: int, batch_size: int) -> Iterator[tuple[int, int]]:
    """(start, end) of each group of a push of ``total`` addresses; every group but the last
    is a whole number of write batches."""
    start, target = 0, FIRST_LOOKUP_GROUP
    while start < total:
        size = batch_size * max(1, -(-target // batch_size))
        yield start, min(total, start + size)
        start += size
        target = min(LOOKUP_GROUP, target * 4)
LOOKUP_FIELDS = ["id", "email", "customerNumber", "guest", "boundSalesChannelId", "createdAt", "updatedAt"]
# shop ids -> the ERP number each is linked to in the state store (the flow's view of links
# outside the batch); lets the push refuse to adopt an account another address owns.
Claims = Callable[[Iterable[str]], Mapping[str, int]]


class Intents(Protocol):
    """The state store's write-ahead create intents of one platform (``syncd.state.intents``)."""

    def pending(self, numbers: Iterable[int]) -> set[int]: ...

    def record(self, creates: Sequence[tuple[int, str]]) -> None:
        """Durably, before the create request: (ERP number, shop id) of accounts about to be made."""


@dataclass(slots=True)
class _Plan:
    position: int
    address: ErpAddress
    mapped: MappedCustomer | None = None
    outcome: PushOutcome | None = None
    shop_id: str | None = None
    reason: str | None = None
    code: str | None = None
    field: str | None = None
    detail: str | None = None
    fingerprint: str | None = None
    write: dict[str, Any] | None = None
    # (payload, its JSON text), encoded while mapping: ``_write`` uses the text if ``write`` is it.
    encoded: tuple[dict[str, Any], str] | None = None


class CustomerPusher:
    def __init__(
        self, platform: str, mapper: CustomerMapper, search, writer: SyncWriter, batch_size: int,
        claims: Claims | None = None, intents: Intents | None = None, dry_run: bool = False,
    ) -> None:
        self.platform = platform
        # Decide every outcome with the same read-only look-ups, write nothing (no create intent,
        # no sync request): what `syncd sync --dry-run` reports. Refusals only the shop's own
        # validation would make on the write cannot be foreseen.
        self.dry_run = dry_run
        self.claims = claims
        self.intents = intents
        self.batch_size = batch_size
        self.mapper = mapper
        self.sales_channel_id = mapper.meta.sales_channel_id
        self.search = search  # search(entity, criteria) -> iterator over all pages
        self.writer = writer
        self.prefix = mapper.platform.customer_number_prefix

    def lookup(self, emails: set[str]) -> list[dict[str, Any]]:
        """Accounts holding one of ``emails`` (the shop compares case-insensitively). One indexed
        search serves every rule: our own account is found under its unchanged e-mail, so its
        absence means the e-mail is about to change."""
        if not emails:
            return []
        criteria = {
            "filter": [{"type": "equalsAny", "field": "email", "value": sorted(emails)}],
            "includes": {"customer": LOOKUP_FIELDS},
        }
        return list(self.search("customer", criteria))

    def prepare(
        self,
        start: int,
        batch: Sequence[ErpAddress],
        links: Mapping[int, str],
        owners: dict[str, int],
        fingerprints: Mapping[int, str] | None,
    ) -> list[_Plan]:
        """Map a batch (its first address at ``start`` in the call) and apply the in-call e-mail
        rule. No I/O: runs while the previous batch is on the wire."""
        plans: list[_Plan] = []
        for position, address in enumerate(batch, start):
            if not position % YIELD_EVERY and position != start:
                time.sleep(YIELD_FOR)
            plan = _Plan(position, address)
            plans.append(plan)
            linked = links.get(address.number)
            foreign = linked if linked and linked != customer_id(self.platform, address.number) else None
            try:
                plan.mapped = self.mapper.map(address, shop_id=foreign)
            except Rejected as exc:
                plan.outcome, plan.reason, plan.code = PushOutcome.REJECTED, exc.reason, exc.code
                plan.field = exc.field
                continue
            key = email_key(plan.mapped.email)
            owner = owners.setdefault(key, address.number)
            if owner != address.number:
                plan.outcome, plan.code = PushOutcome.REJECTED, "SYNCD__DUPLICATE_EMAIL"
                plan.reason = (
                    f"e-mail {plan.mapped.email} is already used by ERP address {label(owner)}; "
                    f"ERP address {label(address.number)} gets no second shop account for it"
                )
                continue
            if fingerprints is not None:
                plan.fingerprint = fingerprint(plan.mapped.payload)
                if linked and fingerprints.get(address.number) == plan.fingerprint:
                    plan.outcome, plan.shop_id = PushOutcome.UNCHANGED, linked
                    continue
            # Encoded here, in the mapping thread: the thread talking to the shop is the push's
            # critical path and only joins these texts into request bodies.
            plan.encoded = (plan.mapped.payload, encode_json(plan.mapped.payload))
        return plans

    def complete(
        self, plans: list[_Plan], links: Mapping[int, str], reverse_links: Mapping[str, int]
    ) -> list[_Plan]:
        """Look the batch's e-mails up in the shop, decide each outcome, write."""
        todo = [p for p in plans if p.outcome is None and p.mapped is not None]
        self._decide_all(todo, links, reverse_links)
        if self.dry_run:
            return plans
        self._write([p for p in todo if p.write is not None])
        # A customer registered in the storefront between our lookup and our write: a shop that
        # enforces unique e-mails (6.7) refuses the create. Look again once and link instead.
        raced = [p for p in todo if p.code == EMAIL_NOT_UNIQUE and p.mapped is not None]
        if raced:
            for p in raced:
                p.outcome = p.reason = p.code = p.field = p.shop_id = p.write = p.detail = None
            self._decide_all(raced, links, reverse_links)
            self._write([p for p in raced if p.write is not None])
        return plans

    def _decide_all(
        self, todo: list[_Plan], links: Mapping[int, str], reverse_links: Mapping[str, int]
    ) -> None:
        found = self.lookup({p.mapped.email for p in todo})  # type: ignore[union-attr]
        by_id = {c["id"]: c for c in found}
        # Accounts an unlinked address may already have (module docstring): by syncd's id, then
        # by customer number for those still without one of ours (ours decides alone), one
        # indexed search each for the whole group. After a lost store the e-mail search has
        # found nearly all, so these stay small.
        unlinked = [p.mapped for p in todo if p.mapped.number not in links]  # type: ignore[union-attr]
        if unlinked:
            ids = sorted({m.customer_id for m in unlinked} - by_id.keys())  # type: ignore[union-attr]
            if ids:
                for row in self._search_any("id", ids):
                    by_id.setdefault(row["id"], row)
            prefix = self.prefix
            numbers = sorted({shop_number(prefix, m.number) for m in unlinked if m.customer_id not in by_id})  # type: ignore[union-attr]
            if numbers:
                for row in self._search_any("customerNumber", numbers):
                    by_id.setdefault(row["id"], row)
        by_email: dict[str, list[dict[str, Any]]] = {}
        by_number: dict[str, list[dict[str, Any]]] = {}
        for c in sorted(by_id.values(), key=lambda c: (c.get("createdAt") or "", c["id"])):
            if c.get("guest"):
                continue
            bound = c.get("boundSalesChannelId")
            if bound and bound != self.sales_channel_id:
                continue  # bound to another sales channel: the shop lets both log in separately
            by_email.setdefault(email_key(c.get("email")), []).append(c)
            if c.get("customerNumber"):
                by_number.setdefault(str(c["customerNumber"]).strip(), []).append(c)
        # An account we hold a link for but did not find under the e-mail: its e-mail was changed
        # in the shop, or it was deleted there. One id search (only then) tells which.
        expected = {links[p.mapped.number] for p in todo if p.mapped.number in links}  # type: ignore[union-attr]
        unseen = expected - by_id.keys()
        if unseen:
            for row in self._search_any("id", sorted(unseen)):
                by_id[row["id"]] = row
        gone = unseen - by_id.keys()
        owners: Mapping[str, int] = reverse_links
        if self.claims is not None and unlinked:
            strangers = [i for i in by_id if i not in reverse_links]
            extra = {k: int(v) for k, v in self.claims(strangers).items()} if strangers else {}
            if extra:
                owners = {**extra, **reverse_links}
        # Unlinked addresses whose account under our id exists: did we create it (an intent)?
        mine = [m.number for m in unlinked if m.customer_id in by_id]  # type: ignore[union-attr]
        intended = self.intents.pending(mine) if self.intents is not None and mine else set()
        group = {str(p.mapped.number) for p in todo}  # type: ignore[union-attr]
        group_emails = {email_key(p.mapped.email): p.mapped.number for p in todo}  # type: ignore[union-attr]
        created = PushOutcome.CREATED
        for p in todo:
            mapped = p.mapped
            # The common case of a first push, decided inline (this loop runs on the writer's
            # critical path): no link, no account under our id, the number or the e-mail -> create.
            if (
                mapped.number not in links  # type: ignore[union-attr]
                and mapped.customer_id not in by_id  # type: ignore[union-attr]
                and email_key(mapped.email) not in by_email  # type: ignore[union-attr]
                and str(mapped.number) not in by_number  # type: ignore[union-attr]
            ):
                p.outcome, p.shop_id, p.write = created, mapped.customer_id, mapped.payload  # type: ignore[union-attr]
            else:
                self._decide(p, links, by_id, by_email, by_number, owners, gone, group, group_emails,
                             intended)

    def _search_any(self, field: str, values: list[str]) -> Iterator[dict[str, Any]]:
        criteria = {
            "filter": [{"type": "equalsAny", "field": field, "value": values}],
            "includes": {"customer": LOOKUP_FIELDS},
        }
        return self.search("customer", criteria)

    def _write(self, writes: list[_Plan]) -> None:
        """One sync request per ``batch_size`` records (small writes: fewer lock waits in the shop)."""
        for start in range(0, len(writes), self.batch_size):
            chunk = writes[start : start + self.batch_size]
            if self.intents is not None:
                creates = [(p.address.number, p.shop_id) for p in chunk
                           if p.outcome == PushOutcome.CREATED or p.detail == DETAIL_EXISTED]
                self.intents.record(creates)  # type: ignore[arg-type]
            encoded = [p.encoded[1] if p.encoded and p.encoded[0] is p.write else None for p in chunk]
            rejected = self.writer.upsert("customer", [p.write for p in chunk], encoded)  # type: ignore[misc]
            for index, refusal in rejected.items():
                p = chunk[index]
                p.outcome, p.reason, p.code, p.field = PushOutcome.REJECTED, *refusal
                p.shop_id = p.fingerprint = None

    def _decide(
        self,
        p: _Plan,
        links: Mapping[int, str],
        by_id: Mapping[str, dict[str, Any]],
        by_email: Mapping[str, list[dict[str, Any]]],
        by_number: Mapping[str, list[dict[str, Any]]],
        owners: Mapping[str, int],
        gone: set[str],
        group: set[str],
        group_emails: Mapping[str, int],
        intended: set[int],
    ) -> None:
        mapped = p.mapped
        assert mapped is not None
        number = mapped.number
        key = email_key(mapped.email)
        linked = links.get(number)
        if linked in gone:
            # Deleted in the shop: the address gets an account again, as if it had never had one.
            p.detail = DETAIL_LINK_GONE
            if linked != customer_id(self.platform, number):
                p.mapped = mapped = self.mapper.map(p.address)  # full payload under our own id
            linked = None
        own = linked if linked else (mapped.customer_id if mapped.customer_id in by_id else None)
        others = [c for c in by_email.get(key, []) if c["id"] not in (own, mapped.customer_id)]
        if own is not None:
            current = by_id.get(own)
            if others and (current is None or email_key(current.get("email")) != key):
                other = others[0]
                p.outcome, p.code = PushOutcome.REJECTED, "SYNCD__DUPLICATE_EMAIL"
                p.reason = (
                    f"e-mail {mapped.email} is already used by shop account {other['id']}"
                    f"{self._owner_text(other, owners)}; not changing ERP address {label(number)} to it"
                )
                return
            if linked or p.detail is not None:
                p.outcome, p.shop_id, p.write = PushOutcome.UPDATED, own, mapped.payload
                return
            owner = owners.get(own)
            if owner is not None and owner != number:
                self._reject_owned(p, own, owner, f"syncd's id for ERP address {label(number)}")
                return
            if number in intended or (current is not None and current.get("updatedAt") is None):
                # Made by a push of ours that crashed before storing the link: the account never
                # got its password. Written like a create (with an intent first, see ``_write``),
                # so it holds the address as it is now; without intents it is left unwritten, so
                # that a second crash before the link still finds it so.
                p.outcome, p.shop_id, p.detail = PushOutcome.UPDATED, own, DETAIL_EXISTED
                if self.intents is None:
                    p.write = p.fingerprint = None
                else:
                    p.write = mapped.payload
                return
            p.outcome, p.shop_id, p.write = PushOutcome.ADOPTED, own, mapped.payload
            return
        numbered = by_number.get(shop_number(self.prefix, number), [])
        if numbered and self._refuse_by_number(p, numbered, owners, key, group_emails):
            return
        if others:
            other = others[0]
            owner = self._owner_number(other, owners)
            theirs = erp_number(self.prefix, other.get("customerNumber"))
            if owner is None and theirs is not None and theirs != number and str(theirs) in group:
                owner = theirs  # the account of another address of this push (by number)
            if owner is not None and owner != number:
                p.outcome, p.code = PushOutcome.REJECTED, "SYNCD__DUPLICATE_EMAIL"
                p.reason = (
                    f"e-mail {mapped.email} is already used by ERP address {label(owner)} (shop account "
                    f"{other['id']}); ERP address {label(number)} gets no second shop account for it"
                )
                return
            p.outcome, p.shop_id = PushOutcome.LINKED, other["id"]
            p.write = {"id": other["id"], "customerNumber": shop_number(self.prefix, number)}
            p.fingerprint = None  # the account still holds the customer's data, not ours
            return
        p.outcome, p.shop_id, p.write = PushOutcome.CREATED, mapped.customer_id, mapped.payload

    def _refuse_by_number(
        self, p: _Plan, numbered: list[dict[str, Any]], owners: Mapping[str, int], key: str,
        group_emails: Mapping[str, int],
    ) -> bool:
        """Accounts carry the address's number as customer number: refuse (True) when another
        address owns one, when one has the e-mail of another address of this push (the two
        swapped or share an account: only an operator can tell), or when several have the
        address's e-mail. Otherwise the e-mail rule decides: Shopware numbers self-registered
        customers from its own range (10000 up), which overlaps ERP numbers, so a number alone
        proves nothing and an account matching number and e-mail is linked like any account
        with the e-mail (nothing the customer entered is overwritten)."""
        number = p.address.number
        for c in numbered:
            owner = self._owner_number(c, owners)
            if owner is not None and owner != number:
                self._reject_owned(p, c["id"], owner, f"customer number {label(number)}")
                return True
            other = group_emails.get(email_key(c.get("email")))
            if other is not None and other != number:
                p.outcome, p.code = PushOutcome.REJECTED, "SYNCD__AMBIGUOUS_ACCOUNT"
                p.reason = (
                    f"shop account {c['id']} carries customer number {label(number)} but the e-mail "
                    f"{c.get('email')} of ERP address {label(other)}; syncd neither links nor creates an "
                    f"account for ERP address {label(number)} until the e-mails are set right"
                )
                return True
        same = [c for c in numbered if email_key(c.get("email")) == key]
        if len(same) > 1:
            ids = ", ".join(c["id"] for c in same)
            p.outcome, p.code = PushOutcome.REJECTED, "SYNCD__AMBIGUOUS_ACCOUNT"
            p.reason = (
                f"{len(same)} shop accounts carry customer number {label(number)} and e-mail "
                f"{p.mapped.email} ({ids}); syncd links none of them and creates no further one - "  # type: ignore[union-attr]
                f"delete or renumber the extra ones in the shop"
            )
            return True
        return False

    @staticmethod
    def _reject_owned(p: _Plan, shop_id: str, owner: int, found_by: str) -> None:
        p.outcome, p.code = PushOutcome.REJECTED, "SYNCD__AMBIGUOUS_ACCOUNT"
        p.reason = (
            f"shop account {shop_id} ({found_by}) is linked to ERP address {label(owner)}; ERP address "
            f"{label(p.address.number)} neither takes it over nor gets a second account"
        )

    def _owner_number(self, account: Mapping[str, Any], reverse_links: Mapping[str, int]) -> int | None:
        if account["id"] in reverse_links:
            return reverse_links[account["id"]]
        number = erp_number(self.prefix, account.get("customerNumber"))
        if number is not None and customer_id(self.platform, number) == account["id"]:
            return number
        return None

    def _owner_text(self, account: Mapping[str, Any], reverse_links: Mapping[str, int]) -> str:
        owner = self._owner_number(account, reverse_links)
        return f" of ERP address {label(owner)}" if owner is not None else ""


def to_result(p: _Plan) -> PushResult:
    return PushResult(
        number=p.address.number,
        outcome=p.outcome or PushOutcome.REJECTED,
        shop_id=p.shop_id,
        reason=p.reason,
        code=p.code,
        field=p.field,
        detail=p.detail,
        fingerprint=p.fingerprint,
    )

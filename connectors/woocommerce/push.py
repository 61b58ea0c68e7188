"""ERP addresses -> WooCommerce customers (``WooShop.push``).

WooCommerce assigns customer ids, so a replayed create cannot be made harmless by a
deterministic id as with Shopware. What makes it safe instead:

- the shop refuses a second account for an e-mail (``registration-error-email-exists``, and
  ``…-username-exists`` for the username syncd sends, the e-mail itself), also inside a batch;
- before each create request the push records a write-ahead create intent for the address
  (``syncd.state.intents``, committed by the flow's ``intents.record``), and every account it
  creates carries the ERP number in ``meta_data`` (``syncd_erp_number``).

So the push creates optimistically (one ``POST /customers/batch`` per ``batch_size`` ≤ 100
items, no look-up before: the common case costs what a bare batch loop costs) and looks up by
e-mail (``GET /customers?email=&role=all``) only the records the shop refused as existing:

- the account carries this address's ERP number and was made by a create of ours that never
  got its link: an intent was already pending before this push (an earlier push crashed after
  its request), or this push's request needed a second attempt and the account is no older
  than the first one (its answer was lost) - UPDATED with ``detail = DETAIL_EXISTED`` and
  written like a create, so the flow gives it its credentials job (I1), never a second account;
- it carries the number, nothing says we just made it: an account from before a lost or
  replaced state store - ADOPTED (written, never a password, I4). The intent this push itself
  recorded proves nothing here, hence "pending before this push";
- it carries another ERP number, or ``claims`` says another address is linked to it: REJECTED;
- no number: the customer registered themselves - LINKED, only the ERP number is written;
- no account has the e-mail (the username is another user's) - REJECTED with the reason.

A linked account the shop no longer has (``woocommerce_rest_invalid_id``) is created again
(``DETAIL_LINK_GONE``). Per-item errors are mapped back to their records by position, so one
bad record never stops the others.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from syncd.core import redaction
from syncd.core.domain import ErpAddress, PushResult
from syncd.core.rules import PushOutcome, email_key

from .http import WooHttp, describe_error
from .mapping import (
    META_KEY,
    MappedCustomer,
    Rejected,
    create_item,
    erp_number_of,
    error_field,
    fingerprint,
    map_address,
)

DETAIL_EXISTED = "existed_with_deterministic_id"  # the flow's RECOVERED_CREATE: our create, link lost
DETAIL_LINK_GONE = "linked_account_missing"
EXISTS_CODES = frozenset(
    {
        "registration-error-email-exists",
        "registration-error-username-exists",
        "woocommerce_rest_customer_exists",
    }
)
GONE_CODES = frozenset({"woocommerce_rest_invalid_id", "woocommerce_rest_customer_invalid_id"})
INTENT_ID = "woocommerce:pending"  # the shop id is unknown until the create answers
# How far the shop's clock may lag syncd's when telling an account made by this push's first
# attempt (lost answer) from an older one: older than that is adopted, never mailed (I4).
CLOCK_SKEW = 300.0
ROUNDS = 3  # create, then write what the look-ups found, then re-create accounts deleted meanwhile
Claims = Callable[[Iterable[str]], Mapping[str, int]]


class Intents(Protocol):
    def pending(self, numbers: Iterable[int]) -> set[int]: ...

    def record(self, creates: Sequence[tuple[int, str]]) -> None: ...


class Recovery(Protocol):
    """What a push whose state store may have lost links reads: the ERP-number index (built once
    per recovery, ``reads.number_index``) and fresh rows of the accounts it names."""

    def index(self) -> Mapping[str, list[str]]: ...

    def rows(self, shop_ids: Sequence[str]) -> Iterable[dict[str, Any]]: ...


@dataclass(slots=True)
class _Plan:
    address: ErpAddress
    mapped: MappedCustomer | None = None
    linked: str | None = None  # shop id to update; None: create
    outcome: PushOutcome | None = None
    shop_id: str | None = None
    reason: str | None = None
    code: str | None = None
    field: str | None = None  # the field the shop (or the mapping) refused
    detail: str | None = None
    write: dict[str, Any] | None = None  # an update item decided by a look-up
    done: bool = False
    prior: bool = False  # a create intent was pending before this push: an earlier push crashed
    first_try: float | None = None  # set when the create request needed more than one attempt

    def reject(self, reason: str, code: str | None, field: str | None = None) -> None:
        self.outcome, self.reason, self.code, self.field, self.shop_id, self.done = (
            PushOutcome.REJECTED,
            reason,
            code,
            field,
            None,
            True,
        )


class WooPusher:
    def __init__(
        self,
        http: WooHttp,
        batch_size: int,
        claims: Claims | None,
        intents: Intents | None,
        recovery: Recovery | None = None,
    ) -> None:
        self.http = http
        self.batch_size = batch_size
        self.claims = claims
        self.intents = intents
        self.recovery = recovery

    def push(self, addresses: Sequence[ErpAddress], links: Mapping[int, str]) -> list[PushResult]:
        plans = self._prepare(addresses, links)
        if self.recovery is not None:
            self._decide_numbered(plans)
        for _ in range(ROUNDS):
            todo = [p for p in plans if not p.done]
            if not todo:
                break
            self._send(todo)
        for p in plans:
            if not p.done:
                p.reject(
                    "the shop kept refusing the create and no account with its e-mail was found",
                    "SYNCD__CREATE_RACE",
                )
        return [to_result(p) for p in plans]

    def predict(self, addresses: Sequence[ErpAddress], links: Mapping[int, str]) -> list[PushResult]:
        """``syncd sync --dry-run``: the same mapping and the same decisions from reads only. The
        run creates first and looks up what the shop refuses; the prediction looks every unlinked
        e-mail up (one GET each) and decides as ``_decide_existing`` would. No intent is recorded."""
        plans = self._prepare(addresses, links)
        if self.recovery is not None:
            self._decide_numbered(plans)
        unlinked = [p for p in plans if not p.done and p.linked is None]
        for p in plans:
            if not p.done and p.linked is not None:  # linked, or found by its ERP number
                p.outcome, p.shop_id = p.outcome or PushOutcome.UPDATED, p.linked
        if unlinked:
            self._decide_existing(unlinked)
        for p in unlinked:
            if p.outcome is None:  # no account has its e-mail: the run creates one
                # WooCommerce assigns the id on create; a placeholder stands in for it.
                p.code, p.outcome, p.shop_id = None, PushOutcome.CREATED, f"new-{p.address.number}"
            elif not p.done:
                p.shop_id = p.linked
        return [to_result(p) for p in plans]

    def _prepare(self, addresses: Sequence[ErpAddress], links: Mapping[int, str]) -> list[_Plan]:
        plans: list[_Plan] = []
        owners: dict[str, int] = {}
        for address in addresses:
            p = _Plan(address, linked=links.get(address.number))
            plans.append(p)
            try:
                p.mapped = map_address(address)
            except Rejected as exc:
                p.reject(exc.reason, exc.code, exc.field)
                continue
            owner = owners.setdefault(email_key(p.mapped.email), address.number)
            if owner != address.number:
                p.reject(
                    f"e-mail {p.mapped.email} is already used by ERP address {owner}; ERP address "
                    f"{address.number} gets no second shop account for it",
                    "SYNCD__DUPLICATE_EMAIL",
                )
        return plans

    # --- one round: a batch request per chunk, then the look-ups of what the shop refused ---------
    def _send(self, todo: list[_Plan]) -> None:
        lookups: list[_Plan] = []
        for start in range(0, len(todo), self.batch_size):
            chunk = todo[start : start + self.batch_size]
            creates = [p for p in chunk if p.write is None and p.linked is None]
            updates = [p for p in chunk if p not in creates]
            if creates and self.intents is not None:
                # Asked first: an intent already pending is an earlier push's create that crashed
                # before its link. Then write-ahead, committed before the request, so a crash
                # after the shop made the account still tells the next push the account is ours.
                earlier = self.intents.pending([p.address.number for p in creates])
                for p in creates:
                    p.prior = p.prior or p.address.number in earlier
                self.intents.record([(p.address.number, INTENT_ID) for p in creates])
            body: dict[str, list[Any]] = {}
            if creates:
                body["create"] = [create_item(p.mapped) for p in creates]  # type: ignore[arg-type]
            if updates:
                body["update"] = [
                    p.write or {"id": int(p.linked), **p.mapped.payload}  # type: ignore[union-attr,arg-type]
                    for p in updates
                ]
            tries: list[float] = []
            # The throwaway passwords are generated secrets too (I3): masked should anything echo them.
            with redaction.sensitive(*(item["password"] for item in body.get("create", []))):
                answer = self.http.call("POST", "/customers/batch", body, tries=tries).body or {}
            if len(tries) > 1:  # an attempt before the answered one may have made the accounts
                for p in creates:
                    p.first_try = p.first_try or tries[0]
            lookups += self._answers(creates, answer.get("create") or [], created=True)
            self._answers(updates, answer.get("update") or [], created=False)
        if lookups:
            self._decide_existing(lookups)

    def _answers(self, plans: list[_Plan], items: list[Any], *, created: bool) -> list[_Plan]:
        """Map the batch answer's items (same order as sent) back to their records."""
        lookups = []
        for index, p in enumerate(plans):
            item = items[index] if index < len(items) and isinstance(items[index], dict) else None
            if item is None:
                p.reject("the shop's batch answer has no item for this record", "SYNCD__NO_ANSWER")
                continue
            error = item.get("error")
            if not error:
                p.shop_id, p.done, p.code = str(item["id"]), True, None
                if p.outcome is None:
                    p.outcome = PushOutcome.CREATED if created else PushOutcome.UPDATED
                continue
            text, code = describe_error(error)
            if created and code in EXISTS_CODES:
                lookups.append(p)
            elif not created and code in GONE_CODES and p.write is None:
                p.linked, p.detail = None, DETAIL_LINK_GONE  # deleted in the shop: created again
            elif not created and code in GONE_CODES:  # found by a look-up, deleted since: created
                p.linked = p.write = p.outcome = p.detail = None
            elif not created and code == "existing_user_email":
                p.reject(
                    f"e-mail {p.mapped.email} is already used by another shop account; not changing "  # type: ignore[union-attr]
                    f"ERP address {p.address.number} to it ({text})",
                    "SYNCD__DUPLICATE_EMAIL",
                    "email",
                )
            else:
                p.reject(f"the shop refused the record: {text}", code, error_field(error))
        return lookups

    # --- a push whose state store may have lost links (fresh, lost or replaced store) -----------
    def _decide_numbered(self, plans: list[_Plan]) -> None:
        """Unlinked addresses whose ERP number an account carries (``syncd_erp_number``): that
        account is theirs even if the ERP e-mail changed since it was made - the e-mail look-up
        after a refused create would miss it and the create would make a second account (I4).
        The index is a hint; fresh rows decide. Outcomes as for an account found by e-mail:
        ADOPTED (written, never a password) or, with a create intent pending, our own crashed
        create (UPDATED, ``DETAIL_EXISTED``, it gets its job); refused when another address is
        linked to it or has its e-mail (the two swapped: only an operator can tell)."""
        index = self.recovery.index()  # type: ignore[union-attr]
        hits = [p for p in plans if not p.done and p.linked is None and str(p.address.number) in index]
        if not hits:
            return
        wanted = [sid for p in hits for sid in index[str(p.address.number)]]
        rows = {str(r["id"]): r for r in self.recovery.rows(wanted)}  # type: ignore[union-attr]
        owners = dict(self.claims(list(rows))) if self.claims is not None and rows else {}
        numbers = [p.address.number for p in hits]
        earlier = self.intents.pending(numbers) if self.intents is not None else set()
        emails = {email_key(p.mapped.email): p.address.number for p in plans if p.mapped is not None}
        for p in hits:
            number, key = str(p.address.number), email_key(p.mapped.email)  # type: ignore[union-attr]
            found = [rows[s] for s in index[number] if s in rows and erp_number_of(rows[s]) == number]
            if len(found) > 1:
                same = [r for r in found if email_key(r.get("email")) == key]
                if len(same) != 1:
                    ids = ", ".join(str(r["id"]) for r in found)
                    p.reject(
                        f"{len(found)} shop accounts carry ERP number {number} ({ids}); syncd adopts none "
                        f"and creates no further one - delete the extra ones or clear their {META_KEY}",
                        "SYNCD__AMBIGUOUS_ACCOUNT",
                    )
                    continue
                found = same
            if not found:
                continue  # deleted or renumbered since the index was read: the create path decides
            row = found[0]
            sid = str(row["id"])
            owner = owners.get(sid)
            other = emails.get(email_key(row.get("email")))
            if owner is not None and owner != p.address.number:
                p.reject(
                    f"shop account {sid} (ERP number {number} in its meta data) is linked to ERP address "
                    f"{owner}; ERP address {number} neither takes it over nor gets a second account",
                    "SYNCD__AMBIGUOUS_ACCOUNT",
                )
            elif other is not None and other != p.address.number:
                p.reject(
                    f"shop account {sid} carries ERP number {number} but the e-mail {row.get('email')} of "
                    f"ERP address {other}; syncd neither links nor creates an account for ERP address "
                    f"{number} until the e-mails are set right",
                    "SYNCD__AMBIGUOUS_ACCOUNT",
                )
            else:
                p.prior = p.address.number in earlier
                p.linked, p.write = sid, {"id": row["id"], **p.mapped.payload}  # type: ignore[union-attr]
                p.outcome, p.detail = (
                    (PushOutcome.UPDATED, DETAIL_EXISTED) if p.prior else (PushOutcome.ADOPTED, None)
                )

    @staticmethod
    def _made_by_us(p: _Plan, row: Mapping[str, Any]) -> bool:
        """An account carrying this address's ERP number was made by a create of ours that never
        got its link (it gets its credentials job) - not one from before a lost store (adopted):
        an earlier push's intent was pending, or this push's create request was sent more than
        once and the account is no older than its first attempt (minus ``CLOCK_SKEW``)."""
        if p.prior:
            return True
        created = _created_at(row)
        return p.first_try is not None and created is not None and created >= p.first_try - CLOCK_SKEW

    def _decide_existing(self, plans: list[_Plan]) -> None:
        found: dict[int, dict[str, Any] | None] = {}
        for p in plans:
            rows = (
                self.http.call("GET", "/customers", query={"email": p.mapped.email, "role": "all"}).body or []
            )  # type: ignore[union-attr]
            found[p.address.number] = next(
                (r for r in rows if email_key(r.get("email")) == email_key(p.mapped.email)), None
            )  # type: ignore[union-attr]
        strangers = [str(r["id"]) for r in found.values() if r is not None and erp_number_of(r) is None]
        owners = dict(self.claims(strangers)) if self.claims is not None and strangers else {}
        for p in plans:
            row, number = found[p.address.number], p.address.number
            if row is None:
                if p.code == "retried":
                    p.reject(
                        f"the shop refuses the username {p.mapped.email} (another user has it) and no "  # type: ignore[union-attr]
                        "account has the e-mail",
                        "registration-error-username-exists",
                    )
                p.code = "retried"  # deleted meanwhile: one more create
                continue
            p.code = None
            sid, theirs = str(row["id"]), erp_number_of(row)
            if theirs == str(number):
                p.linked = sid
                p.write = {"id": row["id"], **p.mapped.payload}  # type: ignore[union-attr]
                if self._made_by_us(p, row):
                    p.outcome, p.detail = PushOutcome.UPDATED, DETAIL_EXISTED
                else:
                    p.outcome = PushOutcome.ADOPTED
            elif theirs is not None:
                p.reject(
                    f"e-mail {p.mapped.email} is already used by shop account {sid} of ERP address "  # type: ignore[union-attr]
                    f"{theirs}; ERP address {number} gets no second shop account for it",
                    "SYNCD__DUPLICATE_EMAIL",
                )
            elif owners.get(sid) not in (None, number):
                p.reject(
                    f"shop account {sid} (e-mail {p.mapped.email}) is linked to ERP address "  # type: ignore[union-attr]
                    f"{owners[sid]}; ERP address {number} neither takes it over nor gets a second account",
                    "SYNCD__AMBIGUOUS_ACCOUNT",
                )
            else:  # registered by the customer: only the ERP number is written
                p.linked, p.outcome = sid, PushOutcome.LINKED
                p.write = {"id": row["id"], "meta_data": [{"key": META_KEY, "value": str(number)}]}


def _created_at(row: Mapping[str, Any]) -> float | None:
    try:
        stamp = datetime.fromisoformat(str(row.get("date_created_gmt") or ""))
    except ValueError:
        return None
    return (stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)).timestamp()


def to_result(p: _Plan) -> PushResult:
    written = p.outcome in (PushOutcome.CREATED, PushOutcome.UPDATED, PushOutcome.ADOPTED) and p.mapped
    return PushResult(
        number=p.address.number,
        outcome=p.outcome or PushOutcome.REJECTED,
        shop_id=p.shop_id,
        reason=p.reason,
        code=p.code,
        field=p.field,
        detail=p.detail,
        fingerprint=fingerprint(p.mapped.payload) if written else None,
    )  # type: ignore[union-attr]

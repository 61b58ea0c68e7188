"""The small interfaces flows talk to. Adapters live in ``connectors/``; flows receive
them from ``syncd.shell.bootstrap`` (or a test) and never build one themselves."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Protocol

from syncd.core.domain import (
    CheckItem,
    ErpAddress,
    OrderChanges,
    OutgoingMail,
    PushResult,
    RenderedLayout,
    ShopCustomer,
)


class TenantCache(Protocol):
    """Metadata kept until `syncd clear-cache` (ERP columns, shop sales channels, groups ...);
    the state store's cache in production, ``syncd.connectors.cache.MemoryCache`` in one-off tools."""

    def get(self, scope: str, key: str) -> Any: ...

    def set(self, scope: str, key: str, value: Any) -> None: ...


class ChangeScan(Protocol):
    """One pass of change detection. Iterate ``batches()`` to the end, then ``cursor()`` gives
    the bookmark to store *after* the records it covers are processed."""

    def batches(self) -> Iterator[list[ErpAddress]]: ...

    def cursor(self) -> dict[str, Any]: ...


class ErpPort(Protocol):
    def check(
        self, password_field: str | None = None, password_length: int | None = None
    ) -> list[CheckItem]:
        """Connectivity, tables, mapped columns and the password field; defaults: the field and
        length the connector was opened with."""

    def validate(self, password_field: str | None = None, password_length: int | None = None) -> None:
        """Start-up: ConfigError naming the key when the mapping or password field is wrong."""

    def scan_changes(self, cursor: Mapping[str, Any] | None, *, batch_size: int = 500) -> ChangeScan: ...

    def get_address(self, number: int) -> ErpAddress | None: ...

    def numbers_present(self, numbers: Iterable[int]) -> set[int]:
        """Which of ``numbers`` the ERP still holds (reconciliation of links)."""

    def iter_all(self, *, batch_size: int = 500) -> Iterator[list[ErpAddress]]:
        """Every address in number order, one page in memory at a time."""

    def get_addresses(self, numbers: Iterable[int]) -> dict[int, ErpAddress]: ...

    def write_account_status(self, values: Mapping[int, Mapping[str, Any]]) -> None:
        """syncd's status columns, when mapped (``credentials_sent_at``, ``account_state``)."""
        ...

    # --- the password field (spec §1 step 3b/3f, I2) ---
    def write_password_fields(self, values: Mapping[int, str]) -> None:
        """Write all values in one transaction."""

    def read_password_fields(self, numbers: Iterable[int]) -> dict[int, str | None]: ...

    def numbers_with_password(self) -> list[int]:
        """Every address whose password field is non-empty (the start-up sweep)."""

    def clear_password_fields(self, numbers: Iterable[int]) -> None:
        """One statement; idempotent."""

    # --- shop -> ERP import ---
    def number_exists(self, number: int) -> bool: ...

    def create_address(self, number: int, values: Mapping[str, Any]) -> bool:
        """Insert a new address; ``values`` by logical name or column name. False when the
        number is taken (the caller takes the next one); raises PermanentError on bad values."""

    def read_columns(self, number: int, columns: Sequence[str]) -> dict[str, Any]: ...

    def find_numbers(self, column: str, value: Any) -> list[int]: ...

    # --- changes to existing addresses (issue 13) ---
    def update_addresses(self, changes: Mapping[int, Mapping[str, Any]]) -> None:
        """Values by logical name or column per address, stamped as changed; one transaction."""

    def changed_at(self, address: ErpAddress) -> datetime | None:
        """The newest change stamp of the address (its own and its joined tables')."""

    def write_shop_ids(self, shop_ids: Mapping[int, str]) -> set[int]:
        """The shop customer id into the mapped ``shop_id`` column (no-op when none is mapped);
        returns the numbers whose row is gone."""


class ShopPort(Protocol):
    name: str
    login_url: str

    def check(self) -> list[CheckItem]: ...

    def push(
        self,
        addresses: Sequence[ErpAddress],
        links: Mapping[int, str],
        *,
        claims: Callable[[Iterable[str]], Mapping[str, int]] | None = None,
        intents: Any = None,
        dry_run: bool = False,
    ) -> list[PushResult]:
        """Create, adopt or update ``addresses``; ``links`` are the shop ids already linked per ERP
        number, ``claims`` answers which ERP number other shop ids are linked to. An unlinked
        address whose account already exists comes back ADOPTED (never CREATED), unless
        ``intents`` (``pending(numbers)``, ``record(creates)``: the state store's write-ahead
        create intents) says a crashed push of ours made it. One result per address, in order."""

    def set_passwords(self, passwords: Mapping[str, str]) -> dict[str, str | None]:
        """shop id -> password, one bulk call; returns shop id -> error reason (None = ok)."""

    def set_active(self, shop_ids: Sequence[str], active: bool) -> dict[str, str | None]: ...

    def customers_changed_since(self, since: datetime | None) -> Iterator[ShopCustomer]:
        """Customers (no guests) created or updated at or after ``since`` (None: all).
        ``since`` is the literal bound: the caller owns the bookmark and its overlap."""

    def get_customers(self, shop_ids: Sequence[str]) -> dict[str, ShopCustomer]: ...

    def compare(self, addresses: Sequence[ErpAddress], links: Mapping[int, str]) -> dict[int, str]:
        """Reconciliation: ERP number -> "missing" (no account under the linked id) or
        "differs: FIELDS" (the account holds other data than the address maps to); addresses
        whose account is in step are left out."""

    def set_customer_number(self, shop_id: str, number: str) -> None: ...

    def customer_number_overlap(self, debtor_range: tuple[int, int], prefix: str | None = None
                                ) -> tuple[Any, str | None]:
        """(the shop's own customer number range, why it collides with syncd's numbers or None)."""

    def customers_with_orders(self, since: datetime | None) -> Iterator[ShopCustomer]:
        """Customers (no guests) with an order placed at or after ``since`` (None: any order),
        the literal bound as in ``customers_changed_since``.
        A first order does not touch the customer's updatedAt, so the shop -> ERP import asks
        for these separately when ``only_with_orders`` is on."""

    def send_recovery_link(self, shop_id: str) -> None:
        """Let the shop mail its own one-time set-password link (its own mail, not syncd's)."""

    # --- set-password links (credential_mode = "link"): the shop's recovery mechanism ---
    def recovery_id(self, key: str) -> str:
        """The deterministic id of the link row for a caller's key (one per credential job)."""

    def create_recoveries(self, wanted: Mapping[str, tuple[str, str]], now: datetime
                          ) -> dict[str, str | None]:
        """shop id -> (row id, hash): make each the customer's one open link, valid from ``now``;
        returns shop id -> reason when refused (None = written)."""

    def open_recoveries(self, shop_ids: Sequence[str]) -> Mapping[str, Any]:
        """shop id -> its open link row (``id``, ``hash``, ``created_at``, ``valid_at(now)``)."""

    def recovery_url(self, recovery_hash: str) -> str:
        """The storefront URL that sets a password with ``recovery_hash``."""

    def delete_customer(self, shop_id: str) -> bool:
        """Delete the account; False when there was none."""

    def order_changes(self, since: Mapping[str, datetime], skip: Collection[str] = ()) -> OrderChanges:
        """Orders placed at/after ``since["orders"]``, or whose order / payment / delivery state
        changed at/after ``since["states"]`` (literal bounds), with their current states; the
        result's ``cursor`` holds the newest stamps seen, ``seen`` the change rows listed; rows
        in ``skip`` (an earlier read's ``seen``) are not fetched again. Costs O(changes): it
        reads new orders and the state-change history, never all orders."""

    # Approval states (syncd.flows.approvals). A shop without customer-group requests may leave
    # these out: the flow then looks for none.
    def group_requests(self) -> Iterator[ShopCustomer]:
        """Customers (no guests) with an open customer-group request (``requested_group``)."""

    def decide_group_request(self, shop_ids: Sequence[str], accept: bool) -> None:
        """Accept (the requested group becomes the customer's) or decline the open requests,
        without the shop's own mail; accounts without a request are skipped."""


class SmsPort(Protocol):
    provider: str

    def send(self, to: str, text: str, *, on_commit: Callable[[], None] | None = None) -> str:
        """Send ``text`` to the E.164 number ``to``; the provider's message id. ``on_commit`` runs
        right before the request leaves. Raises TransientError, DeliveryUnknown (answer lost after
        sending), ConfigurationFault (account/setup refused) or PermanentError (this SMS refused)."""


class MailSession(Protocol):
    def open(self) -> None:
        """Connect now rather than at the first send; raises ConfigurationFault for a refused
        login, TransientError when the server cannot be reached."""

    def send(self, mail: OutgoingMail, on_commit: Callable[[], None] | None = None) -> None:
        """Raises TransientError (SMTP 4xx, dropped connection) or PermanentError (5xx).

        ``on_commit`` runs right before the step from which the mail may be delivered (SMTP:
        the end-of-data terminator; outbox: the rename), on every attempt that gets there; if it
        raises, the mail is not delivered. A failure after it is ``DeliveryUnknown`` (or a
        TransientError/PermanentError for a server's explicit refusal)."""


class MailTransport(Protocol):
    def session(self) -> AbstractContextManager[MailSession]: ...

    def check(self) -> list[CheckItem]: ...


class LayoutRenderer(Protocol):
    def names(self) -> list[str]: ...

    def render(self, name: str, context: Mapping[str, Any]) -> RenderedLayout: ...

    def check(self, name: str, password_column: str | None) -> list[CheckItem]: ...


class BounceSource(Protocol):
    """The bounce mailbox of ``[mail.bounces]`` (maildir or IMAP): unseen messages as (ref, bytes);
    ``done`` marks one (``processed``: a bounce of syncd, else only seen)."""

    def fetch(self, limit: int) -> list[tuple[str, bytes]]: ...

    def done(self, ref: str, *, processed: bool) -> None: ...

    def close(self) -> None: ...

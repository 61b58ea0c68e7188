"""syncd's business rules, each defined once: link kinds, push outcomes, the address field
lists, the e-mail rule and the shop -> ERP re-read window.

Plain values and pure functions, no I/O and no syncd imports, so the domain, the connectors,
the flows and the state store can all import it without an import circle. ``tests/unit/test_rules.py``
pins each definition to the copies it replaces.
"""

from __future__ import annotations

import re
from datetime import timedelta
from enum import StrEnum


class LinkKind(StrEnum):
    """How a shop account came to be linked with an ERP address (column ``links.kind``).

    The values are stored in the state store and in migration 0001's partial index: never
    rename one."""

    ERP = "erp"  # syncd created the shop account for the ERP address
    EMAIL = "email"  # an account that already existed in the shop, matched by its e-mail
    IMPORT = "import"  # shop -> ERP: the ERP address was created from the shop customer
    COLLECTIVE = "collective"  # one of the many shop customers booked on the collective address


class HistoryEvent(StrEnum):
    """What ``syncd history ADDRESS`` lists (column ``history.event``). Stored values: add new
    ones, never rename one."""

    PUSHED = "pushed"  # the ERP address was written to an existing shop account
    CREATED = "created"  # syncd created the shop account
    ADOPTED = "adopted"  # an existing shop account was linked (I4)
    REJECTED = "rejected"  # the shop refused the address (reason = the shop's reason and field)
    MAIL_SENT = "mail_sent"
    MAIL_DEFERRED = "mail_deferred"
    MAIL_FAILED = "mail_failed"
    IMPORTED = "imported"  # shop -> ERP: the address was created from the shop customer
    DEACTIVATED = "deactivated"
    REACTIVATED = "reactivated"  # the ERP address is no longer blocked: its account is active again
    DELETED = "deleted"  # `syncd accounts delete`: the shop account and its link are gone
    # Message jobs (syncd.state.messages): reason = "<event> -> customer|internal[: why]"
    MESSAGE_QUEUED = "message_queued"
    MESSAGE_SENT = "message_sent"
    MESSAGE_DEFERRED = "message_deferred"
    MESSAGE_FAILED = "message_failed"
    # Account events and approval decisions (issue 15)
    ACCESS_REQUESTED = "access_requested"
    APPROVED = "approved"
    # an operator rejected the account (not REJECTED: that is the shop refusing an address)
    APPROVAL_REJECTED = "approval_rejected"
    BLOCKED = "blocked"  # the ERP address became blocked and the account was deactivated
    PASSWORD_RESET = "password_reset"  # noqa: S105 - an event name
    VALIDATED = "validated"
    FORGOT_USERNAME = "forgot_username"
    SHOP_CHANGE_IMPORTED = "shop_change_imported"  # a customer's shop edit written to the ERP row
    SHOP_CHANGE_REPORTED = "shop_change_reported"  # a shop edit found, listed in `syncd status`
    # issue 18
    MAIL_HELD = "mail_held"  # account created, mail held (ERP row older than send_credentials_since)
    MAIL_RELEASED = "mail_released"  # a held mail was asked for (`accounts send-credentials`)
    LOGGED_IN = "logged_in"  # the shop's last-login time moved: the customer used the account
    REMINDER_QUEUED = "reminder_queued"  # an account never used gets new credentials (activation_reminder)
    ERP_DELETED = "erp_deleted"  # the ERP address is gone; reason = what on_erp_delete did
    # [mail.bounces]: reason = "<kind> to <address>: <DSN status> <diagnostic>"
    MAIL_BOUNCED = "mail_bounced"  # hard bounce (5.x.x): the address is not mailed again ...
    MAIL_SOFT_BOUNCED = "mail_soft_bounced"  # 4.x.x: recorded only
    BOUNCE_CLEARED = "bounce_cleared"  # ... until the ERP e-mail changed: the bounced mail is retried once
    MAIN_CONTACT = "main_contact"  # a contact became ("new") or stopped being ("former") the main one
    CONTACT_SKIPPED = "contact_skipped"  # a contact person got no account (reason: no e-mail ...)
    # staff opened a storefront session as the customer (`accounts login-as`; never the link)
    STAFF_LOGIN_AS = "staff_login_as"
    # the customer asked the shop for a new password ("forgot password"; syncd.flows.recovery_watch)
    RECOVERY_REQUESTED = "recovery_requested"
    # a write of the account in the shop no field explains (syncd.flows.password_writes)
    PASSWORD_CHANGED_IN_SHOP = "password_changed_in_shop"  # noqa: S105 - an event name

    # issue 16: credentials by the customer's channel
    SMS_SENT = "sms_sent"  # the credentials (or set-password link) SMS was accepted by the provider
    SMS_FAILED = "sms_failed"  # the SMS leg ended without an SMS; reason says why (and what went instead)
    NOT_SENT = "not_sent"  # no credentials message: the customer's channel is "none"


# A shop connector's PermanentError code: the shop has no "log in as customer" of its own.
LOGIN_AS_UNSUPPORTED = "SYNCD__LOGIN_AS_UNSUPPORTED"


class PushOutcome(StrEnum):
    """What pushing one ERP address to the shop did (``PushResult.outcome``)."""

    CREATED = "created"  # new shop account made by syncd
    LINKED = "linked"  # an account the customer made in the shop, now linked to the ERP address
    # an account that already served this ERP address while syncd had no link for it (a lost or
    # new state store): linked again without a mail and without touching its password (I4)
    ADOPTED = "adopted"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    DEACTIVATED = "deactivated"
    SHOP_CHANGE_IMPORTED = "shop_change_imported"  # a customer's shop edit written to the ERP row
    SHOP_CHANGE_REPORTED = "shop_change_reported"  # a shop edit found, listed in `syncd status`
    REACTIVATED = "reactivated"
    SKIPPED = "skipped"  # e.g. blocked and skip_blocked
    REJECTED = "rejected"  # permanent failure for this record; ``reason`` says why


# --- address fields ----------------------------------------------------------------------------
# The logical fields of an ERP address, in ``ErpAddress`` order: what ``[erp.columns]`` can name
# (besides ``shop_id``) and what a layout sees as ``address``. Every other list derives from it.
ADDRESS_FIELDS: tuple[str, ...] = (
    "number", "email", "company", "salutation", "first_name", "last_name", "street", "zip", "city",
    "country", "phone", "customer_group", "blocked", "modified_at",
)
# Every logical field is a configurable ERP column.
LOGICAL_COLUMNS: tuple[str, ...] = ADDRESS_FIELDS
# Optional ERP columns syncd writes for office staff, never reads as address data (issue 18).
STATUS_COLUMNS: tuple[str, ...] = ("credentials_sent_at", "account_state", "email_undeliverable")
# Fields the ERP connector reads as one line of text; the number, the country (ISO code), the
# blocked flag and the timestamp have their own parsers.
TEXT_FIELDS: tuple[str, ...] = tuple(
    f for f in ADDRESS_FIELDS if f not in ("number", "country", "blocked", "modified_at")
)
# Fields a new ERP address takes from the shop customer's default billing address: the number is
# allocated, the customer group comes from the template address.
SHOP_IMPORT_FIELDS: tuple[str, ...] = tuple(
    f for f in ADDRESS_FIELDS if f not in ("number", "customer_group", "blocked", "modified_at")
)


# --- e-mail ------------------------------------------------------------------------------------
# Deliberately plain: one @, a dot in the domain, no spaces or control characters. The mail
# server has the last word (5xx = permanent failure with its reason).
EMAIL_RE = re.compile(r"^[^@\s\x00-\x1f\x7f]{1,64}@[^@\s\x00-\x1f\x7f]{1,251}\.[^@\s\x00-\x1f\x7f.]{2,63}$")
MAX_EMAIL_LENGTH = 254  # RFC 5321 path limit


def email_problem(email: str | None) -> str | None:
    """Why ``email`` cannot receive credentials (or own a shop account), or None when it can."""
    if email is None or not str(email).strip():
        return "no e-mail address"
    value = str(email).strip()
    if len(value) > MAX_EMAIL_LENGTH or not EMAIL_RE.match(value) or ".." in value:
        return f"invalid e-mail address {value!r}"
    return None


def email_key(email: str | None) -> str:
    """The key under which two e-mails are the same account: trimmed, lower case.

    ``str.lower``, not ``casefold``: the key is compared with ``lower(links.email)`` in the
    state store, and SQL has no casefold (the Shopware connector's own key still casefolds)."""
    return (email or "").strip().lower()


# --- shop -> ERP ---------------------------------------------------------------------------------
# Re-read this much before the shop -> ERP bookmark: shop transactions that committed late, clock
# skew between syncd and the shop. Applied once, by the flow that owns the bookmark; re-reading
# is harmless because every import step is idempotent.
SHOP_CHANGE_OVERLAP = timedelta(minutes=5)


# Contact accounts (``accounts_per = "contact"``) are keyed like addresses, by one integer, in every
# state table: -(address * CONTACT_SPAN + contact), a value no ERP address number takes (those are
# positive), so links, jobs, intents, history and failures keep their keys and constraints.
CONTACT_SPAN = 10_000


def contact_account(address: int, contact: int) -> int:
    """The account key of contact person ``contact`` (1..9999) of ERP address ``address``."""
    if not 0 < int(contact) < CONTACT_SPAN or int(address) <= 0:
        raise ValueError(f"contact {contact!r} of address {address!r}: contacts run 1..{CONTACT_SPAN - 1}")
    return -(int(address) * CONTACT_SPAN + int(contact))


def contact_keys(address: int) -> tuple[int, int]:
    """The (lowest, highest) account key any contact of ERP address ``address`` can have."""
    return -(int(address) * CONTACT_SPAN + CONTACT_SPAN - 1), -(int(address) * CONTACT_SPAN + 1)


def account_parts(key: int) -> tuple[int, int | None]:
    """(ERP address number, contact number or None) of an account key."""
    if key >= 0:
        return key, None
    address, contact = divmod(-key, CONTACT_SPAN)
    return address, contact


def account_label(key: int) -> str:
    """How people see an account key: the ERP number, or "10001-2" for contact 2 of 10001 (also
    the contact account's customer number in the shop)."""
    address, contact = account_parts(key)
    return str(address) if contact is None else f"{address}-{contact}"


def parse_account(text: str) -> int | None:
    """An account key from what an operator types ("10001" or "10001-2"); None if neither."""
    head, sep, tail = text.strip().partition("-")
    if not head.isdigit() or (sep and not tail.isdigit()):
        return None
    if not sep:
        return int(head)
    try:
        return contact_account(int(head), int(tail))
    except ValueError:
        return None

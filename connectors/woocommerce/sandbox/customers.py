"""The WooCommerce sandbox's data and write rules: WordPress users with the ``customer`` role,
their WooCommerce fields and meta, orders. No HTTP here (``api`` serves it).

Copied behaviour (shopware-notes §7; ``wc_create_new_customer()`` in
``plugins/woocommerce/includes/wc-user-functions.php``, ``wp_insert_user()``):
- create: ``id`` in the body -> ``woocommerce_rest_customer_exists``; ``email`` required
  (``rest_missing_callback_param``), ``is_email`` or ``registration-error-invalid-email``,
  unique (``registration-error-email-exists``, case-insensitive as MySQL compares);
  ``username`` generated from the e-mail when the option ``woocommerce_registration_generate_username``
  is ``yes`` and none is given, else required; unique (``registration-error-username-exists``),
  at most 60 characters (``user_login_too_long``); ``password`` generated when
  ``woocommerce_registration_generate_password`` is ``yes`` and none is given, else required
  (``registration-error-missing-password``); e-mail at most 100 characters (``user_email_too_long``);
- update of an unknown id -> ``woocommerce_rest_invalid_id``; an e-mail another user has ->
  ``existing_user_email`` (WordPress's ``wp_update_user``; assumed, not verified against a shop);
- ``meta_data`` items replace the value of the first meta with the same key, or are added;
- passwords are stored as bcrypt (cost 4: a sandbox), never returned.
"""

from __future__ import annotations

import re
import secrets
import threading
from datetime import UTC, datetime
from typing import Any

import bcrypt

EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
ADDRESS_KEYS = (
    "first_name",
    "last_name",
    "company",
    "address_1",
    "address_2",
    "city",
    "state",
    "postcode",
    "country",
    "email",
    "phone",
)


class ItemError(Exception):
    """A WordPress REST error for one record: ``{"code","message","data":{"status"}}``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "data": {"status": self.status}}


def now_gmt() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _stamp(at: datetime | None) -> str:
    return now_gmt() if at is None else at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


class Customers:
    def __init__(
        self,
        *,
        generate_username: bool = True,
        generate_password: bool = True,
        new_account_email: bool = False,
        bcrypt_rounds: int = 4,
    ) -> None:
        self.lock = threading.RLock()
        self.users: dict[int, dict[str, Any]] = {}
        self.hashes: dict[int, bytes] = {}
        self.orders: list[dict[str, Any]] = []
        self.next_id = 2  # user 1 is the shop's administrator, never a customer
        self.next_meta = 1000
        # lower-cased e-mail / username -> user id: look-ups are dict hits, not scans (a bulk
        # push of 20,000 would otherwise cost the shop O(n) per create, which no MySQL index does)
        self.emails: dict[str, int] = {}
        self.logins: dict[str, int] = {}
        self.generate_username = generate_username
        self.generate_password = generate_password
        self.new_account_email = new_account_email
        self.new_account_mails: list[dict[str, Any]] = []  # what WooCommerce's "New account" mail sent
        self.rounds = bcrypt_rounds

    # --- look-ups -------------------------------------------------------------------------
    def by_email(self, email: str) -> dict[str, Any] | None:
        uid = self.emails.get(email.strip().lower())
        return self.users.get(uid) if uid is not None else None

    def by_login(self, login: str) -> dict[str, Any] | None:
        uid = self.logins.get(login.strip().lower())
        return (self.users.get(uid) if uid is not None else None) or self.by_email(login)

    def forget(self, user_id: int) -> dict[str, Any] | None:
        """Remove a user and its index entries (delete, or a shop losing accounts)."""
        user = self.users.pop(int(user_id), None)
        if user is not None:
            self.emails.pop(user["email"].lower(), None)
            self.logins.pop(user["username"].lower(), None)
            self.hashes.pop(user["id"], None)
        return user

    def public(self, user: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in user.items() if k != "username"}
        out["username"] = user["username"]
        out["meta_data"] = [dict(m) for m in user["meta_data"]]
        out["billing"], out["shipping"] = dict(user["billing"]), dict(user["shipping"])
        out["is_paying_customer"] = any(o["customer_id"] == user["id"] for o in self.orders)
        out["date_created"], out["date_modified"] = user["date_created_gmt"], user["date_modified_gmt"]
        return out

    # --- writes ----------------------------------------------------------------------------
    def create(self, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise ItemError(400, "rest_invalid_json", "Invalid JSON body passed.")
        with self.lock:
            if data.get("id"):
                raise ItemError(400, "woocommerce_rest_customer_exists", "Cannot create existing resource.")
            email = str(data.get("email") or "").strip()
            if "email" not in data:
                raise ItemError(400, "rest_missing_callback_param", "Missing parameter(s): email")
            if not email or not EMAIL.match(email):
                raise ItemError(
                    400, "registration-error-invalid-email", "Please provide a valid email address."
                )
            if self.by_email(email) is not None:
                raise ItemError(
                    400,
                    "registration-error-email-exists",
                    f"An account is already registered with {email}. Please log in or use a "
                    "different email address.",
                )
            username = str(data.get("username") or "").strip()
            if not username:
                if not self.generate_username:
                    raise ItemError(
                        400, "registration-error-invalid-username", "Please enter a valid account username."
                    )
                username = self._new_username(email)
            if username.lower() in self.logins:
                raise ItemError(
                    400,
                    "registration-error-username-exists",
                    "An account is already registered with that username. Please choose another.",
                )
            if len(username) > 60:
                raise ItemError(400, "user_login_too_long", "Username may not be longer than 60 characters.")
            if len(email) > 100:
                raise ItemError(
                    400, "user_email_too_long", "Email address may not be longer than 100 characters."
                )
            password = str(data.get("password") or "")
            if not password:
                if not self.generate_password:
                    raise ItemError(
                        400, "registration-error-missing-password", "Please enter an account password."
                    )
                password = secrets.token_urlsafe(12)
            stamp = now_gmt()
            user = {
                "id": self.next_id,
                "email": email,
                "username": username,
                "role": "customer",
                "first_name": "",
                "last_name": "",
                "billing": dict.fromkeys(ADDRESS_KEYS, ""),
                "shipping": dict.fromkeys(ADDRESS_KEYS[:-2], ""),
                "meta_data": [],
                "date_created_gmt": stamp,
                "date_modified_gmt": stamp,
                "avatar_url": "",
            }
            self._apply(user, data)
            self.next_id += 1
            self.users[user["id"]] = user
            self.emails[email.lower()] = self.logins[username.lower()] = user["id"]
            self.hashes[user["id"]] = bcrypt.hashpw(password.encode(), bcrypt.gensalt(self.rounds))
            if self.new_account_email:
                self.new_account_mails.append({"to": email, "customer_id": user["id"]})
            return self.public(user)

    def update(self, user_id: Any, data: Any) -> dict[str, Any]:
        with self.lock:
            user = self.users.get(int(user_id)) if str(user_id).isdigit() else None
            if user is None:
                raise ItemError(400, "woocommerce_rest_invalid_id", "Invalid resource ID.")
            if not isinstance(data, dict):
                raise ItemError(400, "rest_invalid_json", "Invalid JSON body passed.")
            if "email" in data:
                email = str(data["email"] or "").strip()
                if not EMAIL.match(email):
                    raise ItemError(
                        400, "woocommerce_rest_customer_invalid_email", "Email address is invalid."
                    )
                other = self.by_email(email)
                if other is not None and other["id"] != user["id"]:
                    raise ItemError(400, "existing_user_email", "Sorry, that email address is already used!")
            self.emails.pop(user["email"].lower(), None)
            self._apply(user, data)
            self.emails[user["email"].lower()] = user["id"]
            if data.get("password"):
                self.hashes[user["id"]] = bcrypt.hashpw(
                    str(data["password"]).encode(), bcrypt.gensalt(self.rounds)
                )
            user["date_modified_gmt"] = now_gmt()
            return self.public(user)

    def delete(self, user_id: Any) -> dict[str, Any]:
        with self.lock:
            user = self.users.get(int(user_id)) if str(user_id).isdigit() else None
            if user is None:
                raise ItemError(400, "woocommerce_rest_invalid_id", "Invalid resource ID.")
            out = self.public(user)
            self.forget(user["id"])
            return out

    def _apply(self, user: dict[str, Any], data: dict[str, Any]) -> None:
        for key in ("email", "first_name", "last_name"):
            if key in data:
                user[key] = str(data[key] or "").strip()
        for part in ("billing", "shipping"):
            for key, value in (data.get(part) or {}).items():
                if key in user[part]:
                    user[part][key] = str(value or "")
        for meta in data.get("meta_data") or []:
            if not isinstance(meta, dict) or "key" not in meta:
                continue
            same = next((m for m in user["meta_data"] if m["key"] == meta["key"]), None)
            if same is not None:
                same["value"] = meta.get("value")
            else:
                self.next_meta += 1
                user["meta_data"].append(
                    {"id": self.next_meta, "key": meta["key"], "value": meta.get("value")}
                )

    def _new_username(self, email: str) -> str:
        """``wc_create_new_customer_username``: the e-mail's local part, a number added while taken."""
        base = re.sub(r"[^A-Za-z0-9_.\-@]", "", email.split("@")[0]) or "customer"
        name, n = base, 1
        while name.lower() in self.logins:
            n += 1
            name = f"{base}{n}"
        return name

    def check_password(self, login: str, password: str) -> bool:
        with self.lock:
            user = self.by_login(login)
            stored = self.hashes.get(user["id"]) if user else None
        return bool(stored) and bcrypt.checkpw(password.encode(), stored)  # type: ignore[arg-type]

    def add_order(
        self, customer_id: int, *, status: str = "processing", payment_method: str = "bacs",
        total: str = "49.90", at: datetime | None = None,
    ) -> dict[str, Any]:
        """An order as checkout makes it (``status``: pending, processing, on-hold, completed,
        cancelled, refunded, failed; ``payment_method`` ``bacs`` = direct bank transfer, i.e.
        prepayment). Checkout saves the billing address to the customer, but an order placed
        through the sandbox does not move the user's modified date (nothing in it changed).
        ``at``: the shop's clock for this order (tests that drive time)."""
        with self.lock:
            stamp = _stamp(at)
            order = {
                "id": 5000 + len(self.orders),
                "number": str(5000 + len(self.orders)),
                "customer_id": int(customer_id),
                "status": status,
                "payment_method": payment_method,
                "total": total,
                "currency": "EUR",
                "date_created_gmt": stamp,
                "date_modified_gmt": stamp,
                "date_paid_gmt": None if status in ("pending", "on-hold", "failed") else stamp,
                "date_completed_gmt": stamp if status == "completed" else None,
                "billing": dict(user["billing"]) if (user := self.users.get(int(customer_id))) else {},
            }
            self.orders.append(order)
            return dict(order)

    def set_order_status(self, order_id: int, status: str, at: datetime | None = None) -> dict[str, Any]:
        """The shop moves an order on (an admin marks it completed, a payment arrives): its
        modified date moves."""
        with self.lock:
            order = next(o for o in self.orders if o["id"] == int(order_id))
            order["status"], order["date_modified_gmt"] = status, _stamp(at)
            if status == "completed":
                order["date_completed_gmt"] = order["date_modified_gmt"]
            if status in ("processing", "completed") and not order["date_paid_gmt"]:
                order["date_paid_gmt"] = order["date_modified_gmt"]
            return dict(order)

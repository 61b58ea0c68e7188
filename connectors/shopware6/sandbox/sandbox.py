"""The public face: ``Sandbox(version=...).start()`` gives a Shopware 6 look-alike on a loopback port."""

from __future__ import annotations

import copy
import threading
from datetime import timedelta
from typing import Any

from .api import AdminApi, Credentials
from .criteria import Searcher
from .faults import Faults
from .imitation import Imitation
from .orders import seed_states
from .schema import build_entities
from .seed import SeedIds, seed
from .server import LoggedRequest, serve
from .shopside import ShopSide
from .store import Store, format_dt, parse_dt
from .storeapi import StoreApi
from .versions import ShopVersion
from .writer import Writer

# A sandbox, not a shop: bcrypt cost 4 (~1 ms per hash) instead of PHP's default 10 keeps bulk
# pushes with passwords fast while stored passwords stay real bcrypt hashes.
BCRYPT_ROUNDS = 4


class Sandbox(ShopSide):
    def __init__(
        self,
        version: str = "6.6.10.0",
        *,
        token_lifetime: float = 600,
        seed: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
        random_seed: int = 0,
        password_min_length: int = 8,
        bcrypt_rounds: int = BCRYPT_ROUNDS,
    ):
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"the sandbox binds loopback addresses only, not {host!r}")
        self.version = version
        self.shop_version = ShopVersion.parse(version)
        self._host, self._port = host, port
        self.faults = Faults(random_seed)
        self.request_log: list[LoggedRequest] = []
        self.flow_mails: list[dict[str, Any]] = []
        self._log_lock = threading.Lock()
        self._server = None
        self._thread = None
        self.url = ""
        self._bcrypt_rounds = bcrypt_rounds
        self._password_min = password_min_length
        self._credentials = Credentials(token_lifetime)
        self._store = Store(build_entities(self.shop_version))
        self._seeded = seed
        self._writer = Writer(
            self._store,
            self._store.entities,
            self.shop_version,
            password_min=password_min_length,
            bcrypt_rounds=bcrypt_rounds,
            on_register=self._record_flow_mail,
        )
        self.ids: SeedIds | None = None
        self.admin_api: AdminApi | None = None
        self.store_api: StoreApi | None = None
        self.imitation: Imitation | None = None

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> Sandbox:
        if self._server is not None:
            return self
        self._server, self._thread = serve(self, self._host, self._port)
        host, port = self._server.server_address[:2]
        self._port = port  # a restart (shop outage in a test) comes back on the same URL, data kept
        self.url = f"http://{host if ':' not in host else f'[{host}]'}:{port}"
        if self.ids is None:
            self._build()
        return self

    def _build(self) -> None:
        self.ids = seed(self._store, self.url)
        seed_states(self._store)
        if not self._seeded:
            # seed=False: a shop that nobody set up for syncd -- system data (languages, currency,
            # countries, salutations) only, no sales channel, customer groups or payment methods
            for entity in ("customer_group", "payment_method", "sales_channel", "sales_channel_domain"):
                self._store.tables[entity].clear()
        self._writer.default_salutation = self.ids.salutations["not_specified"]
        self.admin_api = AdminApi(
            self._store,
            Searcher(self._store, self.shop_version.max_limit),
            self._writer,
            self._credentials,
            self.faults,
            self.version,
            {"password_min": self._password_min},
        )
        self.store_api = StoreApi(
            self._store,
            self.shop_version,
            sales_channel_id=self.ids.sales_channel,
            access_key=self.ids.access_key,
            password_min=self._password_min,
            bcrypt_rounds=self._bcrypt_rounds,
        )
        self.admin_api.store_api = self.store_api
        self.imitation = Imitation(self._store, self.shop_version, self.ids.sales_channel)
        self.admin_api.imitation = self.store_api.imitation = self.imitation
        self.admin_api.on_flow_mail = self._record_event_mail

    def add_admin_user(self, username: str, password: str, *, admin: bool = False,
                       privileges: tuple[str, ...] = ("api_proxy_imitate-customer",)) -> str:
        """An Administration login (password grant); its id. ``privileges`` unless ``admin``."""
        return self._require_imitation().add_user(username, password, admin=admin, privileges=privileges)

    def _require_imitation(self) -> Imitation:
        if self.imitation is None:
            raise RuntimeError("start() the sandbox first")
        return self.imitation

    def stop(self) -> None:
        """Stop serving; the shop's data stays, and ``start()`` serves it again on the same URL."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- credentials and seeded ids ---------------------------------------------------------
    @property
    def client_id(self) -> str:
        return self._credentials.client_id

    @property
    def client_secret(self) -> str:
        return self._credentials.client_secret

    @property
    def token_lifetime(self) -> float:
        return self._credentials.token_lifetime

    @token_lifetime.setter
    def token_lifetime(self, seconds: float) -> None:
        """Applies to tokens issued from now on."""
        self._credentials.token_lifetime = seconds

    def expire_tokens(self) -> None:
        """Every token handed out so far stops working (the next call gets 401)."""
        self._credentials.revoke_all()

    @property
    def access_key(self) -> str:
        return self._require_ids().access_key

    @property
    def sales_channel_id(self) -> str:
        return self._require_ids().sales_channel

    @property
    def storefront_url(self) -> str:
        return self.url

    def _require_ids(self) -> SeedIds:
        if self.ids is None:
            raise RuntimeError("start() the sandbox first")
        return self.ids

    # --- inspection ------------------------------------------------------------------------
    def customers(self) -> list[dict[str, Any]]:
        """Stored customers as the API returns them with ``addresses`` loaded; never a password hash."""
        with self._store.lock:
            out = []
            for record in self._store.tables["customer"].values():
                c = copy.deepcopy(record)
                c["addresses"] = [
                    copy.deepcopy(self._store.tables["customer_address"][aid])
                    for aid in self._store.ids_by("customer_address", "customerId", record["id"])
                ]
                out.append(c)
        return out

    def customer(self, customer_id: str) -> dict[str, Any] | None:
        return next((c for c in self.customers() if c["id"] == customer_id), None)

    def has_password(self, customer_id: str) -> bool:
        with self._store.lock:
            return customer_id in self._store.passwords

    @property
    def recovery_hashes(self) -> dict[str, str]:
        """Open password-recovery hashes (``customer_recovery`` rows) -> customer id."""
        return self.store_api.recovery_hashes() if self.store_api else {}

    def age_customers(self, seconds: float) -> None:
        """Move every customer's timestamps (``createdAt``, ``updatedAt``, ``lastLogin``) back, as
        if everything so far had happened ``seconds`` earlier."""
        with self._store.lock:
            for row in list(self._store.tables["customer"].values()):
                moved = {k: format_dt(parse_dt(row[k]) - timedelta(seconds=seconds))
                         for k in ("createdAt", "updatedAt", "lastLogin") if row.get(k)}
                self._store.put("customer", {**row, **moved})

    def age_recovery(self, recovery_hash: str, seconds: float) -> None:
        """Move a recovery's ``createdAt`` back, as if it had been created ``seconds`` earlier
        (the 2 h expiry without waiting 2 h)."""
        with self._store.lock:
            for row in list(self._store.tables["customer_recovery"].values()):
                if row["hash"] == recovery_hash:
                    created = parse_dt(row["createdAt"]) - timedelta(seconds=seconds)
                    self._store.put("customer_recovery", {**row, "createdAt": format_dt(created)})

    @property
    def recovery_mails(self) -> list:
        return list(self.store_api.recovery_mails) if self.store_api else []

    def _log(self, entry: LoggedRequest) -> None:
        with self._log_lock:
            self.request_log.append(entry)

    def _record_event_mail(self, event: str, template: str, customer: dict[str, Any]) -> None:
        # A business event's default flow (customer group registration accepted / declined) mails
        # the customer unless the request carried sw-skip-trigger-flow.
        with self._log_lock:
            self.flow_mails.append({"event": event, "template": template, "customer_id": customer["id"],
                                    "email": customer.get("email")})

    def _record_flow_mail(self, customer: dict[str, Any]) -> None:
        # CustomerFlowEventsSubscriber: every customer inserted via the Admin API or sync dispatches
        # checkout.customer.register, whose default flow sends the customer_register mail.
        with self._log_lock:
            self.flow_mails.append(
                {
                    "event": "checkout.customer.register",
                    "template": "customer_register",
                    "customer_id": customer["id"],
                    "email": customer.get("email"),
                    "first_name": customer.get("firstName"),
                    "last_name": customer.get("lastName"),
                    "sales_channel_id": customer.get("salesChannelId"),
                }
            )

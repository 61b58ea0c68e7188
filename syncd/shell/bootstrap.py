"""Wiring: build the adapters of every platform from the validated configuration.

The one place where configuration turns into connectors. Flows receive a ``PlatformContext``
from here (daemon, CLI, demo) or from a test; nothing below ``syncd.flows`` builds an adapter.

* ``open_runtime(loaded, secrets, read_only=False)``: the state store plus lazily built ports per
  platform; ``read_only`` (dry runs, reports) neither migrates nor creates the store and keeps
  connector metadata in memory.
* ``preflight(loaded, secrets)``: the start-up validation of I7 (ERP table, columns, password
  fields, credentials layouts) before anything is written; ConfigError names file, key, value.
* ``open_state_read_only(url)``: the store for reading while a daemon may be writing.
* ``open_erp_for`` / ``open_shop_for`` / ``open_mail_for``: one adapter on its own, for the
  CLI's checks and previews (an in-memory metadata cache unless one is given). The CLI never
  imports ``connectors`` itself.
* ``flow_jobs()`` / ``sweep(ctx)``: what the daemon and `syncd sync` run.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from syncd.config.contacts import contacts_used
from syncd.config.loader import LoadedConfig
from syncd.config.messaging import sms_possible
from syncd.config.model import PlatformSettings, Settings, platform_mail
from syncd.config.profiles import effective_columns
from syncd.config.secrets import Secrets
from syncd.connectors import woocommerce
from syncd.connectors.erp import SqlErp, open_erp
from syncd.connectors.mail import OutboxTransport, SmtpTransport, open_transport
from syncd.connectors.shopware6 import ShopwareShop, open_shop
from syncd.connectors.sms import open_sms
from syncd.connectors.woocommerce import WooShop
from syncd.core.domain import CheckItem
from syncd.core.errors import ConfigError, SyncdError
from syncd.core.returnpath import ReturnPaths
from syncd.flows.context import CycleReport, PlatformContext
from syncd.render.store import LayoutStore
from syncd.shell.bounces import return_paths
from syncd.state.cache import Cache
from syncd.state.db import StateStore, current_revisions, head_revisions, open_state

MailTransport = SmtpTransport | OutboxTransport
Shop = ShopwareShop | WooShop


class _TtlCache:
    """The tenant cache as the connectors see it: ``[daemon] cache_ttl`` applied on read.

    ``read_only``: what the connectors fetch stays in this process (dry runs, checks and
    previews promise to write nothing, the state store included)."""

    def __init__(self, cache: Cache, ttl: float | None, *, read_only: bool = False) -> None:
        self._cache = cache
        self._ttl = ttl
        self._read_only = read_only
        self._local: dict[tuple[str, str], Any] = {}

    def get(self, scope: str, key: str) -> Any:
        if (scope, key) in self._local:
            return self._local[(scope, key)]
        return self._cache.get(scope, key, max_age=self._ttl)

    def set(self, scope: str, key: str, value: Any) -> None:
        if self._read_only:
            self._local[(scope, key)] = value
        else:
            self._cache.set(scope, key, value)


@dataclass
class Runtime:
    """Everything one process needs to run flows: the state store and, per platform, its ports.

    Adapters are built lazily and kept, so a daemon reuses its connection pools across cycles.
    """

    settings: Settings
    secrets: Secrets
    state: StateStore
    config_path: str | None = None
    read_only: bool = False
    _contexts: dict[str, PlatformContext] = field(default_factory=dict)
    _retired: list[PlatformContext] = field(default_factory=list)
    _cache: _TtlCache | None = field(default=None, repr=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    @property
    def cache(self) -> _TtlCache:
        if self._cache is None:
            ttl = self.settings.daemon.cache_ttl
            self._cache = _TtlCache(Cache(self.state), ttl, read_only=self.read_only)
        return self._cache

    def platform(self, name: str) -> PlatformSettings:
        for platform in self.settings.platforms:
            if platform.name == name:
                return platform
        raise KeyError(name)

    def erp_for(self, platform: PlatformSettings) -> SqlErp:
        return open_erp_for(self.settings, self.secrets, platform=platform, cache=self.cache)

    def shop_for(self, platform: PlatformSettings) -> Shop:
        return open_shop_for(self.settings, platform, self.secrets, cache=self.cache)

    def context(self, platform: PlatformSettings | str) -> PlatformContext:
        # The daemon's worker threads may ask for a platform at the same time (both directions
        # of a platform that was not ready at start): one context, not two with leaked pools.
        with self._lock:
            return self._context(platform)

    def _context(self, platform: PlatformSettings | str) -> PlatformContext:
        if isinstance(platform, str):
            platform = self.platform(platform)
        ctx = self._contexts.get(platform.name)
        if ctx is None:
            ctx = PlatformContext(
                settings=self.settings,
                platform=platform,
                erp=self.erp_for(platform),
                shop=self.shop_for(platform),
                state=self.state,
                mail=open_mail_for(self.settings, self.secrets, platform, return_paths=return_paths(
                    self.settings, self.state, read_only=self.read_only)),
                layouts=LayoutStore(self.settings.mail.layouts_dir),
                sms=open_sms(self.settings.sms, self.secrets.sms_password),
            )
            self._contexts[platform.name] = ctx
        return ctx

    def reconfigure(self, settings: Settings, secrets: Secrets) -> None:
        """A reload: contexts built from now on use ``settings``. The old adapters stay open
        until ``close`` since a cycle may still be using them."""
        with self._lock:
            self.settings = settings
            self.secrets = secrets
            self._retired.extend(self._contexts.values())
            self._contexts = {}
            self._cache = None

    def close(self) -> None:
        for ctx in [*self._contexts.values(), *self._retired]:
            for port in (ctx.erp, ctx.shop):
                closer = getattr(port, "close", None)
                if callable(closer):
                    closer()
        self._contexts.clear()
        self._retired.clear()
        self.state.close()


def open_erp_for(
    settings: Settings, secrets: Secrets, *, platform: PlatformSettings | None = None,
    cache: Any = None,
) -> SqlErp:
    """The ERP connector. With ``platform``: its password field (when it sends credentials),
    length and the key naming it in errors. Without: the table and columns only (checks,
    previews, the start-up validation). ``cache`` None keeps metadata in memory."""
    if platform is None:
        return open_erp(settings.erp, password=secrets.erp_password, cache=cache)
    addresses = platform.addresses
    return open_erp(
        settings.erp,
        password=secrets.erp_password,
        cache=cache,
        password_field=addresses.password_field if addresses.uses_password_field else None,
        password_length=addresses.password_length,
        password_key=f"platforms[{settings.platforms.index(platform)}].addresses.password_field",
    )


def open_shop_for(
    settings: Settings, platform: PlatformSettings, secrets: Secrets, *, cache: Any = None,
    erp_columns: bool = True,
) -> Shop:
    """The shop connector of ``platform``, chosen by its ``kind``. ``erp_columns``: name the ERP
    columns in rejection reasons (Shopware; what cycles report, the connection check has no use
    for them)."""
    if platform.kind == woocommerce.KIND:
        return woocommerce.open_shop(platform, consumer_secret=secrets.client_secret(platform.name))
    return open_shop(
        platform,
        client_secret=secrets.client_secret(platform.name),
        cache=cache,
        erp_columns=effective_columns(settings.erp) if erp_columns else None,
    )


def open_mail_for(
    settings: Settings, secrets: Secrets, platform: PlatformSettings | None = None, *,
    return_paths: ReturnPaths | None = None,
) -> MailTransport:
    """The mail transport of ``[mail]`` (SMTP, or the outbox folder), or of the platform's own
    account (``platforms[].mail``). ``return_paths``: the tagged envelope senders ([mail.bounces])."""
    if platform is not None and platform.mail is not None:
        return open_transport(platform_mail(settings, platform), return_paths=return_paths,
                              password=secrets.account_passwords.get(platform.mail))
    return open_transport(settings.mail, password=secrets.mail_password, return_paths=return_paths)


def check_mail(settings: Settings, secrets: Secrets, senders: tuple[str, ...] = (),
               platform: PlatformSettings | None = None) -> list[CheckItem]:
    """The mail transport's own check (``[mail]``, or a platform's own account). SMTP also asks
    whether the server accepts each of ``senders``; the outbox folder has no senders to refuse."""
    transport = open_mail_for(settings, secrets, platform)
    if isinstance(transport, SmtpTransport):
        return transport.check(senders)
    return transport.check()


def check_sms(settings: Settings, secrets: Secrets) -> list[CheckItem]:
    """The SMS channel's static check (nothing is sent: a test SMS costs money)."""
    transport = open_sms(settings.sms, secrets.sms_password)
    return transport.check() if transport is not None else []


def open_runtime(loaded: LoadedConfig, secrets: Secrets, *, read_only: bool = False) -> Runtime:
    """Open the state store (migrating it) and prepare the adapters of every platform.

    ``read_only``: for dry runs, checks, previews and reports. The store is opened without
    migrating (see ``open_state_read_only``) and the connectors' metadata cache stays in memory;
    nothing is written to the state store by the runtime itself."""
    if read_only:
        state = open_state_read_only(loaded.settings.daemon.state_url)
    else:
        state = open_state(loaded.settings.daemon.state_url)
    return Runtime(loaded.settings, secrets, state, config_path=str(loaded.path), read_only=read_only)


def state_file(url: str) -> Path | None:
    """The file of a SQLite state store (None for other backends and in-memory SQLite)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database).expanduser()


def open_state_read_only(url: str) -> StateStore:
    """The state store for reading, never migrating or creating it.

    A SQLite file that does not exist yet becomes an empty in-memory store (what a first run
    would find), so that reports and dry runs leave no file behind. An existing store must be at
    the schema this syncd expects: a migrating open would take SQLite's write lock and wait for
    a running daemon's cycle."""
    path = state_file(url)
    if path is not None and not path.exists():
        return _empty_store()
    store = open_state(url, migrate=False)
    try:
        current, heads = current_revisions(store), head_revisions()
    except Exception:
        store.close()
        raise
    if not current:  # never migrated (a new PostgreSQL database): nothing to read yet
        store.close()
        return _empty_store()
    if current != heads:
        store.close()
        have = ", ".join(sorted(current)) or "empty"
        raise SyncdError(
            f"the state store {store!r} has schema {have}, this syncd expects {', '.join(sorted(heads))}; "
            "start `syncd run` (or a `syncd sync`) once to migrate it, or upgrade syncd / "
            "der Zustandsspeicher hat nicht das erwartete Schema"
        )
    return store


def _empty_store() -> StateStore:
    """An empty in-memory store: the schema as the migrations build it (tests/e2e/test_state_db.py
    keeps the two equal), without the migration log lines a report has no use for."""
    from syncd.state.schema import metadata

    store = open_state("sqlite://", migrate=False)
    metadata.create_all(store.engine)
    return store


def _sqlite_erp_missing(settings: Settings) -> Path | None:
    """A SQLite ERP URL naming a file that does not exist: connecting would create an empty
    database, so the checks report it instead."""
    try:
        path = state_file(settings.erp.url)
    except Exception:
        return None
    return path if path is not None and not path.exists() else None


def erp_file_problem(settings: Settings) -> ConfigError | None:
    missing = _sqlite_erp_missing(settings)
    if missing is None:
        return None
    return ConfigError("the SQLite ERP database file does not exist", key="erp.url", value=str(missing))


def preflight(loaded: LoadedConfig, secrets: Secrets) -> None:
    """Start-up validation before anything is written (I7): the ERP table, columns and every
    password field, and each credentials layout reads its password column. Raises ConfigError
    naming file, key and value. An ERP that does not answer is no configuration fault: it is
    logged by the caller and the cycles retry."""
    settings = loaded.settings
    file = str(loaded.path)
    problem = erp_file_problem(settings)
    if problem is not None:
        problem.file = file
        raise ConfigError(problem.message, file=file, key=problem.key, value=problem.value)
    try:
        layouts = LayoutStore(settings.mail.layouts_dir)
    except ConfigError as exc:
        raise ConfigError(exc.message, file=file, key=exc.key, value=exc.value) from None
    for index, platform in enumerate(settings.platforms):
        if platform.kind == woocommerce.KIND:
            for key, reason in woocommerce.unsupported(platform, f"platforms[{index}]"):
                raise ConfigError(reason, file=file, key=key, value=_setting(platform, key))
    _reminder_layouts(settings, layouts, file)
    erp = open_erp_for(settings, secrets)
    try:
        validated = False
        for index, platform in enumerate(settings.platforms):
            a = platform.addresses
            if not (a.erp_to_shop and a.send_credentials):
                continue
            key = f"platforms[{index}].addresses"
            # Link mode writes no ERP field: only the table and columns must be right.
            field = a.password_field if a.uses_password_field else None
            _validate_erp(erp, file, field, a.password_length, f"{key}.password_field" if field else None)
            validated = True
            sms = sms_possible(settings) and layouts.has_sms(a.email_layout)
            for layout_key, layout in a.layouts_in_use().items():  # each purpose's own layout
                failed = [i for i in layouts.check(layout, a.password_field, mode=a.credential_mode,
                                                   sms=sms and layout == a.email_layout,
                                                   allow_password_by_sms=settings.messages.allow_password_by_sms)
                          if not i.ok]
                if failed:
                    raise ConfigError("; ".join(i.detail for i in failed), file=file,
                                      key=f"{key}.{layout_key}", value=layout)
        if not validated:  # no password field in use: the table and columns still must exist
            _validate_erp(erp, file, None, 12, None)
        if contacts_used(settings):
            for item in erp.check_contacts():
                if not item.ok:
                    raise ConfigError(item.detail, file=file, key=item.name)
    finally:
        erp.close()


def _setting(platform: PlatformSettings, key: str) -> Any:
    """The value of a platform setting named by ``key`` (``platforms[0].addresses.x``)."""
    value: Any = platform
    for part in key.split(".")[1:]:
        value = getattr(value, part, None)
    return value


def _reminder_layouts(settings: Settings, layouts: LayoutStore, file: str) -> None:
    """Each ``[[reminders]]`` layout exists and compiles, with ``sms.txt.j2`` where it may go by SMS."""
    for index, reminder in enumerate(settings.reminders):
        sms = settings.sms.enabled and (reminder.channel in ("sms", "both") or (
            reminder.channel == "preferred" and sms_possible(settings)))
        failed = [i for i in layouts.check(reminder.layout, None, sms=sms) if not i.ok]
        if failed:
            raise ConfigError("; ".join(i.detail for i in failed), file=file,
                              key=f"reminders[{index}].layout", value=reminder.layout)


def _validate_erp(erp: SqlErp, file: str, field: str | None, length: int, key: str | None) -> None:
    try:
        erp.validate(field, length, password_key=key)
    except ConfigError as exc:  # the connector names key and value; the operator also wants the file
        raise ConfigError(exc.message, file=file, key=exc.key, value=exc.value, allowed=exc.allowed) from None


def flow_jobs() -> dict[str, Callable[[PlatformContext], CycleReport]]:
    """The scheduled jobs per platform, by direction. Each job checks its own settings
    (``erp_to_shop`` / ``shop_to_erp`` / collective address) and reports a no-op when off."""
    from syncd.flows.erp_to_shop import run_erp_to_shop
    from syncd.flows.import_customers import run_shop_to_erp

    return {"erp-to-shop": run_erp_to_shop, "shop-to-erp": run_shop_to_erp}


def reconcile_job() -> Callable[[PlatformContext], CycleReport]:
    """The erp-to-shop job in full: a cycle plus the reconciliation (`syncd sync --full`, and
    the daemon every ``[daemon] reconcile_interval``)."""
    from syncd.flows.reconcile import run_full

    return run_full


def sweep(ctx: PlatformContext) -> None:
    """Start-up settling of password fields (I2) before any new work."""
    from syncd.flows.erp_to_shop import settle_password_fields

    settle_password_fields(ctx)

"""A büro+-shaped ERP (the ``bueroplus`` profile's three tables, ``erp_fixtures.create_bueroplus_tables``)
wired to the Shopware sandbox and a SQLite state store, for the flows of issue 13.

    w = BpWorld("sqlite", tmp_path, sandbox)
    w.add(10001, na1="Herr", na2="Jürgen Meißner", first="Jürgen", last="Meißner")
    w.push()                        # one erp-to-shop cycle
    w.import_(shop_changes="import")  # one shop-to-erp cycle
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from syncd.config.model import AddressSettings, DaemonSettings, PlatformSettings, Settings
from syncd.config.profiles import effective_columns
from syncd.connectors.erp import open_erp
from syncd.connectors.shopware6 import open_shop
from syncd.flows.context import CycleReport, PlatformContext
from syncd.flows.erp_to_shop import run_erp_to_shop
from syncd.flows.import_customers import run_shop_to_erp
from syncd.state.db import open_state
from syncd.state.links import Links
from tests.support.dbs import mariadb_url, unique_name
from tests.support.erp_fixtures import create_bueroplus_tables, drop_schema, utcnow

PLATFORM = "shop"
T0 = utcnow().replace(microsecond=0) - timedelta(days=2)


class BpWorld:
    def __init__(self, kind: str, tmp_path, sandbox, *, state_url: str = "") -> None:
        if kind == "sqlite":
            self.url, self.schema = f"sqlite:///{tmp_path}/bp.sqlite", None
        else:  # MariaDB over ODBC, a schema (database) of its own: the table names are fixed
            self.url, self.schema = mariadb_url(), unique_name("bp13")
        self.erp_settings = create_bueroplus_tables(self.url, schema=self.schema)
        self.engine = sa.create_engine(self.url, poolclass=sa.pool.NullPool)
        md = sa.MetaData(schema=self.schema)
        self.t = {n: sa.Table(n, md, autoload_with=self.engine)
                  for n in ("Adressen", "Anschriften", "Ansprechpartner")}
        self.sb = sandbox
        self.state_url = state_url or f"sqlite:///{tmp_path / 'state.db'}"
        self.state = open_state(self.state_url)
        self._open: list[Any] = []

    # --- the ERP --------------------------------------------------------------------------
    def add(self, number: int, *, na1: str | None, na2: str | None, first: str | None = None,
            last: str | None = None, email: str | None = None, street: str = "Hauptstr. 1",
            zip: str = "50667", city: str = "Köln", land: int | None = 276, shop: bool = True,
            blocked: bool = False, stamp: datetime = T0) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.insert(self.t["Adressen"]).values(
                AdrNr=str(number), ReAnsNr=1, Status="Kunde", GspKz=blocked, WShopAdrKz=shop, LtzAend=stamp))
            conn.execute(sa.insert(self.t["Anschriften"]).values(
                AdrNr=str(number), AnsNr=1, Na1=na1, Na2=na2, Str=street, PLZ=zip, Ort=city, Land=land,
                EMail1=email or f"k{number}@example.com", AspNr=1, LtzAend=stamp))
            if first or last:
                conn.execute(sa.insert(self.t["Ansprechpartner"]).values(
                    AdrNr=str(number), AnsNr=1, AspNr=1, VNa=first, NNa=last, LtzAend=stamp))

    def update(self, table: str, number: int, **values: Any) -> None:
        t = self.t[table]
        with self.engine.begin() as conn:
            conn.execute(sa.update(t).where(t.c.AdrNr == str(number)).values(values))

    def row(self, number: int) -> dict[str, Any]:
        """The address as the three tables hold it, by column name (joined tables' ``LtzAend``
        and ``EMail1`` as ``Table.Column``)."""
        out: dict[str, Any] = {}
        with self.engine.connect() as conn:
            for name, t in self.t.items():
                found = conn.execute(sa.select(t).where(t.c.AdrNr == str(number))).first()
                for key, value in (found._mapping.items() if found is not None else []):
                    out[key if key not in out else f"{name}.{key}"] = value
        return out

    def numbers(self) -> list[int]:
        with self.engine.connect() as conn:
            return sorted(int(r[0]) for r in conn.execute(sa.select(self.t["Adressen"].c.AdrNr)))

    # --- wiring -----------------------------------------------------------------------------
    def settings(self, *, platform: dict[str, Any] | None = None, erp: dict[str, Any] | None = None,
                 **addresses: Any) -> Settings:
        values: dict[str, Any] = {"send_credentials": False, "shop_to_erp": False, "only_with_orders": False}
        values.update(addresses)
        plat = PlatformSettings(name=PLATFORM, url=self.sb.url, client_id=self.sb.client_id,
                                client_secret="env:SYNCD_TEST_SHOP_SECRET", timeout="10s",
                                addresses=AddressSettings(**values), **(platform or {}))
        erp_settings = self.erp_settings.model_copy(update=erp or {})
        return Settings(daemon=DaemonSettings(state_url=self.state_url), erp=erp_settings, platforms=(plat,))

    def ctx(self, **kw: Any) -> PlatformContext:
        settings = self.settings(**kw)
        platform = settings.platforms[0]
        erp = open_erp(settings.erp)
        shop = open_shop(platform, client_secret=self.sb.client_secret,
                         erp_columns=effective_columns(settings.erp))  # as bootstrap wires it
        self._open += [erp, shop]
        return PlatformContext(settings, platform, erp, shop, self.state)

    def push(self, **kw: Any) -> CycleReport:
        return run_erp_to_shop(self.ctx(**kw))

    def import_(self, **kw: Any) -> CycleReport:
        return run_shop_to_erp(self.ctx(**kw))

    # --- the shop and the state -----------------------------------------------------------
    def by_number(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for c in self.sb.customers():
            assert str(c["customerNumber"]) not in out, f"two shop customers numbered {c['customerNumber']}"
            out[str(c["customerNumber"])] = c
        return out

    def address_of(self, customer: dict[str, Any]) -> dict[str, Any]:
        with self.sb._store.lock:
            return dict(self.sb._store.get("customer_address", customer["defaultBillingAddressId"]))

    def links(self) -> dict[int, Any]:
        return {lk.erp_number: lk for lk in Links(self.state).iter(PLATFORM)}

    def set_shop_stamp(self, customer_id: str, when: datetime) -> None:
        """Pretend the customer's last change (and its billing address's) was at ``when``."""
        text = when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+00:00")
        with self.sb._store.lock:
            record = dict(self.sb._store.get("customer", customer_id))
            record["updatedAt"] = text
            self.sb._store.put("customer", record)
            address = dict(self.sb._store.get("customer_address", record["defaultBillingAddressId"]))
            address["updatedAt"] = text
            self.sb._store.put("customer_address", address)

    def close(self) -> None:
        for thing in self._open:
            thing.close()
        self.state.close()
        self.engine.dispose()
        if self.schema:
            drop_schema(self.url, self.schema)

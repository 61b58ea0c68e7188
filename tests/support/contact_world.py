"""A büro+-shaped ERP with contact persons (``Ansprechpartner``), the shop sandbox, a real SMTP
server and a state store, for contact accounts and the main-contact events.

    w = ContactWorld("sqlite", tmp_path, sandbox, smtp_server)
    w.company(10001, "Müller GmbH", [(1, "Herr", "Jörg", "Müller", "jm@..."), ...], main=1)
    w.run()                 # start-up sweep + one erp-to-shop cycle, fresh ports (a restart)
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from syncd.flows.context import CycleReport
from syncd.flows.erp_to_shop import run_erp_to_shop, settle_password_fields
from syncd.state.db import open_state
from tests.support.bueroplus_world import T0, BpWorld
from tests.support.flow_harness import SECRET_REF, build_context, build_settings
from tests.support.shops import kit_for

MAIN_EVENTS = ({"event": "new_main_contact"}, {"event": "former_main_contact"})


class ContactWorld:
    def __init__(self, erp_kind: str, tmp_path: Path, sandbox: Any, smtp: Any, *, state_url: str = "",
                 notifications: tuple[dict[str, Any], ...] = MAIN_EVENTS, **addresses: Any) -> None:
        self.bp = BpWorld(erp_kind, tmp_path, sandbox)
        self.tmp, self.smtp, self.kit = tmp_path, smtp, kit_for(sandbox)
        self.notifications = notifications
        self.addresses = {"credential_mode": "link", "accounts_per": "contact", **addresses}
        if state_url:
            self.bp.state.close()
            self.bp.state_url, self.bp.state = state_url, open_state(state_url)
        self.stamp = T0
        self.erp_overrides: dict[str, Any] = {}  # e.g. {"batch_size": 2}: scan pages smaller than the data
        self._contexts: list[Any] = []

    @property
    def state(self) -> Any:
        return self.bp.state

    # --- the ERP ----------------------------------------------------------------------------
    def tick(self) -> datetime:
        self.stamp += timedelta(seconds=1)
        return self.stamp

    def company(self, number: int, name: str, contacts: list[tuple[int, str | None, str, str, str | None]],
                *, main: int | None = 1, stamp: datetime | None = None) -> None:
        """A business address ("Firma") with ``contacts`` (AspNr, Anr, VNa, NNa, EMail1)."""
        stamp = stamp or self.tick()
        self.bp.add(number, na1="Firma", na2=name, email=f"info-{number}@firma.example", stamp=stamp)
        self.bp.update("Anschriften", number, AspNr=main)
        with self.bp.engine.begin() as conn:
            for asp, anr, first, last, email in contacts:
                conn.execute(sa.insert(self.bp.t["Ansprechpartner"]).values(
                    AdrNr=str(number), AnsNr=1, AspNr=asp, Anr=anr, VNa=first, NNa=last, EMail1=email,
                    LtzAend=stamp))

    def set_main(self, number: int, contact: int | None) -> None:
        """büro+ stamps the Anschrift when its default contact changes."""
        self.bp.update("Anschriften", number, AspNr=contact, LtzAend=self.tick())

    def update_contact(self, number: int, contact: int, **values: Any) -> None:
        t = self.bp.t["Ansprechpartner"]
        with self.bp.engine.begin() as conn:
            conn.execute(sa.update(t).where(t.c.AdrNr == str(number), t.c.AspNr == contact)
                         .values(LtzAend=self.tick(), **values))

    # --- wiring -----------------------------------------------------------------------------
    @property
    def settings(self) -> Any:
        erp = self.bp.erp_settings.model_copy(update=self.erp_overrides)
        return build_settings(erp, self.kit.url, self.kit.platform_fields(SECRET_REF), self.smtp.host,
                              self.smtp.port, self.bp.state_url, notifications=self.notifications,
                              **self.addresses)

    def context(self) -> Any:
        ctx = build_context(self.settings, self.kit.secret, self.state)
        self._contexts.append(ctx)
        return ctx

    def run(self) -> CycleReport:
        ctx = self.context()
        settle_password_fields(ctx)
        return run_erp_to_shop(ctx)

    def config_file(self) -> Path:
        """The JSON ``tests.support.kill_runner`` builds the same ports from."""
        path = self.tmp / "runner.json"
        erp = self.bp.erp_settings
        path.write_text(json.dumps({
            "erp": {"url": erp.url, "profile": erp.profile,
                    **({"schema": erp.schema_} if erp.schema_ else {})},
            "shop_url": self.kit.url, "platform": self.kit.platform_fields(SECRET_REF),
            "client_secret": self.kit.secret, "smtp_host": self.smtp.host, "smtp_port": self.smtp.port,
            "state_url": self.bp.state_url, "addresses": self.addresses, "mail_batch_size": 1,
            "notifications": list(self.notifications),
        }))
        return path

    def config_toml(self, *, contacts: str = "") -> Path:
        """A config file for the ``syncd`` command over the same ERP, shop and state store."""
        erp = self.bp.erp_settings
        fields = self.kit.platform_fields(SECRET_REF)
        lines = ["[daemon]", f'state_url = "{self.bp.state_url}"', "[erp]", f'url = "{erp.url}"',
                 'profile = "bueroplus"', *([f'schema = "{erp.schema_}"'] if erp.schema_ else []),
                 "[mail]", f'host = "{self.smtp.host}"', f"port = {self.smtp.port}", 'security = "none"',
                 'sender = "Shop <shop@example.com>"',
                 "[[platforms]]", 'name = "shop"', f'url = "{self.kit.url}"',
                 *[f"{k} = {json.dumps(v)}" for k, v in fields.items()], "[platforms.addresses]",
                 *[f"{k} = {json.dumps(v)}" for k, v in self.addresses.items()], "shop_to_erp = false",
                 "send_credentials = true"]
        if contacts:  # [erp.contacts] lines
            lines.insert(lines.index("[mail]"), "[erp.contacts]\n" + contacts)
        for table in self.notifications:
            lines += ["[[notifications]]", *[f"{k} = {json.dumps(v)}" for k, v in table.items()]]
        path = self.tmp / "syncd.toml"
        path.write_text("\n".join(lines) + "\n")
        return path

    # --- what came out ----------------------------------------------------------------------
    def customers(self) -> dict[str, dict[str, Any]]:
        return self.bp.by_number()

    def mails_to(self, email: str) -> list[Any]:
        return [m for m in self.smtp.messages if email.lower() in [r.lower() for r in m.rcpt_tos]]

    def close(self) -> None:
        for ctx in self._contexts:
            for port in (ctx.erp, ctx.shop):
                port.close()
        self.bp.close()

"""One reminder poll plus the SMS run in its own process, for the kill -9 tests.

    python -m tests.support.reminder_kill_runner CONFIG.json

CONFIG.json (written by tests/fault/test_reminder_kill.py): the state store URL, the sandbox
(url, the ``[[platforms]]`` keys of its kind, secret), the seven.io fake (url, key), the ERP
addresses (number, e-mail, mobile) and the clock ("now", ISO). The runner builds the real shop
adapter and SMS transport, an in-memory ERP, runs ``reminders.poll`` then ``send_due_sms``, and
prints the report counts.
``SYNCD_KILL_AT=NAME[:N]`` SIGKILLs it at the N-th checkpoint NAME (tests.support.kill_runner).
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path

from syncd.config.messaging import MessagesSettings, ReminderSettings, SmsSettings
from syncd.config.model import (
    DaemonSettings,
    ErpColumns,
    ErpSettings,
    MailSettings,
    PlatformSettings,
    Settings,
)
from syncd.connectors import shopware6, woocommerce
from syncd.connectors.sms import SmsTransport
from syncd.core.domain import ErpAddress
from syncd.flows import reminders
from syncd.flows.context import CycleReport, PlatformContext
from syncd.flows.messages.sms import send_due_sms
from syncd.render.store import LayoutStore
from syncd.shell.logs import configure_logging
from syncd.state.db import open_state
from tests.support.kill_runner import install_hooks


class _Erp:
    def __init__(self, addresses: dict[int, ErpAddress]) -> None:
        self.addresses = addresses

    def get_addresses(self, numbers):  # noqa: ANN001, ANN201
        return {n: self.addresses[n] for n in numbers if n in self.addresses}


def main(argv: list[str]) -> int:
    config = json.loads(Path(argv[1]).read_text())
    configure_logging("json", "info", stream=sys.stderr)
    install_hooks()
    settings = Settings(
        daemon=DaemonSettings(state_url=config["state_url"]),
        erp=ErpSettings(url="sqlite://", columns=ErpColumns(mobile="Mobil")),
        mail=MailSettings(host="127.0.0.1", port=9, security="none", sender="Laden <post@laden.example>"),
        platforms=(PlatformSettings(name="shop", url=config["shop_url"], **config["platform"]),),
        sms=SmsSettings(enabled=True, provider="seven", url=config["sms_url"], password="env:UNUSED"),
        messages=MessagesSettings(default_channel="sms"),
        reminders=(ReminderSettings(name="ship", kind="shipping_confirmation",
                                    layout="shipping_confirmation"),),
    )
    addresses = {a["number"]: ErpAddress(number=a["number"], email=a["email"], last_name="Muster",
                                         country="DE", row={"AdrNr": a["number"], "Mobil": a["mobile"]})
                 for a in config["addresses"]}
    state = open_state(settings.daemon.state_url)
    now = datetime.fromisoformat(config["now"])
    try:
        platform = settings.platforms[0]
        shop = (woocommerce.open_shop(platform, consumer_secret=config["client_secret"])
                if platform.kind == woocommerce.KIND
                else shopware6.open_shop(platform, client_secret=config["client_secret"]))
        ctx = PlatformContext(settings=settings, platform=settings.platforms[0], erp=_Erp(addresses),  # type: ignore[arg-type]
                              shop=shop, state=state, mail=None, layouts=LayoutStore(), clock=lambda: now,
                              sms=SmsTransport(settings.sms, password=config["sms_key"]))
        print("READY", flush=True)
        report = CycleReport("shop", "erp-to-shop")
        reminders.poll(ctx, report)
        send_due_sms(ctx, report)
    finally:
        state.close()
    print(json.dumps(dict(report.counts)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

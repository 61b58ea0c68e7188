"""Small in-memory ports for the credential run: an ERP address table with a password field, a
shop that keeps the passwords it was given, and a mail transport whose sessions keep what they
accept and can "crash" (raise a BaseException, as a kill would end the run) right after accepting
a chosen mail. The state store stays the real one (SQLite in a temp folder): what it holds after
the crash is what the test is about.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from syncd.config.model import (
    AddressSettings,
    DaemonSettings,
    ErpSettings,
    MailSettings,
    PlatformSettings,
    Settings,
)
from syncd.core.domain import ErpAddress, OutgoingMail
from syncd.flows.context import PlatformContext
from syncd.render.store import LayoutStore
from syncd.state.db import StateStore

PLATFORM = "laden"
FIELD = "Passwortfeld"


class Crash(BaseException):
    """Ends the run the way a kill would: no ``except Exception`` of the flow catches it."""


def address(number: int) -> ErpAddress:
    # Unlike the harness's people: a company without a first name, an umlaut-free ASCII e-mail.
    return ErpAddress(number=number, email=f"einkauf.{number}@firma-{number % 7}.example",
                      company=f"Firma {number} GmbH", last_name="Ostermann", street="Kaiserstr. 90",
                      zip="76133", city="Karlsruhe", country="DE")


class FakeErp:
    """The ERP port's password-field part over dicts."""

    def __init__(self, addresses: Iterable[ErpAddress]) -> None:
        self.addresses = {a.number: a for a in addresses}
        self.fields: dict[int, str] = {}
        self.password_field = FIELD

    def write_password_fields(self, values: Mapping[int, str]) -> None:
        self.fields.update(values)

    def read_password_fields(self, numbers: Iterable[int]) -> dict[int, str | None]:
        return {n: self.fields.get(n) for n in numbers}

    def numbers_with_password(self) -> list[int]:
        return sorted(n for n, v in self.fields.items() if v)

    def clear_password_fields(self, numbers: Iterable[int]) -> None:
        for n in numbers:
            self.fields.pop(n, None)

    def get_addresses(self, numbers: Iterable[int]) -> dict[int, ErpAddress]:
        return {n: replace(self.addresses[n], row={"AdrNr": n, FIELD: self.fields.get(n)})
                for n in numbers if n in self.addresses}


class FakeShop:
    """Keeps the password each account was last given."""

    name = "Laden"
    login_url = "https://laden.example/account/login"

    def __init__(self) -> None:
        self.passwords: dict[str, str] = {}

    def set_passwords(self, passwords: Mapping[str, str]) -> dict[str, str | None]:
        self.passwords.update(passwords)
        return {}


@dataclass
class FakeMail:
    """A mail transport. Each session appends what it accepts to ``accepted``; ``crash_after``:
    raise ``Crash`` right after accepting that many mails (counted over all sessions);
    ``crash_in_data``: raise ``Crash`` inside the next that many sends, after the content but
    before the commit point (SMTP: the end-of-data terminator), so nothing is delivered;
    ``on_send``: called with each mail before it is accepted (to look at the state store)."""

    crash_after: int | None = None
    crash_in_data: int = 0
    on_send: Callable[[OutgoingMail], None] | None = None
    accepted: list[OutgoingMail] = field(default_factory=list)
    interrupted: list[OutgoingMail] = field(default_factory=list)  # the mails ``crash_in_data`` cut off
    sessions: int = 0

    @contextmanager
    def session(self) -> Iterator[Any]:
        self.sessions += 1
        yield _Session(self)

    def to(self, addr: str) -> list[OutgoingMail]:
        return [m for m in self.accepted if m.to_addr == addr]


class _Session:
    def __init__(self, transport: FakeMail) -> None:
        self.transport = transport

    def open(self) -> None:
        pass

    def send(self, mail: OutgoingMail, on_commit: Callable[[], None] | None = None) -> None:
        t = self.transport
        if t.crash_in_data:
            t.crash_in_data -= 1
            t.interrupted.append(mail)
            raise Crash("killed inside DATA, before the end-of-data terminator")
        if on_commit is not None:
            on_commit()
        if t.on_send is not None:
            t.on_send(mail)
        t.accepted.append(mail)
        if t.crash_after is not None and len(t.accepted) == t.crash_after:
            raise Crash(f"killed after accepting mail {len(t.accepted)}")


def context(state: StateStore, erp: FakeErp, shop: FakeShop, mail: FakeMail, *, batch_size: int
            ) -> PlatformContext:
    settings = Settings(
        daemon=DaemonSettings(state_url="sqlite://"),
        erp=ErpSettings(url="sqlite://"),
        mail=MailSettings(host="127.0.0.1", port=2525, security="none", sender="Laden <post@laden.example>",
                          batch_size=batch_size),
        platforms=(PlatformSettings(
            name=PLATFORM, url="https://laden.example", client_id="id", client_secret="env:UNUSED",
            addresses=AddressSettings(send_credentials=True, password_field=FIELD, shop_to_erp=False)),),
    )
    return PlatformContext(settings=settings, platform=settings.platforms[0], erp=erp, shop=shop, state=state,
                           mail=mail, layouts=LayoutStore())  # type: ignore[arg-type]

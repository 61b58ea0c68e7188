"""The ERP -> shop push (``syncd.flows.push_addresses``) on in-memory fakes: the plan of a batch,
what its units of work store, and crash safety around the shop call, in milliseconds.
``test_flow_erp_to_shop.py``, ``test_state_adoption.py`` and ``test_kill.py`` run the same flow
end to end against the Shopware sandbox and SQLite.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from syncd.config.model import AddressSettings, DaemonSettings, ErpSettings, PlatformSettings, Settings
from syncd.core.domain import ErpAddress
from syncd.core.rules import LinkKind
from syncd.flows.context import CycleReport, PlatformContext
from syncd.flows.failures import DIRECTION
from syncd.flows.fingerprints import address_fingerprint
from syncd.flows.push_addresses import apply_batch, checkpoint
from syncd.state import jobs as steps
from syncd.state.links import Link
from tests.support.fakes.shop import FakeShop, own_id
from tests.support.fakes.state import FakeState, FakeUnitOfWork

PLATFORM = "werkstatt"
NOW = datetime(2030, 11, 5, 16, 45, tzinfo=UTC)


class Crash(BaseException):
    """A process death at a chosen point: no ``except Exception`` handler runs."""


def addr(number: int, email: str | None, **kw: Any) -> ErpAddress:
    values: dict[str, Any] = dict(last_name="Njoroge", first_name="Wanjiru", street="Ngong Rd 14",
                                  zip="00100", city="Nairobi", country="KE")
    values.update(kw)
    return ErpAddress(number=number, email=email, **values)


class World:
    def __init__(self, **addresses: Any) -> None:
        values: dict[str, Any] = {"erp_to_shop": True, "send_credentials": True,
                                  "password_field": "Kennwort"}
        values.update(addresses)
        platform = PlatformSettings(name=PLATFORM, url="https://shop.invalid", client_id="id",
                                    client_secret="env:SYNCD_TEST_SHOP_SECRET",
                                    addresses=AddressSettings(**values))
        erp = ErpSettings(url="sqlite://", address_table="adressen")
        self.settings = Settings(daemon=DaemonSettings(state_url="sqlite://"), erp=erp, platforms=(platform,))
        self.state = FakeState(lambda: NOW)
        self.units: list[FakeUnitOfWork] = []
        self.shop = FakeShop()
        # No unit may be open while the flow waits for the shop (on SQLite it holds the write lock).
        self.shop.before_call = lambda name: self._no_unit_open(name)

    def _no_unit_open(self, call: str) -> None:
        open_units = [u for u in self.units if u._saved is not None]
        assert not open_units, f"a unit of work is open across shop.{call}"

    def unit(self) -> FakeUnitOfWork:
        self.units.append(FakeUnitOfWork(self.state))
        return self.units[-1]

    @property
    def committed(self) -> int:
        return sum(u.committed for u in self.units)

    def ctx(self) -> PlatformContext:
        return PlatformContext(self.settings, self.settings.platforms[0], erp=None,  # type: ignore[arg-type]
                               shop=self.shop, state=None,  # type: ignore[arg-type]
                               clock=lambda: NOW, uow=self.unit)

    def apply(self, addresses: list[ErpAddress]) -> dict[str, set[str]]:
        report = CycleReport(PLATFORM, DIRECTION)
        apply_batch(self.ctx(), addresses, report, credentials=True)
        actions: dict[str, set[str]] = {}
        for item in report.items:
            actions.setdefault(item.record, set()).add(item.action)
        return actions

    def link(self, number: int) -> Link | None:
        return self.state.links.get_by_erp(PLATFORM, number)

    def jobs(self) -> dict[int, str | None]:
        return {j.erp_number: j.shop_id for j in self.state.jobs.active(PLATFORM)}

    def intents(self, *numbers: int) -> set[int]:
        return self.state.intents.pending(PLATFORM, numbers)

    def linked(self, a: ErpAddress, shop_id: str, kind: LinkKind = LinkKind.ERP, **kw: Any) -> None:
        self.state.links.upsert(platform=PLATFORM, shop_id=shop_id, erp_number=a.number, kind=kind,
                                email=a.email, fingerprint=address_fingerprint(a), **kw)
        self.shop.customers[shop_id] = self.shop.customers.get(shop_id) or _customer(shop_id, a.email)


def _customer(shop_id: str, email: str | None):
    from syncd.core.domain import ShopCustomer

    return ShopCustomer(id=shop_id, email=email or "")


@pytest.fixture
def crash_at() -> Iterator[Any]:
    """Set ``checkpoint.hook`` to die at one named step; always unset afterwards."""
    def at(step: str) -> None:
        def hook(name: str) -> None:
            if name == step:
                raise Crash(step)
        checkpoint.hook = hook
    yield at
    checkpoint.hook = None


# ---------------------------------------------------------------------------------------- plan + apply
def test_a_batch_is_planned_and_applied_in_two_units_around_the_shop_call():
    w = World()
    new = addr(40001, "wanjiru@beispiel.ke")
    own_account = addr(40002, " Otieno@Beispiel.KE ", last_name="Otieno")
    bad_email = addr(40003, "otieno@@beispiel")
    blocked = addr(40004, "zawadi@beispiel.ke", blocked=True)
    same = addr(40005, "amani@beispiel.ke")
    gone_blocked = addr(40006, "baraka@beispiel.ke", blocked=True)
    refused = addr(40007, "imani@beispiel.ke")
    w.shop.add(_customer("customer-made", "otieno@beispiel.ke"))  # registered in the shop itself
    w.linked(same, "s-amani")
    w.linked(gone_blocked, "s-baraka")
    w.shop.reject["imani@beispiel.ke"] = "VIOLATION::TOO_LONG"
    w.state.failures.record(PLATFORM, DIRECTION, 40001, "push", "an earlier timeout")

    actions = w.apply([refused, gone_blocked, same, blocked, bad_email, own_account, new])

    assert actions == {"40001": {"created"}, "40002": {"linked"}, "40003": {"failed"}, "40004": {"skipped"},
                       "40005": {"unchanged"}, "40006": {"deactivated"}, "40007": {"failed"}}
    assert w.shop.pushed == [[40001, 40002, 40007]]  # the unchanged, blocked and invalid stay home
    assert w.shop.active_calls == [(("s-baraka",), False)]
    created, linked = w.link(40001), w.link(40002)
    assert (created.shop_id, created.kind) == (own_id(40001), LinkKind.ERP)
    assert (linked.shop_id, linked.kind) == ("customer-made", LinkKind.EMAIL)
    assert linked.email == "Otieno@Beispiel.KE"  # as the ERP spells it, trimmed
    assert created.fingerprint == address_fingerprint(new)
    assert w.jobs() == {40001: own_id(40001)}  # only syncd's own new account gets a password (I4)
    assert w.intents(40001) == set()  # settled with the link
    baraka = w.link(40006)
    assert (baraka.shop_active, baraka.erp_blocked) == (False, True)
    failed = {f.record: (f.step, f.code) for f in w.state.failures.list(PLATFORM)}
    assert failed == {"40003": ("validate", "email"), "40007": ("push", "VIOLATION::TOO_LONG")}
    # plan records; the write-ahead intent; links + job + intent + failures; the deactivation
    assert w.committed == 4 and sum(u.rolled_back for u in w.units) == 0


# ---------------------------------------------------------------------------------------- crash
@pytest.mark.parametrize("where", ["after_push", "in_the_link_unit"])
def test_a_crash_between_the_shop_push_and_the_commit_leaves_the_intent_and_the_replay_mails(where, crash_at):
    w = World()
    new = addr(40021, "halima@beispiel.ke")
    if where == "after_push":
        crash_at("after_push")
    else:
        def dies(**kw: Any) -> None:
            raise Crash("killed while writing the job")
        w.state.jobs.create = dies  # type: ignore[method-assign]

    with pytest.raises(Crash):
        w.apply([new])

    assert own_id(40021) in w.shop.customers  # the shop made the account
    assert w.link(40021) is None and w.jobs() == {}  # the link and its job: neither
    assert w.intents(40021) == {40021}  # but the intent, committed before the create request

    checkpoint.hook = None
    if where != "after_push":
        del w.state.jobs.create  # the class's method again: the process restarted
    actions = w.apply([new])

    assert actions == {"40021": {"created"}}  # recovered as ours, not adopted
    assert w.link(40021).kind == LinkKind.ERP
    assert w.jobs() == {40021: own_id(40021)}  # the replay mails it (I1)
    assert w.intents(40021) == set()
    assert len([c for c in w.shop.customers if c == own_id(40021)]) == 1  # never a second account


# ---------------------------------------------------------------------------------------- units
def test_one_commit_per_batch_for_updates_and_one_more_for_the_intent_of_creates():
    w = World()
    linked = [addr(41000 + i, f"kunde{i}@beispiel.ke") for i in range(9)]
    for a in linked:
        w.linked(a, f"s-{a.number}")
    changed = [addr(a.number, a.email, city="Mombasa") for a in linked]
    for start in range(0, 9, 3):
        w.apply(changed[start:start + 3])
    assert w.committed == 3  # == batches
    assert {w.link(a.number).fingerprint for a in changed} == {address_fingerprint(a) for a in changed}

    before = w.committed
    fresh = [addr(42000 + i, f"neu{i}@beispiel.ke") for i in range(4)]
    w.apply(fresh[:2])
    w.apply(fresh[2:])
    assert w.committed - before == 2 * 2  # the write-ahead intent, then links + jobs + settlement
    assert sorted(w.jobs()) == [42000, 42001, 42002, 42003]


def test_an_unchanged_batch_writes_nothing():
    w = World()
    a = addr(43001, "juma@beispiel.ke")
    w.linked(a, "s-juma")
    assert w.apply([a]) == {"43001": {"unchanged"}}
    assert w.committed == 0 and w.shop.pushed == []


# ---------------------------------------------------------------------------------------- adoption
def test_an_account_under_our_id_is_adopted_without_intent_and_recovered_with_one():
    w = World()
    lost = addr(44001, "pendo@beispiel.ke")  # a lost state store: the account had its mail long ago
    crashed = addr(44002, "neema@beispiel.ke")  # our create, crashed before its link
    for a in (lost, crashed):
        w.shop.add(_customer(own_id(a.number), a.email))
    w.state.intents.record(PLATFORM, [(44002, own_id(44002))])

    actions = w.apply([lost, crashed])

    assert actions == {"44001": {"adopted"}, "44002": {"created"}}
    assert w.link(44001).kind == LinkKind.EMAIL  # never mailed a password later (I4)
    assert w.link(44002).kind == LinkKind.ERP
    assert w.jobs() == {44002: own_id(44002)}
    assert w.intents(44001, 44002) == set()


def test_a_reactivated_account_of_ours_without_a_job_gets_its_mail_once():
    w = World()
    a = addr(45001, "rehema@beispiel.ke")
    w.linked(a, "s-rehema", shop_active=False, erp_blocked=True)
    assert w.apply([a]) == {"45001": {"reactivated"}}
    assert w.jobs() == {45001: "s-rehema"} and w.link(45001).shop_active
    w.state.links.set_state(PLATFORM, 45001, shop_active=False)
    w.state.jobs.set_step(list(w.state.jobs.rows), steps.DONE, NOW)
    assert w.apply([a]) == {"45001": {"reactivated"}}
    assert w.jobs() == {} and len(w.state.jobs.rows) == 1  # it had its mail: not a second one

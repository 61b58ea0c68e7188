"""kill -9 during event mails (issue 15): a cycle that mails event messages - the ``blocked`` event
of addresses it deactivates, or the ``validated`` event of shop customers the import made ERP
customers (the event a WooCommerce shop raises in a cycle: it cannot deactivate) - runs in a
subprocess (``tests/support/kill_runner.py``) and is SIGKILLed at each step boundary of the
message run; a restart must send every event mail (nothing lost) and at most one mail twice (the
one the server accepted before the kill recorded it: I5 per open SMTP session), never loop."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from syncd.state.messages import Messages
from tests.support.dbs import pg_schema_url
from tests.support.flow_harness import PLATFORM, Harness
from tests.support.kill_scaffold import Runner
from tests.support.mailserver import smtp_server, smtp_server_factory, smtp_tls_files  # noqa: F401
from tests.support.shops import shop  # noqa: F401 - the fixture

pytestmark = pytest.mark.slow
NUMBERS = [62001, 62002, 62003, 62004, 62005]


def _person(n: int) -> dict:
    return {"number": n, "email": f"kunde{n}@example.com", "first_name": "Jörg", "last_name": f"Kühn-{n}",
            "street": "Weg 1", "zip": "01067", "city": "Dresden", "country": "DE"}


@pytest.fixture(params=["blocked", "validated"])
def event(request, shop) -> str:  # noqa: F811
    if request.param == "blocked" and not shop.deactivates:
        pytest.skip("the blocked event is the notice of a deactivation, and deactivate_blocked is refused "
                    "by check for WooCommerce (no active flag)")
    return request.param


@pytest.fixture(params=["sqlite"])
def harness(request, tmp_path: Path, shop, event: str, smtp_server) -> Iterator[Harness]:  # noqa: F811
    """For each platform kind (``shop``) and event."""
    with ExitStack() as stack:
        state_url = "" if request.param == "sqlite" else stack.enter_context(pg_schema_url())
        yield stack.enter_context(_event_harness(tmp_path, shop, event, smtp_server, state_url))


@contextmanager
def _event_harness(tmp_path: Path, shop, event: str, smtp_server, state_url: str  # noqa: F811
                   ) -> Iterator[Harness]:
    h = Harness(tmp_path, f"sqlite:///{tmp_path / 'erp.db'}", "adressen", shop, smtp_server,
                addresses={"send_credentials": False}, notifications=({"event": event},),
                mail_batch_size=2, state_url=state_url)
    try:
        if event == "blocked":
            h.insert([_person(n) for n in NUMBERS])
            h.run()
            for n in NUMBERS:
                h.update(n, blocked="J")
        else:  # customers registered in the shop, imported as NUMBERS: the cycle mails "validated"
            from syncd.flows.import_customers import run_shop_to_erp

            for n in NUMBERS:
                person = {k: v for k, v in _person(n).items() if k not in ("number", "email")}
                shop.register(f"kunde{n}@example.com", "geheim-12345", **person)
            h.addresses = {"send_credentials": False, "shop_to_erp": True, "only_with_orders": False,
                           "next_address_number": NUMBERS[0]}
            assert run_shop_to_erp(h.context()).counts["imported"] == len(NUMBERS)
            h.smtp.clear()
        yield h
    finally:
        h.close()


@pytest.mark.parametrize("harness, point, nth", [("postgresql", "message_after_smtp", 3)],
                         indirect=["harness"])
def test_kill_during_event_mails_on_a_postgresql_state_store(harness: Harness, point: str, nth: int) -> None:
    test_kill_during_event_mails_loses_none_and_resends_at_most_one(harness, point, nth)


@pytest.mark.parametrize("point", ["message_before_commit", "message_before_smtp", "message_after_smtp"])
@pytest.mark.parametrize("nth", [1, 3, 5])
def test_kill_during_event_mails_loses_none_and_resends_at_most_one(harness: Harness, point: str,
                                                                    nth: int) -> None:
    h = harness
    runner = Runner(h.config_file())
    try:
        assert runner.run(SYNCD_KILL_AT=f"{point}:{nth}") == -9, runner.output[-1][-3000:]
        before = sum(Counter(r.lower() for m in h.smtp.messages for r in m.rcpt_tos).values())
        assert before == (nth if point == "message_after_smtp" else nth - 1)
        assert runner.run() == 0, runner.output[-1]
        assert runner.run() == 0  # a third start sends nothing more
    finally:
        runner.close()
    counts = h.mail_counts()
    assert sorted(counts) == [f"kunde{n}@example.com" for n in NUMBERS]  # nothing lost
    extra = sum(counts.values()) - len(NUMBERS)
    # The mail the server holds while the run has not recorded it: the one just accepted
    # (after_smtp), or the one before the mail being committed (before_commit of a later mail).
    # Once the commit point's write ran (before_smtp), nothing unrecorded is delivered.
    unrecorded = point == "message_after_smtp" or (point == "message_before_commit" and nth > 1)
    assert extra == (1 if unrecorded else 0), counts
    assert Messages(h.state).counts(PLATFORM) == {"sent": len(NUMBERS)}
    if h.notifications[0]["event"] == "blocked":
        assert all(not a.active for a in h.kit.accounts())
    else:
        assert sorted(h.accounts_by_number()) == [str(n) for n in NUMBERS]

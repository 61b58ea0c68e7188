"""Issue 18, erasure: ``on_erp_delete`` for ERP addresses that are gone (found by the
reconciliation) and `syncd accounts erase ADDRESS` (a GDPR request) with its tombstone. SQLite
ERP, the sandbox over HTTP, real SMTP, SQLite and PostgreSQL state."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from syncd.flows import accounts
from syncd.flows.reconcile import run_full
from syncd.state.history import History
from syncd.state.jobs import CredentialJobs
from syncd.state.links import Links
from syncd.state.schema import tombstones
from tests.support.flow_harness import PLATFORM, STATE_STORES, Harness, harness_on
from tests.support.mailserver import smtp_server, smtp_server_factory, smtp_tls_files  # noqa: F401
from tests.support.shops import Account, shop  # noqa: F401 - the fixture


def _person(n: int, **kw) -> dict:
    row = {"number": n, "email": f"kunde{n}@example.com", "first_name": "Jörg", "last_name": f"Kühn-{n}",
           "street": "Weg 1", "zip": "01067", "city": "Dresden", "country": "DE"}
    row.update(kw)
    return row


@pytest.fixture(params=STATE_STORES)
def harness(request, tmp_path: Path, shop, smtp_server) -> Iterator[Harness]:  # noqa: F811
    """Each case for each platform kind (``shop``) and state store."""
    with harness_on(request.param, tmp_path, shop, smtp_server) as h:
        yield h


def _delete_rows(h: Harness, *numbers: int) -> None:
    engine = sa.create_engine(h.erp_url)
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM adressen WHERE AdrNr = :n"), [{"n": n} for n in numbers])
    engine.dispose()


def _by_number(h: Harness) -> dict[int, Account]:
    return {int(n): a for n, [a] in h.accounts_by_number().items()}


@pytest.mark.parametrize("on_delete", ["delete", "deactivate", "ignore"])
def test_on_erp_delete(harness: Harness, on_delete: str) -> None:
    if on_delete == "deactivate" and not harness.kit.deactivates:
        pytest.skip("on_erp_delete = \"deactivate\" is refused by check for WooCommerce (no active flag)")
    harness.addresses = {"on_erp_delete": on_delete}
    numbers = list(range(10001, 10015))  # enough links that two vanishing is "few"
    harness.insert([_person(n) for n in numbers])
    harness.run()
    _delete_rows(harness, 10003, 10004)
    run_full(harness.context())
    found = _by_number(harness)
    links = {lk.erp_number: lk for lk in Links(harness.state).iter(PLATFORM)}
    if on_delete == "delete":
        assert 10003 not in found and 10004 not in found
        assert 10003 not in links and 10004 not in links
        assert [e.event for e in History(harness.state, harness.context().clock).of_address(10003)] == [
            "created", "mail_sent", "deleted"]
    elif on_delete == "deactivate":
        assert not found[10003].active and not found[10004].active
        assert links[10003].shop_active is False
    else:
        assert found[10003].active and links[10003].shop_active is True
    assert all(found[n].active for n in numbers if n not in (10003, 10004))


def test_erase_removes_account_link_and_history_and_keeps_a_tombstone(harness: Harness) -> None:
    harness.insert([_person(10001), _person(10002)])
    harness.run()
    ctx = harness.context()
    with ctx.uow() as uow:
        uow.history.record(PLATFORM, 10001, "mail_sent", reason="250 ok")
        uow.commit()
    outcome = accounts.erase(ctx, 10001)
    assert (outcome.action, outcome.ok) == ("erased", True)
    assert sorted(_by_number(harness)) == [10002]
    assert Links(harness.state).get_by_erp(PLATFORM, 10001) is None
    assert not CredentialJobs(harness.state).ever_had(PLATFORM, 10001)
    assert History(harness.state, ctx.clock).of_address(10001) == []
    with harness.state.connect() as conn:
        rows = conn.execute(sa.select(tombstones)).mappings().all()
    assert [(r["platform"], r["erp_number"]) for r in rows] == [(PLATFORM, 10001)]
    # The ERP row still exists and changes: the account is not created again.
    harness.update(10001, city="Leipzig")
    report = harness.run()
    assert ("10001", "skipped") in {(i.record, i.action) for i in report.items}
    run_full(harness.context())
    assert sorted(_by_number(harness)) == [10002]
    assert len(harness.mails_to("kunde10001@example.com")) == 1  # the first one, before the erasure
    # Erasing again (or an address never linked) is harmless.
    assert accounts.erase(harness.context(), 10001).action == "erased"


def test_erase_leaves_no_approval_login_bounce_or_shop_edit_of_the_address(harness: Harness) -> None:
    from datetime import UTC, datetime

    from syncd.state.schema import account_activity, approvals, mail_bounces
    from syncd.state.shop_changes import ReportedShopChanges

    harness.insert([_person(10001), _person(10002)])
    harness.run()
    ctx = harness.context()
    now = datetime.now(UTC)
    with harness.state.begin() as conn:
        for n in (10001, 10002):
            conn.execute(sa.insert(approvals).values(platform=PLATFORM, shop_id=f"s{n}", erp_number=n,
                                                     email=f"kunde{n}@example.com", state="approved",
                                                     created_at=now, updated_at=now))
            conn.execute(sa.insert(account_activity).values(platform=PLATFORM, shop_id=f"s{n}", erp_number=n,
                                                            first_login_at=now, last_login_at=now))
            conn.execute(sa.insert(mail_bounces).values(
                platform=PLATFORM, erp_number=n, kind="credentials", job_id=n, email=f"kunde{n}@example.com",
                severity="hard", status="5.1.1", diagnostic="user unknown", source_id=f"<{n}@mx>",
                bounced_at=now))
    with ctx.uow() as uow:
        for n in (10001, 10002):
            edits = ReportedShopChanges(uow.cursors, PLATFORM)
            edits.put(n, f"s{n}", now.isoformat(), {"city": ("Alt", "Neu")})
        uow.commit()

    assert accounts.erase(ctx, 10001).action == "erased"

    with harness.state.connect() as conn:
        for table in (approvals, account_activity, mail_bounces):
            left = conn.execute(sa.select(table.c.erp_number).where(table.c.platform == PLATFORM)).scalars()
            assert sorted(left) == [10002], table.name  # the other address keeps its rows
    with ctx.uow() as uow:
        assert set(ReportedShopChanges(uow.cursors, PLATFORM).all()) == {"10002"}

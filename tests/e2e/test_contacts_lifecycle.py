"""Contact accounts over their life (issue 18, after the first build): named ``10001-2`` in every
log line, erased with their company, re-created by the reconciliation when lost in the shop, and
handled like deleted addresses when their ``Ansprechpartner`` row goes (``on_erp_delete``).
büro+-shaped ERP on SQLite and MariaDB over ODBC, the Shopware sandbox, SQLite and PostgreSQL state."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from syncd.core.rules import contact_account
from syncd.flows import erasure
from syncd.flows.reconcile import run_full
from syncd.shell.cli import run_cli
from syncd.shell.logs import configure_logging, reset_logging
from syncd.state.cursors import Cursors
from syncd.state.history import History
from syncd.state.jobs import CredentialJobs
from syncd.state.links import Links
from syncd.state.messages import Messages
from tests.support.contact_world import ContactWorld
from tests.support.dbs import pg_schema_url
from tests.support.flow_harness import PLATFORM
from tests.support.mailserver import smtp_server, smtp_server_factory, smtp_tls_files  # noqa: F401
from tests.support.shop_fixtures import sandbox  # noqa: F401

JM, AS = "j.mueller@mueller-gmbh.example", "a.schaefer@mueller-gmbh.example"
CONTACTS = [(1, "Herr", "Jörg", "Müller", JM), (2, "Frau", "Anja", "Schäfer", AS),
            (3, "Herr", "Ölaf", "Ohne", None)]
KEYS = [contact_account(10001, n) for n in (1, 2, 3)] + [contact_account(10002, 7)]


@pytest.fixture(params=[("sqlite", "sqlite"), ("mariadb", "postgresql")], ids=["sqlite", "mariadb-pg"])
def world(request, tmp_path: Path, sandbox, smtp_server) -> Iterator[ContactWorld]:  # noqa: F811
    erp, state = request.param
    with ExitStack() as stack:
        state_url = stack.enter_context(pg_schema_url()) if state == "postgresql" else ""
        w = ContactWorld(erp, tmp_path, sandbox, smtp_server, state_url=state_url)
        try:
            yield w
        finally:
            w.close()


def _delete_contact(w: ContactWorld, number: int, contact: int) -> None:
    t = w.bp.t["Ansprechpartner"]
    with w.bp.engine.begin() as conn:
        conn.execute(t.delete().where(t.c.AdrNr == str(number), t.c.AspNr == contact))


def test_logs_name_contact_accounts_by_their_label(world: ContactWorld) -> None:
    buf = io.StringIO()
    configure_logging("json", "debug", stream=buf)
    try:
        world.company(10001, "Müller GmbH", CONTACTS, main=1)
        world.company(10002, "Groß KG", [(7, "Frau", "Eva", "Groß", "info-10001@firma.example")], main=7)
        world.run()  # created, mailed, skipped, one failed (the e-mail is another account's login)
        world.set_main(10001, 2)
        world.run()  # the main-contact messages
        _delete_contact(world, 10001, 1)
        run_full(world.context())  # a link without its ERP row: logged, deactivated
        erasure.erase(world.context(), contact_account(10001, 2))
    finally:
        reset_logging()
    text = buf.getvalue()
    lines = [json.loads(line) for line in text.splitlines()]
    named = {str(v) for e in lines for k, v in e.items() if k == "address"}
    assert {"10001-1", "10001-2", "10002-7"} <= named, sorted(named)
    for key in KEYS:
        assert str(-key) not in text, f"raw key {key} in the log"


def _cli(capsys, config: Path, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        code = run_cli(["--config", str(config), *args])
    finally:
        reset_logging()
    out, err = capsys.readouterr()
    return code, out, err


def test_erasing_a_company_erases_its_contacts_accounts(world: ContactWorld, capsys, monkeypatch) -> None:
    monkeypatch.setenv("SYNCD_TEST_SHOP_SECRET", world.kit.secret)
    world.company(10001, "Müller GmbH", CONTACTS, main=1)
    world.company(10002, "Groß KG", [(7, "Frau", "Eva", "Groß", "eg@gross.example")], main=7)
    world.run()
    world.set_main(10001, 2)
    world.run()  # a main-contact record and messages for 10001
    assert sorted(world.customers()) == ["10001", "10001-1", "10001-2", "10002", "10002-7"]
    assert {m.erp_number for m in Messages(world.state).of(PLATFORM)} == set(KEYS[:2])  # main contact
    code, out, err = _cli(capsys, world.config_toml(), "accounts", "erase", "10001", "--yes")
    assert code == 0, out + err
    assert "10001: erased" in out and "10001-1, 10001-2" in out, out
    assert sorted(world.customers()) == ["10002", "10002-7"]  # the other company untouched
    links = {lk.erp_number for lk in Links(world.state).iter(PLATFORM)}
    assert links == {10002, contact_account(10002, 7)}
    assert History(world.state, lambda: None).of_address(10001, PLATFORM, contacts=True) == []
    assert not CredentialJobs(world.state).ever_had(PLATFORM, contact_account(10001, 2))
    assert Cursors(world.state).get(PLATFORM, "main-contact:10001") is None
    assert Cursors(world.state).get(PLATFORM, "main-contact:10002") is not None
    assert Messages(world.state).of(PLATFORM) == []  # their recipients and names went with them
    # Tombstones: the company, its contacts and a contact added later get no account again.
    world.update_contact(10001, 2, NNa="Schäfer-Berg")
    world.update_contact(10001, 3, EMail1="o.ohne@mueller-gmbh.example")
    world.bp.update("Anschriften", 10001, AspNr=1, LtzAend=world.tick())
    world.run()
    assert sorted(world.customers()) == ["10002", "10002-7"]
    assert Cursors(world.state).get(PLATFORM, "main-contact:10001") is None
    assert world.mails_to("o.ohne@mueller-gmbh.example") == []
    # One contact alone: the company and its other contacts stay.
    code, out, err = _cli(capsys, world.config_toml(), "accounts", "erase", "10002-7", "--yes")
    assert code == 0 and "10002-7: erased" in out, out + err
    assert sorted(world.customers()) == ["10002"]


def test_reconciliation_recreates_a_lost_contact_account_and_reports_its_drift(world: ContactWorld) -> None:
    world.company(10001, "Müller GmbH", CONTACTS, main=1)
    world.company(10002, "Groß KG", [(7, "Frau", "Eva", "Groß", "eg@gross.example")], main=7)
    taken = (5, "Herr", "Udo", "Doppelt", "info-10001@firma.example")  # the company 10001's login
    world.company(10003, "Doppel AG", [taken], main=5)
    world.run()
    links = Links(world.state).get_many(PLATFORM, [10002, *KEYS])
    lost = [links[contact_account(10001, 2)].shop_id, links[10002].shop_id]
    world.kit.sandbox.lose_customers(lost)  # a contact's account and a company's own
    world.kit.sandbox.edit_customer_as_shop_user(links[contact_account(10001, 1)].shop_id, lastName="Anders")
    world.smtp.clear()
    report = run_full(world.context())
    assert {i.record for i in report.items if i.action == "failed"} == {"10003-5"}, report.items
    drift = report.drift
    assert drift["missing_in_shop"] == 2 and drift["stale"] == 1 and drift["repaired"] == 3, drift
    assert drift["failed_rechecked"] == 1 and drift["still_failed"] == 1, drift
    assert drift["unlinked"] == 1  # 10003-5 (failing); 10001-3 has no e-mail: not an account to miss
    shop = world.customers()
    assert shop["10001-2"]["id"] == lost[0] and shop["10001-2"]["email"] == AS  # under its id again
    assert shop["10001-1"]["lastName"] == "Müller"
    assert sorted(shop) == ["10001", "10001-1", "10001-2", "10002", "10002-7", "10003"]
    # A re-created account is a new account: its set-password link is mailed, like an address's.
    assert len(world.mails_to(AS)) == 1 and len(world.mails_to("info-10002@firma.example")) == 1
    assert world.mails_to("info-10001@firma.example") == []
    assert world.mails_to(JM) == []
    again = run_full(world.context())
    assert again.drift["missing_in_shop"] == again.drift["stale"] == 0 and len(world.smtp.messages) == 2


@pytest.mark.parametrize("on_delete", ["deactivate", "delete", "ignore"])
def test_a_deleted_contact_row_is_handled_like_a_deleted_address(world: ContactWorld, on_delete: str) -> None:
    world.addresses["on_erp_delete"] = on_delete
    world.company(10001, "Müller GmbH", CONTACTS, main=2)
    world.company(10002, "Groß KG", [(7, "Frau", "Eva", "Groß", "eg@gross.example")], main=7)
    world.run()
    gone = contact_account(10001, 1)
    shop_id = Links(world.state).get_by_erp(PLATFORM, gone).shop_id
    _delete_contact(world, 10001, 1)
    world.run()  # a change scan cannot see a deleted row: nothing happens yet
    assert world.kit.sandbox.customer(shop_id)["active"] is True
    report = run_full(world.context())
    assert ("10001-1", "orphaned") in {(i.record, i.action) for i in report.items}
    assert report.drift["orphaned_links"] == 1
    account = world.kit.sandbox.customer(shop_id)
    link = Links(world.state).get_by_erp(PLATFORM, gone)
    events = [e.event for e in History(world.state, lambda: None).of_address(gone, PLATFORM)]
    if on_delete == "deactivate":
        assert account["active"] is False and link is not None and link.shop_active is False
        assert "erp_deleted" in events
    elif on_delete == "delete":
        assert account is None and link is None and "deleted" in events
    else:
        assert account["active"] is True and link is not None and link.shop_active is True
    # The company's own account and the other contacts are untouched; nothing comes back.
    shop = world.customers()
    assert all(shop[n]["active"] for n in ("10001", "10001-2", "10002", "10002-7"))
    world.run()
    run_full(world.context())
    assert ("10001-1" in world.customers()) is (on_delete != "delete")
    assert len(world.mails_to(JM)) == 1 and len(world.mails_to(AS)) == 1


def test_status_names_contact_accounts_in_failures_edits_and_bounces(world: ContactWorld, capsys,
                                                                     monkeypatch) -> None:
    from datetime import UTC, datetime

    from syncd.shell.status import collect_status, render_status_table
    from syncd.state.bounces import Bounces

    world.company(10001, "Müller GmbH", CONTACTS, main=1)
    world.company(10002, "Groß KG", [(7, "Frau", "Eva", "Groß", "info-10001@firma.example")], main=7)
    world.run()  # 10002-7 fails: its e-mail is 10001's login
    key = contact_account(10001, 2)
    Cursors(world.state).set(PLATFORM, "shop-changes", {"addresses": {str(key): {
        "shop_id": "s1", "seen": "2026-01-01T00:00:00+00:00", "fields": {"lastName": ["Schäfer", "Berg"]}}}})
    Bounces(world.state).record(platform=PLATFORM, erp_number=key, kind="credentials", job_id=1, email=AS,
                                severity="hard", status="5.1.1", diagnostic="user unknown", source_id="m1",
                                now=datetime.now(UTC))
    status = collect_status(world.state, world.settings)
    [platform] = status["platforms"]
    assert [f["address"] for f in platform["failed"]] == ["10002-7"]
    assert [e["address"] for e in platform["shop_changes"]] == ["10001-2"]
    assert platform["bounces"]["latest"]["address"] == "10001-2"
    text = json.dumps(status, default=str) + render_status_table(status, lang="de", width=300)
    assert "10001-2" in text and not any(str(-k) in text for k in KEYS)
    monkeypatch.setenv("SYNCD_TEST_SHOP_SECRET", world.kit.secret)
    for args in (("bounces", "list", "--json"), ("bounces", "list")):
        code, out, err = _cli(capsys, world.config_toml(), *args)
        assert code == 0 and "10001-2" in out and str(-key) not in out, out + err


def test_the_main_contact_records_of_a_chunk_are_read_in_one_query(world: ContactWorld) -> None:
    import sqlalchemy as sa

    same = world.tick()
    for n in range(20001, 20031):  # one chunk of 30 companies, re-read by the overlap each cycle
        world.company(n, f"Firma {n}", [(1, "Frau", "Eva", f"Eins-{n}", None)], main=1, stamp=same)
    world.run()
    reads: list[str] = []

    def seen(_conn, _cursor, statement, *_args) -> None:
        select = statement.lstrip().upper().startswith("SELECT")
        if select and ("cursors" in statement or "history" in statement):
            reads.append(statement)

    sa.event.listen(world.state.engine, "before_cursor_execute", seen)
    try:
        report = world.run()
    finally:
        sa.event.remove(world.state.engine, "before_cursor_execute", seen)
    assert report.counts["skipped"] == 30  # each contact (no e-mail) seen again, its history read
    # A read per company would be 30 or more; the rest are the cycle's own bookmarks (logins,
    # recoveries, bounces ...), a fixed number whatever the chunk holds.
    assert len(reads) <= 10, f"{len(reads)} cursor/history reads for 30 companies"


def test_a_refusal_names_the_contact_account_that_owns_the_email(world: ContactWorld) -> None:
    world.company(10001, "Müller GmbH", CONTACTS, main=1)
    world.company(10002, "Groß KG", [(7, "Frau", "Eva", "Groß", JM)], main=7)  # 10001-1's login
    report = world.run()
    [(record, detail)] = [(i.record, i.detail) for i in report.items if i.action == "failed"]
    owner = ({"10001-1", "10002-7"} - {record}).pop()  # one of the two keeps the login
    assert record in {"10001-1", "10002-7"} and f"ERP address {owner}" in detail, detail
    from syncd.shell.status import collect_status

    [platform] = collect_status(world.state, world.settings)["platforms"]
    assert owner in platform["failed"][0]["reason"]
    assert not any(str(-k) in json.dumps(platform, default=str) for k in KEYS)
    # A later cycle: the login is an existing contact account's in the shop and the state store.
    world.company(10003, "Dritte OHG", [(4, "Herr", "Max", "Drei", AS)], main=4)
    later = world.run()
    details = " ".join(i.detail for i in later.items if i.action == "failed" and i.record == "10003-4")
    assert "10001-2" in details, details
    assert not any(str(-k) in details for k in [*KEYS, contact_account(10003, 4)]), details

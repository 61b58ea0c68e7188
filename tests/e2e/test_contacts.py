"""Contact persons (issue 18) and the main-contact events (issue 15), end to end: a büro+-shaped
ERP (``Adressen`` / ``Anschriften`` / ``Ansprechpartner``, numbers as text) on SQLite and on
MariaDB over ODBC, the Shopware sandbox, a real SMTP server, SQLite and PostgreSQL state."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import requests

from syncd.core.rules import contact_account
from syncd.shell.cli import run_cli
from syncd.shell.logs import reset_logging
from syncd.state.history import History
from syncd.state.jobs import CredentialJobs
from syncd.state.links import Links
from syncd.state.messages import Messages
from tests.support.contact_world import ContactWorld
from tests.support.dbs import pg_schema_url
from tests.support.flow_harness import PLATFORM, link_of
from tests.support.mailserver import smtp_server, smtp_server_factory, smtp_tls_files  # noqa: F401
from tests.support.shop_fixtures import sandbox, store_login  # noqa: F401

JM, AS, OE = "j.mueller@mueller-gmbh.example", "a.schaefer@mueller-gmbh.example", None
CONTACTS = [(1, "Herr", "Jörg", "Müller", JM), (2, "Frau", "Anja", "Schäfer", AS),
            (3, "Herr", "Ölaf", "Ohne", OE)]


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


def _events(w: ContactWorld, key: int) -> list[str]:
    return [e.event for e in History(w.state, lambda: None).of_address(key)]


def test_each_contact_with_an_email_gets_its_own_account_and_link_mail(world: ContactWorld) -> None:
    world.company(10001, "Müller GmbH", CONTACTS, main=1)
    report = world.run()
    shop = world.customers()
    # The company's own account stays; contacts 1 and 2 get theirs, 3 (no e-mail) none.
    assert sorted(shop) == ["10001", "10001-1", "10001-2"]
    jm, as_ = shop["10001-1"], shop["10001-2"]
    assert (jm["email"], jm["firstName"], jm["lastName"]) == (JM, "Jörg", "Müller")
    assert jm["company"] == "Müller GmbH"
    assert as_["email"] == AS and as_["company"] == "Müller GmbH"
    assert jm["customFields"] == {"syncd_company_number": "10001", "syncd_main_contact": True}
    assert as_["customFields"]["syncd_main_contact"] is False
    billing = world.bp.address_of(as_)
    assert (billing["street"], billing["city"], billing["company"]) == ("Hauptstr. 1", "Köln", "Müller GmbH")
    assert ("10001-3", "skipped") in [(i.record, i.action) for i in report.items]
    assert "contact_skipped" in _events(world, contact_account(10001, 3))
    # Each contact's own set-password link, through the crash-safe credential jobs.
    for email, password in ((JM, "eigenes-jm"), (AS, "eigenes-as")):
        [mail] = world.mails_to(email)
        _url, recovery = link_of(mail)
        assert f"Kundennummer:  10001-{1 if email == JM else 2}" in mail.get_body(("plain",)).get_content()
        resp = requests.post(
            f"{world.kit.sandbox.url}/store-api/account/recovery-password-confirm",
            json={"hash": recovery, "newPassword": password, "newPasswordConfirm": password},
            headers={"sw-access-key": world.kit.sandbox.access_key, "Accept": "application/json"}, timeout=10)
        assert resp.status_code == 200, resp.text
        assert store_login(world.kit.sandbox, email, password)
    links = {lk.erp_number: lk for lk in Links(world.state).iter(PLATFORM)}
    assert links[contact_account(10001, 2)].shop_id == as_["id"]
    assert set(CredentialJobs(world.state).counts(PLATFORM)) <= {"done"}
    assert "created" in _events(world, contact_account(10001, 1))
    # A second cycle: nothing new, nobody mailed again.
    before = len(world.smtp.messages)
    world.run()
    assert len(world.smtp.messages) == before and sorted(world.customers()) == sorted(shop)


def test_a_change_of_main_contact_mails_the_new_and_the_former_one_once(world: ContactWorld) -> None:
    world.company(10001, "Müller GmbH", CONTACTS, main=1)
    world.run()
    world.smtp.clear()
    world.set_main(10001, 2)
    world.run()
    [new] = world.mails_to(AS)
    [former] = world.mails_to(JM)
    assert "Hauptansprechpartner" in new["Subject"] and "jetzt" in new["Subject"]
    assert "nicht mehr" in former["Subject"]
    assert "Müller GmbH" in new.get_body(("plain",)).get_content()
    assert "Frau Schäfer" in new.get_body(("plain",)).get_content()
    assert len(world.smtp.messages) == 2
    # The shop shows the new main contact.
    shop = world.customers()
    assert shop["10001-2"]["customFields"]["syncd_main_contact"] is True
    assert shop["10001-1"]["customFields"]["syncd_main_contact"] is False
    assert "message_sent" in _events(world, contact_account(10001, 2))
    assert "main_contact" in _events(world, contact_account(10001, 1))
    # Not again: the next cycle, and a fresh process (new ports) after it.
    world.run()
    world.run()
    assert len(world.smtp.messages) == 2
    # Back to the first one: a new occurrence, mailed again (each once).
    world.set_main(10001, 1)
    world.run()
    assert len(world.mails_to(JM)) == 2 and len(world.mails_to(AS)) == 2
    kinds = sorted(m.kind for m in Messages(world.state).of(PLATFORM))
    assert kinds == ["former_main_contact", "former_main_contact", "new_main_contact", "new_main_contact"]


def test_a_contact_changed_on_its_own_is_pushed(world: ContactWorld) -> None:
    world.company(10001, "Müller GmbH", CONTACTS, main=1)
    world.run()
    world.update_contact(10001, 3, EMail1="o.ohne@mueller-gmbh.example")
    world.update_contact(10001, 2, NNa="Schäfer-Berg")
    world.run()
    shop = world.customers()
    assert shop["10001-2"]["lastName"] == "Schäfer-Berg"
    assert shop["10001-3"]["email"] == "o.ohne@mueller-gmbh.example"
    assert len(world.mails_to("o.ohne@mueller-gmbh.example")) == 1


def _cli(capsys, config: Path, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()  # the cycles' log lines
    try:
        code = run_cli(["--config", str(config), *args])
    finally:
        reset_logging()
    out, err = capsys.readouterr()
    return code, out, err


def test_history_and_accounts_list_show_the_contacts(world: ContactWorld, capsys, monkeypatch) -> None:
    monkeypatch.setenv("SYNCD_TEST_SHOP_SECRET", world.kit.secret)
    world.company(10001, "Müller GmbH", CONTACTS, main=1)
    world.run()
    world.set_main(10001, 2)
    world.run()
    config = world.config_toml()
    code, out, err = _cli(capsys, config, "history", "10001", "--format", "json")
    assert code == 0, err
    seen = {(e["account"], e["event"]) for e in json.loads(out)["events"]}
    assert {("10001", "created"), ("10001-1", "created"), ("10001-2", "main_contact"),
            ("10001-1", "main_contact"), ("10001-3", "contact_skipped"), ("10001-2", "message_sent")} <= seen
    code, out, err = _cli(capsys, config, "history", "10001-2", "--format", "json")
    assert code == 0 and {e["account"] for e in json.loads(out)["events"]} == {"10001-2"}
    code, out, _err = _cli(capsys, config, "history", "10001", "--lang", "de")
    assert "Hauptansprechpartner gewechselt" in out and "10001-3" in out
    code, out, err = _cli(capsys, config, "accounts", "list", "--format", "json")
    assert code == 0, err
    rows = {(a["address"], a["contact"]): a for a in json.loads(out)["accounts"]}
    assert set(rows) == {(10001, None), (10001, 1), (10001, 2)}
    assert rows[(10001, 2)]["main_contact"] is True and rows[(10001, 1)]["main_contact"] is False
    assert rows[(10001, None)]["main_contact"] is None
    assert rows[(10001, 2)]["name"] == "Müller GmbH, Anja Schäfer"
    code, out, err = _cli(capsys, config, "accounts", "list", "--lang", "de")
    assert code == 0, err
    assert "Ansprech" in out and "10001-2" in out and "10001-3" not in out


def test_check_reads_the_contacts_and_names_a_wrong_column(world: ContactWorld, capsys, monkeypatch) -> None:
    monkeypatch.setenv("SYNCD_TEST_SHOP_SECRET", world.kit.secret)
    code, out, err = _cli(capsys, world.config_toml(), "check")
    assert code == 0, out + err
    assert "erp.contacts" in out and "Ansprechpartner" in out
    code, out, err = _cli(capsys, world.config_toml(contacts='email = "EMail9"'), "check")
    assert code != 0 and "erp.contacts.email" in out + err and "EMail9" in out + err


def test_a_contact_with_the_companys_email_is_refused_and_the_others_go_on(world: ContactWorld) -> None:
    shared = "info-10001@firma.example"  # the company account's login already
    world.company(10001, "Müller GmbH", [(1, "Herr", "Jörg", "Müller", shared),
                                         (2, "Frau", "Anja", "Schäfer", AS)])
    world.company(10002, "Groß KG", [(7, "Frau", "Eva", "Groß", "eg@gross.example")], main=7)
    report = world.run()
    shop = world.customers()
    assert sorted(shop) == ["10001", "10001-2", "10002", "10002-7"]
    assert not shop["10001"].get("customFields")  # the company's account was not taken over
    links = {lk.erp_number: lk.shop_id for lk in Links(world.state).iter(PLATFORM)}
    assert links[10001] == shop["10001"]["id"] and contact_account(10001, 1) not in links
    failed = {i.record: i.detail for i in report.items if i.action == "failed"}
    assert set(failed) == {"10001-1"} and shared in failed["10001-1"]
    from syncd.shell.status import collect_status

    [platform] = collect_status(world.state, world.settings)["platforms"]
    assert [f["address"] for f in platform["failed"]] == ["10001-1"]
    assert len(world.mails_to(shared)) == 1 and len(world.mails_to(AS)) == 1


def test_account_verbs_take_a_contact_account(world: ContactWorld, capsys, monkeypatch) -> None:
    monkeypatch.setenv("SYNCD_TEST_SHOP_SECRET", world.kit.secret)
    world.company(10001, "Müller GmbH", CONTACTS, main=1)
    world.run()
    [first] = world.mails_to(AS)
    config = world.config_toml()
    code, out, err = _cli(capsys, config, "accounts", "send-credentials", "10001-2")
    assert code == 0, out + err
    assert "10001-2: mailed" in out
    mails = world.mails_to(AS)
    assert len(mails) == 2 and link_of(mails[1])[1] != link_of(first)[1]  # a new link, to the contact
    assert len(world.mails_to(JM)) == 1
    code, out, err = _cli(capsys, config, "accounts", "deactivate", "10001-1")
    assert code == 0 and "10001-1: deactivated" in out, out + err
    shop = world.customers()
    assert shop["10001-1"]["active"] is False and shop["10001"]["active"] is True
    code, _out, err = _cli(capsys, config, "accounts", "send-credentials", "10001-x")
    assert code == 2 and "10001-2" in err


def test_erase_and_create_one_contacts_account(world: ContactWorld, capsys, monkeypatch) -> None:
    monkeypatch.setenv("SYNCD_TEST_SHOP_SECRET", world.kit.secret)
    world.company(10001, "Müller GmbH", CONTACTS, main=1)
    world.run()
    config = world.config_toml()
    code, out, err = _cli(capsys, config, "accounts", "erase", "10001-2", "--yes")
    assert code == 0, out + err
    assert sorted(world.customers()) == ["10001", "10001-1"]
    assert _events(world, contact_account(10001, 2)) == []
    world.update_contact(10001, 2, NNa="Schäfer-Berg")  # a tombstone keeps it from coming back
    world.run()
    assert sorted(world.customers()) == ["10001", "10001-1"]
    world.update_contact(10001, 3, EMail1="o.ohne@mueller-gmbh.example")
    code, out, err = _cli(capsys, config, "accounts", "create", "10001-3")
    assert code == 0 and "10001-3: created" in out, out + err
    assert world.customers()["10001-3"]["email"] == "o.ohne@mueller-gmbh.example"
    assert len(world.mails_to("o.ohne@mueller-gmbh.example")) == 1


def test_many_companies_on_small_pages_with_one_timestamp(world: ContactWorld) -> None:
    world.erp_overrides = {"batch_size": 2}  # the change scan pages 2 rows at a time
    same = world.tick()
    numbers = list(range(20001, 20008))
    for n in numbers:
        world.company(n, f"Firma {n}", [(1, "Frau", "Eva", f"Eins-{n}", f"eins-{n}@firma.example"),
                                        (12, "Herr", "Uwe", f"Zwölf-{n}", f"zwoelf-{n}@firma.example")],
                      main=12, stamp=same)
    world.run()
    world.run()  # the overlap re-reads everything: nothing twice
    shop = world.customers()
    assert sorted(shop) == sorted([str(n) for n in numbers] + [f"{n}-1" for n in numbers]
                                  + [f"{n}-12" for n in numbers])
    assert all(shop[f"{n}-12"]["customFields"]["syncd_main_contact"] for n in numbers)
    for n in numbers:
        assert len(world.mails_to(f"eins-{n}@firma.example")) == 1
        assert len(world.mails_to(f"zwoelf-{n}@firma.example")) == 1


def test_full_reconciliation_keeps_contact_accounts_and_drops_a_deleted_contact(world: ContactWorld) -> None:
    from syncd.flows.reconcile import run_full

    world.company(10001, "Müller GmbH", CONTACTS, main=1)
    world.run()
    t = world.bp.t["Ansprechpartner"]
    with world.bp.engine.begin() as conn:  # contact 1 leaves the company
        conn.execute(t.delete().where(t.c.AdrNr == "10001", t.c.AspNr == 1))
    report = run_full(world.context())
    assert report.counts.get("failed", 0) == 0, report.items
    shop = world.customers()
    assert shop["10001"]["active"] is True and shop["10001-2"]["active"] is True
    assert shop["10001-1"]["active"] is False  # gone from the ERP: deactivated, like a deleted address


def test_the_dry_run_foresees_the_contact_accounts_and_their_mails(world: ContactWorld) -> None:
    from syncd.flows.erp_to_shop import run_erp_to_shop
    from syncd.flows.erp_to_shop_dry import mails_next_cycle

    world.company(10001, "Müller GmbH", CONTACTS, main=1)
    report = run_erp_to_shop(world.context(), dry_run=True)
    actions = {(i.record, i.action) for i in report.items}
    assert {("10001", "would-create"), ("10001-1", "would-create"), ("10001-2", "would-create")} <= actions
    assert not any(r == "10001-3" for r, _a in actions)
    assert mails_next_cycle(report) == 3
    assert world.customers() == {} and world.smtp.messages == []


def test_a_former_main_contact_deleted_with_the_change_is_mailed_at_its_login(world: ContactWorld) -> None:
    world.company(10001, "Müller GmbH", CONTACTS, main=1)
    world.run()
    world.smtp.clear()
    t = world.bp.t["Ansprechpartner"]
    with world.bp.engine.begin() as conn:
        conn.execute(t.delete().where(t.c.AdrNr == "10001", t.c.AspNr == 1))
    world.set_main(10001, 2)
    world.run()
    [former] = world.mails_to(JM)
    # The row and its names are gone: the mail goes to the account's login, addressed generally.
    assert "nicht mehr" in former["Subject"] and "Müller GmbH" in former.get_body(("plain",)).get_content()
    assert len(world.mails_to(AS)) == 1

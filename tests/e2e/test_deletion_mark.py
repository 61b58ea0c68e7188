"""Issue 18 erasure, "marked for deletion": ``[erp] deletion_mark`` (here a büro+ selection field,
``Sel7 = "X"``; the büro+ notes name no deletion flag, so there is no profile default) is found by
the change scan like any change and applies ``on_erp_delete`` once, recorded in the history;
clearing the mark makes the address usable again. A büro+-shaped ERP (numbers as text, three
tables, identical stamps, more rows than one ERP page) on SQLite and MariaDB over ODBC, the
state store on SQLite and PostgreSQL, with the Shopware sandbox."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta

import pytest

from syncd.config.model import ErpSettings
from syncd.state.history import History
from tests.support import shop_fixtures
from tests.support.bueroplus_world import PLATFORM, BpWorld, utcnow
from tests.support.dbs import pg_schema_url

sandbox = shop_fixtures.sandbox
MARK = {"deletion_mark": "Sel7=X", "batch_size": 2}  # two rows per ERP page: five rows are three pages


@pytest.fixture(params=["sqlite", pytest.param("mariadb", marks=pytest.mark.realdb),
                        pytest.param("sqlite+postgresql-state", marks=pytest.mark.realdb)])
def w(request, tmp_path, sandbox):
    with contextlib.ExitStack() as stack:
        state_url = stack.enter_context(pg_schema_url()) if request.param.endswith("postgresql-state") else ""
        world = BpWorld(request.param.split("+")[0], tmp_path, sandbox, state_url=state_url)
        stack.callback(world.close)
        for n in range(10001, 10006):
            world.add(n, na1="Frau", na2=f"Kundin {n}", first="Jördis", last=f"Kühn-{n}")
        yield world


def _events(w: BpWorld, number: int) -> list[tuple[str, str | None]]:
    return [(e.event, e.reason) for e in History(w.state, utcnow).of_address(number, PLATFORM)]


_EDITS = iter(range(1, 1000))


def _touch(w: BpWorld, number: int, **values) -> None:
    """An ERP user edits the address: its change stamp moves (a second later each time)."""
    w.update("Adressen", number, LtzAend=utcnow().replace(microsecond=0) + timedelta(seconds=next(_EDITS)),
             **values)


def _push(w: BpWorld, mode: str):
    return w.push(erp=MARK, on_erp_delete=mode)


def test_a_marked_address_is_deactivated_once_and_unmarking_reactivates_it(w):
    report = _push(w, "deactivate")
    assert report.counts["created"] == 5, report.items
    shop_id = w.links()[10001].shop_id
    _touch(w, 10001, Sel7="x")  # case does not matter
    report = _push(w, "deactivate")
    # Found by the change scan: only the changed row is looked at (O(changes), no reconciliation).
    assert sorted({i.record for i in report.items}) == ["10001"], report.items
    assert [i.action for i in report.items] == ["deactivated"]
    assert w.sb.customer(shop_id)["active"] is False
    assert w.links()[10001].shop_active is False
    marked = [e for e in _events(w, 10001) if e[0] == "erp_deleted"]
    assert marked == [("erp_deleted", "marked for deletion in the ERP ([erp] deletion_mark): account "
                       "deactivated (on_erp_delete = deactivate)")]

    # Edited again while marked: nothing happens twice, and nothing is pushed.
    _touch(w, 10001, Sel7="X")
    w.update("Anschriften", 10001, Str="Neue Straße 9")
    report = _push(w, "deactivate")
    assert [i.action for i in report.items if i.record == "10001"] == ["skipped"]
    assert len([e for e in _events(w, 10001) if e[0] == "erp_deleted"]) == 1
    assert w.address_of(w.sb.customer(shop_id))["street"] == "Hauptstr. 1"

    # The mark cleared: usable again, reactivated by the existing rule, the edit pushed.
    _touch(w, 10001, Sel7=None)
    report = _push(w, "deactivate")
    assert w.sb.customer(shop_id)["active"] is True, report.items
    assert w.address_of(w.sb.customer(shop_id))["street"] == "Neue Straße 9"
    assert _events(w, 10001)[-1][0] in ("reactivated", "pushed")
    assert "reactivated" in [e[0] for e in _events(w, 10001)]


def test_delete_removes_the_account_once_and_a_marked_new_row_is_never_created(w):
    _push(w, "delete")
    shop_id = w.links()[10002].shop_id
    w.add(10006, na1="Herr", na2="Neu", first="Ole", last="Öz")
    w.update("Adressen", 10006, Sel7="X")
    _touch(w, 10002, Sel7="X")
    report = _push(w, "delete")
    assert w.sb.customer(shop_id) is None and 10002 not in w.links(), report.items
    assert "10006" not in w.by_number() and 10006 not in w.links()
    assert [e for e in _events(w, 10002) if e[0] == "deleted"] == [
        ("deleted", "marked for deletion in the ERP ([erp] deletion_mark) (on_erp_delete = delete)")]
    _touch(w, 10002, Sel7="X")
    _touch(w, 10006, Sel7="X")
    report = _push(w, "delete")
    assert "10002" not in w.by_number() and "10006" not in w.by_number(), report.items
    assert len([e for e in _events(w, 10002) if e[0] == "deleted"]) == 1
    assert {i.record: i.action for i in report.items} == {"10002": "skipped", "10006": "skipped"}


def test_ignore_records_the_marking_once_and_leaves_the_account(w):
    _push(w, "ignore")
    shop_id = w.links()[10003].shop_id
    _touch(w, 10003, Sel7="X")
    _push(w, "ignore")
    # Other events of the account in between (a login, a mail) make no new marking of it.
    History(w.state, lambda: datetime.now(UTC)).record(PLATFORM, 10003, "logged_in", reason="2026-01-01")
    _touch(w, 10003, Sel7="X")
    _push(w, "ignore")
    assert w.sb.customer(shop_id)["active"] is True
    assert [e for e in _events(w, 10003) if e[0] == "erp_deleted"] == [
        ("erp_deleted", "marked for deletion in the ERP ([erp] deletion_mark): account left as it is "
                        "(on_erp_delete = ignore)")]


def test_without_the_key_the_column_means_nothing_and_a_bad_spec_names_the_key(w):
    w.push()
    _touch(w, 10004, Sel7="X")
    report = w.push()
    assert w.sb.customer(w.links()[10004].shop_id)["active"] is True, report.items
    with pytest.raises(ValueError, match="deletion_mark"):
        ErpSettings.model_validate({"url": "sqlite://", "deletion_mark": "=X"})


def test_check_names_the_deletion_mark_and_what_it_does(w):
    from syncd.shell.cli.check import mapping_checks

    details = [i.detail for i in mapping_checks(w.settings(erp=MARK, on_erp_delete="delete"))
               if i.name.startswith("deletion mark")]
    assert details == ["an address with Sel7 = 'X' is treated as deleted: on_erp_delete = delete"]
    assert not [i for i in mapping_checks(w.settings()) if i.name.startswith("deletion mark")]

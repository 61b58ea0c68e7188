"""`syncd sync --dry-run` predicts the real run (issue 14): the same validation and the same
read-only shop look-ups, so on the same data the dry run names, record by record, what the run
then does - create, link to a self-registered account, adopt an account found after the state
store was lost, refuse, skip, mail - and the shop -> ERP dry run names each customer with the
ERP number it would get. The sandbox shop of each platform kind (``shop`` fixture), SQLite ERP,
the CLI end to end."""

from __future__ import annotations

import re

import pytest

from syncd.shell.cli import sync as sync_cli
from tests.support import wired_env as wired
from tests.support.wired_env import SAMPLE, Env, make_env

shop = wired.shop  # fixture: a sandbox of each platform kind

# ERP numbers away from the sandbox's own customer numbers (10000 up, like Shopware's range).
ROWS = [dict(row, number=row["number"] + 20000) for row in SAMPLE] + [
    {"number": 30004, "first_name": "Dora", "last_name": "Dietz", "salutation": "Frau", "street": "Allee 4",
     "zip": "50667", "city": "Köln", "country": "DE", "email": "dora@example.com"},  # registered herself
    {"number": 30005, "first_name": "Emil", "last_name": "Ernst", "salutation": "Herr", "street": "Gasse 5",
     "zip": "01067", "city": "Dresden", "country": "DE", "email": "emil@example.com", "blocked": True},
    # 30001's e-mail:
    {"number": 30006, "first_name": "Anna", "last_name": "Zweitkonto", "salutation": "Frau",
     "street": "Platz 6", "zip": "10115", "city": "Berlin", "country": "DE", "email": "Anna@Example.com"},
    # too long for the shop:
    {"number": 30007, "first_name": "F" * 55, "last_name": "Lang", "salutation": "Herr", "street": "Weg 7",
     "zip": "80331", "city": "München", "country": "DE", "email": "lang@example.com"},
    # a country the shop lacks:
    {"number": 30008, "first_name": "Gert", "last_name": "Grieche", "salutation": "Herr", "street": "Odos 8",
     "zip": "10552", "city": "Athen", "country": "GR", "email": "gert@example.com"},
]


@pytest.fixture
def env(tmp_path, shop, monkeypatch):  # noqa: F811
    e = make_env(tmp_path, shop.sandbox, monkeypatch, rows=ROWS)
    e.config.write_text(e.config.read_text().replace(
        "shop_to_erp = false", "shop_to_erp = true\nnext_address_number = 30100\nonly_with_orders = true"))
    person = {"street": "Allee 4", "zip": "50667", "city": "Köln", "country": "DE"}
    assert shop.register("dora@example.com", "Sommer2026!", first_name="Dora", last_name="Dietz", **person)
    for mail, first, last, orders in (("erik@example.com", "Erik", "Elf", 1), ("fiona@example.com", "Fiona",
                                      "Fuchs", 2), ("gustav@example.com", "Gustav", "Gans", 0)):
        customer = shop.register(mail, "Sommer2026!", first_name=first, last_name=last, **person)
        for _ in range(orders):
            shop.add_order(customer)
    return e


@pytest.fixture
def reports(monkeypatch):
    """The reports `syncd sync` renders, per run."""
    runs: list[dict[str, object]] = []
    original = sync_cli.render_summary

    def capture(outcomes, console, *, dry_run, lang="en"):
        runs.append({o.direction: o.report for o in outcomes})
        return original(outcomes, console, dry_run=dry_run, lang=lang)

    monkeypatch.setattr(sync_cli, "render_summary", capture)
    return runs


_ERP_TO_SHOP = {"would-create": "created", "would-link": "linked", "would-adopt": "adopted",
                "would-update": "updated", "would-fail": "failed", "would-skip": "skipped",
                "would-defer": "deferred", "would-mail": "mailed", "would-deactivate": "deactivated",
                "would-reactivate": "reactivated"}
_SHOP_TO_ERP = {"would-create": "imported", "would-link": "linked", "would-write-back": "imported"}


def _items(report, mapping=None) -> list[tuple[str, str, str]]:
    out = []
    for i in report.items:
        action = mapping.get(i.action, i.action) if mapping else i.action
        detail = re.sub(r" for \S+@\S+$", "", i.detail)  # the dry run also names the customer
        if action == "created" and re.fullmatch(r"new-\d+|\d+", detail):
            detail = "(id the shop assigns)"  # WooCommerce: known only once the shop made it
        out.append((i.record, action, detail))
    return sorted(out)


def _both(e: Env, capsys, reports, direction: str) -> tuple:
    code, dry_out, err = e.cli(capsys, "sync", "--dry-run", "--direction", direction)
    assert code == 0, err
    code, _, err = e.cli(capsys, "sync", "--direction", direction)
    assert code in (0, 1), err  # 1: the shop's refusals are listed, the cycle itself ran
    dry, real = reports[-2][direction], reports[-1][direction]
    assert dry.dry_run and not real.dry_run
    return dry, real, dry_out


def test_the_dry_run_names_what_the_run_then_does(env: Env, capsys, reports):
    # ERP -> shop: create, link, refuse (e-mail, duplicate, too long, country), skip, mail.
    dry, real, out = _both(env, capsys, reports, "erp-to-shop")
    assert _items(dry, _ERP_TO_SHOP) == _items(real)
    actions = {(r, a) for r, a, _ in _items(real)}
    assert {("30001", "created"), ("30002", "created"), ("30004", "linked"), ("30001", "mailed"),
            ("30003", "failed"), ("30005", "skipped"), ("30006", "failed")} <= actions, actions
    # Shopware caps first names at 50 and knows its countries; WooCommerce takes both
    refused = "failed" if env.kit.caps_names else "created"
    assert {("30007", refused), ("30008", refused)} <= actions, actions
    assert ("30004", "mailed") not in actions  # a self-registered account gets no password
    assert "would-link" in out and "would-create" in out  # and the operator sees it per record

    # Shop -> ERP: the customers with orders get the next free numbers, in the dry run too.
    dry, real, out = _both(env, capsys, reports, "shop-to-erp")
    assert _items(dry, _SHOP_TO_ERP) == _items(real)
    imported = sorted(d for _, a, d in _items(real) if a == "imported")
    assert imported == ["ERP address 30100", "ERP address 30101"]
    flat = " ".join(out.split())
    assert "erik@example.com" in flat and "fiona@example.com" in flat and "ERP address 30100" in flat


def test_after_a_lost_state_store_the_dry_run_names_the_adoptions(env: Env, capsys, reports):
    _both(env, capsys, reports, "erp-to-shop")
    _both(env, capsys, reports, "shop-to-erp")
    for path in env.state_db.parent.glob("state.db*"):
        path.unlink()
    wired.erp_fixtures.insert_addresses(env.erp_url, wired.TABLE, [
        {"number": 30009, "first_name": "Hanna", "last_name": "Hahn", "salutation": "Frau", "street": "Hof 9",
         "zip": "28195", "city": "Bremen", "country": "DE", "email": "hanna@example.com"}])
    dry, real, _ = _both(env, capsys, reports, "erp-to-shop")
    assert _items(dry, _ERP_TO_SHOP) == _items(real)
    actions = {(r, a) for r, a, _ in _items(real)}
    # Accounts syncd made before the store was lost: adopted, never re-created or re-mailed (I4).
    assert {("30001", "adopted"), ("30002", "adopted"), ("30009", "created"), ("30009", "mailed")} <= actions
    assert ("30001", "mailed") not in actions

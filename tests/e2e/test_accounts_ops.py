"""`syncd accounts export` filters and password status, `accounts create` / `accounts delete`,
and link mode through the CLI: the SQLite ERP, the sandbox over HTTP, the outbox, a SQLite state
store, and (for PostgreSQL state) the same through the flow functions."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from syncd.flows.accounts import CSV_HEADER
from syncd.state.db import open_state
from syncd.state.history import History
from syncd.state.schema import credential_jobs, links
from tests.support import wired_env as wired
from tests.support.wired_env import Env, read_mail

# fixtures, found by these module-level names: ``env`` runs each case for each platform kind
env, shop, sandbox = wired.kind_env, wired.shop, wired.sandbox

README = Path(__file__).resolve().parents[2] / "README.md"


def _export(e: Env, capsys, *args: str) -> dict[str, dict[str, str]]:
    code, out, err = e.cli(capsys, "accounts", "export", *args)
    assert code == 0, err
    reader = csv.reader(io.StringIO(out))
    header = next(reader)
    assert tuple(header) == CSV_HEADER
    return {row[1]: dict(zip(header, row, strict=True)) for row in reader}


def _age_state(e: Env, minutes: int = 10) -> None:
    """As if everything so far (syncd's mails and writes, the shop's) had happened ``minutes`` ago."""
    e.shop.age_customers(minutes * 60)
    with open_state(f"sqlite:///{e.state_db}") as store, store.begin() as conn:
        for t, cols in ((credential_jobs, ("finished_at", "updated_at", "created_at")),
                        (links, ("updated_at", "created_at"))):
            for row in conn.execute(sa.select(t)).mappings().all():
                key = (t.c.id == row["id"]) if "id" in row else sa.and_(
                    t.c.platform == row["platform"], t.c.shop_id == row["shop_id"])
                values = {c: row[c] - timedelta(minutes=minutes) for c in cols if row[c] is not None}
                conn.execute(sa.update(t).where(key).values(**values))


def _recover(shop, email: str, password: str) -> None:
    """The customer's own "forgot password" in the storefront: the shop's recovery mail, then the
    recover page's confirm."""
    headers = {"sw-access-key": shop.access_key, "Accept": "application/json"}
    resp = requests.post(f"{shop.url}/store-api/account/recovery-password",
                         json={"email": email, "storefrontUrl": shop.storefront_url}, headers=headers,
                         timeout=10)
    assert resp.status_code == 200, resp.text
    mail = [m for m in shop.recovery_mails if m.email == email][-1]
    resp = requests.post(f"{shop.url}/store-api/account/recovery-password-confirm",
                         json={"hash": mail.hash, "newPassword": password, "newPasswordConfirm": password},
                         headers=headers, timeout=10)
    assert resp.status_code == 200, resp.text


def test_the_csv_header_is_the_one_the_readme_documents():
    text = README.read_text(encoding="utf-8")
    section = text[text.index("### `syncd accounts export`"):]
    block = re.search(r"```\n(.*?)\n```", section, re.S).group(1)
    assert block.splitlines()[0] == ",".join(CSV_HEADER)
    for column in CSV_HEADER:  # and every column is explained in its table
        assert f"| `{column}` |" in section
    for status in ("`initial`", "`reset by staff`", "`own password`", "`none`"):
        assert status in section


NO_DEACTIVATION = wired.shopware_only(
    "deactivation is refused by check for WooCommerce (customers have no active flag); these cases "
    "deactivate 10002")
NO_LINK_MODE = wired.shopware_only(
    "credential_mode = link is refused by check for WooCommerce (no REST route mails a set-password link)")


@pytest.fixture
def four(env: Env, capsys) -> Env:
    """10001, 10002 created and mailed; 10004 linked to the account its customer already had
    (no mail); 10002 then deactivated; 10003 has no usable e-mail."""
    env.shop.admin_api.next_customer_number = 50000  # the shop's own numbers stay clear of the ERP's
    env.shop.create_customer_as_shop_user("dora@example.com", "doras-eigenes")
    wired.erp_fixtures.insert_addresses(env.erp_url, wired.TABLE, [
        {"number": 10004, "first_name": "Dora", "last_name": "Dietz", "salutation": "Frau",
         "street": "Allee 4", "zip": "50667", "city": "Köln", "country": "DE", "email": "dora@example.com"}])
    code, _, err = env.cli(capsys, "sync", "--direction", "erp-to-shop")
    assert code == 0, err
    _age_state(env)  # the mails went out a while ago; syncd's own later write follows
    code, _, err = env.cli(capsys, "accounts", "deactivate", "10002")
    assert code == 0, err
    return env


@NO_DEACTIVATION
def test_each_export_filter(four: Env, capsys):
    default = _export(four, capsys)
    assert sorted(default) == ["10001", "10004"]  # active accounts only
    assert (default["10001"]["password_status"], default["10004"]["password_status"]) == ("initial", "none")
    assert sorted(_export(four, capsys, "--inactive")) == ["10001", "10002", "10004"]
    assert sorted(_export(four, capsys, "--credentials-sent")) == ["10001"]
    assert sorted(_export(four, capsys, "--credentials-sent", "--inactive")) == ["10001", "10002"]
    assert sorted(_export(four, capsys, "--no-credentials-sent")) == ["10004"]
    assert _export(four, capsys, "--changed-by-customer") == {}
    # the customer of 10001 sets their own password in the shop after our mail
    _recover(four.shop, "anna@example.com", "annas-eigenes")
    rows = _export(four, capsys, "--inactive")
    assert rows["10001"]["password_status"] == "own password"
    assert rows["10002"]["password_status"] == "initial"
    assert sorted(_export(four, capsys, "--changed-by-customer")) == ["10001"]
    assert _export(four, capsys, "--changed-by-customer", "--no-credentials-sent") == {}
    assert "annas-eigenes" not in str(rows)


@NO_DEACTIVATION
def test_a_login_with_the_mailed_password_is_not_an_own_password(four: Env, capsys):
    mails = dict(read_mail(p) for p in four.outbox_files())
    assert four.kit.login("anna@example.com", mails["anna@example.com"])
    assert _export(four, capsys)["10001"]["password_status"] == "initial"


@NO_DEACTIVATION
def test_without_the_shop_the_status_comes_from_the_state_and_says_so(four: Env, capsys, monkeypatch):
    monkeypatch.delenv(wired.SECRET_ENV)
    code, out, err = four.cli(capsys, "accounts", "export")
    assert code == 0 and "shop not reachable" in err and "10001" in out
    code, _, err = four.cli(capsys, "accounts", "export", "--changed-by-customer")
    assert code != 0 and "--changed-by-customer" in err


def test_create_one_address_now_then_delete_it(env: Env, capsys):
    code, out, err = env.cli(capsys, "accounts", "create", "10002")
    assert code == 0, err
    assert "10002: created" in out and "mailed to bernd@example.com" in out
    [mail] = env.outbox_files()
    to, password = read_mail(mail)
    assert to == "bernd@example.com" and env.kit.login(to, password)
    assert [a.number for a in env.kit.accounts()] == ["10002"]  # that one only
    assert env.password_fields()[10002] is None
    assert password not in out + err
    code, out, err = env.cli(capsys, "accounts", "create", "10002")
    assert code == 1 and "already linked" in err
    code, _, err = env.cli(capsys, "accounts", "create", "99999")
    assert code == 2 and "99999" in err
    code, out, err = env.cli(capsys, "accounts", "create", "10003")  # no usable e-mail
    assert code == 1 and "10003: failed" in err
    shop_id = env.kit.accounts()[0].id
    rows_before = env.erp_rows()
    # no confirmation on a pipe: refused, nothing deleted
    code, _, err = env.cli(capsys, "accounts", "delete", "10002")
    assert code == 2 and "--yes" in err and env.shop.customer(shop_id) is not None
    code, out, err = env.cli(capsys, "accounts", "delete", "10002", "--yes")
    assert code == 0, err
    assert f"10002: deleted ({shop_id}" in out
    assert env.shop.customer(shop_id) is None
    assert env.erp_rows() == rows_before  # the ERP row stays
    assert _export(env, capsys, "--inactive") == {}
    with open_state(f"sqlite:///{env.state_db}") as store:
        events = [(e.event, e.shop_id) for e in History(store, clock=lambda: None).of_address(10002)]
    assert ("created", shop_id) in events and events[-1] == ("deleted", shop_id)
    code, _, err = env.cli(capsys, "accounts", "delete", "10002", "--yes")
    assert code == 2 and "10002" in err


def _link_hash(path: Path) -> str:
    import email
    import email.policy

    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    [found] = set(re.findall(r"recover/password\?hash=([A-Za-z0-9]+)",
                             message.get_body(("plain",)).get_content()))
    return found


def _link_config(e: Env) -> None:
    e.config.write_text(e.config.read_text().replace(
        'email_layout = "credentials"\npassword_field = "Sel5"\n', 'credential_mode = "link"\n'))


@NO_LINK_MODE
def test_link_mode_through_the_cli_shows_no_link(env: Env, capsys, captured_logs):
    _link_config(env)
    code, out, err = env.cli(capsys, "check")
    assert "reads the link" in out, out + err
    assert "/account/recover/password?hash=HASH" in out  # the shop side of the link: a storefront domain
    code, out, err = env.cli(capsys, "sync", "--direction", "erp-to-shop")
    assert code == 0, err
    code, out2, err2 = env.cli(capsys, "accounts", "send-credentials", "10001")
    assert code == 0 and "10001: mailed" in out2, err2
    files = env.outbox_files()
    hashes = {_link_hash(p) for p in files}
    assert len(files) == len(hashes) == 3  # 10001, 10002, then a fresh link for 10001
    assert env.password_fields() == {10001: None, 10002: None, 10003: None}
    state = b"".join(p.read_bytes() for p in env.state_db.parent.glob("state.db*"))
    for h in hashes:
        assert h not in out + err + out2 + err2 and h not in captured_logs.text
        assert h.encode() not in state
    rows = _export(env, capsys)
    assert rows["10001"]["password_status"] == "reset by staff"
    # the customer sets a password through the newest link and logs in: own password
    newest = next(iter(set(env.shop.recovery_hashes) & hashes
                       & {h for h, cid in env.shop.recovery_hashes.items()
                          if env.shop.customer(cid)["email"] == "anna@example.com"}))
    resp = requests.post(f"{env.shop.url}/store-api/account/recovery-password-confirm",
                         json={"hash": newest, "newPassword": "per-link-gesetzt",
                               "newPasswordConfirm": "per-link-gesetzt"},
                         headers={"sw-access-key": env.shop.access_key}, timeout=10)
    assert resp.status_code == 200, resp.text
    assert env.kit.login("anna@example.com", "per-link-gesetzt")
    assert _export(env, capsys)["10001"]["password_status"] == "own password"


@NO_LINK_MODE
def test_check_refuses_a_link_mode_layout_without_the_link(env: Env, capsys):
    env.config.write_text(env.config.read_text().replace(
        'password_field = "Sel5"\n', 'credential_mode = "link"\n'))  # keeps email_layout = "credentials"
    code, out, err = env.cli(capsys, "check")
    assert code == 2
    assert "platforms[0].addresses.email_layout" in out and "{{ link }}" in out, out
    code, _, err = env.cli(capsys, "sync", "--direction", "erp-to-shop")
    assert code == 2 and "email_layout" in err
    assert env.outbox_files() == [] and env.shop.customers() == []


def test_create_links_an_account_the_customer_already_has_without_a_mail(env: Env, capsys):
    if env.kit.kind == "shopware6":
        env.shop.admin_api.next_customer_number = 50000
    own = env.kit.register("bernd@example.com", "bernds-eigenes")
    code, out, err = env.cli(capsys, "accounts", "create", "10002")
    assert code == 0, err
    assert f"10002: linked ({own}" in out
    assert env.outbox_files() == []
    assert env.kit.login("bernd@example.com", "bernds-eigenes")  # untouched
    assert len(env.shop.customers()) == 1
    with open_state(f"sqlite:///{env.state_db}") as store:
        assert [e.event for e in History(store, clock=lambda: None).of_address(10002)] == ["adopted"]

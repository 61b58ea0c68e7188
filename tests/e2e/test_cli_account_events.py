"""`syncd accounts approve|reject|forgot-username|list --state` and `syncd check` for event
mails, through the CLI with the SQLite ERP, the sandbox and the outbox."""

from __future__ import annotations

import email
import email.policy
import json

from tests.support import wired_env as wired
from tests.support.wired_env import Env

# fixtures, found by these module-level names: ``env`` runs each case for each platform kind
env, shop, sandbox = wired.kind_env, wired.shop, wired.sandbox

TABLES = """
[[notifications]]
event = "access_requested"
internal_to = ["innendienst@example.com"]
to_customer = false

[[notifications]]
event = "approved"

[[notifications]]
event = "rejected"
layout = "rejected_en"

[[notifications]]
event = "forgot_username"
"""


def _mails(e: Env) -> list[email.message.EmailMessage]:
    return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default) for p in e.outbox_files()]


def _text(m) -> str:
    return m.get_body(preferencelist=("plain",)).get_content()


def test_check_reads_the_event_layouts_and_refuses_a_missing_one(env: Env, capsys):
    env.write_config(addresses=TABLES)
    code, out, err = env.cli(capsys, "check")
    assert code == 0, out + err
    assert "notifications[3].layout = 'forgot_username'" in out
    env.write_config(addresses=TABLES + '\n[[notifications]]\nevent = "blocked"\nlayout = "gesperrt"\n')
    code, out, _ = env.cli(capsys, "check")
    assert code == 2
    assert any("notifications[4].layout" in line and "FAILED" in line for line in out.splitlines()), out


def test_check_refuses_main_contact_events(env: Env, capsys):
    env.write_config(addresses='\n[[notifications]]\nevent = "former_main_contact"\n')
    code, out, err = env.cli(capsys, "check")
    assert code == 2 and "notifications[0].event" in err and "main_contact" in err


@wired.shopware_only('approval = "manual" is refused by check for WooCommerce (customers cannot request '
                     "a customer group)")
def test_approval_verbs_through_the_cli(env: Env, capsys):
    env.write_config(addresses='approval = "manual"\n' + TABLES)
    shop = env.shop
    c = shop.create_customer_as_shop_user("firma@kunde.example", "geheim-12345", last_name="Kaufmann",
                                          requested_group="Händler")
    code, _, err = env.cli(capsys, "sync", "--direction", "erp-to-shop")
    assert code == 0, err
    [internal] = [m for m in _mails(env) if "innendienst" in str(m["To"])]
    assert "firma@kunde.example" in _text(internal)
    code, out, _ = env.cli(capsys, "accounts", "list", "--state", "in-progress")
    assert code == 0 and c["id"] in out and "1 account(s)" in out
    code, out, _ = env.cli(capsys, "status", "--json")
    assert json.loads(out)["platforms"][0]["approvals"] == {"in-progress": 1, "approved": 0, "rejected": 0}

    code, out, err = env.cli(capsys, "accounts", "approve", c["id"])
    assert code == 0 and f"{c['id']}: approved" in out, out + err
    assert shop.customer(c["id"])["groupId"] == shop.ids.customer_groups["Händler"]
    code, out, err = env.cli(capsys, "accounts", "reject", c["id"], "--reason", "no trade licence")
    assert code == 0, out + err
    customer_mails = [m for m in _mails(env) if "firma@kunde.example" in str(m["To"])]
    assert len(customer_mails) == 2
    [rejected] = [m for m in customer_mails if "Your access request" in m["Subject"]]  # rejected_en
    assert "Reason: no trade licence" in _text(rejected)
    code, out, _ = env.cli(capsys, "accounts", "list", "--state", "rejected")
    assert c["id"] in out
    code, _, err = env.cli(capsys, "accounts", "approve", "424242")
    assert code == 2 and "424242" in err


def test_forgot_username_through_the_cli(env: Env, capsys):
    env.write_config(addresses=TABLES)
    code, _, err = env.cli(capsys, "sync", "--direction", "erp-to-shop")
    assert code == 0, err
    before = set(env.outbox_files())
    code, out, err = env.cli(capsys, "accounts", "forgot-username", "anna@example.com")
    assert code == 0, out + err
    [path] = [p for p in env.outbox_files() if p not in before]
    mail = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert "anna@example.com" in str(mail["To"])
    assert "Benutzername (Anmeldung): anna@example.com" in _text(mail)
    assert "Passwort:" not in _text(mail)
    code, _, err = env.cli(capsys, "accounts", "forgot-username", "wer@example.com")
    assert code == 2 and "wer@example.com" in err

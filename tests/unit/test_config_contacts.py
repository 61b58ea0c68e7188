"""``[erp.contacts]``, ``accounts_per`` and the main-contact events at config load: what is
refused (naming the key) and what the büro+ profile fills in."""

from __future__ import annotations

import pytest

from syncd.config.contacts import effective_contacts, optional_contact_columns
from syncd.config.loader import parse_settings
from syncd.core.errors import ConfigError
from syncd.core.rules import account_label, account_parts, contact_account, parse_account

BP = '[erp]\nurl = "sqlite:///erp.db"\nprofile = "bueroplus"\n'
GENERIC = '[erp]\nurl = "sqlite:///erp.db"\n'
SHOP = '[[platforms]]\nname = "shop"\nurl = "https://shop.example.com/"\nclient_id = "id"\n' \
       'client_secret = "env:SHOP_SECRET"\n'
WOO = '[[platforms]]\nname = "woo"\nkind = "woocommerce"\nurl = "https://woo.example.com/"\n' \
      'consumer_key = "ck_1"\nconsumer_secret = "env:WOO_SECRET"\n'


def _load(text: str):
    return parse_settings(text, file="/etc/syncd/x.toml")


def _refused(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        _load(text)
    return str(info.value)


def test_bueroplus_fills_ansprechpartner_and_the_operator_overrides_single_keys() -> None:
    s = _load(BP + '[erp.contacts]\nemail = "EMail2"\n' + SHOP + '[platforms.addresses]\n'
              'accounts_per = "contact"\ncredential_mode = "link"\nsend_credentials = true\n')
    c = effective_contacts(s.erp)
    assert (c.table, c.address, c.number, c.email, c.main) == (
        "Ansprechpartner", "AdrNr", "AspNr", "EMail2", "Anschriften.AspNr")
    assert c.match == {"AnsNr": "Anschriften.AnsNr"}
    assert "mobile" in optional_contact_columns(s.erp) and "email" not in optional_contact_columns(s.erp)
    assert s.platforms[0].addresses.accounts_per == "contact"
    assert _load(BP + SHOP).platforms[0].addresses.accounts_per == "address"  # the default
    assert effective_contacts(_load(GENERIC + SHOP).erp) is None


@pytest.mark.parametrize("text, key, words", [
    (GENERIC + SHOP + '[platforms.addresses]\naccounts_per = "contact"\n',
     "platforms[0].addresses.accounts_per", "[erp.contacts] table"),
    (BP + SHOP + '[platforms.addresses]\naccounts_per = "contact"\nsend_credentials = true\n'
     'password_field = "Sel10"\n', "platforms[0].addresses.accounts_per", 'credential_mode = "link"'),
    (BP + WOO + '[platforms.addresses]\naccounts_per = "contact"\ndeactivate_blocked = false\n',
     "platforms[0].addresses.accounts_per", "only shopware6"),
    (GENERIC + SHOP + '[[notifications]]\nevent = "former_main_contact"\n',
     "notifications[0].event", "main contact"),
    (GENERIC + '[erp.contacts]\ntable = "Kontakte"\naddress = "KuNr"\nnumber = "Nr"\n' + SHOP
     + '[[notifications]]\nevent = "new_main_contact"\n', "notifications[0].event", "main contact"),
    (BP + '[erp.contacts]\ntabel = "X"\n' + SHOP, "erp.contacts.tabel", "unknown key"),
])
def test_refused_naming_the_key(text: str, key: str, words: str) -> None:
    message = _refused(text)
    assert key in message and words in message


def test_main_contact_events_load_with_bueroplus_or_a_main_column() -> None:
    assert _load(BP + SHOP + '[[notifications]]\nevent = "new_main_contact"\n').notifications
    generic = (GENERIC + '[erp.contacts]\ntable = "Kontakte"\naddress = "KuNr"\nnumber = "Nr"\n'
               'main = "Adressen.HauptNr"\n' + SHOP + '[[notifications]]\nevent = "former_main_contact"\n')
    assert _load(generic).notifications[0].event == "former_main_contact"


def test_contact_account_keys_never_meet_an_erp_number_and_read_back() -> None:
    key = contact_account(10001, 2)
    assert key < 0 and account_parts(key) == (10001, 2) and account_label(key) == "10001-2"
    assert account_parts(10001) == (10001, None) and account_label(10001) == "10001"
    assert parse_account("10001-2") == key and parse_account(" 10001 ") == 10001
    assert parse_account("10001-0") is None and parse_account("10001-10000") is None
    assert parse_account("x") is None and parse_account("10001-") is None
    assert contact_account(10001, 9999) != contact_account(10002, 1)
    with pytest.raises(ValueError):
        contact_account(10001, 10_000)

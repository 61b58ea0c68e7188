from pathlib import Path

import pytest

from syncd.config.loader import find_config, load_settings, parse_settings
from syncd.core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config.example.toml"

MINIMAL = """
[erp]
url = "sqlite:///erp.db"
[[platforms]]
name = "shop"
url = "https://shop.example.com/"
client_id = "id"
client_secret = "env:SHOP_SECRET"
"""


def _error(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_settings(text, file="/etc/syncd/x.toml")
    return info.value


def test_example_config_loads_with_documented_defaults():
    loaded = load_settings(str(EXAMPLE))
    s = loaded.settings
    assert loaded.path == EXAMPLE
    assert s.daemon.poll_interval == 60.0 and s.daemon.lease_ttl == 300.0
    assert s.erp.profile == "generic" and s.erp.debtor_range == (10000, 69999)
    assert s.platforms[0].addresses.erp_to_shop is True
    assert s.platforms[0].login_url == "https://shop.example.com/account/login"


# Every key of the model in config.example.toml with its default, and in README.md:
# tests/unit/test_config_reference.py (walks the model, so new tables need no list here).


def test_lookup_order(tmp_path, monkeypatch):
    a, b = tmp_path / "a.toml", tmp_path / "b.toml"
    a.write_text(MINIMAL)
    b.write_text(MINIMAL)
    monkeypatch.setenv("SYNCD_CONFIG", str(b))
    assert find_config(str(a)) == a
    assert find_config(None) == b
    assert load_settings().path == b
    monkeypatch.delenv("SYNCD_CONFIG")
    monkeypatch.setattr("syncd.config.loader.default_config_path", lambda: tmp_path / "none.toml")
    with pytest.raises(ConfigError) as info:
        find_config(None)
    assert str(tmp_path / "none.toml") in str(info.value) and "does not exist" in str(info.value)


def test_absent_file_names_the_file(tmp_path):
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as info:
        load_settings(str(missing))
    assert info.value.file == str(missing)
    assert "--config" in str(info.value)


def test_broken_toml_reports_line_column_key_and_line():
    err = _error(MINIMAL.replace('client_id = "id"', "client_id = id-without-quotes"))
    assert "line 7" in err.message and "column" in err.message
    assert err.key == "platforms[0].client_id"
    assert err.value == "client_id = id-without-quotes"
    assert err.file == "/etc/syncd/x.toml"


def test_broken_toml_never_echoes_a_secret_line():
    err = _error(MINIMAL.replace('client_secret = "env:SHOP_SECRET"', "client_secret = s3cr3t-unquoted"))
    assert "s3cr3t" not in str(err)


def test_wrong_type():
    err = _error(MINIMAL + '[mail]\nport = "smtp"\n')
    assert (err.key, err.value) == ("mail.port", "smtp")
    assert "integer" in err.message


def test_wrong_type_of_a_secret_does_not_echo_it():
    err = _error(MINIMAL.replace('client_secret = "env:SHOP_SECRET"', "client_secret = 98765432"))
    assert err.key == "platforms[0].client_secret"
    assert "98765432" not in str(err)


def test_unknown_key_lists_allowed_and_near_match():
    err = _error(MINIMAL + "[platforms.addresses]\nskip_blokced = true\n")
    assert err.key == "platforms[0].addresses.skip_blokced"
    assert "did you mean 'skip_blocked'" in err.message
    assert "skip_blocked" in err.allowed and "password_field" in err.allowed
    # the platforms list is not additionally reported as empty
    assert "Tuple" not in str(err)


def test_unknown_top_level_table():
    err = _error(MINIMAL + "[deamon]\npoll_interval = \"5m\"\n")
    assert err.key == "deamon" and "did you mean 'daemon'" in err.message


def test_duplicate_platform_names():
    err = _error(MINIMAL + MINIMAL.split("[[platforms]]")[1].join(["[[platforms]]", ""]))
    assert (err.key, err.value) == ("platforms[1].name", "shop")
    assert "duplicate" in err.message


def test_password_field_equal_to_a_profile_column():
    text = MINIMAL.replace('url = "sqlite:///erp.db"', 'url = "sqlite:///erp.db"\nprofile = "bueroplus"')
    err = _error(text + '[platforms.addresses]\nsend_credentials = true\npassword_field = "EMail1"\n')
    assert (err.key, err.value) == ("platforms[0].addresses.password_field", "EMail1")
    assert "'email'" in err.message and "EMail1" in err.allowed


def test_password_field_equal_to_an_explicit_column_case_insensitively():
    text = MINIMAL + '[erp.columns]\nnumber = "nr"\nemail = "Mail"\n'
    err = _error(text + '[platforms.addresses]\npassword_field = "mail"\n')
    assert err.key == "platforms[0].addresses.password_field"


def test_next_address_number_outside_debtor_range():
    err = _error(MINIMAL + "[platforms.addresses]\nnext_address_number = 70000\n")
    assert (err.key, err.value) == ("platforms[0].addresses.next_address_number", 70000)
    assert "10000..69999" in err.allowed
    ok = parse_settings(
        MINIMAL
        + "[platforms.addresses]\nnext_address_number = 70000\nallow_numbers_outside_debtor_range = true\n"
    )
    assert ok.platforms[0].addresses.next_address_number == 70000


def test_bad_duration():
    err = _error(MINIMAL + '[daemon]\npoll_interval = "often"\n')
    assert (err.key, err.value) == ("daemon.poll_interval", "often")
    err = _error(MINIMAL + "[daemon]\npoll_interval = 60\n")
    assert err.key == "daemon.poll_interval" and "60s" in err.message


def test_reconcile_interval_is_a_duration_default_daily():
    assert parse_settings(MINIMAL).daemon.reconcile_interval == 86400.0
    assert load_settings(str(EXAMPLE)).settings.daemon.reconcile_interval == 86400.0
    for text, seconds in (("6h30m", 23400), ("0s", 0)):
        parsed = parse_settings(MINIMAL + f'[daemon]\nreconcile_interval = "{text}"\n')
        assert parsed.daemon.reconcile_interval == seconds
    err = _error(MINIMAL + '[daemon]\nreconcile_interval = "daily"\n')
    assert (err.key, err.value) == ("daemon.reconcile_interval", "daily") and err.file == "/etc/syncd/x.toml"
    err = _error(MINIMAL + "[daemon]\nreconcile_interval = 86400\n")
    assert err.key == "daemon.reconcile_interval" and "60s" in err.message


def test_cross_field_errors_name_the_field():
    err = _error(MINIMAL + "[platforms.addresses]\nsend_credentials = true\n")
    assert err.key == "platforms[0].addresses.password_field"
    err = _error(MINIMAL.replace('url = "sqlite:///erp.db"', 'url = "x"\ndebtor_range = [5, 1]'))
    assert (err.key, err.value) == ("erp.debtor_range", [5, 1])
    err = _error(MINIMAL + '[mail]\ntransport = "outbox"\n')
    assert err.key == "mail.outbox_dir"
    err = _error(MINIMAL.replace("https://shop.example.com/", "shop.example.com"))
    assert (err.key, err.value) == ("platforms[0].url", "shop.example.com")
    err = _error(MINIMAL + '[platforms.addresses]\npassword_field = "Sel1"\ncopy_fields = ["Sel1"]\n')
    assert err.key == "platforms[0].addresses.copy_fields"


def test_literal_lists_allowed_values_and_missing_keys():
    err = _error(MINIMAL + '[mail]\nsecurity = "tls"\n')
    assert err.key == "mail.security" and "starttls" in err.allowed
    err = _error(MINIMAL.replace('url = "sqlite:///erp.db"', ""))
    assert err.key == "erp.url" and "missing" in err.message
    err = _error('[erp]\nurl = "x"\n')
    assert err.key == "platforms"


def test_several_errors_are_all_mentioned():
    err = _error(MINIMAL + '[mail]\nport = "x"\nsecurity = "tls"\n')
    assert "mail.security" in str(err) and "mail.port" in str(err)


def test_login_url_default_and_override():
    s = parse_settings(MINIMAL)
    assert s.platforms[0].login_url == "https://shop.example.com/account/login"
    s = parse_settings(MINIMAL.replace('client_id = "id"', 'client_id = "id"\nlogin_url = "https://x/login"'))
    assert s.platforms[0].login_url == "https://x/login"


def test_not_utf8(tmp_path):
    p = tmp_path / "c.toml"
    p.write_bytes(MINIMAL.encode("utf-16"))
    with pytest.raises(ConfigError, match="UTF-8"):
        load_settings(str(p))


def test_broken_toml_in_second_platform_names_its_index():
    second = MINIMAL.split("[[platforms]]")[1].replace('name = "shop"', 'name = "b"')
    text = MINIMAL + "[[platforms]]" + second + "[platforms.addresses]\nsend_credentials = yes\n"
    err = _error(text)
    assert err.key == "platforms[1].addresses.send_credentials"


@pytest.mark.parametrize(
    "extra, key, value",
    [
        ('[mail]\nport = "587"\n', "mail.port", "587"),
        ('[platforms.addresses]\nskip_blocked = "no"\n', "platforms[0].addresses.skip_blocked", "no"),
        ("[platforms.addresses]\npassword_length = true\n", "platforms[0].addresses.password_length", True),
        ("[daemon]\nmetrics_port = 9000.0\n", "daemon.metrics_port", 9000.0),
        ('[erp.columns]\nemail = 5\n', "erp.columns.email", 5),
    ],
)
def test_types_are_strict_no_silent_coercion(extra, key, value):
    err = _error(MINIMAL + extra)
    assert (err.key, err.value) == (key, value)


LINK = (
    '[erp]\nurl = "sqlite:///erp.db"\n[[platforms]]\nname = "shop"\nurl = "http://127.0.0.1:1"\n'
    'client_id = "id"\nclient_secret = "env:X"\n[platforms.addresses]\nsend_credentials = true\n'
    'credential_mode = "link"\n'
)


def test_link_mode_needs_no_password_field_and_uses_the_link_layout(tmp_path):
    from syncd.config.loader import load_settings

    path = tmp_path / "config.toml"
    path.write_text(LINK)
    a = load_settings(path).settings.platforms[0].addresses
    assert (a.email_layout, a.password_field, a.link_valid_for) == ("set_password_link", None, 7200.0)
    assert not a.uses_password_field
    path.write_text(LINK + 'email_layout = "set_password_link_en"\nlink_valid_for = "90m"\n')
    a = load_settings(path).settings.platforms[0].addresses
    assert (a.email_layout, a.link_valid_for) == ("set_password_link_en", 5400.0)


def test_a_link_validity_beyond_what_the_shop_honours_is_refused(tmp_path):
    from syncd.config.loader import load_settings
    from syncd.core.errors import ConfigError

    path = tmp_path / "config.toml"
    path.write_text(LINK + 'link_valid_for = "3h"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    text = str(info.value)
    assert str(path) in text and "platforms[0].addresses.link_valid_for" in text


# --- issue 18 keys ---------------------------------------------------------------------------------
def test_send_credentials_since_takes_a_date_a_date_string_or_first_run():
    from datetime import date

    for value, expected in (("2026-01-31", date(2026, 1, 31)), ('"2026-01-31"', date(2026, 1, 31)),
                            ('"first-run"', "first-run")):
        text = MINIMAL + f"[platforms.addresses]\nsend_credentials_since = {value}\n"
        s = parse_settings(text, file="x.toml")
        assert s.platforms[0].addresses.send_credentials_since == expected


def test_bad_send_credentials_since_names_key_and_value():
    err = _error(MINIMAL + '[platforms.addresses]\nsend_credentials_since = "yesterday"\n')
    assert err.key.startswith("platforms[0].addresses.send_credentials_since")
    # The value itself is masked: the one redaction point treats keys naming credentials as secret.
    assert "2026-01-31" in str(err) and "first-run" in str(err)


@pytest.mark.parametrize("text, key", [
    ("[mail]\nmax_per_minute = 0\n", "mail.max_per_minute"),
    ("[mail]\nmax_per_hour = -5\n", "mail.max_per_hour"),
    ("[platforms.addresses]\ncanary = 0\n", "platforms[0].addresses.canary"),
    ('[platforms.addresses]\non_erp_delete = "purge"\n', "platforms[0].addresses.on_erp_delete"),
    ('[platforms.addresses]\nactivation_reminder = "0s"\n', "platforms[0].addresses.activation_reminder"),
])
def test_bad_issue18_values_name_their_key(text, key):
    # [mail] must come before [[platforms]] in TOML only for readability; both orders parse.
    err = _error(MINIMAL + text)
    assert err.key.startswith(key), err


WOO = """
[erp]
url = "sqlite:///erp.db"
[[platforms]]
name = "woo"
kind = "woocommerce"
url = "https://woo.example.com/"
consumer_key = "ck_1"
consumer_secret = "env:WOO_SECRET"
"""


def test_woocommerce_platform_takes_consumer_keys_and_its_own_defaults():
    [p] = parse_settings(WOO, file="/etc/syncd/x.toml").platforms
    assert p.kind == "woocommerce" and p.consumer_key == "ck_1" and p.secret_ref == "env:WOO_SECRET"
    assert p.secret_key == "consumer_secret"
    assert p.batch_size == 100  # the most WooCommerce accepts in one batch request
    assert p.login_url == "https://woo.example.com/my-account/"


@pytest.mark.parametrize(("change", "key", "words"), [
    (('consumer_key = "ck_1"\n', ""), "platforms[0].consumer_key", "required"),
    (('consumer_secret = "env:WOO_SECRET"\n', ""), "platforms[0].consumer_secret", "required"),
    (('consumer_key = "ck_1"\n', 'consumer_key = "ck_1"\nclient_id = "SWIA"\n'), "platforms[0].client_id",
     "shopware6"),
    (('consumer_key = "ck_1"\n', 'consumer_key = "ck_1"\nbatch_size = 101\n'), "platforms[0].batch_size",
     "100"),
])
def test_woocommerce_platform_key_errors_name_the_key(change, key, words):
    error = _error(WOO.replace(*change))
    assert error.key == key and words in str(error), str(error)
    assert error.file == "/etc/syncd/x.toml"


def test_shopware_platform_refuses_consumer_keys():
    error = _error(MINIMAL + 'consumer_key = "ck_1"\n')
    assert error.key == "platforms[0].consumer_key" and "woocommerce" in str(error)


def _with_notifications(tables: str) -> str:
    return MINIMAL + "\n" + tables


def test_notification_tables_load_and_the_most_specific_wins(tmp_path):
    from syncd.flows.messages import choose

    path = tmp_path / "c.toml"
    path.write_text(_with_notifications(
        '[[notifications]]\nevent = "approved"\n\n'
        '[[notifications]]\ngroup = "Händler"\nevent = "approved"\nlayout = "approved_en"\n'
        'sender = "H <h@x.example>"\n'))
    s = load_settings(str(path)).settings
    assert choose(s, "Händler", "approved").layout_name == "approved_en"
    assert choose(s, "Privat", "approved").layout_name == "approved"
    assert choose(s, None, "blocked") is None


@pytest.mark.parametrize("tables, key, words", [
    ('[[notifications]]\nevent = "blocked"\n\n[[notifications]]\nevent = "blocked"\n',
     "notifications[1].group", "a second table"),
    ('[[notifications]]\nevent = "new_main_contact"\n', "notifications[0].event", "main contact"),
    ('[[notifications]]\nevent = "blocked_typo"\n', "notifications[0].event", "blocked_typo"),
    ('[[notifications]]\nevent = "blocked"\nenabeld = false\n', "notifications[0].enabeld", "unknown key"),
])
def test_bad_notification_tables_are_refused_naming_the_key(tmp_path, tables, key, words):
    path = tmp_path / "c.toml"
    path.write_text(_with_notifications(tables))
    with pytest.raises(ConfigError) as info:
        load_settings(str(path))
    assert key in str(info.value) and words in str(info.value)


def test_shop_id_column_belongs_to_one_platform():
    from syncd.config.profiles import platform_columns

    two = MINIMAL.replace('[erp]\n', '[erp]\nprofile = "bueroplus"\n') + (
        '[[platforms]]\nname = "woo"\nkind = "woocommerce"\nurl = "https://woo.example.com/"\n'
        'consumer_key = "ck_x"\nconsumer_secret = "env:WOO"\n'
        '[platforms.addresses]\ndeactivate_blocked = false\n')
    s = parse_settings(two)
    assert platform_columns(s, "shop")["shop_id"] == "WShopID"
    assert "shop_id" not in platform_columns(s, "woo")  # default owner: the first platform
    owned = 'profile = "bueroplus"\nshop_id_platform = '
    s = parse_settings(two.replace('profile = "bueroplus"\n', owned + '"woo"\n'))
    assert "shop_id" not in platform_columns(s, "shop") and platform_columns(s, "woo")["shop_id"] == "WShopID"
    error = _error(two.replace('profile = "bueroplus"\n', owned + '"wooo"\n'))
    assert error.key == "erp.shop_id_platform" and error.value == "wooo" and "/etc/syncd/x.toml" in str(error)


def test_check_warns_that_a_blocked_notification_cannot_fire_without_deactivation():
    from syncd.shell.cli.check import mapping_checks

    table = '[[notifications]]\ngroup = "*"\nevent = "blocked"\n'
    off = '[platforms.addresses]\ndeactivate_blocked = false\n'

    def warned(text: str) -> list[str]:
        return [i.detail for i in mapping_checks(parse_settings(text)) if i.warning and "blocked" in i.name]

    assert warned(MINIMAL + off + table) and "never sent" in warned(MINIMAL + off + table)[0]
    assert warned(MINIMAL + table) == []  # Shopware deactivates by default: the event fires
    assert warned(MINIMAL + off) == []  # no such table: nothing to warn about

"""What WooCommerce cannot carry out is refused with the key named, never run into: found when the
issue 13/15/16 merges called shop methods (number range, group requests, orders) WooShop lacks."""

from __future__ import annotations

from syncd.config.loader import parse_settings
from syncd.connectors.woocommerce import unsupported
from syncd.connectors.woocommerce.shop import NO_APPROVAL, NO_DEACTIVATION, WooShop

WOO = """
[erp]
url = "sqlite:///erp.db"
[[platforms]]
name = "woo"
kind = "woocommerce"
url = "https://woo.example.com/"
consumer_key = "ck_1"
consumer_secret = "env:WOO_SECRET"
[platforms.addresses]
deactivate_blocked = false
"""


def test_a_plain_woocommerce_platform_has_nothing_refused():
    [platform] = parse_settings(WOO, file="x.toml").platforms
    assert unsupported(platform) == []


def test_manual_approval_is_refused_with_its_key():
    [platform] = parse_settings(WOO + 'approval = "manual"\n', file="x.toml").platforms
    assert unsupported(platform) == [("platforms[woo].addresses.approval", NO_APPROVAL)]


def test_deactivating_accounts_of_deleted_addresses_is_refused_deleting_them_is_not():
    [platform] = parse_settings(WOO + 'on_erp_delete = "deactivate"\n', file="x.toml").platforms
    assert unsupported(platform) == [("platforms[woo].addresses.on_erp_delete", NO_DEACTIVATION)]
    [platform] = parse_settings(WOO + 'on_erp_delete = "delete"\n', file="x.toml").platforms
    assert unsupported(platform) == []


def test_woocommerce_has_no_number_range_to_collide():
    assert WooShop.customer_number_overlap(object.__new__(WooShop), (10000, 69999), None) == (None, None)


def test_a_reminder_naming_a_woocommerce_platform_passes_the_start_checks(tmp_path):
    """WooCommerce orders feed the reminders (``connectors/woocommerce/orders.py``): no refusal."""
    from syncd.config.loader import LoadedConfig
    from syncd.config.secrets import Secrets
    from syncd.shell.bootstrap import preflight

    erp = tmp_path / "erp.db"
    erp.touch()
    text = WOO.replace("sqlite:///erp.db", f"sqlite:///{erp.as_posix()}") + (
        '\n[[reminders]]\nname = "pay"\nkind = "prepayment"\nplatform = "woo"\n'
        'layout = "prepayment_reminder"\n')
    loaded = LoadedConfig(parse_settings(text, file="x.toml"), tmp_path / "x.toml")
    try:
        preflight(loaded, Secrets())
    except Exception as exc:  # an ERP or secret problem is fine here; the reminder must not be named
        assert "reminders[0]" not in str(getattr(exc, "key", "")), exc


def test_a_refused_record_names_the_field_its_error_is_about():
    """WordPress's per-item errors name no field: the code does, or ``data.params`` does."""
    from syncd.connectors.woocommerce.mapping import error_field

    assert error_field({"code": "registration-error-invalid-email", "data": {"status": 400}}) == "email"
    assert error_field({"code": "user_login_too_long", "data": {"status": 400}}) == "username"
    invalid = {"code": "rest_invalid_param", "message": "Invalid parameter(s): billing",
               "data": {"status": 400, "params": {"billing": "billing[country] is not one of ..."}}}
    assert error_field(invalid) == "billing"
    assert error_field({"code": "woocommerce_rest_invalid_id", "data": {"status": 404}}) is None
    assert error_field("not a dict") is None

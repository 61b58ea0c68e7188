"""The WooCommerce connector against its sandbox over HTTP, and the sandbox's documented
behaviour (shopware-notes §7): batch limit and its error, duplicate e-mail codes, pagination
headers, OAuth 1.0a over plain HTTP, the customer login."""

from __future__ import annotations

import pytest
import requests

from syncd.config.model import PlatformSettings
from syncd.connectors.woocommerce import open_shop
from syncd.connectors.woocommerce.http import WooHttp, oauth1_params
from syncd.connectors.woocommerce.sandbox import WooSandbox
from syncd.core.errors import PermanentError
from syncd.core.rules import PushOutcome
from tests.support.shops import WooKit
from tests.support.shopware import erp


@pytest.fixture
def sb():
    with WooSandbox() as sandbox:
        yield sandbox


def connector(sb: WooSandbox, **addresses):
    settings = dict(deactivate_blocked=False)
    settings.update(addresses)
    platform = PlatformSettings(name="woo", kind="woocommerce", url=sb.url, consumer_key=sb.consumer_key,
                                consumer_secret="env:WOO", timeout="5s", addresses=settings)
    return open_shop(platform, consumer_secret=sb.consumer_secret)


def api(sb: WooSandbox, method: str, path: str, body=None, **query):
    """A signed request as any WooCommerce client over plain HTTP would send it."""
    url = f"{sb.url}/wp-json/wc/v3{path}"
    params = oauth1_params(method, url, {k: str(v) for k, v in query.items()}, sb.consumer_key,
                           sb.consumer_secret)
    return requests.request(method, url, params=params, json=body, timeout=10)


class Intents:
    def __init__(self):
        self.numbers: set[int] = set()

    def pending(self, numbers):
        return set(numbers) & self.numbers

    def record(self, creates):
        self.numbers |= {n for n, _ in creates}


# --- the sandbox, as documented -------------------------------------------------------------------
def test_batch_above_100_items_is_refused_whole_with_413(sb):
    body = {"create": [{"email": f"k{n}@example.com"} for n in range(101)]}
    resp = api(sb, "POST", "/customers/batch", body)
    assert resp.status_code == 413 and resp.json()["code"] == "woocommerce_rest_request_entity_too_large"
    assert sb.customers() == []
    assert api(sb, "POST", "/customers/batch", {"create": body["create"][:100]}).status_code == 200
    assert len(sb.customers()) == 100


def test_create_rules_and_codes(sb):
    first = api(sb, "POST", "/customers", {"email": "a@example.com", "password": "x" * 12})
    assert first.status_code == 201 and first.headers["Location"].endswith(f"/customers/{first.json()['id']}")
    again = api(sb, "POST", "/customers", {"email": "A@Example.com"})
    assert again.status_code == 400
    assert again.json() == {"code": "registration-error-email-exists", "message": again.json()["message"],
                            "data": {"status": 400}}
    assert api(sb, "POST", "/customers", {"id": 7, "email": "b@example.com"}).json()["code"] == \
        "woocommerce_rest_customer_exists"
    assert api(sb, "POST", "/customers", {"first_name": "x"}).json()["code"] == "rest_missing_callback_param"
    invalid = api(sb, "POST", "/customers", {"email": "kein-at"})
    assert invalid.json()["code"] == "registration-error-invalid-email"
    taken = api(sb, "POST", "/customers", {"email": "c@example.com", "username": first.json()["username"]})
    assert taken.json()["code"] == "registration-error-username-exists"
    # in a batch the same errors come per item, the others are created
    batch = api(sb, "POST", "/customers/batch",
                {"create": [{"email": "a@example.com"}, {"email": "d@example.com"}]}).json()["create"]
    assert batch[0]["error"]["code"] == "registration-error-email-exists" and batch[0]["id"] == 0
    assert batch[1]["email"] == "d@example.com"


def test_required_username_and_password_when_the_shop_does_not_generate_them():
    with WooSandbox(generate_username=False, generate_password=False) as sb:
        assert api(sb, "POST", "/customers", {"email": "a@example.com", "password": "geheim-1234"}).json()[
            "code"] == "registration-error-invalid-username"
        assert api(sb, "POST", "/customers", {"email": "a@example.com", "username": "a"}).json()["code"] == \
            "registration-error-missing-password"
        # the connector sends both, so such a shop takes its creates too
        [r] = connector(sb).push([erp(10001)], {})
        assert r.outcome == PushOutcome.CREATED


def test_pagination_headers_and_the_role_filter(sb):
    for n in range(23):
        sb.create_customer_as_shop_user(f"k{n}@example.com", "pw-123456789")
    resp = api(sb, "GET", "/customers", per_page=10, page=3)
    assert resp.headers["X-WP-Total"] == "23" and resp.headers["X-WP-TotalPages"] == "3"
    assert len(resp.json()) == 3
    assert api(sb, "GET", "/customers", per_page=101).status_code == 400
    assert api(sb, "GET", "/customers", email="k5@example.com").json()[0]["email"] == "k5@example.com"


def test_oauth_signature_nonce_and_missing_auth_are_refused(sb):
    url = f"{sb.url}/wp-json/wc/v3/customers"
    assert requests.get(url, timeout=10).json()["code"] == "woocommerce_rest_cannot_view"
    assert requests.get(url, auth=(sb.consumer_key, sb.consumer_secret), timeout=10).status_code == 401
    params = oauth1_params("GET", url, {}, sb.consumer_key, "cs_wrong")
    assert requests.get(url, params=params, timeout=10).status_code == 401
    params = oauth1_params("GET", url, {}, sb.consumer_key, sb.consumer_secret)
    assert requests.get(url, params=params, timeout=10).status_code == 200
    replay = requests.get(url, params=params, timeout=10)
    assert replay.status_code == 401 and "nonce" in replay.json()["message"]


def test_wrong_secret_is_permanent_and_names_the_key_not_the_secret(sb):
    shop = connector(sb)
    shop.http._secret = "cs_not-the-secret"
    with pytest.raises(PermanentError) as exc:
        shop.push([erp(10001)], {})
    assert sb.consumer_key in str(exc.value) and "cs_not-the-secret" not in str(exc.value)
    assert len(sb.request_log) == 1  # not retried


def test_https_uses_basic_auth_and_verifies_tls():
    http = WooHttp("https://woo.example.com", "ck_1", "cs_1")
    assert http.session.verify is True and http.session.auth == ("ck_1", "cs_1")
    assert WooHttp("https://woo.example.com", "ck_1", "cs_1", verify=False).session.verify is False
    http.close()


# --- the connector ---------------------------------------------------------------------------------
def test_push_in_batches_of_at_most_100_with_per_item_errors_mapped_back(sb):
    shop = connector(sb)
    too_long = "k@" + "x" * 95 + ".example.com"  # WordPress caps user_email at 100 characters
    addresses = [erp(n) for n in range(10001, 10251)]
    addresses.insert(120, erp(20000, email=too_long))
    results = shop.push(addresses, {})
    assert [r.number for r in results] == [a.number for a in addresses]
    bad = results[120]
    assert bad.outcome == PushOutcome.REJECTED and bad.code == "user_email_too_long" and "100" in bad.reason
    assert all(r.outcome == PushOutcome.CREATED for i, r in enumerate(results) if i != 120)
    batches = [r for r in sb.request_log if r.path.endswith("/customers/batch")]
    assert len(batches) == 3  # 251 records, at most 100 a request
    kit = WooKit(sb)
    assert sorted(int(a.number) for a in kit.accounts()) == list(range(10001, 10251))
    assert {r.shop_id for r in results if r.shop_id} == {a.id for a in kit.accounts()}


def test_a_lost_store_adopts_and_a_pending_intent_recovers(sb):
    shop = connector(sb)
    [first] = shop.push([erp(10001)], {})
    # no link, no intent (a lost state store): the account is ours by its ERP number -> adopted
    [again] = shop.push([erp(10001, city="Köln")], {})
    assert again.outcome == PushOutcome.ADOPTED and again.shop_id == first.shop_id
    assert sb.customer(first.shop_id)["billing"]["city"] == "Köln"
    # an intent is pending (a create of ours whose answer or link was lost) -> ours, written again
    intents = Intents()
    intents.numbers.add(10001)
    [recovered] = shop.push([erp(10001)], {}, intents=intents)
    assert recovered.outcome == PushOutcome.UPDATED and recovered.detail == "existed_with_deterministic_id"
    assert len(sb.customers()) == 1


def test_a_self_registered_customer_is_linked_without_overwriting_and_claims_are_respected(sb):
    own = sb.create_customer_as_shop_user("kunde10001@example.com", "Eigenes-Passwort-1", first_name="Selbst")
    other = sb.create_customer_as_shop_user("kunde10002@example.com", "Eigenes-Passwort-2")
    shop = connector(sb)
    results = shop.push([erp(10001), erp(10002)], {}, claims=lambda ids: {str(other["id"]): 777})
    assert results[0].outcome == PushOutcome.LINKED and results[0].shop_id == str(own["id"])
    linked = sb.customer(own["id"])
    assert linked["first_name"] == "Selbst"  # nothing the customer entered is overwritten
    assert {"key": "syncd_erp_number", "value": "10001"}.items() <= linked["meta_data"][0].items()
    assert results[1].outcome == PushOutcome.REJECTED and "777" in results[1].reason
    assert sb.check_password("kunde10001@example.com", "Eigenes-Passwort-1")


def test_an_account_of_another_erp_number_is_not_taken(sb):
    shop = connector(sb)
    shop.push([erp(10001)], {})
    [r] = shop.push([erp(10002, email="kunde10001@example.com")], {})
    assert r.outcome == PushOutcome.REJECTED and "10001" in r.reason
    assert len(sb.customers()) == 1


def test_a_linked_account_deleted_in_the_shop_is_created_again(sb):
    shop = connector(sb)
    [first] = shop.push([erp(10001)], {})
    sb.delete_customer(first.shop_id)
    [again] = shop.push([erp(10001)], {10001: first.shop_id})
    assert again.outcome == PushOutcome.CREATED and again.detail == "linked_account_missing"
    assert again.shop_id != first.shop_id and len(sb.customers()) == 1


def test_an_e_mail_change_onto_another_account_is_rejected(sb):
    shop = connector(sb)
    a, b = shop.push([erp(10001), erp(10002)], {})
    [r] = shop.push([erp(10001, email="kunde10002@example.com")], {10001: a.shop_id})
    assert r.outcome == PushOutcome.REJECTED and r.code == "SYNCD__DUPLICATE_EMAIL"
    assert sb.customer(a.shop_id)["email"] == "kunde10001@example.com"


def test_passwords_write_back_orders_and_the_customer_login(sb):
    shop = connector(sb)
    a, b = shop.push([erp(10001), erp(10002)], {})
    assert shop.set_passwords({a.shop_id: "Neu-Gesetzt-1", "999999": "Neu-Gesetzt-2"}) == {
        a.shop_id: None, "999999": "woocommerce_rest_invalid_id: Invalid resource ID."}
    assert WooKit(sb).login("kunde10001@example.com", "Neu-Gesetzt-1")
    assert not WooKit(sb).login("kunde10001@example.com", "falsch")
    guest = sb.create_customer_as_shop_user("gast@example.com", "pw-gast-12345")
    sb.add_order(guest["id"])
    [with_orders] = list(shop.customers_with_orders(None))
    assert with_orders.id == str(guest["id"]) and with_orders.customer_number is None
    assert with_orders.order_count == 1
    shop.set_customer_number(with_orders.id, "10100")
    assert shop.get_customers([with_orders.id])[with_orders.id].customer_number == "10100"
    assert {c.email for c in shop.customers_changed_since(None)} == {
        "kunde10001@example.com", "kunde10002@example.com", "gast@example.com"}


def test_check_names_what_woocommerce_cannot_do(sb):
    items = connector(sb, deactivate_blocked=True).check()
    failed = {i.name: i.detail for i in items if not i.ok}
    assert "active flag" in failed["unsupported: platforms[woo].addresses.deactivate_blocked"]
    assert [i.name for i in items if i.ok] == ["connection", "new account mail"]
    with WooSandbox(new_account_email=True) as noisy:
        items = connector(noisy).check()
        assert [i.name for i in items if not i.ok] == ["new account mail"]


def test_deactivation_is_refused_with_the_reason(sb):
    shop = connector(sb)
    [a] = shop.push([erp(10001)], {})
    assert "active flag" in shop.set_active([a.shop_id], False)[a.shop_id]
    assert shop.set_active([a.shop_id], True) == {a.shop_id: None}
    assert sb.check_password("kunde10001@example.com", "x") is False and len(sb.customers()) == 1


def test_compare_finds_missing_and_differing_accounts(sb):
    shop = connector(sb)
    a, b, c = shop.push([erp(10001), erp(10002), erp(10003)], {})
    links = {10001: a.shop_id, 10002: b.shop_id, 10003: c.shop_id}
    sb.delete_customer(b.shop_id)
    sb.data.update(c.shop_id, {"billing": {"city": "Anderswo"}})
    drift = shop.compare([erp(10001), erp(10002), erp(10003)], links)
    assert drift == {10002: "missing", 10003: "differs: billing.city"}


# --- issue 18 on WooCommerce ------------------------------------------------------------------------
def test_delete_removes_the_customer_and_a_second_delete_finds_it_gone(sb):
    # `accounts delete`, `accounts erase` and on_erp_delete = "delete" go through delete_customer.
    shop = connector(sb)
    a, b = shop.push([erp(10001), erp(10002)], {})
    assert shop.delete_customer(a.shop_id) is True
    assert [c["id"] for c in sb.customers()] == [int(b.shop_id)]
    assert shop.delete_customer(a.shop_id) is False  # gone already: no error


def test_activation_reminders_are_refused_without_login_times(sb):
    # WooCommerce reports no queryable last login: every account would look unused and be reminded.
    shop = connector(sb, activation_reminder="7d")
    assert not hasattr(shop, "logins_since")  # activation tracking skips this shop
    failed = {i.name: i.detail for i in shop.check() if not i.ok}
    assert "wc_last_active" in failed["unsupported: platforms[woo].addresses.activation_reminder"]

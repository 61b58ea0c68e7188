"""ERP address -> Shopware payload: the mapping rules, without a shop."""

from __future__ import annotations

import pytest

from syncd.config.model import PlatformSettings
from syncd.connectors.shopware6.mapping import (
    NO_NAME,
    CustomerMapper,
    Rejected,
    address_id,
    clean,
    customer_id,
    fingerprint,
    salutation_key,
    to_shop_customer,
)
from syncd.connectors.shopware6.metadata import ShopMetadata
from syncd.connectors.shopware6.sync import record_position
from syncd.connectors.shopware6.versions import traits_for
from syncd.core.domain import ErpAddress

META = ShopMetadata(
    sales_channel_name="Storefront",
    sales_channel_id="a" * 32,
    language_id="b" * 32,
    customer_group_id="c" * 32,
    payment_method_id="d" * 32,
    country_id="e" * 32,
    groups={"Standard-Kundengruppe": "c" * 32, "Händler": "f" * 32},
    salutations={"mr": "1" * 32, "mrs": "2" * 32, "not_specified": "3" * 32},
    countries={"DE": "e" * 32, "AT": "4" * 32},
)


def platform(**kw) -> PlatformSettings:
    values = dict(name="shop", url="http://127.0.0.1:1", client_id="SWIA", client_secret="x")
    values.update(kw)
    return PlatformSettings(**values)


def mapper(version: str = "6.6.10.0", **kw) -> CustomerMapper:
    return CustomerMapper(platform(**kw), META, traits_for(version), {"street": "Str", "last_name": "NNa"})


def addr(**kw) -> ErpAddress:
    values = dict(
        number=10001,
        email="max@example.com",
        salutation="Herr",
        first_name="Max",
        last_name="Mustermann",
        street="Musterstr. 1",
        zip="48624",
        city="Schöppingen",
        country="DE",
    )
    values.update(kw)
    return ErpAddress(**values)


def test_ids_are_uuid5_of_platform_and_number():
    import uuid

    from syncd.connectors.shopware6.mapping import NAMESPACE

    assert customer_id("shop", 10001) == uuid.uuid5(NAMESPACE, "shop:10001").hex
    assert address_id("shop", 10001) == uuid.uuid5(NAMESPACE, "shop:10001:address").hex


def test_ids_are_deterministic_hex_and_distinct_per_platform_and_record():
    a = customer_id("shop", 10001)
    assert a == customer_id("shop", 10001)
    assert len(a) == 32 and all(c in "0123456789abcdef" for c in a)
    assert a != customer_id("shop", 10002)
    assert a != customer_id("other", 10001)
    assert address_id("shop", 10001) not in (a, address_id("shop", 10002))


def test_full_payload_for_a_person():
    m = mapper().map(addr(phone="+49 251 1234"))
    p = m.payload
    assert p["id"] == customer_id("shop", 10001)
    assert p["customerNumber"] == "10001"
    assert p["salutationId"] == META.salutations["mr"]
    assert (p["firstName"], p["lastName"], p["email"]) == ("Max", "Mustermann", "max@example.com")
    assert p["accountType"] == "private" and p["company"] is None
    assert p["active"] is True and p["guest"] is False
    assert p["salesChannelId"] == META.sales_channel_id and p["languageId"] == META.language_id
    assert p["defaultPaymentMethodId"] == META.payment_method_id
    assert p["groupId"] == META.customer_group_id
    (a,) = p["addresses"]
    assert (
        a["id"] == address_id("shop", 10001) == p["defaultBillingAddressId"] == p["defaultShippingAddressId"]
    )
    assert (a["street"], a["zipcode"], a["city"], a["countryId"]) == (
        "Musterstr. 1",
        "48624",
        "Schöppingen",
        META.countries["DE"],
    )
    assert a["phoneNumber"] == "+49 251 1234"


def test_umlauts_survive_unchanged():
    p = mapper().map(addr(first_name="Jürgen", last_name="Größe-Öztürk", street="Äußere Straße 5")).payload
    assert p["firstName"] == "Jürgen" and p["lastName"] == "Größe-Öztürk"
    assert p["addresses"][0]["street"] == "Äußere Straße 5"


def test_version_67_drops_payment_method():
    assert "defaultPaymentMethodId" not in mapper("6.7.2.0").map(addr()).payload
    assert "defaultPaymentMethodId" in mapper("6.5.8.14").map(addr()).payload


@pytest.mark.parametrize(
    "value,key",
    [
        ("Herr", "mr"),
        ("herrn", "mr"),
        ("Frau", "mrs"),
        ("Firma", "not_specified"),
        ("", "not_specified"),
        (None, "not_specified"),
        (" Frau\r\n", "mrs"),
    ],
)
def test_salutation(value, key):
    assert salutation_key(value) == key


def test_crlf_and_tabs_in_names_become_single_spaces():
    p = (
        mapper()
        .map(addr(first_name="Max\r\nPeter", last_name=" Muster\tmann \n", company="A\rB GmbH"))
        .payload
    )
    assert p["firstName"] == "Max Peter" and p["lastName"] == "Muster mann" and p["company"] == "A B GmbH"
    assert clean("\r\n") is None


def test_empty_first_name_gets_placeholder():
    p = mapper().map(addr(first_name="  ")).payload
    assert (p["firstName"], p["lastName"]) == (NO_NAME, "Mustermann")
    p = mapper().map(addr(first_name="Cher", last_name=None)).payload
    assert (p["firstName"], p["lastName"]) == (NO_NAME, "Cher")


def test_company_only_address_is_a_business_account_named_after_the_company():
    m = mapper().map(
        addr(first_name=None, last_name="", salutation="Firma", company="ACME Maschinenbau GmbH")
    )
    p = m.payload
    assert (p["firstName"], p["lastName"]) == (NO_NAME, "ACME Maschinenbau GmbH")
    assert p["accountType"] == "business" and p["company"] == "ACME Maschinenbau GmbH"
    assert p["salutationId"] == META.salutations["not_specified"]


def test_company_only_long_company_is_shortened_as_name_but_kept_as_company():
    company = "Vereinigte Norddeutsche Landmaschinen und Ersatzteile Handelsgesellschaft mbH"
    p = mapper("6.6.10.0").map(addr(first_name=None, last_name=None, company=company)).payload
    assert len(p["lastName"]) <= 60 and company.startswith(p["lastName"]) and not p["lastName"].endswith(" ")
    assert p["company"] == company


def test_no_name_and_no_company_is_rejected():
    with pytest.raises(Rejected) as exc:
        mapper().map(addr(first_name=None, last_name=None, company=None))
    assert exc.value.code == "SYNCD__NO_NAME"


def test_unknown_country_is_rejected_and_empty_country_is_never_invented():
    with pytest.raises(Rejected) as exc:
        mapper().map(addr(country="XX"))
    assert exc.value.code == "SYNCD__UNKNOWN_COUNTRY" and "'XX'" in exc.value.reason
    # No default_country: the record fails naming itself and the column (issue 13), it is not
    # sent as the sales channel's country.
    with pytest.raises(Rejected) as exc:
        mapper().map(addr(country=None))
    assert exc.value.code == "SYNCD__NO_COUNTRY"
    assert "ERP address 10001" in exc.value.reason and "default_country" in exc.value.reason
    assert mapper().map(addr(country="at")).payload["addresses"][0]["countryId"] == META.countries["AT"]


def test_overlong_street_is_rejected_naming_the_erp_column():
    with pytest.raises(Rejected) as exc:
        mapper().map(addr(street="S" * 256))
    assert exc.value.code == "SYNCD__VALUE_TOO_LONG"
    assert "Str" in exc.value.reason and "256" in exc.value.reason and "255" in exc.value.reason


def test_name_caps_follow_the_version():
    long_last = "L" * 61
    with pytest.raises(Rejected):
        mapper("6.6.4.0").map(addr(last_name=long_last))
    assert mapper("6.6.3.0").map(addr(last_name=long_last)).payload["lastName"] == long_last
    with pytest.raises(Rejected):
        mapper("6.7.0.0").map(addr(first_name="F" * 51))


@pytest.mark.parametrize("email", [None, "", "kein-at.example.com", "a b@example.com"])
def test_missing_or_malformed_email_is_rejected(email):
    with pytest.raises(Rejected) as exc:
        mapper().map(addr(email=email))
    assert exc.value.code in ("SYNCD__NO_EMAIL", "SYNCD__BAD_EMAIL")


def test_missing_street_or_city_is_rejected():
    with pytest.raises(Rejected):
        mapper().map(addr(street=" "))
    with pytest.raises(Rejected):
        mapper().map(addr(city=None))


def test_erp_problems_reject_the_record():
    with pytest.raises(Rejected) as exc:
        mapper().map(addr(problems=("zip too long",)))
    assert "zip too long" in exc.value.reason


def test_blocked_address_is_inactive():
    assert mapper().map(addr(blocked=True)).payload["active"] is False


def test_customer_group_map_default_and_unknown_group():
    m = mapper(customer_group_map={"H": "Händler"}, customer_group="Standard-Kundengruppe")
    assert m.map(addr(customer_group="H")).payload["groupId"] == META.groups["Händler"]
    assert m.map(addr(customer_group="Z")).payload["groupId"] == META.groups["Standard-Kundengruppe"]
    with pytest.raises(Rejected) as exc:
        mapper(customer_group_map={"X": "Gibt es nicht"}).map(addr(customer_group="X"))
    assert exc.value.code == "SYNCD__UNKNOWN_GROUP" and "Gibt es nicht" in exc.value.reason


def test_linked_foreign_account_keeps_its_channel_language_and_payment():
    p = mapper().map(addr(), shop_id="9" * 32).payload
    assert p["id"] == "9" * 32
    assert not {"salesChannelId", "languageId", "defaultPaymentMethodId", "guest"} & set(p)
    assert p["addresses"][0]["id"] == address_id("shop", 10001)


def test_fingerprint_changes_with_content_only():
    m = mapper()
    assert fingerprint(m.map(addr()).payload) == fingerprint(m.map(addr()).payload)
    assert fingerprint(m.map(addr()).payload) != fingerprint(m.map(addr(city="Münster")).payload)


@pytest.mark.parametrize(
    "pointer,expected",
    [
        ("/write-customer/3/email", 3),
        ("/0/payload/2/addresses/0/firstName", 2),
        ("/1/firstName", 1),
        (f"/{'ab' * 16}/email", 4),
        ("/write-customer/9/email", None),  # out of range
        ("", None),
        (None, None),
        ("/something/else", None),
    ],
)
def test_sync_error_pointer_maps_to_record(pointer, expected):
    assert record_position(pointer, "write-customer", {"ab" * 16: 4}, 5) == expected


def test_shop_json_back_to_shop_customer():
    c = to_shop_customer(
        {
            "id": "1" * 32,
            "email": "a@b.de",
            "customerNumber": "10001",
            "salutationId": META.salutations["mrs"],
            "firstName": "Eva",
            "lastName": "Muster",
            "orderCount": 2,
            "guest": False,
            "active": False,
            "createdAt": "2026-01-02T03:04:05.000+00:00",
            "defaultBillingAddress": {
                "street": "S 1",
                "zipcode": "1",
                "city": "C",
                "countryId": META.countries["AT"],
            },
        },
        META,
    )
    assert c.salutation == "Frau" and c.country == "AT" and c.order_count == 2 and c.active is False
    assert c.created_at is not None and c.created_at.year == 2026


def test_supported_versions_and_their_traits():
    from syncd.connectors.shopware6.versions import parse_version
    from syncd.core.errors import PermanentError

    assert not traits_for("6.4.20.2").supported and not traits_for("6.8.0.0").supported
    assert all(traits_for(v).supported for v in ("6.5.0.0", "6.6.10.0", "6.7.10.0"))
    assert traits_for("6.5.0.0").page_limit == 100 and traits_for("6.6.0.0").page_limit == 500
    assert not traits_for("6.5.0.0").has_account_type and traits_for("6.5.1.0").has_account_type
    assert parse_version("v6.6.10.0-dev") == (6, 6, 10, 0) and parse_version("6.7.1") == (6, 7, 1, 0)
    with pytest.raises(PermanentError):
        parse_version("trunk")


def test_damaged_cache_entries_are_ignored():
    assert ShopMetadata.from_json({"_v": 1, "unknown": 1}) is None
    assert ShopMetadata.from_json({"_v": 0}) is None
    assert ShopMetadata.from_json(None) is None
    assert ShopMetadata.from_json(META.to_json()) == META


def test_empty_country_takes_the_configured_default_country():
    m = mapper(default_country="at").map(addr(country=None))
    assert m.payload["addresses"][0]["countryId"] == META.countries["AT"]
    with pytest.raises(Rejected) as exc:  # a default the shop does not have is named as such
        mapper(default_country="ZZ").map(addr(country=""))
    assert exc.value.code == "SYNCD__UNKNOWN_COUNTRY" and "default_country" in exc.value.reason


def test_account_type_follows_the_addresses_own_kind_not_a_filled_name_line():
    # The ERP connector decided (büro+: Na1 "Herr" with Na2 "Jürgen Meißner" is a person).
    person = mapper().map(addr(business=False, company=None)).payload
    assert person["accountType"] == "private" and person["company"] is None
    firm = mapper().map(addr(business=True, salutation="Firma", company="ACME GmbH")).payload
    assert firm["accountType"] == "business" and firm["company"] == "ACME GmbH"


def test_customer_number_prefix():
    assert mapper(customer_number_prefix="E").map(addr()).payload["customerNumber"] == "E10001"
    assert mapper().map(addr()).payload["customerNumber"] == "10001"

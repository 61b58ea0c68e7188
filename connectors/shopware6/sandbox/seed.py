"""The metadata a fresh Shopware installation (plus one integration) brings along.

Ids are derived from names (md5, like ``Uuid::fromStringToHex``) so they are the same in every
run; the language and currency ids are Shopware's fixed defaults.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from .schema import EUR_CURRENCY_ID, STOREFRONT_TYPE_ID, SYSTEM_LANGUAGE_ID
from .store import Store, now_iso

COUNTRIES = [
    ("DE", "DEU", "Deutschland"),
    ("AT", "AUT", "Österreich"),
    ("CH", "CHE", "Schweiz"),
    ("FR", "FRA", "Frankreich"),
    ("NL", "NLD", "Niederlande"),
    ("BE", "BEL", "Belgien"),
    ("LU", "LUX", "Luxemburg"),
    ("IT", "ITA", "Italien"),
    ("ES", "ESP", "Spanien"),
    ("PL", "POL", "Polen"),
    ("DK", "DNK", "Dänemark"),
    ("CZ", "CZE", "Tschechien"),
    ("US", "USA", "Vereinigte Staaten von Amerika"),
    ("GB", "GBR", "Vereinigtes Königreich"),
]
SALUTATIONS = [("mr", "Herr"), ("mrs", "Frau"), ("not_specified", "Keine Angabe")]
GROUPS = ["Standard-Kundengruppe", "Händler"]
PAYMENT_METHODS = [
    (
        "payment_invoice",
        "Rechnung",
        "Shopware\\Core\\Checkout\\Payment\\Cart\\PaymentHandler\\InvoicePayment",
    ),
    ("payment_prepayment", "Vorkasse", "Shopware\\Core\\Checkout\\Payment\\Cart\\PaymentHandler\\PrePayment"),
]
GERMAN_LANGUAGE_ID = hashlib.md5(b"sandbox:language:de-DE", usedforsecurity=False).hexdigest()


def sid(kind: str, name: str) -> str:
    return hashlib.md5(f"sandbox:{kind}:{name}".encode(), usedforsecurity=False).hexdigest()


@dataclass(frozen=True)
class SeedIds:
    sales_channel: str
    access_key: str
    customer_groups: dict[str, str]
    salutations: dict[str, str]
    countries: dict[str, str]
    payment_method: str
    language: str


def _translated(record: dict, **names: str) -> dict:
    record.update(names)
    record["translated"] = dict(names)
    return record


CUSTOMER_RANGE_ID = sid("number_range", "customer")


def seed(store: Store, storefront_url: str) -> SeedIds:
    created = now_iso()

    def put(entity: str, record: dict) -> None:
        record.setdefault("createdAt", created)
        record.setdefault("updatedAt", None)
        record["apiAlias"] = entity
        store.put(entity, record)

    put(
        "locale",
        _translated(
            {"id": sid("locale", "en-GB"), "code": "en-GB"}, name="English", territory="United Kingdom"
        ),
    )
    put(
        "locale",
        _translated({"id": sid("locale", "de-DE"), "code": "de-DE"}, name="Deutsch", territory="Deutschland"),
    )
    put(
        "language",
        {
            "id": SYSTEM_LANGUAGE_ID,
            "name": "English",
            "localeId": sid("locale", "en-GB"),
            "parentId": None,
            "translationCodeId": sid("locale", "en-GB"),
        },
    )
    put(
        "language",
        {
            "id": GERMAN_LANGUAGE_ID,
            "name": "Deutsch",
            "localeId": sid("locale", "de-DE"),
            "parentId": None,
            "translationCodeId": sid("locale", "de-DE"),
        },
    )
    put(
        "currency",
        _translated(
            {"id": EUR_CURRENCY_ID, "isoCode": "EUR", "symbol": "€", "factor": 1.0},
            shortName="EUR",
            name="Euro",
        ),
    )
    countries = {}
    for position, (iso, iso3, name) in enumerate(COUNTRIES, start=1):
        countries[iso] = sid("country", iso)
        put(
            "country",
            _translated(
                {
                    "id": countries[iso],
                    "iso": iso,
                    "iso3": iso3,
                    "active": True,
                    "position": position,
                    "postalCodeRequired": False,
                    "shippingAvailable": True,
                },
                name=name,
            ),
        )
    salutations = {}
    for key, name in SALUTATIONS:
        salutations[key] = sid("salutation", key)
        put(
            "salutation",
            _translated(
                {"id": salutations[key], "salutationKey": key},
                displayName=name,
                letterName=f"Sehr geehrte/r {name}",
            ),
        )
    groups = {}
    for name in GROUPS:
        groups[name] = sid("customer_group", name)
        put(
            "customer_group",
            _translated(
                {
                    "id": groups[name],
                    "displayGross": name != "Händler",
                    "registrationActive": False,
                    "customFields": None,
                },
                name=name,
            ),
        )
    payment_ids = []
    for position, (technical, name, handler) in enumerate(PAYMENT_METHODS, start=1):
        payment_ids.append(sid("payment_method", technical))
        put(
            "payment_method",
            _translated(
                {
                    "id": payment_ids[-1],
                    "technicalName": technical,
                    "active": True,
                    "position": position,
                    "handlerIdentifier": handler,
                },
                name=name,
            ),
        )
    sales_channel = sid("sales_channel", "Storefront")
    access_key = "SWSC" + hashlib.md5(b"sandbox:access-key", usedforsecurity=False).hexdigest()[:22].upper()
    put(
        "sales_channel",
        _translated(
            {
                "id": sales_channel,
                "typeId": STOREFRONT_TYPE_ID,
                "accessKey": access_key,
                "active": True,
                "languageId": GERMAN_LANGUAGE_ID,
                "customerGroupId": groups["Standard-Kundengruppe"],
                "paymentMethodId": payment_ids[0],
                "countryId": countries["DE"],
                "currencyId": EUR_CURRENCY_ID,
                "shippingMethodId": sid("shipping_method", "Standard"),
                "navigationCategoryId": sid("category", "Home"),
                "paymentMethodIds": payment_ids,
                "languageIds": [GERMAN_LANGUAGE_ID, SYSTEM_LANGUAGE_ID],
                "countryIds": list(countries.values()),
                "customFields": None,
            },
            name="Storefront",
        ),
    )
    put(
        "sales_channel_domain",
        {
            "id": sid("sales_channel_domain", "Storefront"),
            "url": storefront_url,
            "salesChannelId": sales_channel,
            "languageId": GERMAN_LANGUAGE_ID,
            "currencyId": EUR_CURRENCY_ID,
            "snippetSetId": sid("snippet_set", "de-DE"),
        },
    )
    # The customer number range as a fresh Shopware installs it (pattern "{n}", start 10000,
    # global), with number 10000 already handed out: the storefront's next registration is 10001.
    put("number_range_type", _translated(
        {"id": sid("number_range_type", "customer"), "technicalName": "customer", "global": False},
        typeName="Customer"))
    put("number_range", _translated(
        {"id": CUSTOMER_RANGE_ID, "typeId": sid("number_range_type", "customer"), "global": True,
         "pattern": "{n}", "start": 10000}, name="Customers"))
    put("number_range_state",
        {"id": sid("number_range_state", "customer"), "numberRangeId": CUSTOMER_RANGE_ID, "lastValue": 10000})
    return SeedIds(
        sales_channel, access_key, groups, salutations, countries, payment_ids[0], GERMAN_LANGUAGE_ID
    )

"""Entity definitions the sandbox knows: fields, types, write rules and associations.

A trimmed copy of Shopware's ``*Definition.php`` classes, limited to what an ERP connector
touches. Fields unknown here are refused on write (``FRAMEWORK__WRITE_UNEXPECTED_FIELD_ERROR``)
and on search (``FRAMEWORK__UNMAPPED_FIELD``), as the DAL does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .versions import ShopVersion

# Shopware's fixed ids (Defaults.php)
SYSTEM_LANGUAGE_ID = "2fbb5fe2e29a4d70aa5854ce7ce3e20b"
EUR_CURRENCY_ID = "b7d2554b0ce847cd82f3ac9bd1c0dfca"
STOREFRONT_TYPE_ID = "8a243080f92e4c719546314b577cf82b"

DATETIME_FIELDS = frozenset(
    {
        "createdAt",
        "updatedAt",
        "lastLogin",
        "firstLogin",
        "lastOrderDate",
        "orderDateTime",
        "doubleOptInRegistrationDate",
        "doubleOptInEmailSentDate",
        "doubleOptInConfirmDate",
    }
)


@dataclass(frozen=True)
class Field:
    # id | fk | string | email | password | bool | int | float | datetime | date | json | list | choice
    kind: str
    required: bool = False
    max_len: int | None = 255
    target: str | None = None  # fk: referenced entity
    protected: bool = False  # write needs the "system" scope
    choices: tuple[str, ...] = ()
    auto: bool = False  # filled by the shop; writes are ignored


@dataclass(frozen=True)
class Association:
    # one: fk on this record | many: fk on the target | rev_one: one record with the fk on the target
    # | m2m: id list kept on this record
    kind: str
    target: str
    key: str


@dataclass
class Entity:
    name: str
    fields: dict[str, Field]
    associations: dict[str, Association] = field(default_factory=dict)

    def known(self, name: str) -> bool:
        return name in self.fields or name in self.associations


def _customer(version: ShopVersion) -> Entity:
    fk = lambda target, required=False: Field("fk", required=required, target=target)  # noqa: E731
    fields = {
        "id": Field("id"),
        "groupId": fk("customer_group", True),
        "requestedGroupId": fk("customer_group"),
        "salesChannelId": fk("sales_channel", True),
        "boundSalesChannelId": fk("sales_channel"),
        "languageId": fk("language", True),
        "defaultBillingAddressId": fk("customer_address", True),
        "defaultShippingAddressId": fk("customer_address", True),
        "salutationId": fk("salutation"),
        "customerNumber": Field("string", required=True),
        "firstName": Field("string", required=True),
        "lastName": Field("string", required=True),
        "company": Field("string"),
        "title": Field("string", max_len=100),
        "email": Field("email", required=True),
        "password": Field("password"),
        "vatIds": Field("list"),
        "affiliateCode": Field("string"),
        "campaignCode": Field("string"),
        "active": Field("bool"),
        "guest": Field("bool"),
        "doubleOptInRegistration": Field("bool"),
        "doubleOptInEmailSentDate": Field("datetime"),
        "doubleOptInConfirmDate": Field("datetime"),
        "hash": Field("string"),
        "firstLogin": Field("datetime"),
        "lastLogin": Field("datetime"),
        "birthday": Field("date"),
        "customFields": Field("json"),
        "remoteAddress": Field("string"),
        "createdAt": Field("datetime"),
        "updatedAt": Field("datetime", auto=True),
        "lastOrderDate": Field("datetime", protected=True),
        "orderCount": Field("int", protected=True),
        "orderTotalAmount": Field("float", protected=True),
        "reviewCount": Field("int", protected=True),
        "newsletterSalesChannelIds": Field("json", protected=True),
    }
    if version.payment_method_on_customer:
        fields["defaultPaymentMethodId"] = fk("payment_method", True)
        fields["lastPaymentMethodId"] = fk("payment_method")
    if version.has_account_type:
        fields["accountType"] = Field("choice", choices=("private", "business"))
    return Entity(
        "customer",
        fields,
        {
            "addresses": Association("many", "customer_address", "customerId"),
            "defaultBillingAddress": Association("one", "customer_address", "defaultBillingAddressId"),
            "defaultShippingAddress": Association("one", "customer_address", "defaultShippingAddressId"),
            "salutation": Association("one", "salutation", "salutationId"),
            "group": Association("one", "customer_group", "groupId"),
            "language": Association("one", "language", "languageId"),
            "salesChannel": Association("one", "sales_channel", "salesChannelId"),
            "orderCustomers": Association("many", "order_customer", "customerId"),
            **(
                {"defaultPaymentMethod": Association("one", "payment_method", "defaultPaymentMethodId")}
                if version.payment_method_on_customer
                else {}
            ),
        },
    )


def _customer_address(version: ShopVersion) -> Entity:
    capped = version.address_name_caps
    return Entity(
        "customer_address",
        {
            "id": Field("id"),
            "customerId": Field("fk", required=True, target="customer"),
            "countryId": Field("fk", required=True, target="country"),
            "countryStateId": Field("fk", target="country_state"),
            "salutationId": Field("fk", target="salutation"),
            "firstName": Field("string", required=True, max_len=50 if capped else 255),
            "lastName": Field("string", required=True, max_len=60 if capped else 255),
            "zipcode": Field("string", max_len=50 if capped else 255),
            "city": Field("string", required=True),
            "street": Field("string", required=True),
            "company": Field("string"),
            "department": Field("string"),
            "title": Field("string", max_len=100 if capped else 255),
            "phoneNumber": Field("string", max_len=40 if capped else 255),
            "additionalAddressLine1": Field("string"),
            "additionalAddressLine2": Field("string"),
            "customFields": Field("json"),
            "createdAt": Field("datetime"),
            "updatedAt": Field("datetime", auto=True),
        },
        {
            "country": Association("one", "country", "countryId"),
            "salutation": Association("one", "salutation", "salutationId"),
            "customer": Association("one", "customer", "customerId"),
        },
    )


def _customer_recovery() -> Entity:
    """``CustomerRecoveryDefinition``: the hash of a set-password link. The table has a unique key
    on ``customer_id`` (one open link per customer) and cascades the customer's delete."""
    return Entity(
        "customer_recovery",
        {
            "id": Field("id"),
            "hash": Field("string", required=True),
            "customerId": Field("fk", required=True, target="customer"),
            "createdAt": Field("datetime"),
            "updatedAt": Field("datetime", auto=True),
        },
        {"customer": Association("one", "customer", "customerId")},
    )


# core.loginRegistration.pwdRecoverUrl: the storefront's page for a recovery hash
RECOVER_URL = "/account/recover/password?hash=%%RECOVERHASH%%"

# Entities the Admin API may write in the sandbox (the rest is seeded, read-only data).
WRITABLE = ("customer", "customer_address", "customer_recovery")


def _read_only(name: str, names: list[str], associations: dict[str, Association] | None = None) -> Entity:
    fields = {n: Field("string") for n in names}
    fields.update({n: Field("datetime") for n in ("createdAt", "updatedAt")})
    fields["id"] = Field("id")
    return Entity(name, fields, associations or {})


def build_entities(version: ShopVersion) -> dict[str, Entity]:
    entities = [
        _customer(version),
        _customer_address(version),
        _customer_recovery(),
        _read_only(
            "sales_channel",
            [
                "name",
                "typeId",
                "accessKey",
                "active",
                "languageId",
                "customerGroupId",
                "paymentMethodId",
                "countryId",
                "currencyId",
                "shippingMethodId",
                "navigationCategoryId",
                "paymentMethodIds",
                "translated",
                "customFields",
            ],
            {
                "domains": Association("many", "sales_channel_domain", "salesChannelId"),
                "languages": Association("m2m", "language", "languageIds"),
                "countries": Association("m2m", "country", "countryIds"),
                "paymentMethods": Association("m2m", "payment_method", "paymentMethodIds"),
                "customerGroup": Association("one", "customer_group", "customerGroupId"),
                "language": Association("one", "language", "languageId"),
                "paymentMethod": Association("one", "payment_method", "paymentMethodId"),
                "country": Association("one", "country", "countryId"),
                "currency": Association("one", "currency", "currencyId"),
            },
        ),
        _read_only(
            "sales_channel_domain",
            ["url", "salesChannelId", "languageId", "currencyId", "snippetSetId", "translated"],
        ),
        _read_only(
            "customer_group", ["name", "displayGross", "registrationActive", "translated", "customFields"]
        ),
        _read_only("salutation", ["salutationKey", "displayName", "letterName", "translated"]),
        _read_only(
            "country",
            [
                "name",
                "iso",
                "iso3",
                "active",
                "position",
                "postalCodeRequired",
                "shippingAvailable",
                "translated",
            ],
        ),
        _read_only("country_state", ["name", "shortCode", "countryId", "translated"]),
        _read_only(
            "payment_method",
            ["name", "technicalName", "active", "position", "handlerIdentifier", "translated"],
        ),
        _read_only("currency", ["isoCode", "symbol", "factor", "shortName", "name", "translated"]),
        _read_only(
            "language",
            ["name", "localeId", "parentId", "translationCodeId"],
            {
                "locale": Association("one", "locale", "localeId"),
            },
        ),
        _read_only("locale", ["code", "name", "territory", "translated"]),
        _read_only(
            "order",
            [
                "orderNumber",
                "orderDateTime",
                "salesChannelId",
                "billingAddressId",
                "amountTotal",
                "amountNet",
                "currencyId",
                "languageId",
                "stateId",
            ],
            {
                "orderCustomer": Association("rev_one", "order_customer", "orderId"),
            },
        ),
        _read_only(
            "order_customer",
            [
                "orderId",
                "customerId",
                "email",
                "firstName",
                "lastName",
                "company",
                "customerNumber",
                "salutationId",
                "vatIds",
            ],
            {
                "order": Association("one", "order", "orderId"),
                "customer": Association("one", "customer", "customerId"),
            },
        ),
    ]
    return {e.name: e for e in entities}


def url_to_entity(segment: str) -> str:
    """``customer-address`` in URLs is ``customer_address`` in payloads and responses."""
    return segment.replace("-", "_")

"""A record the shop refuses is logged at warning, with the shop's reason and the field it named
(issue 14): an operator reading the log must see what to fix, not an info line saying "failed"."""

from __future__ import annotations

import pytest

from syncd.connectors.shopware6 import mapping
from syncd.connectors.woocommerce import push as woo_push
from tests.support.dbs import unique_name
from tests.support.flow_harness import Harness
from tests.support.mailserver import smtp_server, smtp_server_factory, smtp_tls_files  # noqa: F401
from tests.support.shops import shop  # noqa: F401 - the fixture


def _row(n: int, **kw) -> dict:
    row = {"number": n, "email": f"kunde{n}@example.com", "salutation": "Herr", "first_name": "Jürgen",
           "last_name": f"Müller-{n}", "street": "Königsallee 1", "zip": "40212", "city": "Düsseldorf",
           "country": "DE"}
    row.update(kw)
    return row


@pytest.fixture
def harness(tmp_path, shop, smtp_server):  # noqa: F811
    """For each platform kind (``shop``)."""
    h = Harness(tmp_path, f"sqlite:///{tmp_path / 'erp.db'}", unique_name("reject"), shop, smtp_server,
                addresses={"send_credentials": False})
    try:
        yield h
    finally:
        h.close()
        h.drop()


def _warnings(captured_logs, event: str) -> list[dict]:
    return [e for e in captured_logs.events() if e.get("event") == event]


def _spoil_in_the_shops_shape(harness, monkeypatch, number: int) -> tuple[str, str]:
    """Make the mapped record of ``number`` one that passes syncd's checks but the shop refuses;
    (the field the shop's answer names, how the reason starts)."""
    if harness.kit.kind == "woocommerce":  # WordPress refuses the e-mail (registration-error-invalid-email)
        original_map = woo_push.map_address

        def bad_email(address):
            mapped = original_map(address)
            if address.number == number:
                mapped.payload["email"] = mapped.payload["billing"]["email"] = "kunde@kaputt"
            return mapped

        monkeypatch.setattr(woo_push, "map_address", bad_email)
        return "email", "the shop refused the record"
    original = mapping.CustomerMapper.map

    def blank_last_name(self, address, **kw):
        mapped = original(self, address, **kw)
        if address.number == number:  # refused by the shop (NotBlank)
            mapped.payload["lastName"] = ""
        return mapped

    monkeypatch.setattr(mapping.CustomerMapper, "map", blank_last_name)
    return "lastName", "Shopware rejected the record"


def test_a_shop_side_rejection_is_a_warning_with_reason_and_field(harness, captured_logs, monkeypatch):
    harness.insert([_row(10001), _row(10002), _row(10003)])
    field, starts = _spoil_in_the_shops_shape(harness, monkeypatch, 10002)
    report = harness.run()
    assert report.counts["created"] == 2 and report.counts["failed"] == 1

    found = _warnings(captured_logs, "address rejected by the shop")
    assert len(found) == 1, captured_logs.text
    event = found[0]
    assert event["level"] == "warning" and event["address"] == 10002
    assert event["field"] == field
    assert field.lower() in event["reason"].lower() and event["reason"].startswith(starts)
    assert event["code"]
    # No info line claims the address as pushed/failed without the reason.
    assert not [e for e in captured_logs.events()
                if e.get("address") == 10002 and e.get("level") == "info"]


def test_a_mapping_rejection_names_the_erp_field(harness, captured_logs):
    # What the kind's mapping cannot send: Shopware requires a city, WooCommerce a name (or company).
    if harness.kit.kind == "woocommerce":
        blank, field, word = {"first_name": None, "last_name": None}, "last_name", "name"
    else:
        blank, field, word = {"city": None}, "city", "city"
    harness.insert([_row(10001), _row(10004, **blank)])
    harness.run()
    event, = _warnings(captured_logs, "address rejected by the shop")
    assert event["level"] == "warning" and event["address"] == 10004
    assert event["field"] == field and word in event["reason"]

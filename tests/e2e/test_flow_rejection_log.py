"""A record the shop refuses is logged at warning, with the shop's reason and the field it named
(issue 14): an operator reading the log must see what to fix, not an info line saying "failed"."""

from __future__ import annotations

import pytest

from syncd.connectors.shopware6 import mapping
from tests.support.dbs import unique_name
from tests.support.flow_harness import Harness
from tests.support.mailserver import smtp_server, smtp_server_factory, smtp_tls_files  # noqa: F401
from tests.support.shop_fixtures import sandbox  # noqa: F401


def _row(n: int, **kw) -> dict:
    row = {"number": n, "email": f"kunde{n}@example.com", "salutation": "Herr", "first_name": "Jürgen",
           "last_name": f"Müller-{n}", "street": "Königsallee 1", "zip": "40212", "city": "Düsseldorf",
           "country": "DE"}
    row.update(kw)
    return row


@pytest.fixture
def harness(tmp_path, sandbox, smtp_server):  # noqa: F811
    h = Harness(tmp_path, f"sqlite:///{tmp_path / 'erp.db'}", unique_name("reject"), sandbox, smtp_server,
                addresses={"send_credentials": False})
    try:
        yield h
    finally:
        h.close()
        h.drop()


def _warnings(captured_logs, event: str) -> list[dict]:
    return [e for e in captured_logs.events() if e.get("event") == event]


def test_a_shop_side_rejection_is_a_warning_with_reason_and_field(harness, captured_logs, monkeypatch):
    harness.insert([_row(10001), _row(10002), _row(10003)])
    original = mapping.CustomerMapper.map

    def blank_last_name(self, address, **kw):
        mapped = original(self, address, **kw)
        if address.number == 10002:  # passes syncd's checks, refused by the shop (NotBlank)
            mapped.payload["lastName"] = ""
        return mapped

    monkeypatch.setattr(mapping.CustomerMapper, "map", blank_last_name)
    report = harness.run()
    assert report.counts["created"] == 2 and report.counts["failed"] == 1

    found = _warnings(captured_logs, "address rejected by the shop")
    assert len(found) == 1, captured_logs.text
    event = found[0]
    assert event["level"] == "warning" and event["address"] == 10002
    assert event["field"] == "lastName"
    assert "lastName" in event["reason"] and event["reason"].startswith("Shopware rejected the record")
    assert event["code"]
    # No info line claims the address as pushed/failed without the reason.
    assert not [e for e in captured_logs.events()
                if e.get("address") == 10002 and e.get("level") == "info"]


def test_a_mapping_rejection_names_the_erp_field(harness, captured_logs):
    harness.insert([_row(10001), _row(10004, city=None)])
    harness.run()
    event, = _warnings(captured_logs, "address rejected by the shop")
    assert event["level"] == "warning" and event["address"] == 10004
    assert event["field"] == "city" and "city" in event["reason"]

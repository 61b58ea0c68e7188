"""A log event never has a word replaced by the redaction marker unless it is the secret (issue
14: "[REDACTED] failed" appeared for "connection failed"). The start-up sweep registered every
non-empty password field as sensitive; a field holding the word "connection" masked that word
in every line logged while the sweep ran."""

from __future__ import annotations

import pytest
import structlog

from syncd.connectors.erp.connector import SqlErp
from syncd.flows.erp_to_shop import settle_password_fields
from tests.support.dbs import unique_name
from tests.support.flow_harness import Harness
from tests.support.mailserver import smtp_server, smtp_server_factory, smtp_tls_files  # noqa: F401
from tests.support.shops import shop  # noqa: F401 - the fixture


@pytest.fixture
def harness(tmp_path, shop, smtp_server):  # noqa: F811
    """For each platform kind (``shop``)."""
    h = Harness(tmp_path, f"sqlite:///{tmp_path / 'erp.db'}", unique_name("sweepmask"), shop,
                smtp_server)
    try:
        yield h
    finally:
        h.close()
        h.drop()


def test_a_stray_word_in_a_password_field_does_not_mask_that_word(harness, captured_logs, monkeypatch):
    row = {"number": 10001, "email": "kunde@example.com", "first_name": "A", "last_name": "B",
           "street": "S 1", "zip": "1", "city": "C", "country": "DE"}
    harness.insert([row, dict(row, number=10002, email="zwei@example.com")])
    harness.update(10001, Sel5="connection")  # an operator's note in the wrong field
    harness.update(10002, Sel5="Ab3dEf7hJk9m")  # looks like a lost job's password: masked
    original = SqlErp.clear_password_fields

    def clear(self, numbers):
        structlog.get_logger("test").warning("ERP connection failed, retrying")
        structlog.get_logger("test").warning("value seen", value="Ab3dEf7hJk9m")
        return original(self, numbers)

    monkeypatch.setattr(SqlErp, "clear_password_fields", clear)
    settle_password_fields(harness.context())
    text = captured_logs.text
    assert "ERP connection failed, retrying" in text
    assert "[REDACTED] failed" not in text
    assert "Ab3dEf7hJk9m" not in text  # what could be a password still is masked
    assert harness.password_fields() == {}  # both fields cleared all the same

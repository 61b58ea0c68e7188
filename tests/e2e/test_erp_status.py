"""Issue 18: syncd writes the account status back into optional ERP columns
(``[erp.columns] credentials_sent_at``, ``account_state``) for office staff. SQLite ERP with two
extra columns, the sandbox of each platform kind, real SMTP, SQLite state."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.support.flow_harness import Harness, build_context
from tests.support.mailserver import smtp_server, smtp_server_factory, smtp_tls_files  # noqa: F401
from tests.support.shops import shop  # noqa: F401 - the fixture


def _person(n: int, **kw) -> dict:
    row = {"number": n, "email": f"kunde{n}@example.com", "first_name": "Jörg", "last_name": f"Kühn-{n}",
           "street": "Weg 1", "zip": "01067", "city": "Dresden", "country": "DE"}
    row.update(kw)
    return row


@pytest.fixture
def harness(tmp_path: Path, shop, smtp_server) -> Iterator[Harness]:  # noqa: F811
    url = f"sqlite:///{tmp_path / 'erp.db'}"
    h = Harness(tmp_path, url, "adressen", shop, smtp_server)
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # the office's two extra fields: a date and a short text
        conn.execute(sa.text('ALTER TABLE adressen ADD COLUMN "ZugangAm" DATETIME'))
        conn.execute(sa.text('ALTER TABLE adressen ADD COLUMN "KontoStatus" VARCHAR(20)'))
    engine.dispose()
    h.erp_settings = h.erp_settings.model_copy(update={"columns": h.erp_settings.columns.model_copy(
        update={"credentials_sent_at": "ZugangAm", "account_state": "KontoStatus"})})
    try:
        yield h
    finally:
        h.close()


def _status(h: Harness) -> dict[int, tuple]:
    engine = sa.create_engine(h.erp_url)
    try:
        with engine.connect() as conn:
            return {int(n): (at, state) for n, at, state in
                    conn.execute(sa.text('SELECT "AdrNr", "ZugangAm", "KontoStatus" FROM adressen'))}
    finally:
        engine.dispose()


def test_sent_at_and_state_reach_the_erp(harness: Harness) -> None:
    harness.addresses = {"send_credentials_since": "2024-01-01"}
    harness.insert([_person(10001), _person(10002, modified_at=datetime(2019, 1, 1))])
    before = datetime.now()
    harness.run()
    status = _status(harness)
    sent_at, state = status[10001]
    assert state == "mailed"
    sent = datetime.fromisoformat(str(sent_at))
    assert before - timedelta(seconds=5) <= sent <= datetime.now() + timedelta(seconds=5)
    assert status[10002] == (None, "mail held")
    # deactivation by the ERP's blocked flag shows too (where the kind deactivates: WooCommerce's
    # accounts stay as they are); the status write itself is no ERP change
    harness.update(10001, blocked=True)
    harness.run()
    assert _status(harness)[10001][1] == ("deactivated" if harness.kit.deactivates else "mailed")
    report = harness.run()
    assert report.counts.get("updated", 0) == 0


def test_unmapped_status_columns_write_nothing(harness: Harness) -> None:
    harness.erp_settings = harness.erp_settings.model_copy(update={"columns": harness.erp_settings.columns
                                                                   .model_copy(update={
                                                                       "credentials_sent_at": None,
                                                                       "account_state": None})})
    harness.insert([_person(10001)])
    harness.run()
    assert _status(harness)[10001] == (None, None)
    assert build_context  # the same wiring as the flow tests

"""The reported cycle: a bulk import leaves more than ``[erp] batch_size`` addresses on ONE
second-precision text stamp (SQLite ``DATETIME`` holding '2026-11-01 10:00:00'); every one of
them reaches the shop, and later cycles push only what changed. For each platform kind (``shop``
fixture: Shopware 6, WooCommerce)."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from tests.support.dbs import unique_name
from tests.support.flow_harness import Harness
from tests.support.mailserver import smtp_server, smtp_server_factory, smtp_tls_files  # noqa: F401
from tests.support.shops import shop  # noqa: F401

ROWS = 1_300  # three ERP pages of 500


def _stamp_all(h: Harness, text: str, numbers=None) -> None:
    """Set the change stamp as another program writes it: text, no fraction of a second."""
    engine = sa.create_engine(h.erp_url, poolclass=sa.pool.NullPool)
    try:
        where = "" if numbers is None else f" WHERE AdrNr IN ({', '.join(str(int(n)) for n in numbers)})"
        with engine.begin() as conn:
            conn.exec_driver_sql(f'UPDATE "{h.table}" SET Geaendert = ?{where}', (text,))
    finally:
        engine.dispose()


def test_a_bulk_on_one_text_stamp_reaches_the_shop_whole(tmp_path: Path, shop, smtp_server) -> None:  # noqa: F811
    h = Harness(tmp_path, f"sqlite:///{tmp_path / 'erp.db'}", unique_name("erp_bulk"), shop, smtp_server,
                addresses={"send_credentials": False})
    try:
        numbers = list(range(50_001, 50_001 + ROWS))
        postal = {"street": "Ringstraße 2", "zip": "1010", "city": "Wien", "country": "AT"}
        h.insert([{"number": n, "email": f"bulk{n}@example.com", "first_name": "Ida",
                   "last_name": f"Import {n}", **postal} for n in numbers])
        _stamp_all(h, "2026-11-01 10:00:00")

        first = h.run()
        assert first.counts["created"] == ROWS, (dict(first.counts), first.items[:1])
        by_number = h.accounts_by_number()
        assert sorted(int(n) for n in by_number) == numbers
        assert all(len(accounts) == 1 for accounts in by_number.values())

        idle = h.run()
        assert sum(idle.counts.values()) == 0, dict(idle.counts)

        h.update(50_777, last_name="Nachzügler")
        _stamp_all(h, "2026-11-01 10:00:01", [50_777])
        later = h.run()
        assert later.counts["updated"] == 1, dict(later.counts)
        assert h.accounts_by_number()["50777"][0].last_name == "Nachzügler"
    finally:
        h.close()
        h.drop()

"""``syncd.state.transfer`` on its own: the export is one read snapshot that a running daemon's
write neither blocks nor leaks into; an import that fails half-way leaves the target empty."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from syncd.state.db import open_state
from syncd.state.links import Link, Links
from syncd.state.transfer import TransferError, export_store, import_store

NOW = datetime(2026, 11, 30, 23, 59, 59, 123456, tzinfo=UTC)


def _link(n: int) -> Link:
    return Link("shop", f"{n:032x}", n, kind="email", email=f"a{n}@example.org", fingerprint="f" * 64)


def test_export_reads_a_snapshot_while_a_writer_holds_the_lock(tmp_path: Path):
    store = open_state(f"sqlite:///{tmp_path / 'state.db'}")
    links = Links(store, clock=lambda: NOW)
    links.upsert_many([_link(n) for n in (90001, 90002)])
    with store.begin() as writer:  # a daemon's cycle in the middle of a write
        links.upsert(_link(90003), conn=writer)
        result = export_store(store, tmp_path / "out.jsonl")
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()[1:-1]]
    assert result.rows["links"] == 2
    assert [r["row"]["erp_number"] for r in rows if r["table"] == "links"] == [90001, 90002]
    assert {r["row"]["created_at"] for r in rows if r["table"] == "links"} == {NOW.isoformat()}
    store.close()


def test_an_import_failing_half_way_leaves_the_target_empty(tmp_path: Path):
    source = open_state(f"sqlite:///{tmp_path / 'a.db'}")
    Links(source, clock=lambda: NOW).upsert_many([_link(n) for n in range(90001, 92501)])  # > one chunk
    export_store(source, tmp_path / "out.jsonl")
    source.close()
    lines = (tmp_path / "out.jsonl").read_text().splitlines()
    # a row near the end that the target refuses (a second personal link for one ERP number)
    bad = json.loads(lines[-2])
    bad["row"]["shop_id"] = "e" * 32
    broken = tmp_path / "broken.jsonl"
    broken.write_text("\n".join([*lines[:-2], lines[-2], json.dumps(bad), lines[-1]]) + "\n")
    target = open_state(f"sqlite:///{tmp_path / 'b.db'}")
    with pytest.raises(Exception):  # noqa: B017 - the database's own integrity error
        import_store(target, broken)
    assert Links(target).count("shop") == 0
    imported = import_store(target, tmp_path / "out.jsonl")
    assert imported.rows == {"links": 2500} and Links(target).count("shop") == 2500
    with pytest.raises(TransferError, match="not empty"):
        import_store(target, tmp_path / "out.jsonl")
    assert import_store(target, tmp_path / "out.jsonl", replace=True).rows == {"links": 2500}
    assert Links(target).get_by_erp("shop", 90001).created_at == NOW
    target.close()


@pytest.mark.realdb
def test_postgresql_back_to_sqlite_keeps_every_row_and_the_ids_go_on(tmp_path: Path):
    from syncd.state.jobs import CredentialJobs
    from tests.support.dbs import pg_schema_url

    with pg_schema_url() as url:
        source = open_state(url)
        try:
            Links(source, clock=lambda: NOW).upsert_many([_link(n) for n in (90001, 90002, 90003)])
            jobs = CredentialJobs(source)
            for n in (90001, 90002):
                jobs.create(platform="shop", erp_number=n, shop_id=f"{n:032x}", email=f"a{n}@example.org",
                            now=NOW)
            exported = export_store(source, tmp_path / "pg.jsonl")
        finally:
            source.close()
    assert exported.rows["links"] == 3 and exported.rows["credential_jobs"] == 2
    target = open_state(f"sqlite:///{tmp_path / 'back.db'}")
    try:
        import_store(target, tmp_path / "pg.jsonl")
        assert [lk.erp_number for lk in Links(target).iter("shop")] == [90001, 90002, 90003]
        jobs = CredentialJobs(target)
        assert sorted(j.erp_number for j in jobs.active("shop")) == [90001, 90002]
        new = jobs.create(platform="shop", erp_number=90003, shop_id=f"{90003:032x}", email="c@example.org",
                          now=NOW)
        assert new is not None and new > max(j.id for j in jobs.active("shop") if j.erp_number != 90003)
    finally:
        target.close()

import os
import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import insert, select, text

from syncd.state import schema
from syncd.state.db import current_revisions, head_revisions, open_state
from syncd.state.links import Link, Links
from tests.support.dbs import pg_schema_url


def _diff(store):
    with store.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": False})
        return compare_metadata(ctx, schema.metadata)


def test_sqlite_file_is_private_and_migrated(tmp_path):
    path = tmp_path / "var" / "lib" / "state.db"
    store = open_state(f"sqlite:///{path}")
    try:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
        assert current_revisions(store) == head_revisions()
        assert store.dialect_name == "sqlite"
        with store.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 5000
            assert conn.execute(text("PRAGMA synchronous")).scalar() == 1  # NORMAL
    finally:
        store.close()


def test_migrations_equal_schema_module_sqlite(tmp_path):
    store = open_state(f"sqlite:///{tmp_path / 's.db'}")
    try:
        assert _diff(store) == []
    finally:
        store.close()


def test_reopen_is_idempotent_and_keeps_data(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    with open_state(url) as store:
        Links(store).upsert(platform="p", shop_id="a", erp_number=10001)
    with open_state(url) as store:
        assert Links(store).get_by_erp("p", 10001).shop_id == "a"


def test_migrate_false_leaves_file_unmigrated(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    with open_state(url, migrate=False) as store:
        assert current_revisions(store) == set()


def test_in_memory_sqlite_shares_one_database():
    with open_state("sqlite://") as store:
        Links(store).upsert(platform="p", shop_id="a", erp_number=1)
        assert Links(store).count("p") == 1


def test_transaction_rolls_back_on_error(tmp_path):
    with open_state(f"sqlite:///{tmp_path / 's.db'}") as store:
        now = datetime.now(UTC)
        with pytest.raises(RuntimeError), store.begin() as conn:
            conn.execute(insert(schema.leases).values(name="x", holder="h", expires_at=now))
            raise RuntimeError("boom")
        with store.connect() as conn:
            assert conn.execute(select(schema.leases)).all() == []


def test_timestamps_come_back_utc_aware_and_naive_is_refused(tmp_path):
    with open_state(f"sqlite:///{tmp_path / 's.db'}") as store:
        berlin = datetime(2026, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=1)))
        with store.begin() as conn:
            conn.execute(insert(schema.leases).values(name="x", holder="h", expires_at=berlin))
        with store.connect() as conn:
            value = conn.execute(select(schema.leases.c.expires_at)).scalar_one()
        assert value == berlin and value.tzinfo == UTC and value.hour == 11
        with pytest.raises(Exception, match="naive datetime"), store.begin() as conn:
            conn.execute(insert(schema.leases).values(name="y", holder="h", expires_at=datetime(2026, 1, 1)))


def test_bad_url_is_a_config_error():
    from syncd.core.errors import ConfigError

    with pytest.raises(ConfigError, match="daemon.state_url"):
        open_state("not a url")
    with pytest.raises(ConfigError, match="unsupported"):
        open_state("mysql://x@127.0.0.1/db")


_OPEN = "import sys; from syncd.state.db import open_state; open_state(sys.argv[1]).close()"


def _open_concurrently(url: str, n: int = 3) -> None:
    procs = [
        subprocess.Popen([sys.executable, "-c", _OPEN, url], stderr=subprocess.PIPE, text=True)
        for _ in range(n)
    ]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * n, errors


def test_concurrent_first_start_sqlite(tmp_path):
    url = f"sqlite:///{tmp_path / 'race.db'}"
    _open_concurrently(url)
    with open_state(url, migrate=False) as store:
        assert current_revisions(store) == head_revisions()


@pytest.fixture
def pg_state_url():
    with pg_schema_url() as url:
        yield url


@pytest.mark.realdb
def test_postgres_store_migrates_matches_schema_and_works(pg_state_url):
    with open_state(pg_state_url) as store:
        assert store.dialect_name == "postgresql"
        assert current_revisions(store) == head_revisions()
        assert _diff(store) == []
        links = Links(store)
        links.upsert_many([Link("shop", f"id{i}", 10000 + i) for i in range(3)])
        links.upsert(platform="shop", shop_id="id1", erp_number=10001, fingerprint="f2")
        got = links.get_by_erp("shop", 10001)
        assert got.fingerprint == "f2" and got.created_at.tzinfo == UTC
        assert links.count("shop") == 3


@pytest.mark.realdb
def test_concurrent_first_start_postgres(pg_state_url):
    _open_concurrently(pg_state_url, n=4)
    with open_state(pg_state_url, migrate=False) as store:
        assert current_revisions(store) == head_revisions()


def test_probe_state_changes_nothing(tmp_path):
    from syncd.state.db import probe_state

    path = tmp_path / "new" / "state.db"
    ok, detail = probe_state(f"sqlite:///{path}")
    assert ok and "will be created" in detail
    assert not path.exists() and not path.parent.exists()

    with open_state(f"sqlite:///{path}"):
        pass
    ok, detail = probe_state(f"sqlite:///{path}")
    assert ok and "schema current" in detail

    os.chmod(path, 0o644)
    ok, detail = probe_state(f"sqlite:///{path}")
    assert ok and "chmod 600" in detail

    assert probe_state("nonsense")[0] is False
    assert probe_state("mysql://x@127.0.0.1/db")[0] is False


def test_probe_state_behind_and_ahead(tmp_path):
    from syncd.state.db import probe_state

    path = tmp_path / "s.db"
    with open_state(f"sqlite:///{path}", migrate=False):
        pass
    ok, detail = probe_state(f"sqlite:///{path}")
    assert ok and "migrated to" in detail
    with open_state(f"sqlite:///{path}") as store, store.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    ok, detail = probe_state(f"sqlite:///{path}")
    assert not ok and "newer syncd" in detail
    from syncd.state.db import StateStoreError

    with pytest.raises(StateStoreError, match="newer syncd"):
        open_state(f"sqlite:///{path}")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_probe_state_unwritable_folder(tmp_path):
    from syncd.state.db import probe_state

    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    assert probe_state(f"sqlite:///{locked / 'sub' / 's.db'}")[0] is False

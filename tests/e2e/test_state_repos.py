from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from syncd.core import redaction
from syncd.state import schema
from syncd.state.cache import Cache
from syncd.state.cursors import Cursors
from syncd.state.cycles import Cycles
from syncd.state.failures import Failures
from syncd.state.links import Link, Links
from tests.support.dbs import state_store


class Clock:
    def __init__(self):
        self.now = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)

    def __call__(self):
        return self.now

    def tick(self, seconds=1.0):
        self.now += timedelta(seconds=seconds)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.realdb)])
def store(request, tmp_path):
    with state_store(request.param, tmp_path) as s:
        yield s


@pytest.fixture
def clock():
    return Clock()


# --- links ---------------------------------------------------------------------------------

def test_link_upsert_keeps_created_at_and_updates_fields(store, clock):
    links = Links(store, clock=clock)
    first = links.upsert(platform="shop", shop_id="abc", erp_number=10001, email="a@x.de")
    assert first.created_at == clock.now and first.kind == "erp"
    clock.tick(60)
    second = links.upsert(first, email="b@x.de", fingerprint="f1")
    assert second.created_at == first.created_at
    assert second.updated_at == clock.now
    assert (second.email, second.fingerprint) == ("b@x.de", "f1")
    assert links.count("shop") == 1


def test_link_lookups_by_erp_and_shop(store):
    links = Links(store)
    links.upsert_many([Link("shop", f"s{i}", 10000 + i) for i in range(5)] + [Link("other", "s1", 20000)])
    assert links.get_by_erp("shop", 10003).shop_id == "s3"
    assert links.get_by_erp("shop", 99999) is None
    assert set(links.get_many("shop", [10001, 10002, 99])) == {10001, 10002}
    assert links.get_by_shop("other", "s1").erp_number == 20000
    assert set(links.get_by_shops("shop", ["s0", "s4", "nope"])) == {"s0", "s4"}
    assert links.get_by_shop("shop", "nope") is None


def test_many_lookups_beyond_one_in_list(store):
    links = Links(store)
    links.upsert_many([Link("shop", f"s{i:05d}", 10000 + i) for i in range(1200)])
    got = links.get_many("shop", range(10000, 11200))
    assert len(got) == 1200 and got[11199].shop_id == "s01199"
    assert len(list(links.iter("shop"))) == 1200  # more than one page
    assert [x.shop_id for x in links.iter("shop")][:2] == ["s00000", "s00001"]


def test_one_erp_number_cannot_get_two_personal_links(store):
    links = Links(store)
    links.upsert(platform="shop", shop_id="a", erp_number=10001)
    with pytest.raises(IntegrityError):
        links.upsert(platform="shop", shop_id="b", erp_number=10001)
    # ... but the collective address may carry many shop customers, and a personal link wins.
    links.upsert(platform="shop", shop_id="c1", erp_number=10000, kind="collective")
    links.upsert(platform="shop", shop_id="c2", erp_number=10000, kind="collective")
    assert links.count("shop", kind="collective") == 2
    assert links.get_by_erp("shop", 10000).shop_id == "c1"


def test_upsert_many_is_one_transaction(store):
    links = Links(store)
    links.upsert(platform="shop", shop_id="taken", erp_number=10005)
    batch = [Link("shop", "n1", 10001), Link("shop", "n2", 10005)]  # second clashes
    with pytest.raises(IntegrityError):
        links.upsert_many(batch)
    assert links.get_by_shop("shop", "n1") is None


def test_unknown_kind_refused(store):
    with pytest.raises(ValueError, match="kind"):
        Links(store).upsert(platform="shop", shop_id="a", erp_number=1, kind="weird")


def test_set_state(store, clock):
    links = Links(store, clock=clock)
    links.upsert(platform="shop", shop_id="a", erp_number=10001)
    clock.tick(5)
    assert links.set_state("shop", 10001, erp_blocked=True, shop_active=False) == 1
    got = links.get_by_erp("shop", 10001)
    assert got.erp_blocked is True and got.shop_active is False and got.updated_at == clock.now
    assert links.set_state("shop", 10001, fingerprint="ff") == 1
    assert links.get_by_erp("shop", 10001).erp_blocked is True  # untouched fields stay
    assert links.set_state("shop", 55555, erp_blocked=True) == 0
    assert links.set_state("shop", 10001) == 0
    assert links.delete("shop", "a") and links.count("shop") == 0


# --- cursors -------------------------------------------------------------------------------

def test_cursor_roundtrip_and_transactional_write(store):
    cursors = Cursors(store)
    assert cursors.get("shop", "erp-to-shop") is None
    cursors.set("shop", "erp-to-shop", {"since": "2026-01-01T00:00:00Z", "last": 10005})
    cursors.set("shop", "erp-to-shop", {"since": "2026-01-02T00:00:00Z", "last": 7})
    assert cursors.get("shop", "erp-to-shop") == {"since": "2026-01-02T00:00:00Z", "last": 7}
    assert cursors.get("other", "erp-to-shop") is None
    # written in the caller's transaction: rolled back with it
    with pytest.raises(RuntimeError), store.begin() as conn:
        cursors.set("shop", "shop-to-erp", {"x": 1}, conn=conn)
        raise RuntimeError
    assert cursors.get("shop", "shop-to-erp") is None
    with pytest.raises(TypeError):
        cursors.set("shop", "x", [1, 2])
    assert cursors.delete("shop") == 1


# --- failures ------------------------------------------------------------------------------

def test_failure_counts_up_and_clears(store, clock):
    failures = Failures(store, clock=clock)
    failures.record("shop", "erp-to-shop", 10001, "push", "invalid email", code="VIOLATION::EMAIL")
    first_seen = clock.now
    clock.tick(30)
    failures.record("shop", "erp-to-shop", 10001, "push", "still invalid")
    failures.record("shop", "shop-to-erp", "abc", "import", "no number free")
    [f] = [x for x in failures.list("shop") if x.record == "10001"]
    assert (f.count, f.reason, f.code) == (2, "still invalid", None)
    assert f.first_seen == first_seen and f.last_seen == clock.now
    assert failures.count("shop") == 2
    assert failures.list("other") == []
    assert failures.clear("shop", "erp-to-shop", 10001) is True
    assert failures.clear("shop", "erp-to-shop", 10001) is False
    assert failures.clear_many("shop", "shop-to-erp", ["abc", "zzz"]) == 1
    assert failures.count("shop") == 0


def test_failure_reason_is_redacted_before_storage(store, tmp_path):
    secret = "Pw-4711-geheim"
    with redaction.sensitive(secret):
        Failures(store).record("shop", "erp-to-shop", 1, "mail", f"SMTP said: bad password {secret}")
    [f] = Failures(store).list()
    assert secret not in f.reason and redaction.MASK in f.reason
    if store.dialect_name == "sqlite":
        store.close()
        assert secret.encode() not in (tmp_path / "state.db").read_bytes()


# --- cache ---------------------------------------------------------------------------------

def test_cache_get_set_max_age_and_clear(store, clock):
    cache = Cache(store, clock=clock)
    assert cache.get("erp", "columns") is None
    cache.set("erp", "columns", {"AdrNr": "int", "Na1": "str"})
    cache.set("shop", "groups", ["a", "b"])
    assert cache.get("erp", "columns") == {"AdrNr": "int", "Na1": "str"}
    clock.tick(100)
    assert cache.get("erp", "columns", max_age=200) is not None
    assert cache.get("erp", "columns", max_age=timedelta(seconds=50)) is None
    cache.set("erp", "columns", {"AdrNr": "int"})
    assert cache.get("erp", "columns", max_age=50) == {"AdrNr": "int"}
    assert cache.clear("erp") == 1
    assert cache.get("shop", "groups") == ["a", "b"]
    assert cache.clear() == 1


# --- cycles --------------------------------------------------------------------------------

def test_cycles_start_finish_last(store, clock):
    cycles = Cycles(store, clock=clock)
    assert cycles.last("shop") is None
    a = cycles.start("shop", "erp-to-shop", holder="host:1")
    clock.tick(3)
    cycles.finish(a, ok=True, counts={"created": 2, "updated": 1})
    clock.tick(10)
    b = cycles.start("shop", "shop-to-erp")
    last = cycles.last("shop")
    assert last.id == b and last.finished is None and last.ok is None
    done = cycles.last("shop", "erp-to-shop")
    assert done.ok is True and done.counts == {"created": 2, "updated": 1} and done.holder == "host:1"
    assert (done.finished - done.started) == timedelta(seconds=3)
    with redaction.sensitive("Cycle-Secret-9"):
        cycles.finish(b, ok=False, counts={}, error="login failed with Cycle-Secret-9")
    assert "Cycle-Secret-9" not in cycles.last("shop").error
    with pytest.raises(KeyError):
        cycles.finish(9999, ok=True, counts={})


def test_repositories_do_not_leak_naive_datetimes(store):
    Links(store).upsert(platform="p", shop_id="a", erp_number=1)
    with store.connect() as conn:
        created = conn.execute(select(schema.links.c.created_at)).scalar_one()
    assert created.tzinfo == UTC


def test_repository_writes_join_the_callers_transaction(store):
    links, failures, cursors, cycles = Links(store), Failures(store), Cursors(store), Cycles(store)
    failures.record("shop", "erp-to-shop", 10001, "push", "earlier failure")
    with pytest.raises(RuntimeError), store.begin() as conn:
        links.upsert(platform="shop", shop_id="a", erp_number=10001, conn=conn)
        failures.clear("shop", "erp-to-shop", 10001, conn=conn)
        cursors.set("shop", "erp-to-shop", {"last": 10001}, conn=conn)
        cycles.start("shop", "erp-to-shop", conn=conn)
        raise RuntimeError("crash before commit")
    # nothing of the unit survived, the earlier failure is still there
    assert links.count("shop") == 0 and cursors.get("shop", "erp-to-shop") is None
    assert cycles.last("shop") is None and failures.count("shop") == 1
    with store.begin() as conn:
        links.upsert(platform="shop", shop_id="a", erp_number=10001, conn=conn)
        failures.clear("shop", "erp-to-shop", 10001, conn=conn)
        cursors.set("shop", "erp-to-shop", {"last": 10001}, conn=conn)
    assert links.count("shop") == 1 and failures.count("shop") == 0
    assert cursors.get("shop", "erp-to-shop") == {"last": 10001}

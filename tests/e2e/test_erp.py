"""The ERP connector against three real backends: a SQLite file, PostgreSQL (psycopg) and
MariaDB through pyodbc + the MariaDB ODBC driver. Every test gets its own uniquely named table
(other test runs share the servers) and drops it afterwards."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa

from syncd.config.model import ErpColumns, ErpSettings
from syncd.connectors.erp import open_erp, stamps
from syncd.connectors.erp.connector import SqlErp
from syncd.core.domain import ErpAddress
from syncd.core.errors import ConfigError, PermanentError, TransientError
from tests.support.dbs import mariadb_url, pg_url, unique_name
from tests.support.erp_fixtures import (
    create_address_table,
    drop_table,
    fetch_row,
    fill_addresses,
    insert_addresses,
    update_address,
    utcnow,
)

BACKENDS = [
    "sqlite",
    pytest.param("postgresql", marks=pytest.mark.realdb),
    pytest.param("mariadb", marks=pytest.mark.realdb),
]


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/erp.sqlite"
    if request.param == "postgresql":
        return pg_url()
    return mariadb_url()


@pytest.fixture
def table(db_url):
    name = unique_name("erp")
    yield name
    drop_table(db_url, name)


@pytest.fixture
def settings(db_url, table) -> ErpSettings:
    return create_address_table(db_url, table)


@pytest.fixture
def erp(settings):
    connector = open_erp(settings, password_field="Sel5")
    yield connector
    connector.close()


def scan_all(erp: SqlErp, cursor, batch_size: int = 500) -> tuple[list[ErpAddress], dict]:
    scan = erp.scan_changes(cursor, batch_size=batch_size)
    found = [a for batch in scan.batches() for a in batch]
    return found, json.loads(json.dumps(scan.cursor()))  # as the state store keeps it


UNICODE_NAMES = [
    "Müller-Lüdenscheidt",
    "Straße ÄÖÜ äöü ß",
    "Preis 100 €",
    "李小龍",
    "Ελένη",
    "Ёжиков",
    "𝄞 Notenschlüssel",
]


# --- values -------------------------------------------------------------------------------------


def test_unicode_round_trips_through_read_write_and_insert(erp, db_url, table):
    insert_addresses(
        db_url,
        table,
        [
            {"number": 10000 + i, "last_name": name, "email": f"u{i}@example.com"}
            for i, name in enumerate(UNICODE_NAMES)
        ],
    )
    found = erp.get_addresses(range(10000, 10000 + len(UNICODE_NAMES)))
    assert [found[10000 + i].last_name for i in range(len(UNICODE_NAMES))] == UNICODE_NAMES
    assert found[10001].row["Nachname"] == UNICODE_NAMES[1]

    update_address(db_url, table, 10002, {"city": "Köln – Düsseldorf € 東京"})
    assert erp.read_columns(10002, ["Ort"]) == {"Ort": "Köln – Düsseldorf € 東京"}
    assert erp.create_address(
        20000, {"first_name": "Jürgen", "last_name": "Ørsted 李", "Bemerkung": "Grüße €"}
    )
    created = erp.get_address(20000)
    assert (created.first_name, created.last_name, created.row["Bemerkung"]) == (
        "Jürgen",
        "Ørsted 李",
        "Grüße €",
    )
    assert fetch_row(db_url, table, 20000)["Nachname"] == "Ørsted 李"


def test_values_are_normalised_and_bad_ones_reported_per_record(erp, db_url, table):
    insert_addresses(
        db_url,
        table,
        [
            {"number": 1, "country": "Deutschland", "blocked": False, "email": "  a@example.com "},
            {"number": 2, "country": "AUT", "blocked": True},
            {"number": 3, "country": "Narnia"},
            {"number": 4, "country": None, "company": None, "Gesperrt": ""},
            {"number": 5, "country": "ch", "Gesperrt": "X"},
            {"number": 6, "Gesperrt": "?"},
        ],
    )
    scanned, _ = scan_all(erp, None)
    by_number = {a.number: a for a in scanned}
    assert sorted(by_number) == [1, 2, 3, 4, 5, 6]  # one bad record does not stop the batch
    assert (by_number[1].country, by_number[1].blocked, by_number[1].email) == ("DE", False, "a@example.com")
    assert (by_number[2].country, by_number[2].blocked) == ("AT", True)
    assert by_number[3].country is None and any("Narnia" in p for p in by_number[3].problems)
    assert by_number[4].country is None and by_number[4].company is None and not by_number[4].blocked
    assert by_number[4].problems == ()
    assert (by_number[5].country, by_number[5].blocked) == ("CH", True)
    assert by_number[6].blocked and any("Gesperrt" in p for p in by_number[6].problems)


def test_over_long_values_are_refused_never_truncated(erp, db_url, table):
    insert_addresses(db_url, table, [{"number": 1, "zip": "50667"}])
    with pytest.raises(PermanentError, match=r"PLZ.*11 characters.*holds 10"):
        erp.create_address(3, {"zip": "12345678901", "email": "c@example.com"})
    assert fetch_row(db_url, table, 1)["PLZ"] == "50667"
    assert not erp.number_exists(3)
    with pytest.raises(PermanentError, match=r"address 2: .*Firma.*81 characters"):
        erp.create_address(2, {"company": "x" * 81, "email": "b@example.com"})
    assert not erp.number_exists(2)


def test_char_padding_is_trimmed(db_url, table):
    engine = sa.create_engine(db_url)
    t = sa.Table(
        table,
        sa.MetaData(),
        sa.Column("Nr", sa.CHAR(8), primary_key=True),
        sa.Column("Name", sa.CHAR(20)),
        sa.Column("Pw", sa.CHAR(16)),
    )
    t.create(engine)
    with engine.begin() as conn:
        conn.execute(sa.insert(t), [{"Nr": "100", "Name": "Groß", "Pw": None}])
    engine.dispose()
    settings = ErpSettings(url=db_url, address_table=table, columns=ErpColumns(number="Nr", last_name="Name"))
    erp = open_erp(settings, password_field="Pw")
    try:
        address = erp.get_address(100)  # numeric text number, CHAR-padded on PostgreSQL
        assert address.number == 100
        assert address.last_name == "Groß" and address.row["Name"] == "Groß"
        erp.write_password_fields({100: "abcdefghij"})
        assert erp.read_password_fields([100]) == {100: "abcdefghij"}
        assert erp.numbers_with_password() == [100]
        erp.clear_password_fields([100])
        assert erp.numbers_with_password() == []
    finally:
        erp.close()


# --- change detection ---------------------------------------------------------------------------


def test_first_scan_then_idle_then_changes(erp, db_url, table):
    insert_addresses(db_url, table, [{"number": n, "email": f"{n}@example.com"} for n in range(1, 8)])
    first, cursor = scan_all(erp, None, batch_size=3)
    assert sorted(a.number for a in first) == list(range(1, 8))

    idle, cursor = scan_all(erp, cursor)
    assert idle == []

    update_address(db_url, table, 4, {"email": "neu@example.com"})
    insert_addresses(db_url, table, [{"number": 8}])
    changed, cursor = scan_all(erp, cursor)
    assert sorted(a.number for a in changed) == [4, 8]
    assert next(a for a in changed if a.number == 4).email == "neu@example.com"
    assert scan_all(erp, cursor)[0] == []


def test_blocked_and_unblocked_transitions_are_changes(erp, db_url, table):
    insert_addresses(db_url, table, [{"number": 1, "blocked": True}, {"number": 2}])
    first, cursor = scan_all(erp, None)
    assert {a.number: a.blocked for a in first} == {1: True, 2: False}

    update_address(db_url, table, 1, {"blocked": False})
    changed, cursor = scan_all(erp, cursor)
    assert [(a.number, a.blocked) for a in changed] == [(1, False)]

    update_address(db_url, table, 2, {"blocked": True})
    changed, cursor = scan_all(erp, cursor)
    assert [(a.number, a.blocked) for a in changed] == [(2, True)]


def test_late_committed_row_with_older_timestamp_is_not_missed(erp, db_url, table):
    now = utcnow().replace(microsecond=0)
    insert_addresses(db_url, table, [{"number": 1, "modified_at": now}])
    _, cursor = scan_all(erp, None)
    # A transaction that started before the poll commits after it: its timestamp is older
    # than the watermark but inside the overlap window.
    insert_addresses(db_url, table, [{"number": 2, "modified_at": now - timedelta(seconds=120)}])
    late, cursor = scan_all(erp, cursor)
    assert [a.number for a in late] == [2]
    # Changed again without a new stamp (second-precision clocks): the window's hashes see it.
    update_address(db_url, table, 1, {"email": "x@example.com"}, touch=False)
    again, cursor = scan_all(erp, cursor)
    assert [(a.number, a.email) for a in again] == [(1, "x@example.com")]
    assert scan_all(erp, cursor)[0] == []


def test_rows_sharing_the_watermark_timestamp(erp, db_url, table):
    stamp = utcnow().replace(microsecond=0)
    insert_addresses(db_url, table, [{"number": n, "modified_at": stamp} for n in range(1, 6)])
    first, cursor = scan_all(erp, None, batch_size=2)  # pages split inside one timestamp
    assert sorted(a.number for a in first) == [1, 2, 3, 4, 5]
    insert_addresses(db_url, table, [{"number": 6, "modified_at": stamp}])
    more, cursor = scan_all(erp, cursor, batch_size=2)
    assert [a.number for a in more] == [6]
    assert scan_all(erp, cursor, batch_size=2)[0] == []


def test_rows_without_modified_at_are_read_by_the_first_scan(erp, db_url, table):
    insert_addresses(db_url, table, [{"number": 1, "modified_at": None}, {"number": 2}])
    first, cursor = scan_all(erp, None)
    assert sorted(a.number for a in first) == [1, 2]
    assert scan_all(erp, cursor)[0] == []


def test_a_table_whose_stamps_are_all_null_is_not_redelivered_every_poll(erp, db_url, table):
    insert_addresses(db_url, table, [{"number": n, "modified_at": None} for n in (1, 2, 3)])
    first, cursor = scan_all(erp, None, batch_size=2)
    assert sorted(a.number for a in first) == [1, 2, 3]
    assert scan_all(erp, cursor)[0] == []
    insert_addresses(db_url, table, [{"number": 4}])  # the first stamped row
    assert [a.number for a in scan_all(erp, cursor)[0]] == [4]


def test_partial_iteration_gives_a_cursor_for_what_was_delivered(erp, db_url, table):
    base = utcnow().replace(microsecond=0) - timedelta(hours=1)
    insert_addresses(
        db_url, table, [{"number": n, "modified_at": base + timedelta(minutes=n)} for n in range(1, 7)]
    )
    scan = erp.scan_changes(None, batch_size=2)
    batches = scan.batches()
    delivered = [a.number for a in next(batches)]
    cursor = scan.cursor()
    rest, _ = scan_all(erp, cursor, batch_size=2)
    assert delivered == [1, 2]
    assert sorted(a.number for a in rest) == [3, 4, 5, 6]


def test_hash_mode_without_modified_at(db_url, table):
    settings = create_address_table(db_url, table, with_modified_at=False)
    erp = open_erp(settings, password_field="Sel5")
    try:
        insert_addresses(db_url, table, [{"number": n, "blocked": n == 2} for n in range(1, 5)])
        first, cursor = scan_all(erp, None, batch_size=3)
        assert sorted(a.number for a in first) == [1, 2, 3, 4]
        assert cursor["mode"] == "hash"
        assert scan_all(erp, cursor)[0] == []

        update_address(db_url, table, 2, {"blocked": False})
        update_address(db_url, table, 3, {"city": "Bonn"})
        erp.write_password_fields({4: "Secret-12345"})  # the transient field is not a change
        changed, cursor = scan_all(erp, cursor)
        assert {a.number: a.blocked for a in changed} == {2: False, 3: False}
        assert scan_all(erp, cursor)[0] == []
    finally:
        erp.close()


@pytest.mark.slow
def test_100k_rows_idle_poll_reads_only_the_overlap_window(erp, db_url, table):
    newest = fill_addresses(db_url, table, 100_000, step_seconds=60)  # 5 rows per 300 s window
    first, cursor = scan_all(erp, None, batch_size=5000)
    assert len(first) == 100_000
    watermark = stamps.decode(cursor["streams"]["modified_at"]["watermark"])
    assert str(watermark)[:19].replace("T", " ") == newest.isoformat(" ")[:19]

    before = (erp.stats.statements, erp.stats.rows_read)
    idle, cursor = scan_all(erp, cursor, batch_size=5000)
    statements, rows = erp.stats.statements - before[0], erp.stats.rows_read - before[1]
    assert idle == []
    assert rows <= 6 and statements <= 2, (rows, statements)

    # 100 changes: touched rows get a fresh timestamp.
    engine = sa.create_engine(db_url)
    t = sa.Table(table, sa.MetaData(), autoload_with=engine)
    changed_numbers = list(range(100000, 110000, 100))
    with engine.begin() as conn:
        conn.execute(sa.update(t).where(t.c.AdrNr.in_(changed_numbers)).values(Geaendert=utcnow(), Ort="Neu"))
    engine.dispose()
    before = (erp.stats.statements, erp.stats.rows_read)
    changed, cursor = scan_all(erp, cursor, batch_size=5000)
    rows = erp.stats.rows_read - before[1]
    assert sorted(a.number for a in changed) == changed_numbers
    assert rows <= 100 + 6, rows
    assert scan_all(erp, cursor, batch_size=5000)[0] == []


# --- the password field -------------------------------------------------------------------------


def test_password_field_write_read_clear_and_sweep(erp, db_url, table):
    insert_addresses(db_url, table, [{"number": n} for n in (1, 2, 3)])
    erp.write_password_fields({1: "pw-one-123456", 2: "pw-two-123456"})
    assert erp.read_password_fields([1, 2, 3]) == {1: "pw-one-123456", 2: "pw-two-123456", 3: None}
    assert erp.numbers_with_password() == [1, 2]
    assert erp.get_address(1).row["Sel5"] == "pw-one-123456"  # layouts read it from the row

    erp.clear_password_fields([1])
    erp.clear_password_fields([1])  # idempotent
    assert erp.numbers_with_password() == [2]
    erp.write_password_fields({3: "pw-three-1234"})
    erp.clear_password_fields([1, 2, 3])
    erp.clear_password_fields([1, 2, 3])
    assert erp.read_password_fields([1, 2, 3]) == {1: None, 2: None, 3: None}


def test_password_batch_is_one_transaction(erp, db_url, table):
    insert_addresses(db_url, table, [{"number": 1}])
    with pytest.raises(PermanentError, match="not found: 99") as info:
        erp.write_password_fields({1: "Geheim-987654", 99: "Geheim-123456"})
    assert "Geheim" not in str(info.value)
    assert erp.read_password_fields([1]) == {1: None}


def test_password_too_long_for_the_field_is_refused_without_showing_it(erp, db_url, table):
    insert_addresses(db_url, table, [{"number": 1}])
    secret = "S" * 41
    with pytest.raises(PermanentError, match="41 characters.*holds 40") as info:
        erp.write_password_fields({1: secret})
    assert secret not in str(info.value)


def test_database_errors_never_carry_the_password(erp, db_url, table, captured_logs):
    insert_addresses(db_url, table, [{"number": 1}])
    erp.layout  # reflected while the table exists
    drop_table(db_url, table)
    secret = "Zq8-never-shown-7741"
    with pytest.raises(PermanentError) as info:
        erp.write_password_fields({1: secret})
    assert secret not in str(info.value) and secret not in repr(info.value.__cause__)
    assert secret not in captured_logs.text


def test_only_the_password_methods_write_the_password_field(erp, db_url, table):
    insert_addresses(db_url, table, [{"number": 1, "Sel5": None}])
    with pytest.raises(ConfigError, match="password field"):
        erp.create_address(2, {"Sel5": "x"})
    with pytest.raises(ConfigError, match="password field"):
        erp.create_address(2, {"sel5": "x", "email": "b@example.com"})
    with pytest.raises(ConfigError, match="password field"):
        erp.writer.create_address(2, {"SEL5": "x"}, lambda n: None)
    assert not erp.number_exists(2)
    assert erp.read_password_fields([1]) == {1: None}


# --- checks -------------------------------------------------------------------------------------


def failed(items):
    return {i.name: i.detail for i in items if not i.ok}


def test_check_passes_on_a_good_mapping(erp):
    items = erp.check(password_length=12)
    assert failed(items) == {}
    detail = {i.name: i.detail for i in items}
    assert "Sel5" in detail["platforms[].addresses.password_field"]
    assert "40" in detail["platforms[].addresses.password_field"]
    assert "watermark" in detail["change detection"]
    erp.validate()


def test_password_field_of_wrong_type(db_url, table):
    settings = create_address_table(db_url, table, password_type="int")
    erp = open_erp(settings, password_field="Sel5")
    try:
        problems = failed(erp.check(password_key="platforms[0].addresses.password_field"))
        assert "not a text type" in problems["platforms[0].addresses.password_field"]
        assert "INT" in problems["platforms[0].addresses.password_field"].upper()
        with pytest.raises(ConfigError, match="not a text type") as info:
            erp.validate(password_key="platforms[0].addresses.password_field")
        assert info.value.key == "platforms[0].addresses.password_field"
        with pytest.raises(ConfigError):
            erp.write_password_fields({1: "abcdefghijkl"})
    finally:
        erp.close()


def test_password_field_too_short(db_url, table):
    settings = create_address_table(db_url, table, password_len=8)
    erp = open_erp(settings, password_field="Sel5")
    try:
        detail = failed(erp.check())["platforms[].addresses.password_field"]
        assert "holds 8 characters" in detail and "at least 12" in detail
        # the ERP's own minimum applies even to a short configured password
        assert "at least 10" in failed(erp.check(password_length=8))["platforms[].addresses.password_field"]
        assert erp.password_field_length == 8
        assert failed(erp.with_password_field("Sel6").check(password_length=20)) == {}
        assert erp.with_password_field("Sel6").password_field_length == 80
        assert "at least 90" in failed(erp.check("Sel6", 90))["platforms[].addresses.password_field"]
    finally:
        erp.close()


def test_password_field_missing_or_mapped_elsewhere(db_url, table):
    settings = create_address_table(db_url, table, password_field=None)
    erp = open_erp(settings, password_field="Sel11")
    try:
        detail = failed(erp.check())["platforms[].addresses.password_field"]
        assert "'Sel11' not found" in detail and table in detail and "near matches: Sel1" in detail
        with pytest.raises(ConfigError, match="Sel11"):
            erp.validate()
        detail = failed(erp.check("EMail", 12))["platforms[].addresses.password_field"]
        assert "also mapped as erp.columns.email" in detail
    finally:
        erp.close()


def test_unknown_table_and_columns_are_named_with_near_matches(db_url, table):
    settings = create_address_table(db_url, table)
    wrong = settings.model_copy(update={"columns": settings.columns.model_copy(update={"email": "EMial"})})
    erp = open_erp(wrong)
    try:
        with pytest.raises(ConfigError) as info:
            erp.get_address(1)
        assert info.value.key == "erp.columns.email"
        assert "'EMial' not found in " + table in str(info.value) and "near matches: EMail" in str(info.value)
        assert "near matches: EMail" in failed(erp.check())["erp.columns.email"]
    finally:
        erp.close()
    missing = settings.model_copy(update={"address_table": table + "_x"})
    erp = open_erp(missing)
    try:
        with pytest.raises(ConfigError) as info:
            erp.validate()
        assert info.value.key == "erp.address_table" and table in str(info.value)
    finally:
        erp.close()


def test_unreachable_server_is_transient_and_reported_by_check(tmp_path):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = ErpSettings(
        url=f"postgresql+psycopg://postgres@127.0.0.1:{port}/nothing",
        address_table="a",
        columns=ErpColumns(number="n"),
        connect_timeout="2s",
    )
    erp = open_erp(settings)
    items = erp.check()
    assert [(i.name, i.ok) for i in items] == [("connection", False)]
    assert str(port) in items[0].detail
    with pytest.raises(TransientError):
        erp.get_address(1)


def test_config_errors_for_url_and_table():
    with pytest.raises(ConfigError) as info:
        open_erp(ErpSettings(url="not a url"))
    assert info.value.key == "erp.url"
    erp = open_erp(ErpSettings(url="sqlite://"))
    with pytest.raises(ConfigError) as info:
        erp.validate()
    assert info.value.key == "erp.address_table"


# --- shop -> ERP writes -------------------------------------------------------------------------


def test_create_address_on_a_taken_number_returns_false(erp, db_url, table):
    insert_addresses(db_url, table, [{"number": 10000, "email": "old@example.com"}])
    assert erp.create_address(10000, {"email": "new@example.com"}) is False
    assert fetch_row(db_url, table, 10000)["EMail"] == "old@example.com"
    assert erp.create_address(10001, {"email": "new@example.com", "country": "DE", "blocked": False})
    row = fetch_row(db_url, table, 10001)
    assert (row["EMail"], row["Land"], row["Gesperrt"]) == ("new@example.com", "DE", "0")
    assert row["Geaendert"] is not None  # so change detection sees the new address


def test_concurrent_creates_of_one_number_let_exactly_one_win(erp):
    results: list[bool] = []
    barrier = threading.Barrier(4)

    def create(i: int) -> None:
        barrier.wait()
        results.append(erp.create_address(500, {"email": f"racer{i}@example.com"}))

    threads = [threading.Thread(target=create, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False, False, False, True]


def test_retried_create_with_our_shop_id_counts_as_created(erp, db_url, table):
    assert erp.create_address(700, {"email": "a@example.com", "shop_id": "abc123"})
    # the reply of the first insert was lost, the retry finds our own row
    assert erp.create_address(700, {"email": "a@example.com", "shop_id": "abc123"}) is True
    assert erp.create_address(700, {"email": "b@example.com", "shop_id": "other"}) is False
    assert erp.find_numbers("shop_id", "abc123") == [700]


def test_template_fields_read_and_copied_into_a_new_address(erp, db_url, table):
    insert_addresses(
        db_url, table, [{"number": 10000, "Status": "Shop-Kunde", "customer_group": "Händler", "Sel2": "€"}]
    )
    copied = erp.read_columns(10000, ["Status", "customer_group", "Sel2"])
    assert copied == {"Status": "Shop-Kunde", "customer_group": "Händler", "Sel2": "€"}
    assert erp.create_address(10001, {**copied, "email": "neu@example.com"})
    row = fetch_row(db_url, table, 10001)
    assert (row["Status"], row["Gruppe"], row["Sel2"], row["EMail"]) == (
        "Shop-Kunde",
        "Händler",
        "€",
        "neu@example.com",
    )
    with pytest.raises(PermanentError, match="address 999 not found"):
        erp.read_columns(999, ["Status"])
    with pytest.raises(ConfigError, match="Statsu.*near matches: Status"):
        erp.read_columns(10000, ["Statsu"])


def test_find_numbers_and_read_columns(erp, db_url, table):
    insert_addresses(
        db_url, table, [{"number": 1, "email": "a@example.com"}, {"number": 2, "email": "b@example.com"}]
    )
    update_address(db_url, table, 2, {"shop_id": "0f1e2d"})
    update_address(db_url, table, 1, {"Sel1": "Infobrief"})
    assert erp.find_numbers("shop_id", "0f1e2d") == [2]
    assert erp.find_numbers("EMail", "a@example.com") == [1]
    assert erp.find_numbers("email", "nobody@example.com") == []
    assert erp.read_columns(1, ["Sel1", "email"]) == {"Sel1": "Infobrief", "email": "a@example.com"}
    assert erp.number_exists(2) and not erp.number_exists(3)
    with pytest.raises(PermanentError, match="address 3 not found"):
        erp.read_columns(3, ["Sel1"])
    with pytest.raises(ConfigError, match="address number"):
        erp.create_address(5, {"AdrNr": 5})


# --- lost connections ---------------------------------------------------------------------------


def _kill_pooled_connection(erp: SqlErp, db_url: str) -> None:
    """Terminate the server session behind the connection sitting in the connector's pool."""
    name = erp.engine.dialect.name
    with erp.engine.connect() as conn:
        query = "SELECT pg_backend_pid()" if name == "postgresql" else "SELECT CONNECTION_ID()"
        session = conn.exec_driver_sql(query).scalar()
    admin = sa.create_engine(db_url, poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        if name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_terminate_backend({int(session)})")
        else:
            conn.exec_driver_sql(f"KILL {int(session)}")
    admin.dispose()


@pytest.mark.parametrize("pre_ping", [True, False], ids=["pre-ping", "retry"])
def test_lost_connection_is_retried(erp, db_url, table, pre_ping, captured_logs):
    if db_url.startswith("sqlite"):
        pytest.skip("SQLite is a file: there is no server connection to lose")
    insert_addresses(db_url, table, [{"number": 1}])
    erp.get_address(1)
    if not pre_ping:
        erp.engine.pool._pre_ping = False  # the connection dies between the ping and the statement
    _kill_pooled_connection(erp, db_url)
    erp.write_password_fields({1: "after-kill-123"})
    assert erp.read_password_fields([1]) == {1: "after-kill-123"}
    if not pre_ping:
        assert '"retrying"' in captured_logs.text and "connection problem" in captured_logs.text


# --- read source, ODBC strings, cache -----------------------------------------------------------


def test_view_as_read_source_and_table_for_writes(db_url, table, settings):
    view = table + "_v"
    engine = sa.create_engine(db_url)
    q = engine.dialect.identifier_preparer.quote
    with engine.begin() as conn:
        conn.exec_driver_sql(
            f"CREATE VIEW {q(view)} AS SELECT {q('AdrNr')}, {q('EMail')}, {q('Gesperrt')}, {q('Geaendert')}, "
            f"{q('Sel5')} FROM {q(table)} WHERE {q('Status')} = 'Web'"
        )
    engine.dispose()
    columns = ErpColumns(number="AdrNr", email="EMail", blocked="Gesperrt", modified_at="Geaendert")
    erp = open_erp(
        ErpSettings(url=db_url, address_table=table, read_source=view, columns=columns), password_field="Sel5"
    )
    try:
        insert_addresses(db_url, table, [{"number": 1, "Status": "Web"}, {"number": 2, "Status": "Intern"}])
        found, _ = scan_all(erp, None)
        assert [a.number for a in found] == [1]  # the view decides what is synced
        assert set(found[0].row) == {"AdrNr", "EMail", "Gesperrt", "Geaendert", "Sel5"}
        erp.write_password_fields({1: "via-the-table-1"})
        assert erp.get_address(1).row["Sel5"] == "via-the-table-1"
        assert erp.create_address(3, {"email": "c@example.com", "Status": "Web"})  # a table column
        assert erp.get_address(3).email == "c@example.com"
        assert [i for i in erp.check() if not i.ok] == []
        detail = failed(erp.check("Sel4", 12))["platforms[].addresses.password_field"]
        assert "not part of the read source" in detail
    finally:
        erp.close()
        engine = sa.create_engine(db_url)
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP VIEW IF EXISTS {q(view)}")
        engine.dispose()


def test_odbc_connection_string_url():
    """The reference ODBC path with an ``odbc_connect`` string, as an operator writes it for a DSN-less
    connection; the MariaDB server of the tests answers it."""
    url = mariadb_url()
    table = unique_name("erp")
    from sqlalchemy.engine import make_url

    u = make_url(url)
    odbc = (
        f"DRIVER={{MariaDB Unicode}};SERVER={u.host};PORT={u.port or 3306};DATABASE={u.database};"
        f"UID={u.username};CHARSET=utf8mb4"
    )
    from urllib.parse import quote_plus

    settings = create_address_table(url, table)
    odbc_settings = settings.model_copy(update={"url": "mysql+pyodbc:///?odbc_connect=" + quote_plus(odbc)})
    erp = open_erp(odbc_settings, password_field="Sel5")
    try:
        insert_addresses(url, table, [{"number": 1, "last_name": "Weiß 李"}])
        assert erp.get_address(1).last_name == "Weiß 李"
        assert [i for i in erp.check() if not i.ok] == []
    finally:
        erp.close()
        drop_table(url, table)


def test_reflection_is_kept_in_the_callers_cache(settings, db_url, table):
    class Cache:
        def __init__(self):
            self.data = {}

        def get(self, scope, key):
            return self.data.get((scope, key))

        def set(self, scope, key, value):
            import json

            self.data[(scope, key)] = json.loads(json.dumps(value))  # must survive a JSON store

    cache = Cache()
    first = open_erp(settings, cache=cache, password_field="Sel5")
    first.layout
    assert [k for k in cache.data] == [("erp", f"table::{table}")]
    first.close()
    second = open_erp(settings, cache=cache, password_field="Sel5")
    insert_addresses(db_url, table, [{"number": 1, "email": "a@example.com"}])
    before = second.stats.statements
    assert second.get_address(1).email == "a@example.com"
    assert second.stats.statements - before == 1  # no catalogue queries: the layout came from the cache
    assert second.layout.write.column("Sel5").length == 40
    second.close()
    cache.data[("erp", f"table::{table}")] = {"name": table, "cols": []}  # left by another version
    third = open_erp(settings, cache=cache, password_field="Sel5")
    assert third.get_address(1).email == "a@example.com"
    assert "columns" in cache.data[("erp", f"table::{table}")]
    third.close()


def test_configured_names_match_a_catalogue_in_other_case(db_url, table):
    """PostgreSQL folds unquoted names to lower case: an operator's AdrNr/Sel5 must still work,
    and layouts must find the password under the configured spelling."""
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            f"CREATE TABLE {table} (adrnr INTEGER PRIMARY KEY, email VARCHAR(100), sel5 VARCHAR(40), "
            "geaendert TIMESTAMP NULL)"
        )
    engine.dispose()
    settings = ErpSettings(
        url=db_url,
        address_table=table.upper(),
        columns=ErpColumns(number="AdrNr", email="EMail", modified_at="Geaendert"),
    )
    erp = open_erp(settings, password_field="Sel5")
    try:
        assert [i for i in erp.check() if not i.ok] == []
        assert erp.create_address(1, {"email": "a@example.com"})
        erp.write_password_fields({1: "case-folded-1"})
        (address,) = [a for batch in erp.scan_changes(None).batches() for a in batch]
        assert address.email == "a@example.com"
        assert address.row["Sel5"] == address.row["sel5"] == "case-folded-1"
        assert address.row["EMail"] == "a@example.com"
    finally:
        erp.close()


@pytest.mark.parametrize("with_modified_at", [True, False], ids=["watermark", "hash"])
def test_a_row_with_a_non_numeric_number_is_skipped_not_fatal(db_url, table, with_modified_at, captured_logs):
    engine = sa.create_engine(db_url)
    t = sa.Table(
        table,
        sa.MetaData(),
        sa.Column("Nr", sa.Unicode(12), primary_key=True),
        sa.Column("Mail", sa.Unicode(100)),
        sa.Column("Pw", sa.Unicode(40)),
        *([sa.Column("Stamp", sa.DateTime)] if with_modified_at else []),
    )
    t.create(engine)
    stamp = {"Stamp": utcnow()} if with_modified_at else {}
    with engine.begin() as conn:
        conn.execute(
            sa.insert(t),
            [{"Nr": nr, "Mail": f"{i}@example.com", **stamp} for i, nr in enumerate(["100", "K-7", "101"])],
        )
    engine.dispose()
    columns = ErpColumns(number="Nr", email="Mail", modified_at="Stamp" if with_modified_at else None)
    erp = open_erp(ErpSettings(url=db_url, address_table=table, columns=columns), password_field="Pw")
    try:
        scan = erp.scan_changes(None)
        found = [a for batch in scan.batches() for a in batch]
        cursor = scan.cursor()
        assert sorted(a.number for a in found) == [100, 101]
        assert scan.rejected == [("K-7", "Nr: address number 'K-7' is not numeric text")]
        assert "erp_row_skipped" in captured_logs.text and "K-7" in captured_logs.text
        assert scan_all(erp, cursor)[0] == []
        erp.write_password_fields({101: "text-number-1"})
        assert erp.numbers_with_password() == [101]
    finally:
        erp.close()


def test_password_methods_on_more_numbers_than_one_statement_takes(erp, db_url, table):
    fill_addresses(db_url, table, 1200, first_number=100000)
    numbers = list(range(100000, 101200))
    erp.write_password_fields({n: f"pw-{n}-x" for n in numbers})
    assert len(erp.numbers_with_password()) == 1200
    values = erp.read_password_fields(numbers)
    assert values[100000] == "pw-100000-x" and values[101199] == "pw-101199-x"
    erp.clear_password_fields(numbers[:1100])
    assert erp.numbers_with_password() == numbers[1100:]
    erp.clear_password_fields(numbers)
    assert erp.numbers_with_password() == []


def test_check_names_a_number_column_without_key_and_a_wrong_change_column(db_url, table):
    engine = sa.create_engine(db_url)
    t = sa.Table(
        table,
        sa.MetaData(),
        sa.Column("Nr", sa.Integer),
        sa.Column("Mail", sa.Unicode(100)),
        sa.Column("Stamp", sa.Unicode(30)),
        sa.Column("Pw", sa.Unicode(40)),
    )
    t.create(engine)
    engine.dispose()
    columns = ErpColumns(number="Nr", email="Mail", modified_at="Stamp")
    erp = open_erp(ErpSettings(url=db_url, address_table=table, columns=columns), password_field="Pw")
    try:
        problems = failed(erp.check())
        assert "needs a timestamp" in problems["erp.columns.modified_at"]
        assert "VARCHAR" in problems["erp.columns.modified_at"].upper()
        fixed = open_erp(
            ErpSettings(url=db_url, address_table=table, columns=ErpColumns(number="Nr", email="Mail")),
            password_field="Pw",
        )
        assert "neither primary key nor unique" in failed(fixed.check())["erp.columns.number"]
        fixed.close()
    finally:
        erp.close()


# --- passwords from secret references, on a server that checks them ------------------------------


@pytest.fixture
def mariadb_user():
    """A throw-away MariaDB account with a password full of ODBC/URL special characters."""
    url = mariadb_url()
    user = unique_name("syncd")[:32]
    password = "p;w}d{x=1@:/%"
    admin = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY '{password}'")
        conn.exec_driver_sql(f"GRANT ALL ON syncd_test.* TO '{user}'@'127.0.0.1'")
    yield url, user, password
    with admin.begin() as conn:
        conn.exec_driver_sql(f"DROP USER IF EXISTS '{user}'@'127.0.0.1'")
    admin.dispose()


def test_keyring_and_env_passwords_reach_the_server(mariadb_user, memory_keyring, monkeypatch):
    url, user, password = mariadb_user
    table = unique_name("erp")
    memory_keyring.set_password("syncd", "erp", password)
    monkeypatch.setenv("SYNCD_TEST_ERP_PW", password)
    settings = create_address_table(url, table)
    try:
        _login_with_secret_references(url, user, password, settings, table)
    finally:
        drop_table(url, table)


def _login_with_secret_references(url, user, password, settings, table):
    from urllib.parse import quote_plus

    from syncd.config.secrets import resolve_secret

    plain = f"mysql+pyodbc://{user}@127.0.0.1:3306/syncd_test?driver=MariaDB+Unicode&charset=utf8mb4"
    odbc = "mysql+pyodbc:///?odbc_connect=" + quote_plus(
        "DRIVER={MariaDB Unicode};SERVER=127.0.0.1;PORT=3306;DATABASE=syncd_test;"
        f"UID={user};CHARSET=utf8mb4"
    )
    insert_addresses(url, table, [{"number": 1, "email": "a@example.com"}])
    for erp_url, ref in ((plain, "keyring:syncd/erp"), (odbc, "env:SYNCD_TEST_ERP_PW")):
        resolved = resolve_secret(ref, file=None, key="erp.password")
        erp = open_erp(settings.model_copy(update={"url": erp_url}), password=resolved)
        try:
            assert erp.get_address(1).email == "a@example.com"
            assert all(i.ok for i in erp.check()), erp.check()
            assert password not in " ".join(i.detail for i in erp.check())
        finally:
            erp.close()
        wrong = open_erp(settings.model_copy(update={"url": erp_url}), password="not-the-password")
        try:
            items = wrong.check()
            assert [(i.name, i.ok) for i in items] == [("connection", False)]
            assert "denied" in items[0].detail.lower() and password not in items[0].detail
            with pytest.raises(PermanentError):  # a refused login is not retried for two minutes
                wrong.get_address(1)
        finally:
            wrong.close()

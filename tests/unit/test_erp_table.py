"""``AddressTable`` on its own, on an in-memory SQLite database: keyset pages, the forms of the
number column and what a lookup binds (milliseconds; the backends' matrix is in
``test_erp_numbers.py``)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import StaticPool

from syncd.config.model import ErpColumns, ErpSettings
from syncd.connectors.erp import AddressTable
from syncd.connectors.erp.reflect import MemoryCache
from syncd.connectors.erp.table import form_of, render


def _table(ddl: str, numbers: list) -> AddressTable:
    engine = sa.create_engine("sqlite://", poolclass=StaticPool)
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE adr (Nr {ddl} PRIMARY KEY, Name VARCHAR(20), Stamp INTEGER)"))
        conn.execute(
            sa.text("INSERT INTO adr VALUES (:n, :name, :s)"),
            [{"n": n, "name": f"N{i}", "s": 100 + i // 2} for i, n in enumerate(numbers)],
        )
    columns = ErpColumns(number="Nr", last_name="Name", modified_at="Stamp")
    return AddressTable(
        ErpSettings(url="sqlite://", address_table="adr", columns=columns), engine, MemoryCache()
    )


@pytest.mark.parametrize(
    ("stored", "form", "twelve"),
    [
        (12, ("int",), 12),
        ("480", ("text", 0, 0, 0), "12"),
        ("00480", ("text", 5, 0, 0), "00012"),
        ("  480", ("text", 0, 5, 0), "   12"),
        ("480   ", ("text", 0, 0, 6), "12    "),
        ("00480     ", ("text", 5, 0, 10), "00012     "),
        ("0", ("text", 0, 0, 0), "12"),
    ],
)
def test_a_stored_number_gives_its_form_and_the_form_renders_other_numbers(stored, form, twelve):
    assert form_of(stored) == form
    assert render(12, form) == twelve


@pytest.mark.parametrize("value", [None, True, "K-7", "", "12a", "١٢", 1.5])
def test_values_that_are_no_number_have_no_form(value):
    assert form_of(value) is None


def test_an_integer_column_binds_the_integer_without_probing():
    table = _table("INTEGER", [3, 1, 2])
    assert table.layout.number().column.kind == "int"
    statements = table.stats.statements
    assert table.number_binds([2, 2, 9]) == [[2, 9]]
    assert table.stats.statements - statements == 0


def test_a_padded_text_column_binds_every_form_its_ends_show():
    table = _table("VARCHAR(12)", ["00007", "00480", "10001"])
    assert table.number_binds([12]) == [["12", "00012"]]
    assert table.number_value(13) == "00013"
    chunks = table.number_binds(range(1200))
    assert [len(c) for c in chunks] == [1000, 1000, 400]  # 500 numbers x 2 forms per statement
    assert {"0", "00000", "1199", "01199"} <= {v for c in chunks for v in c}


def test_pages_follow_the_keyset_and_teach_the_forms_they_read():
    table = _table("VARCHAR(12)", ["   3", "00011", "9", "12"])
    assert table.number_binds([11]) == [["11", "  11"]]  # the ends: "   3" and "9"
    first = table.page_by_number(None, 2)
    assert [n for _row, n in first] == ["   3", "00011"]
    assert [n for _row, n in table.page_by_number(first[-1][1], 2)] == ["12", "9"]
    assert table.number_binds([11]) == [["11", "  11", "00011"]]

    pages, after = [], None
    while page := table.page_modified(None, after, 3):
        pages.append([(n, s) for _row, n, s in page])
        after = (page[-1][2], page[-1][1])
    assert pages == [[("   3", 100), ("00011", 100), ("12", 101)], [("9", 101)]]
    assert table.to_address(first[1][0], None).number == 11

"""Issue 18 through the `syncd` command: `sync --dry-run` and `check` say how many mails the next
cycle sends, `accounts list/export --never-mailed`, `accounts export --excel`, `syncd release`.
SQLite ERP, the sandbox, the outbox transport."""

from __future__ import annotations

import csv
import io
from datetime import datetime

from syncd.flows.accounts import CSV_HEADER
from tests.support import wired_env as wired
from tests.support.wired_env import Env

# fixtures, found by these module-level names: ``env`` runs each case for each platform kind
env, shop, sandbox = wired.kind_env, wired.shop, wired.sandbox


def _old(e: Env, *numbers: int) -> None:
    """Make these ERP rows look like customers of long before go-live."""
    for n in numbers:
        wired.erp_fixtures.update_address(e.erp_url, wired.TABLE, n,
                                          {"modified_at": datetime(2019, 5, 1, 10, 0)}, touch=False)


def test_dry_run_and_check_count_the_mails_of_the_next_cycle(env: Env, capsys) -> None:
    env.write_config(addresses='send_credentials_since = "2024-01-01"')
    _old(env, 10001)
    code, out, err = env.cli(capsys, "sync", "--dry-run", "--direction", "erp-to-shop")
    assert code == 0, err
    # 10001 is old (held), 10002 is new (mailed), 10003 has no usable e-mail
    assert "the next cycle would send 1 credentials mail(s)" in out
    assert "held / zurückgehalten: 1" in out
    code, out, err = env.cli(capsys, "check")
    assert "1 credentials mail(s) / Zugangsdaten-Mail(s); 1 held at go-live" in out.replace("\n", " ") or \
        "1 credentials mail(s)" in out, out
    assert env.outbox_files() == []

    code, _, err = env.cli(capsys, "sync", "--direction", "erp-to-shop")
    assert code == 0, err
    assert len(env.outbox_files()) == 1
    code, out, err = env.cli(capsys, "accounts", "export", "--never-mailed")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["address"] for r in rows] == ["10001"]
    code, out, _ = env.cli(capsys, "accounts", "list", "--never-mailed")
    assert "10001" in out and "10002" not in out
    code, out, err = env.cli(capsys, "accounts", "send-credentials", "10001")
    assert code == 0, err
    assert len(env.outbox_files()) == 2
    code, out, _ = env.cli(capsys, "accounts", "export", "--never-mailed")
    assert list(csv.DictReader(io.StringIO(out))) == []


def test_excel_export_is_semicolon_separated_utf8_with_bom(env: Env, capsys, tmp_path) -> None:
    code, _, err = env.cli(capsys, "sync", "--direction", "erp-to-shop")
    assert code == 0, err
    target = tmp_path / "konten.csv"
    code, _, err = env.cli(capsys, "accounts", "export", "--excel", "-o", target)
    assert code == 0, err
    raw = target.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    text = raw.decode("utf-8-sig")
    assert text.splitlines()[0] == ";".join(CSV_HEADER)
    rows = list(csv.DictReader(io.StringIO(text), delimiter=";"))
    assert {r["email"] for r in rows} == {"anna@example.com", "bernd@example.com"}
    code, out, _ = env.cli(capsys, "accounts", "export", "--excel")  # stdout: the same bytes
    assert out.startswith("\ufeff" + ";".join(CSV_HEADER))
    # Without --excel: the documented RFC 4180 CSV, unchanged.
    code, out, _ = env.cli(capsys, "accounts", "export")
    assert out.splitlines()[0] == ",".join(CSV_HEADER) and not out.startswith("\ufeff")


def test_release_lets_the_canary_rest_go(env: Env, capsys) -> None:
    env.write_config(addresses="canary = 1")
    code, _, err = env.cli(capsys, "sync", "--direction", "erp-to-shop")
    assert code == 0, err
    assert len(env.outbox_files()) == 1  # 10001 only; 10002 waits
    code, out, _ = env.cli(capsys, "status")
    assert "syncd release shop" in out
    code, out, err = env.cli(capsys, "release", "shop")
    assert code == 0, err
    assert "canary released" in out or "Probelauf freigegeben" in out
    code, _, err = env.cli(capsys, "sync", "--direction", "erp-to-shop")
    assert code == 0, err
    assert len(env.outbox_files()) == 2


def test_release_refuses_a_platform_without_canary_or_unknown(env: Env, capsys) -> None:
    code, _, err = env.cli(capsys, "release", "shop")
    assert code == 2 and "canary" in err
    code, _, err = env.cli(capsys, "release", "nope")
    assert code == 2 and "nope" in err


def test_excel_rows_keep_umlauts_in_utf8() -> None:
    from datetime import UTC

    from syncd.flows.accounts import AccountRow, write_csv

    row = AccountRow("shop", 10001, "0190abc", "jörg.grün@bäckerei.example", "erp", True,
                     datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "initial")
    buf = io.BytesIO()
    text = io.TextIOWrapper(buf, encoding="utf-8", newline="")
    assert write_csv([row], text, excel=True) == 1
    text.flush()
    raw = buf.getvalue()
    assert raw.startswith(b"\xef\xbb\xbf")
    assert "jörg.grün@bäckerei.example".encode() in raw
    assert raw.decode("utf-8-sig").splitlines()[1] == (
        "shop;10001;0190abc;jörg.grün@bäckerei.example;erp;true;2026-01-02T03:04:05Z;initial;")

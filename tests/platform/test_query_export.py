"""``eodrisk query --format csv|parquet|xlsx --out F``: the files hold exactly the rows Postgres
returns, read back with the libraries an analyst opens them with (csv, pyarrow, openpyxl)."""

from __future__ import annotations

import csv
from datetime import date, datetime

import psycopg2
import pytest

from databricks_jobs.postgres import apply_migrations
from eodrisk.cli import main
from eodrisk.report.sample import build_history, insert_history

pytestmark = pytest.mark.integration

END = date(2026, 11, 24)
SQL = (
    "select business_date, level, node, var_99_1d_usd, var_99_1d_change_pct, is_exception, "
    "loaded_at from bi.var_daily where business_date >= '2026-11-20' order by 1, 2, 3"
)


@pytest.fixture(scope="module")
def history():
    return build_history(END, days=20)


@pytest.fixture
def dsn(pg_dsn, history, monkeypatch) -> str:
    apply_migrations(pg_dsn)
    insert_history(pg_dsn, history)
    monkeypatch.setenv("EODRISK_PG_DSN", pg_dsn)
    return pg_dsn


def postgres_rows(dsn: str) -> tuple[list[str], list[tuple]]:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(SQL)
        columns = [c.name for c in cur.description]
        rows = cur.fetchall()
    conn.close()
    return columns, rows


def test_xlsx_opens_with_openpyxl_and_holds_the_rows(dsn, tmp_path, capsys):
    from openpyxl import load_workbook

    out = tmp_path / "var.xlsx"
    assert main(["query", SQL, "--format", "xlsx", "--out", str(out)]) == 0
    columns, rows = postgres_rows(dsn)
    assert f"wrote {len(rows)} rows to {out}" in capsys.readouterr().err
    sheet = load_workbook(out, read_only=True).active
    header, *cells = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert header == columns
    assert len(rows) > 40 and len(cells) == len(rows)
    for got, want in zip(cells, rows, strict=True):
        d, level, node, var, change_pct, is_exception, loaded_at = want
        assert got[0] == datetime.combine(d, datetime.min.time())  # Excel dates are datetimes
        # openpyxl writes 16 significant digits (Excel itself keeps 15).
        assert got[1:4] == [level, node, pytest.approx(var, rel=1e-15)]
        assert got[4] == (None if change_pct is None else pytest.approx(float(change_pct)))
        assert got[5] is is_exception or (got[5] is None and is_exception is None)
        assert got[6] == loaded_at.replace(tzinfo=None) - loaded_at.utcoffset()


def test_csv_and_parquet_hold_the_rows(dsn, tmp_path):
    import pyarrow.parquet as pq

    columns, rows = postgres_rows(dsn)
    # The format follows the file's suffix when --format is not given.
    assert main(["query", SQL, "--out", str(tmp_path / "var.csv")]) == 0
    with (tmp_path / "var.csv").open(newline="", encoding="utf-8") as fh:
        header, *lines = list(csv.reader(fh))
    assert header == columns
    assert [(line[0], line[2], float(line[3])) for line in lines] == [
        (r[0].isoformat(), r[2], r[3]) for r in rows
    ]

    assert main(["query", SQL, "--format", "parquet", "--out", str(tmp_path / "v.pq")]) == 0
    table = pq.read_table(tmp_path / "v.pq")
    assert table.column_names == columns
    assert [tuple(r.values()) for r in table.to_pylist()] == rows


def test_bad_export_requests_say_what_to_do(dsn, tmp_path, capsys):
    assert main(["query", SQL, "--out", str(tmp_path / "var.txt")]) == 2
    assert "cannot tell the format" in capsys.readouterr().err
    assert main(["query", SQL, "--format", "csv"]) == 2
    assert "--out FILE goes with --format" in capsys.readouterr().err
    twice = "select node, node from bi.var_daily limit 1"
    assert main(["query", twice, "--format", "xlsx", "--out", str(tmp_path / "x.xlsx")]) == 2
    assert "node more than once" in capsys.readouterr().err
    assert not (tmp_path / "x.xlsx").exists()

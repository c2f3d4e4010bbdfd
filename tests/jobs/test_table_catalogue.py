"""The table catalogue (databricks_jobs/tables.py) against what it describes: the ``risk``
tables the migrations create, the Delta tables the jobs write, and the docs' table list."""

from __future__ import annotations

import re
from pathlib import Path

import psycopg2
import pytest

from databricks_jobs.postgres import apply_migrations
from databricks_jobs.tables import (
    CATALOGUE,
    LOADED_TABLES,
    POSTGRES_TYPES,
    TABLES,
    check_written,
    table,
)

DATA_DOC = Path(__file__).resolve().parents[2] / "docs" / "data.md"
BEGIN, END = "<!-- tables: begin -->", "<!-- tables: end -->"


def test_the_migrations_create_exactly_the_catalogued_risk_tables(pg_dsn):
    apply_migrations(pg_dsn)
    with psycopg2.connect(pg_dsn) as conn, conn.cursor() as cur:
        cur.execute(
            """
            select c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                   coalesce(pg_get_expr(d.adbin, d.adrelid), '') = 'now()'
            from pg_class c
            join pg_namespace n on n.oid = c.relnamespace and n.nspname = 'risk'
            join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
            left join pg_attrdef d on d.adrelid = c.oid and d.adnum = a.attnum
            where c.relkind = 'r'
            """
        )
        database: dict[str, set[tuple]] = {}
        for relname, column, kind, not_null, now_default in cur.fetchall():
            database.setdefault(f"risk.{relname}", set()).add(
                (column, kind, not not_null, now_default)
            )
        cur.execute(
            """
            select c.relname, array_agg(a.attname order by k.i)
            from pg_constraint p
            join pg_class c on c.oid = p.conrelid
            join pg_namespace n on n.oid = c.relnamespace and n.nspname = 'risk'
            cross join lateral unnest(p.conkey) with ordinality as k(attnum, i)
            join pg_attribute a on a.attrelid = c.oid and a.attnum = k.attnum
            where p.contype = 'p'
            group by c.relname
            """
        )
        keys = {f"risk.{relname}": tuple(columns) for relname, columns in cur.fetchall()}
    catalogued = {
        t.name: {
            (c.name, POSTGRES_TYPES[c.type], c.nullable, c.database_default) for c in t.columns
        }
        for t in CATALOGUE
        if not t.is_delta
    }
    assert database == catalogued
    assert keys == {name: TABLES[name].key for name in catalogued}


#: Columns the loader computes by aggregating its Delta source (load_reporting.gather).
AGGREGATED = {
    "risk.quarantine_summary": {"rows_quarantined"},
    "risk.stress_results": {"worst_date"},
}


def test_every_loaded_table_comes_from_a_catalogued_delta_table_with_its_columns():
    for name in LOADED_TABLES:
        loaded, source = table(name), table(table(name).loaded_from)
        assert source.is_delta
        computed = AGGREGATED.get(name, set())
        assert set(loaded.loaded) - computed <= set(source.column_names), name


def test_a_write_with_other_columns_types_or_partitions_is_refused():
    audit = [(c.name, c.type) for c in table("silver.ingest_audit").columns]
    check_written("silver.ingest_audit", audit, ["business_date", "region"])
    with pytest.raises(ValueError, match=r"missing \[\('run_id', 'string'\)\]"):
        check_written("silver.ingest_audit", audit[:-1], ["business_date", "region"])
    retyped = [*audit[:-2], ("rows_quarantined", "int"), audit[-1]]
    with pytest.raises(ValueError, match=r"unexpected \[\('rows_quarantined', 'int'\)\]"):
        check_written("silver.ingest_audit", retyped, ["business_date", "region"])
    with pytest.raises(ValueError, match="is partitioned by"):
        check_written("silver.ingest_audit", audit, ["business_date"])
    with pytest.raises(KeyError, match="catalogue"):
        check_written("gold.unknown", audit, ["business_date"])


def tables_markdown() -> str:
    """The docs' table list, generated from the catalogue."""
    lines = ["| table | one row per | partitioned by | what it holds |", "|---|---|---|---|"]
    for t in CATALOGUE:
        held = t.description + (f" Loaded from `{t.loaded_from}`." if t.loaded_from else "")
        partitions = ", ".join(t.partition_by) or "—"
        lines.append(f"| `{t.name}` | {t.grain} | {partitions} | {held} |")
    return "\n".join(lines)


def test_the_docs_list_exactly_the_catalogued_tables():
    text = DATA_DOC.read_text(encoding="utf-8")
    found = re.search(re.escape(BEGIN) + r"\n(.*)\n" + re.escape(END), text, re.S)
    assert found, f"docs/data.md has no {BEGIN} … {END} section"
    assert found.group(1) == tables_markdown(), (
        "docs/data.md's table list differs from databricks_jobs/tables.py; replace the "
        f"section with:\n{tables_markdown()}"
    )


def test_the_loader_writes_each_value_under_its_column():
    from datetime import date

    from databricks_jobs.jobs.load_reporting import TABLES as LOADER
    from databricks_jobs.jobs.load_reporting import rows_for_tables

    day = date(2026, 11, 24)
    source = {name: {c: f"{name}.{c}" for c in table(name).column_names} for name in LOADER}
    rows = rows_for_tables(
        day,
        firm=source["risk.firm_summary"],
        nodes=[source["risk.var_summary"]],
        audits=[source["risk.ingest_audit"]],
        quarantine=[source["risk.quarantine_summary"]],
        contributions=[source["risk.var_contributions"]],
        backtest=[source["risk.backtest"]],
        backtest_summary=[source["risk.backtest_summary"]],
        stress=[source["risk.stress_results"]],
        desk_tests=[source["risk.desk_tests"]],
        frtb=[source["risk.frtb_es"]],
    )
    assert list(rows) == list(LOADER) == list(LOADED_TABLES)
    for name, (key, values) in LOADER.items():
        written = dict(zip((*key, *values), rows[name][0], strict=True))
        assert written == {c: day if c == "business_date" else f"{name}.{c}" for c in written}
        assert set(written) == set(table(name).loaded)


def test_the_docs_list_the_trade_file_columns_of_the_contract():
    from databricks_jobs.landing import TRADE_COLUMNS

    section = DATA_DOC.read_text(encoding="utf-8").split("## Trade files", 1)[1]
    rows = re.findall(r"^\| (\w+) \| \w+ \|", section.split("\n## ", 1)[0], re.M)
    assert tuple(r for r in rows if r != "column") == TRADE_COLUMNS

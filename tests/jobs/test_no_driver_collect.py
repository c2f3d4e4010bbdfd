"""No job pulls trade rows into the driver: every ``collect()``-like call in
``databricks_jobs`` is checked against what it collects (a code-inspection test).

A call is flagged when the DataFrame it is called on derives — through the function's own
assignments — from trade-level data (the trade file's lines, ``silver.trades``,
``silver.trades_quarantine``, the validation's outputs) without an aggregation or a limit on
the way (``groupBy``/``agg``/``limit``/``distinct``, or the per-book revaluation).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

JOBS = Path(__file__).resolve().parents[2] / "databricks_jobs"
DRIVER_CALLS = {"collect", "toPandas", "toLocalIterator", "take", "head", "first", "tail"}
TRADE_SOURCES = (
    "'silver.trades'",  # as ast.unparse writes string literals
    "'silver.trades_quarantine'",
    "textFile(",
    "numbered_lines(",
    "validate_trades(",
    "checked_trades(",
    "read_text(",
    "readlines(",
)
BOUNDING = (
    "groupBy(",
    ".agg(",
    ".limit(",
    ".distinct()",
    ".count()",
    "positions_with_terms(",  # net positions by book and instrument
    "book_pnl_vectors(",  # one row per book
)


def lineage(expr: ast.expr, assigned: dict[str, list[ast.expr]], seen: frozenset = frozenset()):
    """The source of ``expr`` with the function's assignments of the names in it expanded."""
    text = ast.unparse(expr)
    parts = [text]
    for node in ast.walk(expr):
        if isinstance(node, ast.Name) and node.id in assigned and node.id not in seen:
            for value in assigned[node.id]:
                parts.append(lineage(value, assigned, seen | {node.id}))
    return "\n".join(parts)


def violations(source: str, module: str) -> list[str]:
    found = []
    for fn in ast.walk(ast.parse(source)):
        if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        assigned: dict[str, list[ast.expr]] = {}
        for node in ast.walk(fn):
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    for name in ast.walk(target):
                        if isinstance(name, ast.Name):
                            assigned.setdefault(name.id, []).append(node.value)
        for node in ast.walk(fn):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in DRIVER_CALLS
            ):
                text = lineage(node.func.value, assigned)
                if any(s in text for s in TRADE_SOURCES) and not any(b in text for b in BOUNDING):
                    found.append(f"{module}.{fn.name} line {node.lineno}: {ast.unparse(node)}")
    return found


def test_the_checker_flags_a_collect_of_trades():
    bad = """
def job(store, spark, path):
    trades = store.read("silver.trades", {"region": "EMEA"})
    rows = trades.where("quantity > 0").collect()
    lines = spark.sparkContext.textFile(path).toDF()
    return lines.toPandas()
"""
    fine = """
def job(store):
    trades = store.read("silver.trades", {"region": "EMEA"})
    return trades.groupBy("book").count().collect(), trades.limit(1).collect()
"""
    assert len(violations(bad, "bad")) == 2
    assert violations(fine, "fine") == []


@pytest.mark.parametrize("path", sorted(JOBS.glob("*.py")), ids=lambda p: p.name)
def test_no_job_collects_trade_rows_into_the_driver(path):
    assert violations(path.read_text(), path.stem) == []

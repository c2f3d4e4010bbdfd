"""A seeded, realistic history of ``risk`` rows for previews of the report and for tests.

``build_history`` returns the rows of every ``risk`` table (firm → 3 regions → the desks and
books of the sample night, ``sample_data.universe.books_of``; 260 business days): VaR that
drifts like a real book, desk/region/firm VaR below the sum of their children
(diversification), component VaR that adds up to each node's VaR, hypothetical P&L with a
handful of exceptions, backtest summaries computed with ``risk_models.backtest``, and
trade-file audits with quarantined rows by the ingest's own rules (``QUARANTINE_RULES``),
in the columns of the table catalogue (``databricks_jobs.tables``). One book is missing on one date
and another starts halfway, so "previous loaded date for the node"
differs from "previous business day". ``insert_history`` writes them with COPY.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import numpy as np

from databricks_jobs.node_backtests import SUMMARY_LEVELS
from databricks_jobs.risk_metrics import FIRM
from databricks_jobs.tables import LOADED_TABLES, table
from databricks_jobs.trade_validation import QUARANTINE_RULES
from eodrisk.calendar import business_calendars
from eodrisk.sample_data.universe import books_of
from risk_models.backtest import basel_traffic_light, christoffersen, kupiec_pof
from risk_models.var import VAR_CONFIDENCE

WINDOW = 250
# The preview uses the producers' own contracts: the rules the ingest can quarantine a line
# for, and the columns of the tables the load writes (the catalogue's, ``loaded_at`` too).
RULES = QUARANTINE_RULES
COLUMNS: dict[str, tuple[str, ...]] = {name: table(name).column_names for name in LOADED_TABLES}
#: How many distinct rules a region's file breaks on a preview night, at most.
RULES_PER_NIGHT = 4


@dataclass
class History:
    """Rows per ``risk`` table, as dicts keyed by column name."""

    dates: list[date]
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def rows(self, table: str) -> list[dict[str, Any]]:
        return self.tables.setdefault(table, [])


def _run_id(d: date, region: str) -> str:
    return f"eod_risk__{d.isoformat()}__{region.lower()}__1"


def _loaded_at(d: date) -> datetime:
    """The next morning, a few minutes after two (UTC), like the nightly load."""
    return datetime.combine(d + timedelta(days=1), time(2, d.toordinal() % 50 + 5), UTC)


def build_history(end: date, days: int = 260, seed: int = 7) -> History:
    rng = np.random.default_rng(seed)
    calendars = business_calendars()
    regions = sorted(calendars.regions)  # the configured regions (eod_risk.yml)
    dates = calendars.last_business_days(end, days)  # the firm's business days
    history = History(dates)
    books: dict[tuple[str, str], list[str]] = {}
    for region in regions:
        for book, desk, _ in books_of(region):  # the sample night's own book hierarchy
            books.setdefault((region, desk), []).append(book)
    # Slowly drifting book VaR (log random walk) around a per-book level.
    all_books = [b for bs in books.values() for b in bs]
    level = {b: float(rng.uniform(0.4e6, 3.0e6)) for b in all_books}
    log_drift = {b: np.cumsum(rng.normal(0.0, 0.03, len(dates))) for b in all_books}
    missing = {(all_books[4], dates[-20])}  # one book not loaded on one date
    late_start = {all_books[-1]: len(dates) // 2}  # a book that opened halfway

    # Firm P&L exceptions on chosen days: 6 in the last 250 → yellow zone.
    firm_exception_days = {len(dates) - k for k in (3, 17, 41, 90, 133, 201)}

    previous: dict[tuple[str, str], float] = {}
    forecast_dates: dict[tuple[str, str], date] = {}
    exception_history: dict[tuple[str, str], list[bool]] = {}
    for t, d in enumerate(dates):
        book_var: dict[str, float] = {}
        for b in all_books:
            if (b, d) in missing or t < late_start.get(b, 0):
                continue
            book_var[b] = level[b] * math.exp(float(log_drift[b][t]))
        nodes: list[tuple[str, str, str, str, float, list[str]]] = []
        for (region, desk), bs in books.items():
            present = [b for b in bs if b in book_var]
            for b in present:
                nodes.append(("book", b, desk, region, book_var[b], [b]))
            if present:
                desk_var = 0.86 * sum(book_var[b] for b in present)
                nodes.append(("desk", desk, region, region, desk_var, present))
        for region in regions:
            desks = [n for n in nodes if n[0] == "desk" and n[3] == region]
            region_books = [b for n in desks for b in n[5]]
            nodes.append(
                ("region", region, FIRM, region, 0.78 * sum(n[4] for n in desks), region_books)
            )
        region_nodes = [n for n in nodes if n[0] == "region"]
        sum_regions = sum(n[4] for n in region_nodes)
        firm_var = 0.69 * sum_regions
        nodes.append(("firm", FIRM, "", FIRM, firm_var, list(book_var)))

        loaded = _loaded_at(d)
        # a region closed on d (its exchange's holiday) carries its positions forward
        held = {r: calendars.positions_date(r, d) for r in regions} | {FIRM: d}
        for lvl, node, parent, region, var, node_books in nodes:
            run = _run_id(d, "firm" if region == FIRM else region)
            history.rows("risk.var_summary").append(
                {
                    "business_date": d,
                    "level": lvl,
                    "node": node,
                    "parent": parent,
                    "region": region,
                    "var_99_1d_usd": var,
                    "var_99_10d_usd": var * math.sqrt(10.0),
                    "es_975_1d_usd": var * float(rng.uniform(1.12, 1.22)),
                    "positions_date": held[region],
                    "run_id": run,
                    "loaded_at": loaded,
                }
            )
            if lvl != "book":
                # Component VaR: weights from the books' stand-alone VaR, one hedge per
                # node above desk level, rescaled so the components add up to the VaR.
                raw = np.array([book_var[b] * rng.uniform(0.3, 1.0) for b in node_books])
                if lvl != "desk" and len(raw) > 2:
                    raw[int(rng.integers(len(raw)))] *= -0.3
                parts = var * raw / raw.sum()
                for b, part in zip(node_books, parts, strict=True):
                    history.rows("risk.var_contributions").append(
                        {
                            "business_date": d,
                            "level": lvl,
                            "node": node,
                            "book": b,
                            "region": region,
                            "component_var_99_1d_usd": float(part),
                            "run_id": run,
                            "loaded_at": loaded,
                        }
                    )
            key = (lvl, node)
            if key in previous:
                forecast = previous[key]
                pnl = float(rng.standard_t(5) * forecast / 3.4)
                if lvl == "firm":
                    pnl = (
                        -forecast * float(rng.uniform(1.05, 1.4))
                        if t in firm_exception_days
                        else max(pnl, -0.95 * forecast)
                    )
                exception = -pnl > forecast
                series = exception_history.setdefault(key, [])
                series.append(exception)
                history.rows("risk.backtest").append(
                    {
                        "business_date": d,
                        "level": lvl,
                        "node": node,
                        "region": region,
                        "forecast_date": forecast_dates[key],
                        "var_forecast_99_1d_usd": forecast,
                        "hypothetical_pnl_usd": pnl,
                        "is_exception": exception,
                        "run_id": run,
                        "loaded_at": loaded,
                    }
                )
                window = series[-WINDOW:]
                n, x = len(window), sum(window)
                if lvl not in SUMMARY_LEVELS:
                    previous[key], forecast_dates[key] = var, d
                    continue
                light = basel_traffic_light(x, n, VAR_CONFIDENCE)
                kupiec = kupiec_pof(x, n, VAR_CONFIDENCE)
                chris = christoffersen(window, VAR_CONFIDENCE) if n >= 2 else None
                history.rows("risk.backtest_summary").append(
                    {
                        "business_date": d,
                        "level": lvl,
                        "node": node,
                        "region": region,
                        "observations": n,
                        "exceptions": x,
                        "zone": light.zone,
                        "plus_factor": light.plus_factor,
                        "kupiec_lr": kupiec.lr,
                        "kupiec_p_value": kupiec.p_value,
                        "christoffersen_lr_ind": chris.lr_ind if chris else None,
                        "christoffersen_p_ind": chris.p_ind if chris else None,
                        "christoffersen_lr_cc": chris.lr_cc if chris else None,
                        "christoffersen_p_cc": chris.p_cc if chris else None,
                        "run_id": run,
                        "loaded_at": loaded,
                    }
                )
            previous[key] = var
            forecast_dates[key] = d

        history.rows("risk.firm_summary").append(
            {
                "business_date": d,
                "firm_var_99_1d_usd": firm_var,
                "sum_region_var_99_1d_usd": sum_regions,
                "diversification_benefit_usd": sum_regions - firm_var,
                "regions": ",".join(regions),
                "run_id": _run_id(d, "firm"),
                "loaded_at": loaded,
            }
        )
        for region in regions:
            read = int(rng.integers(28_000, 32_000))
            quarantined = 0
            picked = rng.choice(len(RULES), size=int(rng.integers(0, RULES_PER_NIGHT + 1)))
            rules = [RULES[i] for i in sorted(set(picked.tolist()))]
            for rule, fieldname in rules:
                count = int(rng.integers(1, 40))
                quarantined += count
                history.rows("risk.quarantine_summary").append(
                    {
                        "business_date": d,
                        "region": region,
                        "rule": rule,
                        "field": fieldname,
                        "rows_quarantined": count,
                        "run_id": _run_id(d, region),
                        "loaded_at": loaded,
                    }
                )
            history.rows("risk.ingest_audit").append(
                {
                    "business_date": d,
                    "region": region,
                    "source_file": f"landing/{region}/trades_{d:%Y%m%d}.csv",
                    "sha256": hashlib.sha256(f"{region}{d}{seed}".encode()).hexdigest(),
                    "rows_read": read,
                    "rows_accepted": read - quarantined,
                    "rows_quarantined": quarantined,
                    "run_id": _run_id(d, region),
                    "loaded_at": loaded,
                }
            )
    return history


def insert_history(dsn: str, history: History, tables: Sequence[str] | None = None) -> None:
    """COPY the history's rows into the ``risk`` tables (as the connecting user)."""
    import psycopg2

    from databricks_jobs.postgres import copy_rows

    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        for table in tables or COLUMNS:
            columns = COLUMNS[table]
            copy_rows(
                cur, table, columns, ([row[c] for c in columns] for row in history.rows(table))
            )
    conn.close()

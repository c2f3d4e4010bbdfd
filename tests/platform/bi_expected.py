"""What the ``bi`` views must return, computed in Python from the rows a test inserted.

Independent of the SQL: previous loaded date per node, day-on-day changes, ranks, shares,
rates and sums are recomputed here from ``eodrisk.report.sample.History`` rows, and the
tests compare the views (and the report's figures) with these.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import pytest

from eodrisk.report.sample import History

Row = dict[str, Any]


def _memo(method):
    """Compute a view's expected rows once per Expected (the tests look them up often)."""
    name = f"_memo_{method.__name__}"

    def wrapper(self):
        if name not in self.__dict__:
            self.__dict__[name] = method(self)
        return self.__dict__[name]

    wrapper.__name__ = method.__name__
    wrapper.__doc__ = method.__doc__
    return wrapper


def _pct_change(now: float, before: float | None) -> float | None:
    if before is None or before == 0:
        return None
    return 100.0 * (now - before) / before


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


@dataclass
class Expected:
    history: History

    def __post_init__(self) -> None:
        h = self.history
        self.backtest_by_key = {
            (r["business_date"], r["level"], r["node"]): r for r in h.rows("risk.backtest")
        }
        self.var_daily = self._var_daily()
        self.var_by_key = {(r["business_date"], r["level"], r["node"]): r for r in self.var_daily}

    # bi.var_daily ------------------------------------------------------------------------
    def _var_daily(self) -> list[Row]:
        by_node: dict[tuple[str, str], list[Row]] = defaultdict(list)
        for r in self.history.rows("risk.var_summary"):
            by_node[(r["level"], r["node"])].append(r)
        out = []
        for rows in by_node.values():
            previous: Row | None = None
            for r in sorted(rows, key=lambda r: r["business_date"]):
                p = previous or {}
                b = self.backtest_by_key.get((r["business_date"], r["level"], r["node"]), {})
                prev_var = p.get("var_99_1d_usd")
                prev_10d = p.get("var_99_10d_usd")
                prev_es = p.get("es_975_1d_usd")
                out.append(
                    {
                        **{k: r[k] for k in r},
                        "previous_business_date": p.get("business_date"),
                        "previous_var_99_1d_usd": prev_var,
                        "previous_var_99_10d_usd": prev_10d,
                        "previous_es_975_1d_usd": prev_es,
                        "var_99_1d_change_usd": None
                        if prev_var is None
                        else r["var_99_1d_usd"] - prev_var,
                        "var_99_1d_change_pct": _pct_change(r["var_99_1d_usd"], prev_var),
                        "var_99_10d_change_usd": None
                        if prev_10d is None
                        else r["var_99_10d_usd"] - prev_10d,
                        "es_975_1d_change_usd": None
                        if prev_es is None
                        else r["es_975_1d_usd"] - prev_es,
                        "es_975_1d_change_pct": _pct_change(r["es_975_1d_usd"], prev_es),
                        "forecast_date": b.get("forecast_date"),
                        "var_forecast_99_1d_usd": b.get("var_forecast_99_1d_usd"),
                        "hypothetical_pnl_usd": b.get("hypothetical_pnl_usd"),
                        "is_exception": b.get("is_exception"),
                    }
                )
                previous = r
        return out

    @_memo
    def var_latest(self) -> dict[tuple[str, str], Row]:
        latest: dict[tuple[str, str], Row] = {}
        for r in self.var_daily:
            key = (r["level"], r["node"])
            if key not in latest or r["business_date"] > latest[key]["business_date"]:
                latest[key] = r
        return latest

    @_memo
    def var_trend(self) -> dict[tuple[date, str, str], Row]:
        by_node: dict[tuple[str, str], list[Row]] = defaultdict(list)
        for r in self.var_daily:
            by_node[(r["level"], r["node"])].append(r)
        out = {}
        for rows in by_node.values():
            newest_first = sorted(rows, key=lambda r: r["business_date"], reverse=True)
            for days_back, r in enumerate(newest_first[:250]):
                out[(r["business_date"], r["level"], r["node"])] = {**r, "days_back": days_back}
        return out

    # bi.top_contributors -----------------------------------------------------------------
    @_memo
    def top_contributors(self) -> dict[tuple[date, str, str, str], Row]:
        groups: dict[tuple[date, str, str], list[Row]] = defaultdict(list)
        for r in self.history.rows("risk.var_contributions"):
            groups[(r["business_date"], r["level"], r["node"])].append(r)
        out = {}
        for (d, level, node), rows in groups.items():
            node_var = self.var_by_key.get((d, level, node), {}).get("var_99_1d_usd")
            ranked = sorted(rows, key=lambda r: (-r["component_var_99_1d_usd"], r["book"]))
            for rank, r in enumerate(ranked, start=1):
                out[(d, level, node, r["book"])] = {
                    **r,
                    "contributor_rank": rank,
                    "node_var_99_1d_usd": node_var,
                    "share_of_node_var": _ratio(r["component_var_99_1d_usd"], node_var),
                }
        return out

    # bi.backtest -------------------------------------------------------------------------
    @_memo
    def backtest(self) -> dict[tuple[date, str, str], Row]:
        exception_dates: dict[tuple[str, str], list[date]] = defaultdict(list)
        for r in self.history.rows("risk.backtest"):
            if r["is_exception"]:
                exception_dates[(r["level"], r["node"])].append(r["business_date"])
        out = {}
        for s in self.history.rows("risk.backtest_summary"):
            d = s["business_date"]
            before = [x for x in exception_dates[(s["level"], s["node"])] if x <= d]
            out[(d, s["level"], s["node"])] = {
                **s,
                "expected_exceptions": 0.01 * s["observations"],
                "exception_rate": _ratio(float(s["exceptions"]), float(s["observations"])),
                "capital_multiplier": 3.0 + s["plus_factor"],
                "last_exception_date": max(before) if before else None,
            }
        return out

    # bi.data_quality, bi.data_quality_by_rule --------------------------------------------
    @_memo
    def data_quality(self) -> dict[tuple[date, str], Row]:
        rules: dict[tuple[date, str], list[Row]] = defaultdict(list)
        for r in self.history.rows("risk.quarantine_summary"):
            rules[(r["business_date"], r["region"])].append(r)
        out = {}
        for a in self.history.rows("risk.ingest_audit"):
            key = (a["business_date"], a["region"])
            broken = rules.get(key, [])
            by_rule = sum(r["rows_quarantined"] for r in broken)
            top = min(
                broken, key=lambda r: (-r["rows_quarantined"], r["rule"], r["field"]), default=None
            )
            out[key] = {
                **a,
                "quarantine_rate": _ratio(float(a["rows_quarantined"]), float(a["rows_read"])),
                "rules_broken": len(broken),
                "rows_quarantined_by_rule": by_rule,
                "top_rule": f"{top['rule']}:{top['field']}" if top else None,
                "reconciles": a["rows_read"] == a["rows_accepted"] + a["rows_quarantined"]
                and by_rule == a["rows_quarantined"],
            }
        return out

    @_memo
    def data_quality_by_rule(self) -> dict[tuple[date, str, str, str], Row]:
        audits = {
            (a["business_date"], a["region"]): a for a in self.history.rows("risk.ingest_audit")
        }
        out = {}
        for r in self.history.rows("risk.quarantine_summary"):
            a = audits.get((r["business_date"], r["region"]), {})
            out[(r["business_date"], r["region"], r["rule"], r["field"])] = {
                **r,
                "rows_read": a.get("rows_read"),
                "share_of_rows_read": _ratio(float(r["rows_quarantined"]), a.get("rows_read")),
                "share_of_quarantined": _ratio(
                    float(r["rows_quarantined"]), a.get("rows_quarantined")
                ),
            }
        return out

    # bi.firm_daily -----------------------------------------------------------------------
    @_memo
    def firm_daily(self) -> dict[date, Row]:
        summaries = self.backtest()
        audits: dict[date, list[Row]] = defaultdict(list)
        for a in self.history.rows("risk.ingest_audit"):
            audits[a["business_date"]].append(a)
        out = {}
        for f in self.history.rows("risk.firm_summary"):
            d = f["business_date"]
            v = self.var_by_key.get((d, "firm", "FIRM"), {})
            s = summaries.get((d, "firm", "FIRM"), {})
            day = audits.get(d, [])
            out[d] = {
                "business_date": d,
                "firm_var_99_1d_usd": v.get("var_99_1d_usd"),
                "firm_var_99_10d_usd": v.get("var_99_10d_usd"),
                "firm_es_975_1d_usd": v.get("es_975_1d_usd"),
                "previous_business_date": v.get("previous_business_date"),
                "firm_var_99_1d_change_usd": v.get("var_99_1d_change_usd"),
                "firm_var_99_1d_change_pct": v.get("var_99_1d_change_pct"),
                "firm_es_975_1d_change_usd": v.get("es_975_1d_change_usd"),
                "firm_es_975_1d_change_pct": v.get("es_975_1d_change_pct"),
                "sum_region_var_99_1d_usd": f["sum_region_var_99_1d_usd"],
                "diversification_benefit_usd": f["diversification_benefit_usd"],
                "diversification_ratio": _ratio(
                    f["diversification_benefit_usd"], f["sum_region_var_99_1d_usd"]
                ),
                "regions": f["regions"],
                "hypothetical_pnl_usd": v.get("hypothetical_pnl_usd"),
                "var_forecast_99_1d_usd": v.get("var_forecast_99_1d_usd"),
                "is_exception": v.get("is_exception"),
                "backtest_observations": s.get("observations"),
                "backtest_exceptions": s.get("exceptions"),
                "backtest_zone": s.get("zone"),
                "backtest_plus_factor": s.get("plus_factor"),
                "rows_read": sum(a["rows_read"] for a in day) if day else None,
                "rows_accepted": sum(a["rows_accepted"] for a in day) if day else None,
                "rows_quarantined": sum(a["rows_quarantined"] for a in day) if day else None,
                "run_id": f["run_id"],
                "loaded_at": f["loaded_at"],
            }
        return out


def same(actual: Any, expected: Any) -> bool:
    """Database (or page) value equals the expected one: floats to 1e-12 relative."""
    if expected is None or actual is None:
        return actual is None and expected is None
    if isinstance(expected, bool) or isinstance(actual, bool):
        return bool(actual) == bool(expected) and type(actual) is type(expected)
    if isinstance(expected, float) or isinstance(actual, float):
        return math.isclose(float(actual), float(expected), rel_tol=1e-12, abs_tol=1e-9)
    if isinstance(expected, datetime) and isinstance(actual, datetime):
        return actual == expected
    return actual == expected


def assert_rows_equal(
    actual: Iterable[Row], expected: dict[Any, Row], key: tuple[str, ...], what: str
) -> None:
    """Every view row matches its expected row on every column the view returns, and the
    view returns exactly the expected keys."""
    seen = set()
    for row in actual:
        k = tuple(row[c] for c in key)
        k = k[0] if len(k) == 1 else k
        assert k in expected, f"{what}: unexpected row {k}"
        assert k not in seen, f"{what}: duplicate row {k}"
        seen.add(k)
        want = expected[k]
        diffs = {c: (row[c], want[c]) for c in row if c in want and not same(row[c], want[c])}
        assert not diffs, f"{what} {k}: view != expected: {diffs}"
        missing = [c for c in row if c not in want]
        assert not missing, f"{what}: no expectation for columns {missing}"
    assert seen == set(expected), f"{what}: missing rows {sorted(set(expected) - seen)[:5]}"


__all__ = ["Expected", "assert_rows_equal", "pytest", "same"]

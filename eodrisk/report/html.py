"""The report page: one HTML document with inline CSS and SVG, no script, no external request."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from html import escape
from typing import Any

from eodrisk.report.charts import contributions_chart, trend_chart, waterfall_chart
from eodrisk.report.format import (
    attrs,
    change_class,
    count,
    exact,
    fig,
    musd,
    pct,
    pct_points,
    usd,
)
from eodrisk.report.queries import ReportData

CSS = """
:root { --ink:#1f2933; --muted:#616e7c; --line:#e4e7eb; --bg:#f5f7fa; --card:#fff;
  --up:#c0392b; --down:#2f7d5b; --accent:#2b5f9e; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--ink);
  font: 14px/1.45 "DejaVu Sans", "Segoe UI", Helvetica, Arial, sans-serif; }
header { background:#15263d; color:#fff; padding:18px 32px; }
header h1 { margin:0; font-size:22px; font-weight:600; }
header .sub { color:#c3cfdd; margin-top:4px; font-size:13px; }
main { max-width:1200px; margin:0 auto; padding:20px 24px 40px; }
section { background:var(--card); border:1px solid var(--line); border-radius:8px;
  padding:16px 20px; margin:16px 0; }
h2 { font-size:16px; margin:0 0 10px; }
h3 { font-size:14px; margin:14px 0 6px; color:var(--muted); }
.muted { color:var(--muted); font-size:12px; }
.cards { display:grid; grid-template-columns:repeat(6, 1fr); gap:12px; margin:0; }
.card { background:var(--card); border:1px solid var(--line); border-radius:8px;
  padding:12px 14px; }
.card .label { color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.03em; }
.card .value { font-size:24px; font-weight:600; margin:4px 0 2px; white-space:nowrap; }
.card .detail { font-size:12px; color:var(--muted); }
.two { display:grid; grid-template-columns:1fr 1fr; gap:16px; }
.two > section { margin:0; }
table { border-collapse:collapse; width:100%; font-size:13px; }
th, td { padding:5px 8px; border-bottom:1px solid var(--line); text-align:left; }
th { color:var(--muted); font-weight:600; font-size:12px; }
td.num, th.num { text-align:right; font-variant-numeric: tabular-nums; white-space:nowrap; }
tr.region td { font-weight:600; background:#f8fafc; }
tr.desk td:first-child { padding-left:22px; }
.up { color:var(--up); } .down { color:var(--down); } .flat { color:var(--muted); }
.badge { display:inline-block; padding:3px 12px; border-radius:999px; font-weight:700;
  font-size:13px; text-transform:uppercase; letter-spacing:.04em; color:#fff; }
.badge.green { background:#2f9e44; } .badge.yellow { background:#f0b429; color:#3b2f00; }
.badge.red { background:#c0392b; } .badge.none { background:#9aa5b1; }
.light { display:flex; gap:4px; margin:6px 0 2px; }
.light i { width:16px; height:16px; border-radius:50%; background:#e4e7eb; display:block; }
.light i.green.on { background:#2f9e44; } .light i.yellow.on { background:#f0b429; }
.light i.red.on { background:#c0392b; }
.legend { display:flex; gap:18px; font-size:12px; color:var(--muted); margin-top:4px; }
.legend span::before { content:""; display:inline-block; width:12px; height:10px;
  margin-right:5px; vertical-align:middle; background:var(--c); border-radius:2px; }
.legend .ring::before { background:none; border:2px solid #c0392b; border-radius:50%;
  width:8px; height:8px; }
.ok { color:var(--down); font-weight:600; } .bad { color:var(--up); font-weight:600; }
.empty { color:var(--muted); font-style:italic; }
dl.meta { display:grid; grid-template-columns:max-content 1fr; gap:4px 16px; margin:0; }
dl.meta dt { color:var(--muted); }
dl.meta dd { margin:0; font-family:"DejaVu Sans Mono", monospace; font-size:12px; }
footer { color:var(--muted); font-size:12px; text-align:center; margin:18px 0; }
svg.chart text { font-family:"DejaVu Sans", Helvetica, Arial, sans-serif; }
@media (max-width: 900px) {
  .cards { grid-template-columns:repeat(2, 1fr); } .two { display:block; } }
"""

VIEWS_USED = (
    "bi.firm_daily",
    "bi.var_daily",
    "bi.carried_forward",
    "bi.top_contributors",
    "bi.backtest",
    "bi.data_quality",
    "bi.data_quality_by_rule",
    "bi.risk_beyond_var",
    "bi.limit_breaches",
)


def _th(*labels: str, num_from: int = 1) -> str:
    cells = "".join(
        f'<th class="num">{escape(lb)}</th>' if i >= num_from else f"<th>{escape(lb)}</th>"
        for i, lb in enumerate(labels)
    )
    return f"<thead><tr>{cells}</tr></thead>"


def _td(content: str, num: bool = True) -> str:
    return f'<td class="num">{content}</td>' if num else f"<td>{content}</td>"


def _change(testid: str, value: float | None, percent: float | None = None, pid: str = "") -> str:
    cls = change_class(value)
    text = fig(testid, value, usd(value, signed=True), cls)
    if pid:
        text += " " + fig(pid, percent, f"({pct_points(percent)})", cls)
    return text


def _badge(testid: str, zone: str | None) -> str:
    z = zone if zone in ("green", "yellow", "red") else "none"
    return f'<span class="badge {z}" {attrs(testid, zone)}>{escape(zone or "no backtest")}</span>'


def _cards(data: ReportData) -> str:
    f = data.firm
    zone = f["backtest_zone"]
    lights = "".join(
        f'<i class="{c}{" on" if c == zone else ""}"></i>' for c in ("green", "yellow", "red")
    )
    prev = f["previous_business_date"]
    vs = f"vs {prev.isoformat()}" if prev else "no previous date"
    pnl = f["hypothetical_pnl_usd"]
    exception = (
        '<span class="bad">exception</span>'
        if f["is_exception"]
        else "within VaR"
        if pnl is not None
        else "no backtest"
    )
    cards = [
        (
            "Firm VaR 99% 1-day",
            fig("firm.firm_var_99_1d_usd", f["firm_var_99_1d_usd"], musd(f["firm_var_99_1d_usd"])),
            _change(
                "firm.firm_var_99_1d_change_usd",
                f["firm_var_99_1d_change_usd"],
                f["firm_var_99_1d_change_pct"],
                "firm.firm_var_99_1d_change_pct",
            )
            + f" {vs}",
        ),
        (
            "Firm VaR 99% 10-day",
            fig(
                "firm.firm_var_99_10d_usd", f["firm_var_99_10d_usd"], musd(f["firm_var_99_10d_usd"])
            ),
            "1-day × √10",
        ),
        (
            "Firm ES 97.5% 1-day",
            fig("firm.firm_es_975_1d_usd", f["firm_es_975_1d_usd"], musd(f["firm_es_975_1d_usd"])),
            _change(
                "firm.firm_es_975_1d_change_usd",
                f["firm_es_975_1d_change_usd"],
                f["firm_es_975_1d_change_pct"],
                "firm.firm_es_975_1d_change_pct",
            ),
        ),
        (
            "Diversification benefit",
            fig(
                "firm.diversification_benefit_usd",
                f["diversification_benefit_usd"],
                musd(f["diversification_benefit_usd"]),
            ),
            fig(
                "firm.diversification_ratio",
                f["diversification_ratio"],
                pct(f["diversification_ratio"]),
            )
            + " of "
            + fig(
                "firm.sum_region_var_99_1d_usd",
                f["sum_region_var_99_1d_usd"],
                musd(f["sum_region_var_99_1d_usd"]),
            )
            + " regional VaR",
        ),
        (
            "Realised P&amp;L (hypothetical)",
            fig("firm.hypothetical_pnl_usd", pnl, musd(pnl, signed=True)),
            exception
            + " · forecast "
            + fig(
                "firm.var_forecast_99_1d_usd",
                f["var_forecast_99_1d_usd"],
                musd(f["var_forecast_99_1d_usd"]),
            ),
        ),
        (
            "Backtest traffic light",
            _badge("firm.backtest_zone", zone) + f'<div class="light">{lights}</div>',
            fig(
                "firm.backtest_exceptions",
                f["backtest_exceptions"],
                count(f["backtest_exceptions"]),
            )
            + " exceptions in "
            + fig(
                "firm.backtest_observations",
                f["backtest_observations"],
                count(f["backtest_observations"]),
            )
            + " days · plus factor "
            + fig(
                "firm.backtest_plus_factor",
                f["backtest_plus_factor"],
                "–" if f["backtest_plus_factor"] is None else f"{f['backtest_plus_factor']:.2f}",
            ),
        ),
    ]
    body = "".join(
        f'<div class="card"><div class="label">{label}</div><div class="value">{value}</div>'
        f'<div class="detail">{detail}</div></div>'
        for label, value, detail in cards
    )
    return f'<div class="cards" data-testid="headline">{body}</div>'


def _node_row(n: dict[str, Any], carried_from: date | None = None) -> str:
    key = f"node.{n['level']}.{n['node']}"
    label = escape(n["node"])
    if carried_from is not None:
        label += (
            f' <span class="muted" {attrs(f"{key}.positions_date", carried_from.isoformat())}>'
            f"(positions of {carried_from})</span>"
        )
    return (
        f'<tr class="{n["level"]}">'
        + _td(label, num=False)
        + _td(fig(f"{key}.var_99_1d_usd", n["var_99_1d_usd"], usd(n["var_99_1d_usd"])))
        + _td(
            _change(
                f"{key}.var_99_1d_change_usd",
                n["var_99_1d_change_usd"],
                n["var_99_1d_change_pct"],
                f"{key}.var_99_1d_change_pct",
            )
        )
        + _td(fig(f"{key}.var_99_10d_usd", n["var_99_10d_usd"], usd(n["var_99_10d_usd"])))
        + _td(fig(f"{key}.es_975_1d_usd", n["es_975_1d_usd"], usd(n["es_975_1d_usd"])))
        + _td(_change(f"{key}.es_975_1d_change_usd", n["es_975_1d_change_usd"]))
        + "</tr>"
    )


def _breakdown(data: ReportData) -> str:
    f = data.firm
    regions = [n for n in data.nodes if n["level"] == "region"]
    rows = []
    carried = data.carried_forward
    for r in sorted(regions, key=lambda n: n["node"]):
        rows.append(_node_row(r, carried.get(r["node"])))
        rows.extend(
            _node_row(d, carried.get(d["region"]))
            for d in data.nodes
            if d["level"] == "desk" and d["region"] == r["node"]
        )
    table = (
        "<table>"
        + _th(
            "Region / desk", "VaR 99% 1d", "Day-on-day", "VaR 99% 10d", "ES 97.5% 1d", "ES change"
        )
        + "<tbody>"
        + "".join(rows)
        + "</tbody></table>"
    )
    chart = waterfall_chart(
        [(r["node"], r["var_99_1d_usd"]) for r in sorted(regions, key=lambda n: n["node"])],
        f["sum_region_var_99_1d_usd"],
        f["diversification_benefit_usd"],
        f["firm_var_99_1d_usd"],
    )
    return (
        '<div class="two">'
        '<section data-testid="section.breakdown"><h2>Region and desk breakdown (USD)</h2>'
        f"{table}{_carried_note(data)}</section>"
        '<section data-testid="section.diversification"><h2>Diversification</h2>'
        "<p>Regional stand-alone VaR do not add up to the firm's: losses in different "
        "regions do not all happen in the same scenarios.</p>"
        f"{chart}</section></div>"
    )


def _trend(data: ReportData) -> str:
    rows = data.trend
    exceptions = sum(1 for r in rows if r["is_exception"])
    first = rows[0]["business_date"].isoformat() if rows else "–"
    return (
        '<section data-testid="section.trend"><h2>Firm VaR and realised P&amp;L, '
        f"{len(rows)} business days ({first} to {data.business_date.isoformat()})</h2>"
        + trend_chart(rows)
        + '<div class="legend"><span style="--c:#2f7d5b">P&amp;L gain</span>'
        '<span style="--c:#8a94a6">P&amp;L loss</span>'
        '<span style="--c:#c0392b">−VaR forecast (loss limit) / exception bar</span>'
        '<span style="--c:#2b5f9e">VaR 99% 1d of the day (dashed)</span>'
        f'<span class="ring">exception ({exceptions} shown)</span></div></section>'
    )


def _contrib_rows(rows: list[dict[str, Any]], with_node: bool) -> str:
    out = []
    for r in rows:
        key = f"contrib.{r['level']}.{r['node']}.{r['book']}"
        cells = [_td(escape(r["node"]), num=False)] if with_node else []
        cells += [
            _td(fig(f"{key}.contributor_rank", r["contributor_rank"], str(r["contributor_rank"]))),
            _td(escape(r["book"]), num=False),
            _td(
                fig(
                    f"{key}.component_var_99_1d_usd",
                    r["component_var_99_1d_usd"],
                    usd(r["component_var_99_1d_usd"]),
                )
            ),
            _td(
                fig(f"{key}.share_of_node_var", r["share_of_node_var"], pct(r["share_of_node_var"]))
            ),
        ]
        out.append("<tr>" + "".join(cells) + "</tr>")
    return "".join(out)


def _contributors(data: ReportData) -> str:
    firm_table = (
        "<table>"
        + _th("#", "Book", "Component VaR", "Share", num_from=0).replace(
            '<th class="num">Book</th>', "<th>Book</th>"
        )
        + "<tbody>"
        + _contrib_rows(data.contributors, with_node=False)
        + "</tbody></table>"
    )
    region_table = (
        "<table>"
        + _th("Region", "#", "Book", "Component VaR", "Share").replace(
            '<th class="num">Book</th>', "<th>Book</th>"
        )
        + "<tbody>"
        + _contrib_rows(data.region_contributors, with_node=True)
        + "</tbody></table>"
        if data.region_contributors
        else '<p class="empty">No regional attribution loaded.</p>'
    )
    return (
        '<div class="two">'
        '<section data-testid="section.contributors"><h2>Top contributors to firm VaR '
        "(component VaR 99% 1d)</h2>"
        + contributions_chart(data.contributors)
        + "<h3>Top 10 books</h3>"
        + firm_table
        + "</section>"
        '<section data-testid="section.region-contributors"><h2>Top 3 books per region</h2>'
        + region_table
        + '<p class="empty">Component (Euler) VaR adds up to the node\'s VaR; a negative '
        "component is a hedge.</p></section></div>"
    )


def _p(value: float | None) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.3f}"


def _backtest(data: ReportData) -> str:
    if not data.backtest:
        return (
            '<section data-testid="section.backtest"><h2>Backtest</h2>'
            '<p class="empty">No backtest loaded for this date.</p></section>'
        )
    rows = []
    for b in data.backtest:
        key = f"backtest.{b['level']}.{b['node']}"
        last = b["last_exception_date"]
        rows.append(
            f'<tr class="{b["level"]}">'
            + _td(escape(b["node"]), num=False)
            + _td(_badge(f"{key}.zone", b["zone"]), num=False)
            + _td(fig(f"{key}.exceptions", b["exceptions"], count(b["exceptions"])))
            + _td(fig(f"{key}.observations", b["observations"], count(b["observations"])))
            + _td(
                fig(
                    f"{key}.expected_exceptions",
                    b["expected_exceptions"],
                    f"{b['expected_exceptions']:.1f}",
                )
            )
            + _td(fig(f"{key}.plus_factor", b["plus_factor"], f"{b['plus_factor']:.2f}"))
            + _td(fig(f"{key}.kupiec_p_value", b["kupiec_p_value"], _p(b["kupiec_p_value"])))
            + _td(
                fig(
                    f"{key}.christoffersen_p_cc",
                    b["christoffersen_p_cc"],
                    _p(b["christoffersen_p_cc"]),
                )
            )
            + _td(fig(f"{key}.last_exception_date", last, last.isoformat() if last else "–"))
            + "</tr>"
        )
    return (
        '<section data-testid="section.backtest"><h2>Backtest: exceptions and Basel traffic '
        "light (VaR 99% 1d, last 250 days)</h2><table>"
        + _th(
            "Node",
            "Zone",
            "Exceptions",
            "Days",
            "Expected",
            "Plus factor",
            "Kupiec p",
            "Christoffersen p (cc)",
            "Last exception",
            num_from=2,
        )
        + "<tbody>"
        + "".join(rows)
        + "</tbody></table></section>"
    )


LIMIT_MEASURES = {
    "var_99_1d_usd": "VaR 99% 1d",
    "es_975_1d_usd": "ES 97.5% 1d",
    "worst_stress_loss_usd": "Worst stress loss",
}
STATUS_BADGE = {"ok": "green", "warning": "yellow", "breach": "red", "green": "green",
                "amber": "yellow", "red": "red"}  # fmt: skip


def _status(testid: str, status: str | None, empty: str) -> str:
    z = STATUS_BADGE.get(status or "", "none")
    return f'<span class="badge {z}" {attrs(testid, status)}>{escape(status or empty)}</span>'


def _beyond_var(data: ReportData) -> str:
    title = "<h2>Beyond VaR: stress, limits, FRTB ES, desk tests</h2>"
    if not data.beyond_var:
        return (
            f'<section data-testid="section.beyond_var">{title}'
            '<p class="empty">No stress, limit, FRTB or desk-test figures for this date.</p>'
            "</section>"
        )
    rows = []
    for n in data.beyond_var:
        key = f"rbv.{n['level']}.{n['node']}"
        used = n["max_utilisation"]
        eligible = n["backtest_eligible"]
        rows.append(
            f'<tr class="{n["level"]}">'
            + _td(escape(n["node"]), num=False)
            + _td(fig(f"{key}.var_99_1d_usd", n["var_99_1d_usd"], musd(n["var_99_1d_usd"])))
            + _td(fig(f"{key}.es_975_1d_usd", n["es_975_1d_usd"], musd(n["es_975_1d_usd"])))
            + _td(fig(f"{key}.frtb_es_usd", n["frtb_es_usd"], musd(n["frtb_es_usd"])))
            + _td(fig(f"{key}.imcc_usd", n["imcc_usd"], musd(n["imcc_usd"])))
            + _td(
                fig(
                    f"{key}.worst_stress_loss_usd",
                    n["worst_stress_loss_usd"],
                    musd(n["worst_stress_loss_usd"]),
                )
            )
            + _td(
                fig(
                    f"{key}.worst_stress_scenario",
                    n["worst_stress_scenario"],
                    n["worst_stress_scenario"] or "–",
                ),
                num=False,
            )
            + _td(fig(f"{key}.max_utilisation", used, pct(used, digits=0)))
            + _td(_status(f"{key}.limit_status", n["limit_status"], "no limit"), num=False)
            + _td(_status(f"{key}.pla_zone", n["pla_zone"], "–"), num=False)
            + _td(
                fig(
                    f"{key}.backtest_eligible",
                    eligible,
                    "–" if eligible is None else ("yes" if eligible else "no"),
                ),
                num=False,
            )
            + "</tr>"
        )
    breaches = "".join(
        "<li>"
        + _status(f"limit.{b['level']}.{b['node']}.{b['measure']}.status", b["status"], "")
        + f" {escape(b['level'])} {escape(b['node'])}: "
        + escape(LIMIT_MEASURES.get(b["measure"], b["measure"]))
        + " "
        + fig(f"limit.{b['level']}.{b['node']}.{b['measure']}.figure_usd", b["figure_usd"],
              musd(b["figure_usd"]))
        + " vs limit "
        + fig(f"limit.{b['level']}.{b['node']}.{b['measure']}.limit_usd", b["limit_usd"],
              musd(b["limit_usd"]))
        + " ("
        + fig(f"limit.{b['level']}.{b['node']}.{b['measure']}.utilisation", b["utilisation"],
              pct(b["utilisation"], digits=0))
        + ")</li>"
        for b in data.limit_breaches
    )  # fmt: skip
    limits = (
        f"<h3>Limit warnings (≥ 80%) and breaches (≥ 100%)</h3><ul>{breaches}</ul>"
        if breaches
        else '<p class="empty">Every limited figure is below 80% of its limit.</p>'
    )
    return (
        f'<section data-testid="section.beyond_var">{title}<table>'
        + _th(
            "Node",
            "VaR 99% 1d",
            "ES 97.5% 1d",
            "FRTB ES",
            "IMCC",
            "Worst stress loss",
            "Worst scenario",
            "Max limit use",
            "Limits",
            "PLA zone",
            "Backtest eligible",
        )
        + "<tbody>"
        + "".join(rows)
        + "</tbody></table>"
        + limits
        + "</section>"
    )


def _data_quality(data: ReportData) -> str:
    rows = []
    for q in data.data_quality:
        key = f"dq.{q['region']}"
        ok = q["reconciles"]
        rows.append(
            "<tr>"
            + _td(escape(q["region"]), num=False)
            + _td(fig(f"{key}.rows_read", q["rows_read"], count(q["rows_read"])))
            + _td(fig(f"{key}.rows_accepted", q["rows_accepted"], count(q["rows_accepted"])))
            + _td(
                fig(f"{key}.rows_quarantined", q["rows_quarantined"], count(q["rows_quarantined"]))
            )
            + _td(
                fig(
                    f"{key}.quarantine_rate",
                    q["quarantine_rate"],
                    pct(q["quarantine_rate"], digits=3),
                )
            )
            + _td(fig(f"{key}.rules_broken", q["rules_broken"], count(q["rules_broken"])))
            + _td(
                fig(f"{key}.reconciles", ok, "yes" if ok else "NO", "ok" if ok else "bad"),
                num=False,
            )
            + _td(f"<code>{escape(q['source_file'])}</code>", num=False)
            + "</tr>"
        )
    by_rule = []
    for r in data.data_quality_by_rule:
        key = f"dqrule.{r['region']}.{r['rule']}.{r['field']}"
        by_rule.append(
            "<tr>"
            + _td(escape(r["region"]), num=False)
            + _td(escape(r["rule"]), num=False)
            + _td(escape(r["field"]), num=False)
            + _td(
                fig(f"{key}.rows_quarantined", r["rows_quarantined"], count(r["rows_quarantined"]))
            )
            + _td(
                fig(
                    f"{key}.share_of_quarantined",
                    r["share_of_quarantined"],
                    pct(r["share_of_quarantined"]),
                )
            )
            + "</tr>"
        )
    table = (
        "<table>"
        + _th("Region", "Read", "Accepted", "Quarantined", "Rate", "Rules", "Reconciles", "File")
        .replace('<th class="num">Reconciles</th>', "<th>Reconciles</th>")
        .replace('<th class="num">File</th>', "<th>File</th>")
        + "<tbody>"
        + "".join(rows)
        + "</tbody></table>"
        if rows
        else '<p class="empty">No trade files audited for this date.</p>'
    )
    rules = (
        "<table>"
        + _th("Region", "Rule", "Field", "Rows", "Share of quarantined", num_from=3)
        + "<tbody>"
        + "".join(by_rule)
        + "</tbody></table>"
        if by_rule
        else '<p class="empty">No rows quarantined.</p>'
    )
    return (
        '<section data-testid="section.data-quality"><h2>Data quality: trade files</h2>'
        + table
        + "<h3>Quarantined rows by rule</h3>"
        + rules
        + "</section>"
    )


def _link_or_text(testid: str, value: Any) -> str:
    text = exact(value)
    if isinstance(value, list | tuple):
        text = ", ".join(map(str, value)) or "none"
        return f"<span {attrs(testid, text)}>{escape(text)}</span>"
    if isinstance(value, str) and value.startswith(("http://", "https://")):
        return f'<a href="{escape(value)}" {attrs(testid, value)}>{escape(value)}</a>'
    return f"<span {attrs(testid, value)}>{escape(text or '–')}</span>"


def _runs(data: ReportData) -> str:
    rows = []
    for r in data.runs:
        key = f"run.{r['region']}.{r['run_id']}"
        rows.append(
            "<tr>"
            + _td(escape(r["region"]), num=False)
            + _td(
                f"<code {attrs(f'{key}.run_id', r['run_id'])}>{escape(r['run_id'])}</code>", False
            )
            + _td(fig(f"{key}.nodes", r["nodes"], count(r["nodes"])))
            + _td(
                fig(
                    f"{key}.last_loaded_at",
                    r["last_loaded_at"],
                    r["last_loaded_at"].astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
                ),
                num=False,
            )
            + "</tr>"
        )
    if data.pipeline_run:
        items = "".join(
            f"<dt>{escape(k)}</dt><dd>{_link_or_text(f'pipeline.{k}', v)}</dd>"
            for k, v in data.pipeline_run.items()
        )
        pipeline = f'<h3>Pipeline run (bi.pipeline_runs)</h3><dl class="meta">{items}</dl>'
    elif data.pipeline_runs_available:
        pipeline = (
            '<p class="empty">bi.pipeline_runs has no run recorded for '
            f"{data.business_date.isoformat()}.</p>"
        )
    else:
        pipeline = '<p class="empty">Run history (bi.pipeline_runs) is not installed.</p>'
    first, last = data.loaded_dates
    return (
        '<section data-testid="section.runs"><h2>Run metadata</h2>'
        "<table>"
        + _th("Region", "Run", "Nodes loaded", "Loaded at", num_from=2).replace(
            '<th class="num">Loaded at</th>', "<th>Loaded at</th>"
        )
        + "<tbody>"
        + "".join(rows)
        + "</tbody></table>"
        + pipeline
        + f"<p>Loaded business dates in Postgres: {escape(str(first))} to {escape(str(last))}. "
        f"Firm summary run {_link_or_text('firm.run_id', data.firm['run_id'])}.</p>"
        "</section>"
    )


def _carried_note(data: ReportData) -> str:
    if not data.carried_forward:
        return ""
    closed = ", ".join(
        f"{escape(region)} (positions of {day})" for region, day in data.carried_forward.items()
    )
    return (
        f'<p data-testid="note.carried_forward">Exchange holiday: {closed} — no trade file that '
        "day; the region's positions of its previous business day were carried forward, "
        "revalued under this date's market data and included in the firm figure.</p>"
    )


def render(data: ReportData, generated_at: datetime | None = None) -> str:
    d = data.business_date.isoformat()
    generated = (generated_at or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    regions = data.firm["regions"]
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; img-src data:\">"
        f"<title>eodrisk — end-of-day market risk {d}</title>"
        f"<style>{CSS}</style></head><body>"
        f"<header><h1>End-of-day market risk · <span {attrs('meta.business_date', d)}>{d}</span>"
        "</h1>"
        f'<div class="sub">Firm → regions ({escape(regions)}) → desks → books · historical '
        "simulation, VaR 99% and ES 97.5%, positive losses in USD · generated "
        f"{generated} from the bi views as role "
        f"<span {attrs('meta.role', data.role)}>{escape(data.role)}</span></div></header>"
        "<main>"
        + _cards(data)
        + _breakdown(data)
        + _trend(data)
        + _contributors(data)
        + _backtest(data)
        + _beyond_var(data)
        + _data_quality(data)
        + _runs(data)
        + "</main><footer>Sources: "
        + ", ".join(VIEWS_USED)
        + (", bi.pipeline_runs" if data.pipeline_runs_available else "")
        + ". Written by <code>eodrisk report</code>; opens offline.</footer></body></html>\n"
    )

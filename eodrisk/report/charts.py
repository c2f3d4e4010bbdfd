"""Inline SVG charts for the report: no library, no script, readable without a browser's help.

Every mark that stands for a number carries ``data-testid``/``data-value`` (the exact
value) and a ``<title>`` tooltip, like the figures in the page's tables.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape
from typing import Any

from eodrisk.report.format import attrs, musd, pct, usd

PNL_UP = "#2f7d5b"
PNL_DOWN = "#8a94a6"
LIMIT = "#c0392b"
EXCEPTION = "#c0392b"
BAR = "#2b5f9e"
HEDGE = "#17a2a2"
BENEFIT = "#e39b27"
INK = "#1f2933"
GRID = "#e4e7eb"
MUTED = "#616e7c"


# Advance widths of DejaVu Sans (the charts' font, see html.py) in em, rounded up per class
# of character, so a label's room is computed rather than guessed: nothing is cut.
_EM_WIDTH = {"upper": 0.78, "lower": 0.62, "digit": 0.64, " ": 0.32, "_": 0.5, ".": 0.32}


def text_width(text: str, font_size: float) -> float:
    """An upper bound of ``text``'s width in px, set in DejaVu Sans at ``font_size`` px."""
    em = 0.0
    for ch in text:
        if ch.isupper():
            em += _EM_WIDTH["upper"]
        elif ch.islower():
            em += _EM_WIDTH["lower"]
        elif ch.isdigit():
            em += _EM_WIDTH["digit"]
        else:
            em += _EM_WIDTH.get(ch, 0.7)
    return em * font_size


def label_room(labels: Sequence[str], font_size: float, least: float) -> int:
    """Width for a column of labels: the widest label and a margin, at least ``least``."""
    return math.ceil(max([least, *(text_width(t, font_size) + 12 for t in labels)]))


def nice_ticks(low: float, high: float, count: int = 6) -> list[float]:
    """Round tick values covering [low, high] (1, 2, 2.5, 5 x 10^k steps)."""
    if not math.isfinite(low) or not math.isfinite(high) or high <= low:
        high, low = (low + 1.0, low - 1.0) if math.isfinite(low) else (1.0, -1.0)
    raw = (high - low) / max(count - 1, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.floor(low / step) * step
    ticks, t = [], first
    while t < high + step * 0.999:
        ticks.append(round(t, 10))
        t += step
    return ticks


def _text(x: float, y: float, text: str, anchor: str = "start", **style: Any) -> str:
    extra = " ".join(f'{k.replace("_", "-")}="{escape(str(v))}"' for k, v in style.items())
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" {extra}>{escape(text)}</text>'


def trend_chart(rows: Sequence[dict[str, Any]], width: int = 1120, height: int = 340) -> str:
    """Firm P&L bars against the VaR forecast (drawn as a loss limit), exceptions marked."""
    points = [r for r in rows if r["business_date"] is not None]
    if not points:
        return '<p class="empty">No VaR history loaded.</p>'
    left, right, top, bottom = 78, 16, 18, 42
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [0.0]
    for r in points:
        for key in ("hypothetical_pnl_usd", "var_99_1d_usd"):
            if r[key] is not None:
                values.append(r[key])
        if r["var_forecast_99_1d_usd"] is not None:
            values.append(-r["var_forecast_99_1d_usd"])
    ticks = nice_ticks(min(values), max(values))
    y_low, y_high = ticks[0], ticks[-1]
    n = len(points)
    slot = plot_w / n

    def x(i: int) -> float:
        return left + slot * (i + 0.5)

    def y(v: float) -> float:
        return top + plot_h * (y_high - v) / (y_high - y_low)

    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="100%" '
        f'data-testid="chart.trend" aria-label="Firm VaR forecast and realised P&amp;L">'
    ]
    for t in ticks:
        parts.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y(t):.1f}" y2="{y(t):.1f}" '
            f'stroke="{INK if t == 0 else GRID}" stroke-width="{1 if t == 0 else 0.8}"/>'
        )
        parts.append(_text(left - 8, y(t) + 4, musd(t), "end", fill=MUTED, font_size=11))
    month = None
    for i, r in enumerate(points):
        d = r["business_date"]
        if (d.year, d.month) != month:
            month = (d.year, d.month)
            parts.append(
                f'<line x1="{x(i):.1f}" x2="{x(i):.1f}" y1="{top + plot_h}" '
                f'y2="{top + plot_h + 5}" stroke="{MUTED}"/>'
            )
            parts.append(
                _text(
                    x(i), top + plot_h + 18, d.strftime("%b %y"), "middle", fill=MUTED, font_size=11
                )
            )
    bar_w = max(slot * 0.7, 0.8)
    for i, r in enumerate(points):
        pnl, d = r["hypothetical_pnl_usd"], r["business_date"].isoformat()
        if pnl is None:
            continue
        y0, y1 = sorted((y(0.0), y(pnl)))
        colour = PNL_UP if pnl >= 0 else PNL_DOWN
        if r["is_exception"]:
            colour = EXCEPTION
        parts.append(
            f'<rect x="{x(i) - bar_w / 2:.2f}" y="{y0:.2f}" width="{bar_w:.2f}" '
            f'height="{max(y1 - y0, 0.5):.2f}" fill="{colour}" '
            f"{attrs(f'trend.{d}.hypothetical_pnl_usd', pnl)}>"
            f"<title>{d} realised P&amp;L {usd(pnl)}</title></rect>"
        )
    limit = [(i, r) for i, r in enumerate(points) if r["var_forecast_99_1d_usd"] is not None]
    if limit:
        path = " ".join(
            f"{'M' if k == 0 else 'L'}{x(i):.2f},{y(-r['var_forecast_99_1d_usd']):.2f}"
            for k, (i, r) in enumerate(limit)
        )
        parts.append(f'<path d="{path}" fill="none" stroke="{LIMIT}" stroke-width="1.6"/>')
    var_line = [(i, r) for i, r in enumerate(points) if r["var_99_1d_usd"] is not None]
    path = " ".join(
        f"{'M' if k == 0 else 'L'}{x(i):.2f},{y(r['var_99_1d_usd']):.2f}"
        for k, (i, r) in enumerate(var_line)
    )
    parts.append(
        f'<path d="{path}" fill="none" stroke="{BAR}" stroke-width="1.4" stroke-dasharray="4 3"/>'
    )
    for i, r in var_line:
        d = r["business_date"].isoformat()
        parts.append(
            f'<circle cx="{x(i):.2f}" cy="{y(r["var_99_1d_usd"]):.2f}" r="1.6" fill="{BAR}" '
            f'fill-opacity="0" {attrs(f"trend.{d}.var_99_1d_usd", r["var_99_1d_usd"])}>'
            f"<title>{d} VaR 99% 1d {usd(r['var_99_1d_usd'])}</title></circle>"
        )
    for i, r in limit:
        d = r["business_date"].isoformat()
        v = r["var_forecast_99_1d_usd"]
        parts.append(
            f'<circle cx="{x(i):.2f}" cy="{y(-v):.2f}" r="1.6" fill="{LIMIT}" '
            f'fill-opacity="0" {attrs(f"trend.{d}.var_forecast_99_1d_usd", v)}>'
            f"<title>{d} VaR forecast (loss limit) {usd(-v)}</title></circle>"
        )
    for i, r in enumerate(points):
        if r["is_exception"]:
            d = r["business_date"].isoformat()
            parts.append(
                f'<circle cx="{x(i):.2f}" cy="{y(r["hypothetical_pnl_usd"]):.2f}" r="5" '
                f'fill="none" stroke="{EXCEPTION}" stroke-width="2" '
                f"{attrs(f'trend.{d}.is_exception', True)}>"
                f"<title>{d} exception: loss {usd(-r['hypothetical_pnl_usd'])} &gt; "
                f"VaR {usd(r['var_forecast_99_1d_usd'])}</title></circle>"
            )
    parts.append("</svg>")
    return "".join(parts)


def waterfall_chart(
    regions: Sequence[tuple[str, float]],
    sum_regions: float,
    benefit: float,
    firm_var: float,
    width: int = 440,
) -> str:
    """Regional stand-alone VaR stacked up to their sum, less the benefit, equals firm VaR."""
    bars: list[tuple[str, float, float, str, str]] = []  # label, start, end, colour, testid
    running = 0.0
    for region, var in regions:
        bars.append((region, running, running + var, BAR, f"chart.waterfall.{region}"))
        running += var
    bars.append(("Sum of regions", 0.0, sum_regions, MUTED, "chart.waterfall.sum"))
    bars.append(
        ("Diversification", sum_regions - benefit, sum_regions, BENEFIT, "chart.waterfall.benefit")
    )
    bars.append(("Firm VaR", 0.0, firm_var, INK, "chart.waterfall.firm"))
    values = {
        "chart.waterfall.sum": sum_regions,
        "chart.waterfall.benefit": benefit,
        "chart.waterfall.firm": firm_var,
    } | {f"chart.waterfall.{r}": v for r, v in regions}
    label_w = label_room([b[0] for b in bars], 12, 112)
    shown_values = [*(v for _, v in regions), sum_regions, -benefit, firm_var]
    value_w = label_room([musd(v) for v in shown_values], 12, 70)
    row_h, top = 30, 8
    width = max(width, label_w + value_w + 120)
    plot_w = width - label_w - value_w
    high = max([sum_regions, firm_var, *(b[2] for b in bars)]) or 1.0
    height = top * 2 + row_h * len(bars)
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="100%" '
        f'data-testid="chart.waterfall" aria-label="Diversification waterfall">'
    ]
    for k, (label, start, end, colour, testid) in enumerate(bars):
        y = top + k * row_h
        x0 = label_w + plot_w * min(start, end) / high
        w = max(plot_w * abs(end - start) / high, 1.0)
        value = values[testid]
        shown = -value if testid == "chart.waterfall.benefit" else value
        parts.append(_text(label_w - 8, y + row_h * 0.62, label, "end", fill=INK, font_size=12))
        parts.append(
            f'<rect x="{x0:.1f}" y="{y + 5}" width="{w:.1f}" height="{row_h - 10}" rx="2" '
            f'fill="{colour}" {attrs(testid, value)}><title>{escape(label)} '
            f"{usd(shown)}</title></rect>"
        )
        parts.append(
            _text(x0 + w + 6, y + row_h * 0.62, musd(shown), "start", fill=MUTED, font_size=12)
        )
    parts.append("</svg>")
    return "".join(parts)


def contributions_chart(rows: Sequence[dict[str, Any]], width: int = 540) -> str:
    """Top books by component VaR within the firm; hedges (negative) extend left."""
    if not rows:
        return '<p class="empty">No component VaR loaded for this date.</p>'
    label_w = label_room([r["book"] for r in rows], 12, 130)
    value_w = label_room([_contribution_text(r) for r in rows], 12, 120)
    row_h, top = 26, 8
    width = max(width, label_w + value_w + 160)
    plot_w = width - label_w - value_w
    low = min(0.0, *(r["component_var_99_1d_usd"] for r in rows))
    high = max(0.0, *(r["component_var_99_1d_usd"] for r in rows)) or 1.0
    span = high - low

    def x(v: float) -> float:
        return label_w + plot_w * (v - low) / span

    height = top * 2 + row_h * len(rows)
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="100%" '
        f'data-testid="chart.contributions" aria-label="Top contributors to firm VaR">'
    ]
    parts.append(
        f'<line x1="{x(0):.1f}" x2="{x(0):.1f}" y1="{top}" y2="{height - top}" stroke="{GRID}"/>'
    )
    for k, r in enumerate(rows):
        y = top + k * row_h
        v = r["component_var_99_1d_usd"]
        x0, x1 = sorted((x(0.0), x(v)))
        testid = f"chart.contributions.{r['book']}"
        parts.append(_text(label_w - 8, y + row_h * 0.65, r["book"], "end", fill=INK, font_size=12))
        parts.append(
            f'<rect x="{x0:.1f}" y="{y + 4}" width="{max(x1 - x0, 1.0):.1f}" '
            f'height="{row_h - 8}" rx="2" fill="{BAR if v >= 0 else HEDGE}" '
            f"{attrs(testid, v)}><title>{escape(r['book'])} component VaR {usd(v)} "
            f"({pct(r['share_of_node_var'])} of firm VaR)</title></rect>"
        )
        parts.append(
            _text(
                max(x1, x(0.0)) + 6,
                y + row_h * 0.65,
                _contribution_text(r),
                "start",
                fill=MUTED,
                font_size=12,
            )
        )
    parts.append("</svg>")
    return "".join(parts)


def _contribution_text(row: dict[str, Any]) -> str:
    return f"{musd(row['component_var_99_1d_usd'])} · {pct(row['share_of_node_var'])}"

"""How figures are written on the page, and the exact value each one carries.

A figure shows a rounded, readable text and carries the database value exactly in
``data-value`` (floats as ``repr``, which round-trips), so a test can compare the page
with Postgres without parsing "$12.3M".
"""

from __future__ import annotations

from datetime import date, datetime
from html import escape
from typing import Any

MINUS = "\u2212"


def exact(value: Any) -> str:
    """The value as ``data-value`` text: repr for floats, ISO for dates, '' for null."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def attrs(testid: str, value: Any) -> str:
    return f'data-testid="{escape(testid)}" data-value="{escape(exact(value))}"'


def fig(testid: str, value: Any, text: str, cls: str = "") -> str:
    """A figure: readable text, exact value attached."""
    klass = f' class="{cls}"' if cls else ""
    return f"<span{klass} {attrs(testid, value)}>{escape(text)}</span>"


def _signed(text: str, value: float, signed: bool) -> str:
    if value < 0:
        return MINUS + text
    return ("+" + text) if signed and value > 0 else text


def usd(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "–"
    return _signed(f"{abs(value):,.0f}", value, signed)


def musd(value: float | None, signed: bool = False) -> str:
    """Millions of USD with one or two decimals ($12.3M); thousands below a million."""
    if value is None:
        return "–"
    a = abs(value)
    if a >= 1e6:
        text = f"${a / 1e6:,.{2 if a < 1e7 else 1}f}M"
    elif a >= 1e3:
        text = f"${a / 1e3:,.0f}k"
    else:
        text = f"${a:,.0f}"
    return _signed(text, value, signed)


def pct(fraction: float | None, signed: bool = False, digits: int = 1) -> str:
    """A fraction as percent (0.123 → 12.3%)."""
    if fraction is None:
        return "–"
    return _signed(f"{abs(fraction) * 100:.{digits}f}%", fraction, signed)


def pct_points(percent: float | None, signed: bool = True) -> str:
    """A value already in percent (3.2 → +3.2%)."""
    if percent is None:
        return "–"
    return _signed(f"{abs(percent):.1f}%", percent, signed)


def count(value: int | None) -> str:
    return "–" if value is None else f"{value:,}"


def change_class(value: float | None) -> str:
    """Risk going up is what the reader should notice: up is 'up' (red), down 'down'."""
    if value is None or value == 0:
        return "flat"
    return "up" if value > 0 else "down"

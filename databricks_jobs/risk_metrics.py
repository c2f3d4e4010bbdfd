"""Risk figures of a set of hierarchy nodes from their P&L vectors (driver-side, small).

The vectors reaching this module are already aggregated by book (tens to hundreds of
rows × 500 scenarios), so numpy on the driver is the right tool; the per-position work is
done by Spark before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from risk_models.aggregate import aggregate_pnl
from risk_models.attribution import component_var
from risk_models.var import (
    ES_CONFIDENCE,
    VAR_CONFIDENCE,
    historical_es,
    historical_var,
    scale_to_horizon,
)

#: The top of the hierarchy: the firm node's name, and its rows' region, in every table.
FIRM = "FIRM"
HORIZON_DAYS = 10


@dataclass(frozen=True)
class NodeRisk:
    level: str
    node: str
    parent: str
    var_99_1d_usd: float
    var_99_10d_usd: float
    es_975_1d_usd: float
    pnl: list[float]


def node_risk(level: str, node: str, parent: str, pnl: np.ndarray) -> NodeRisk:
    var_1d = float(historical_var(pnl, VAR_CONFIDENCE))
    return NodeRisk(
        level=level,
        node=node,
        parent=parent,
        var_99_1d_usd=var_1d,
        var_99_10d_usd=float(scale_to_horizon(var_1d, HORIZON_DAYS)),
        es_975_1d_usd=float(historical_es(pnl, ES_CONFIDENCE)),
        pnl=pnl.tolist(),
    )


def hierarchy_pnl(
    region: str, books: Sequence[str], desks: Sequence[str], book_pnl: np.ndarray
) -> list[tuple[str, str, str, np.ndarray]]:
    """``(level, node, parent, pnl)`` of every book, desk and the region.

    Parameters
    ----------
    books, desks : (B,)
        Each book and the desk it belongs to.
    book_pnl : (B, S)
        P&L of each book in USD under each of S scenarios (or stress states).
    """
    desk_names = sorted(set(desks))
    desk_of_book = np.array([desk_names.index(d) for d in desks], dtype=np.int64)
    desk_pnl = aggregate_pnl(book_pnl, desk_of_book, len(desk_names))
    return [
        *(("book", b, d, book_pnl[i]) for i, (b, d) in enumerate(zip(books, desks, strict=True))),
        *(("desk", d, region, desk_pnl[i]) for i, d in enumerate(desk_names)),
        ("region", region, FIRM, desk_pnl.sum(axis=0)),
    ]


def rollup_region(
    region: str, books: Sequence[str], desks: Sequence[str], book_pnl: np.ndarray
) -> list[NodeRisk]:
    """Book, desk and region figures of one region (see :func:`hierarchy_pnl`)."""
    return [node_risk(*node) for node in hierarchy_pnl(region, books, desks, book_pnl)]


@dataclass(frozen=True)
class VarContribution:
    """A book's Euler contribution to the 99% 1-day VaR of a node that contains it."""

    level: str
    node: str
    book: str
    component_var_99_1d_usd: float


def node_contributions(
    level: str, node: str, books: Sequence[str], book_pnl: np.ndarray
) -> list[VarContribution]:
    """Component VaR of each book of ``node``; they add up to the node's VaR.

    Parameters
    ----------
    books : (B,)
    book_pnl : (B, S)
        Scenario P&L of the node's books in USD; the node's P&L is their sum.
    """
    shares = component_var(book_pnl, VAR_CONFIDENCE)
    return [
        VarContribution(level, node, book, float(share))
        for book, share in zip(books, shares, strict=True)
    ]


def region_contributions(
    region: str, books: Sequence[str], desks: Sequence[str], book_pnl: np.ndarray
) -> list[VarContribution]:
    """Contributions of each book to its desk's VaR and to the region's VaR."""
    out: list[VarContribution] = []
    for desk in sorted(set(desks)):
        rows = [i for i, d in enumerate(desks) if d == desk]
        out += node_contributions("desk", desk, [books[i] for i in rows], book_pnl[rows])
    return [*out, *node_contributions("region", region, books, book_pnl)]

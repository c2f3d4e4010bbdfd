"""VaR backtesting of the hierarchy nodes: hypothetical P&L, exceptions, 250-day statistics.

Pure pandas + numpy (no Spark), used by the ``backtest`` job: books on the executors,
the roll-up and the statistics on the driver.

For business date D and the previous business day P: the hypothetical P&L of a node is
the change in value of its positions as of P (valued as of P, the terms ``compute_risk``
used) when the market moves from its closes of P to those of D. It is compared with the
node's 99% 1-day VaR computed for P; an exception is a loss larger than that VaR.

Calendars: a region's nodes are observed on the region's business days only, so its
250-observation window runs over its own business days. On a region's holiday D (its
positions carried forward into D's firm figure) its book, desk and region rows are not
observations; the firm's are, with the closed region's hypothetical P&L in them, computed
the same way from the positions it carried.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from databricks_jobs.risk_metrics import FIRM
from databricks_jobs.tables import table
from databricks_jobs.valuation import unit_pnl
from risk_models.backtest import basel_traffic_light, christoffersen, count_exceptions, kupiec_pof
from risk_models.var import VAR_CONFIDENCE

log = logging.getLogger("eodrisk.backtest")

WINDOW = 250
SUMMARY_LEVELS = ("firm", "region")
# The frames' columns: the tables' (databricks_jobs.tables) without what the job adds
# (the date, the forecast date, the run).
BACKTEST_COLUMNS = tuple(
    c
    for c in table("gold.backtest").column_names
    if c not in ("business_date", "forecast_date", "run_id")
)
SUMMARY_COLUMNS = tuple(
    c for c in table("gold.backtest_summary").column_names if c not in ("business_date", "run_id")
)


def book_hypothetical_pnl(
    positions: pd.DataFrame,
    terms: pd.DataFrame,
    factors: list[str],
    base: np.ndarray,
    moved: np.ndarray,
) -> pd.DataFrame:
    """Hypothetical P&L in USD of every book of ``positions`` (executor side: one group).

    Parameters
    ----------
    positions : DataFrame[region, desk, book, instrument_id, quantity]
        Net positions as of P.
    terms : DataFrame
        ``valuation.instrument_terms(instruments, P)``: one row per instrument.
    base, moved : (F,)
        Factor levels at the close of P and of D.

    Returns
    -------
    DataFrame[region, desk, book, hypothetical_pnl_usd], by region and book
    """
    held = pd.Index(sorted(positions["instrument_id"].unique()))
    known = terms.drop_duplicates("instrument_id").set_index("instrument_id")
    missing = held.difference(known.index)
    if len(missing):
        raise ValueError(f"instrument {missing[0]} has no reference data")
    unit = unit_pnl(known.loc[held].reset_index(), factors, base, moved[None, :])[:, 0]
    pnl = positions["quantity"].to_numpy(float) * unit[held.get_indexer(positions["instrument_id"])]
    # instrument order within a book: the float sum, and so a rerun, is reproducible
    frame = positions[["region", "desk", "book", "instrument_id"]].assign(pnl=pnl)
    frame = frame.sort_values(["region", "book", "instrument_id"], kind="stable")
    sums = frame.groupby(["region", "desk", "book"], sort=False)["pnl"].sum()
    return (
        sums.rename("hypothetical_pnl_usd")
        .reset_index()
        .sort_values(["region", "book"], ignore_index=True)
    )


def node_hypothetical_pnl(books: pd.DataFrame, *, include_firm: bool) -> pd.DataFrame:
    """Hypothetical P&L of every book, desk, region (and the firm) from the books'
    (:func:`book_hypothetical_pnl`): DataFrame[level, node, region, hypothetical_pnl_usd]."""
    books = books.sort_values(["region", "book"], kind="stable")
    parts = []
    for level, keys in (("book", "book"), ("desk", "desk"), ("region", "region")):
        sums = books.groupby(["region", keys], sort=True)["hypothetical_pnl_usd"].sum()
        parts.append(
            pd.DataFrame(
                {
                    "level": level,
                    "node": sums.index.get_level_values(1),
                    "region": sums.index.get_level_values(0),
                    "hypothetical_pnl_usd": sums.to_numpy(),
                }
            )
        )
    if include_firm:
        region_sums = parts[-1]["hypothetical_pnl_usd"].to_numpy()
        parts.append(
            pd.DataFrame(
                {
                    "level": ["firm"],
                    "node": [FIRM],
                    "region": [FIRM],
                    "hypothetical_pnl_usd": [float(region_sums.sum())],
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def backtest_rows(
    hypothetical: pd.DataFrame,
    forecasts: pd.DataFrame,
    closed_regions: Sequence[str] = (),
) -> pd.DataFrame:
    """One row per node with both a VaR forecast and a hypothetical P&L.

    ``forecasts``: DataFrame[level, node, var_99_1d_usd] of the previous business day.
    ``closed_regions``: regions closed on the date (carried forward); their own nodes are
    not observed that day (the firm node is).
    """
    hypothetical = hypothetical[
        (hypothetical["level"] == "firm") | ~hypothetical["region"].isin(list(closed_regions))
    ]
    merged = hypothetical.merge(
        forecasts[["level", "node", "var_99_1d_usd"]], on=["level", "node"], how="inner"
    ).rename(columns={"var_99_1d_usd": "var_forecast_99_1d_usd"})
    unmatched = len(hypothetical) - len(merged)
    if unmatched:
        log.warning("%d nodes have a hypothetical P&L but no VaR forecast", unmatched)
    merged["is_exception"] = count_exceptions(
        merged["var_forecast_99_1d_usd"].to_numpy(float),
        merged["hypothetical_pnl_usd"].to_numpy(float),
    )
    return merged[list(BACKTEST_COLUMNS)]


def summary_rows(history: pd.DataFrame, window: int = WINDOW) -> pd.DataFrame:
    """Traffic light, Kupiec and Christoffersen over each node's last ``window`` observations.

    ``history``: DataFrame[business_date, level, node, region, is_exception] of the
    backtest up to and including the date summarised; only firm and region nodes observed
    on the latest date are summarised. With fewer than 2 observations the Christoffersen
    statistics are left empty (it needs a transition).

    The traffic light is the Basel table for a 250-day window applied to the exceptions in
    the window, also while it is still filling (the count can only grow): the binomial
    zones of a short window are meaningless (0 exceptions in 1 day would be "yellow").
    Kupiec and Christoffersen use the actual number of observations.
    """
    if history.empty:
        return pd.DataFrame(columns=list(SUMMARY_COLUMNS))
    latest = history["business_date"].max()
    nodes = history[history["level"].isin(SUMMARY_LEVELS)].sort_values(
        "business_date", kind="stable"
    )
    rows = []
    for (level, node), group in nodes.groupby(["level", "node"], sort=True):
        if group["business_date"].iloc[-1] != latest:
            continue
        last = group.tail(window)
        hits = last["is_exception"].to_numpy(bool)
        n, x = int(hits.size), int(hits.sum())
        light = basel_traffic_light(x, WINDOW, VAR_CONFIDENCE)
        kupiec = kupiec_pof(x, n, VAR_CONFIDENCE)
        chris = christoffersen(hits, VAR_CONFIDENCE) if n >= 2 else (None,) * 4
        rows.append(
            (
                level,
                node,
                last["region"].iloc[-1],
                n,
                x,
                light.zone,
                light.plus_factor,
                kupiec.lr,
                kupiec.p_value,
                *chris,
            )
        )
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))

"""What the quant notebooks call: the lake's results read with ``deltalake`` (no Spark
needed), VaR methods side by side, a node's backtest and their plots — thin wrappers over
``risk_models`` and the functions the jobs use, so a notebook shows the pipeline's numbers.

Roots are strings, local paths or object-store URIs (``s3://bucket/lake``,
``abfss://container@account.dfs.core.windows.net/lake``): paths below them are joined as
strings (``Path`` would turn ``s3://b`` into ``s3:/b``). ``storage_options`` (credentials,
endpoint, region) go unchanged to ``deltalake`` for the lake (object_store keys such as
``AWS_ENDPOINT_URL``) and ``landing_storage_options`` to ``pandas`` for the landing CSVs
(fsspec keys such as ``key``, ``secret``, ``client_kwargs``); without them both use the
environment's credentials.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from databricks_jobs.node_backtests import FIRM, WINDOW, summary_rows
from databricks_jobs.valuation import (
    MarketLevels,
    instrument_terms,
    read_instruments_csv,
    unit_pnl,
)
from risk_models.scenarios import apply_shocks
from risk_models.var import (
    ES_CONFIDENCE,
    VAR_CONFIDENCE,
    filtered_historical_es,
    filtered_historical_var,
    historical_es,
    historical_var,
    monte_carlo,
    parametric_es,
    parametric_var,
)

LEVEL_ORDER = {"firm": 0, "region": 1, "desk": 2, "book": 3}
#: Bump sizes for the delta-normal exposures, in shock units: log-returns for EQ/FX,
#: absolute moves for rates (decimal) and vols (decimal).
BUMP = {"EQ.": 1e-4, "FX.": 1e-4, "IR.": 1e-5, "VOL.": 1e-4}


def display_function(namespace: dict[str, Any]):
    """How a notebook shows a table or a figure: Databricks' ``display``, IPython's in
    Jupyter, else ``print``."""
    if namespace.get("display") is not None:
        return namespace["display"]
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:
        return print
    return display if get_ipython() is not None else print


def widget(dbutils: Any, name: str, default: str) -> str:
    """A notebook widget's value; outside Databricks (``dbutils`` None) an ``EODRISK_<NAME>``
    environment variable or ``default``."""
    if dbutils is None:
        return os.environ.get(f"EODRISK_{name.upper()}", default)
    dbutils.widgets.text(name, default)
    return dbutils.widgets.get(name) or default


StorageOptions = Mapping[str, str] | None


def under(root: str, *parts: str) -> str:
    """``root/part/...`` as a string URI or path: the scheme and bucket of ``root`` are kept."""
    return "/".join([root.rstrip("/"), *parts])


def read_table(
    lake_root: str, table: str, storage_options: StorageOptions = None, **equals: Any
) -> pd.DataFrame:
    """A Delta table of the lake (``gold.var_results``) filtered on column values."""
    from deltalake import DeltaTable

    layer, name = table.split(".")
    options = dict(storage_options) if storage_options else None
    delta = DeltaTable(under(lake_root, layer, name), storage_options=options)
    partitions = set(delta.metadata().partition_columns)
    filters = [(c, "=", v) for c, v in equals.items() if c in partitions]
    frame = delta.to_pandas(filters=filters or None)
    for column, value in equals.items():
        if column not in partitions:
            frame = frame[frame[column] == value]
    return frame.reset_index(drop=True)


def parse_date(text: str) -> date:
    """A widget's ``YYYY-MM-DD`` text as a date, with a message naming the expected format."""
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"business_date {text!r} is not a YYYY-MM-DD date") from None


def latest_date(lake_root: str, storage_options: StorageOptions = None) -> date:
    """The last business date with a firm figure."""
    summary = read_table(lake_root, "gold.firm_summary", storage_options)
    return pd.Timestamp(summary["business_date"].max()).date()


def var_by_node(
    lake_root: str, business_date: date, storage_options: StorageOptions = None
) -> pd.DataFrame:
    """VaR/ES of every node of the date, firm first, then regions, desks, books."""
    frame = read_table(lake_root, "gold.var_results", storage_options, business_date=business_date)
    frame = frame.assign(order=frame["level"].map(LEVEL_ORDER))
    columns = ["level", "node", "parent", "var_99_1d_usd", "var_99_10d_usd", "es_975_1d_usd"]
    return frame.sort_values(["order", "parent", "node"])[columns].reset_index(drop=True)


def top_contributors(
    lake_root: str,
    business_date: date,
    level: str = "firm",
    node: str = FIRM,
    n: int = 10,
    storage_options: StorageOptions = None,
) -> pd.DataFrame:
    """The ``n`` books with the largest component VaR in ``node`` and their share of it."""
    parts = read_table(
        lake_root, "gold.var_contributions", storage_options, business_date=business_date
    )
    parts = parts[(parts["level"] == level) & (parts["node"] == node)]
    total = parts["component_var_99_1d_usd"].sum()
    ranked = parts.sort_values("component_var_99_1d_usd", ascending=False).head(n)
    return ranked.assign(share_of_node_var=ranked["component_var_99_1d_usd"] / total)[
        ["book", "component_var_99_1d_usd", "share_of_node_var"]
    ].reset_index(drop=True)


def node_pnl(
    lake_root: str, business_date: date, node: str, storage_options: StorageOptions = None
) -> np.ndarray:
    """The stored historical-scenario P&L vector of a region or the firm, oldest first."""
    rows = read_table(lake_root, "gold.pnl_vectors", storage_options, business_date=business_date)
    match = rows[rows["node"] == node]
    if match.empty:
        raise ValueError(f"no P&L vector of {node} on {business_date}")
    return np.asarray(match["pnl"].iloc[0], dtype=np.float64)


def instrument_quantities(
    lake_root: str, business_date: date, node: str, storage_options: StorageOptions = None
) -> pd.Series:
    """Net quantity by instrument of a region (or of every region for the firm)."""
    positions = read_table(
        lake_root, "gold.positions", storage_options, business_date=business_date
    )
    if node != FIRM:
        positions = positions[positions["region"] == node]
    return positions.groupby("instrument_id")["quantity"].sum().sort_index()


def compare_methods(
    lake_root: str,
    landing_root: str,
    business_date: date,
    node: str = FIRM,
    n_sims: int = 20_000,
    seed: int = 20261124,
    chunk: int = 2_000,
    storage_options: StorageOptions = None,
    landing_storage_options: StorageOptions = None,
) -> pd.DataFrame:
    """VaR 99% 1-day and ES 97.5% 1-day of a region or the firm by five methods.

    * historical simulation — the pipeline's figure, from the stored P&L vector;
    * filtered HS — the same vector, EWMA(0.94) volatility-rescaled;
    * parametric (normal fit) — the HS P&L's standard deviation times z;
    * parametric delta-normal — bump-and-reprice factor exposures of today's positions
      and the covariance of the 500 daily factor shocks;
    * Monte Carlo — ``n_sims`` draws from that covariance, positions fully revalued.
    """
    pnl = node_pnl(lake_root, business_date, node, storage_options)
    quantities = instrument_quantities(lake_root, business_date, node, storage_options)
    market = MarketLevels.read_csv(
        under(landing_root, "market", "market_data.csv"), landing_storage_options
    )
    instruments = read_instruments_csv(
        under(landing_root, "reference", "instruments.csv"), landing_storage_options
    )
    terms = instrument_terms(instruments, business_date).set_index("instrument_id")
    terms = terms.loc[quantities.index].reset_index()
    base = market.levels[market.row(business_date)]
    shocks = market.shocks(business_date)
    covariance = np.cov(shocks, rowvar=False)
    q = quantities.to_numpy(float)

    def revalued(shock_rows: np.ndarray) -> np.ndarray:
        out = np.empty(shock_rows.shape[0])
        for start in range(0, shock_rows.shape[0], chunk):
            block = shock_rows[start : start + chunk]
            levels = apply_shocks(base, block, market.is_log)
            out[start : start + block.shape[0]] = q @ unit_pnl(terms, market.factors, base, levels)
        return out

    exposures = delta_exposures(revalued, market.factors)
    mc = monte_carlo(revalued, covariance, VAR_CONFIDENCE, ES_CONFIDENCE, n_sims, seed)
    rows = [
        ("historical", historical_var(pnl, VAR_CONFIDENCE), historical_es(pnl, ES_CONFIDENCE)),
        (
            "filtered historical (EWMA 0.94)",
            filtered_historical_var(pnl, VAR_CONFIDENCE),
            filtered_historical_es(pnl, ES_CONFIDENCE),
        ),
        (
            "parametric (normal fit to HS P&L)",
            parametric_var(pnl, confidence=VAR_CONFIDENCE),
            parametric_es(pnl, confidence=ES_CONFIDENCE),
        ),
        (
            "parametric delta-normal",
            parametric_var(exposures, covariance, VAR_CONFIDENCE),
            parametric_es(exposures, covariance, ES_CONFIDENCE),
        ),
        (f"Monte Carlo ({n_sims:,} full revaluations)", mc.var, mc.es),
    ]
    frame = pd.DataFrame(rows, columns=["method", "var_99_1d_usd", "es_975_1d_usd"])
    frame[["var_99_1d_usd", "es_975_1d_usd"]] = frame[["var_99_1d_usd", "es_975_1d_usd"]].astype(
        float
    )
    return frame.assign(node=node)


def delta_exposures(revalued, factors: list[str]) -> np.ndarray:
    """P&L per unit shock of each factor, by central differences of full revaluation."""
    bumps = np.array([next(h for p, h in BUMP.items() if f.startswith(p)) for f in factors])
    up = np.diag(bumps)
    pnl = revalued(np.vstack([up, -up]))
    n = len(factors)
    return (pnl[:n] - pnl[n:]) / (2.0 * bumps)


def node_backtest(
    lake_root: str,
    node: str,
    up_to: date | None = None,
    window: int = WINDOW,
    storage_options: StorageOptions = None,
) -> dict[str, Any]:
    """A node's backtest over its last ``window`` observations up to ``up_to``.

    Returns the daily rows (forecast, hypothetical P&L, exception) and the statistics
    (exceptions, Basel zone and plus factor, Kupiec, Christoffersen) recomputed with the
    functions the backtest job uses.
    """
    rows = read_table(lake_root, "gold.backtest", storage_options)
    rows = rows[rows["node"] == node].sort_values("business_date")
    rows["business_date"] = pd.to_datetime(rows["business_date"]).dt.date
    if up_to is not None:
        rows = rows[rows["business_date"] <= up_to]
    if rows.empty:
        raise ValueError(f"no backtest history of {node}")
    rows = rows.tail(window).reset_index(drop=True)
    stats = summary_rows(rows[["business_date", "level", "node", "region", "is_exception"]])
    return {
        "daily": rows[
            [
                "business_date",
                "forecast_date",
                "var_forecast_99_1d_usd",
                "hypothetical_pnl_usd",
                "is_exception",
            ]
        ],
        "summary": stats.iloc[0].to_dict() if not stats.empty else {},
        "exception_dates": rows.loc[rows["is_exception"], "business_date"].tolist(),
    }


# ---------------------------------------------------------------------------------- plots


def save_figure(figure: Any, plots_dir: str, name: str) -> str:
    """Write ``figure`` as ``plots_dir/name`` (PNG, local folder or URI); return where."""
    import fsspec

    target = under(plots_dir, name)
    fs, path = fsspec.core.url_to_fs(target)
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    with fs.open(path, "wb") as fh:
        figure.savefig(fh, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(figure)  # shown once, by the notebook's display(), not again by the backend
    return target


def plot_pnl_distribution(pnl: np.ndarray, node: str, business_date: date) -> Any:
    """Histogram of the scenario P&L with VaR 99% and ES 97.5% (1-day) marked as losses."""
    import matplotlib.pyplot as plt

    var, es = historical_var(pnl, VAR_CONFIDENCE), historical_es(pnl, ES_CONFIDENCE)
    figure, ax = plt.subplots(figsize=(9, 4.5))
    ax.hist(pnl / 1e6, bins=60, color="#8a94a6", edgecolor="white")
    ax.axvline(-var / 1e6, color="#c0392b", lw=2, label=f"VaR 99% 1d {var / 1e6:,.2f}M")
    ax.axvline(-es / 1e6, color="#e39b27", lw=2, ls="--", label=f"ES 97.5% 1d {es / 1e6:,.2f}M")
    ax.set(
        title=f"{node} scenario P&L on {business_date} ({len(pnl)} scenarios)",
        xlabel="P&L (USD millions; losses negative)",
        ylabel="scenarios",
    )
    ax.legend()
    return figure


def plot_backtest(daily: pd.DataFrame, node: str) -> Any:
    """Realised (hypothetical) P&L against the previous day's VaR, exceptions circled."""
    import matplotlib.pyplot as plt

    figure, ax = plt.subplots(figsize=(10, 4.5))
    days = pd.to_datetime(daily["business_date"])
    pnl = daily["hypothetical_pnl_usd"] / 1e6
    ax.bar(days, pnl, color=np.where(pnl >= 0, "#2f7d5b", "#8a94a6"), label="hypothetical P&L")
    ax.plot(days, -daily["var_forecast_99_1d_usd"] / 1e6, color="#c0392b", label="-VaR 99% 1d")
    hits = daily["is_exception"].astype(bool).to_numpy()
    ax.scatter(
        days[hits],
        pnl[hits],
        s=80,
        facecolors="none",
        edgecolors="#c0392b",
        lw=2,
        label=f"exceptions ({int(hits.sum())})",
    )
    ax.set(title=f"{node} backtest", ylabel="USD millions")
    ax.legend(loc="lower left")
    figure.autofmt_xdate()
    return figure


def plot_methods(table: pd.DataFrame) -> Any:
    """VaR 99% 1-day by method, one bar per node."""
    import matplotlib.pyplot as plt

    figure, ax = plt.subplots(figsize=(10, 4.5))
    pivot = table.pivot(index="method", columns="node", values="var_99_1d_usd") / 1e6
    pivot.plot.barh(ax=ax)
    ax.set(title="VaR 99% 1d by method", xlabel="USD millions", ylabel="")
    return figure

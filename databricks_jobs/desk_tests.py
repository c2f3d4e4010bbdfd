"""FRTB desk-level tests (MAR32) of the ``backtest`` job: P&L attribution and desk backtests.

Per desk, over its last (at most) 250 backtest days up to the business date:

* **Hypothetical P&L (HPL)** of day D: the desk's positions of the previous business day P
  revalued under the market move P -> D (``gold.backtest``, the VaR backtest's figure).
* **Risk-theoretical P&L (RTPL)** of day D: the risk model's own P&L for that move, the
  latest scenario of the desk's VaR run of D (``gold.pnl_vectors``, last element): the
  move applied as a historical-simulation shock to D's book. It differs from HPL by the
  day's trading and by applying the move to D's levels instead of repricing at them.
* **Desk backtest**: exceptions of the 99% 1-day VaR of P (``gold.backtest``) and of the
  97.5% 1-day VaR of P (the ``ceil(n x 2.5%)``-th loss of P's desk vector).

Everything per day and desk is computed by Spark, for a range of dates in one pass (each
date's window joined to it); nothing per day reaches the driver.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from databricks_jobs.delta_store import DeltaStore
from databricks_jobs.tables import table
from risk_models.backtest import PLA_OBSERVATIONS, desk_backtest, pla_test
from risk_models.var import tail_count

DESK_TESTS_SCHEMA = table("gold.desk_tests").ddl
_GROUP_SCHEMA = DESK_TESTS_SCHEMA.replace(", run_id string", "")


def _var_975(pnl: Column, sizes: list[int]) -> Column:
    """VaR 97.5% of a P&L vector column: minus its k-th smallest element, k by its size."""
    k = F.lit(None).cast("int")
    for n in sizes:
        k = F.when(F.size(pnl) == n, F.lit(tail_count(n, 0.975))).otherwise(k)
    return -F.element_at(F.array_sort(pnl), k)


def desk_days(store: DeltaStore, business_dates: list[date], regions: list[str]) -> DataFrame:
    """(as_of, desk, region, business_date, hpl, rtpl, is_exception_99, is_exception_975):
    each desk's last (at most) ``PLA_OBSERVATIONS`` days up to each date ``as_of`` of
    ``business_dates`` on which it is backtested."""
    backtest = store.read("gold.backtest").where(
        (F.col("level") == "desk")
        & F.col("region").isin(regions)
        & (F.col("business_date") <= max(business_dates))
    )
    vectors = store.read("gold.pnl_vectors").where(
        (F.col("level") == "desk") & F.col("region").isin(regions)
    )
    sizes = [r[0] for r in vectors.select(F.size("pnl")).distinct().collect()]
    forecasts = vectors.select(
        F.col("business_date").alias("forecast_date"),
        F.col("node").alias("desk"),
        "region",
        _var_975(F.col("pnl"), sizes).alias("var_975"),
    )
    rtpl = vectors.where(F.col("scenario_end") == F.col("business_date")).select(
        "business_date",
        F.col("node").alias("desk"),
        "region",
        F.element_at("pnl", -1).alias("rtpl"),
    )
    days = (
        backtest.select(
            "business_date",
            F.col("node").alias("desk"),
            "region",
            "forecast_date",
            F.col("hypothetical_pnl_usd").alias("hpl"),
            F.col("is_exception").alias("is_exception_99"),
        )
        .join(forecasts, ["forecast_date", "desk", "region"], "left")
        .join(rtpl, ["business_date", "desk", "region"], "left")
        .withColumn("is_exception_975", F.col("hpl") < -F.col("var_975"))
    )
    as_of = store.spark.createDataFrame([(d,) for d in sorted(business_dates)], "as_of date")
    windows = days.join(F.broadcast(as_of), F.col("business_date") <= F.col("as_of"))
    recent = Window.partitionBy("as_of", "desk").orderBy(F.col("business_date").desc())
    latest = (
        days.where(F.col("business_date").isin(*business_dates))
        .select(F.col("business_date").alias("as_of"), "desk")
        .distinct()
    )
    return (
        windows.withColumn("age", F.row_number().over(recent))
        .where(F.col("age") <= PLA_OBSERVATIONS)
        .join(latest, ["as_of", "desk"])
    )


def desk_test(frame: pd.DataFrame) -> pd.DataFrame:
    """One desk's tests as of one date from its days (executor side)."""
    both = frame.dropna(subset=["rtpl", "hpl"]).sort_values("business_date")
    if len(both) >= 2:
        spearman, ks, zone = pla_test(both["rtpl"].to_numpy(float), both["hpl"].to_numpy(float))
    else:  # a desk seen once cannot be attributed yet: red until it can
        spearman, ks, zone = np.nan, np.nan, "red"
    result = desk_backtest(
        int(frame["is_exception_99"].fillna(False).sum()),
        int(frame["is_exception_975"].fillna(False).sum()),
        observations=len(frame),
    )
    return pd.DataFrame(
        {
            "business_date": [frame["as_of"].iloc[0]],
            "desk": [frame["desk"].iloc[0]],
            "region": [frame["region"].iloc[0]],
            "observations": [len(frame)],
            "pla_spearman": [spearman],
            "pla_ks": [ks],
            "pla_zone": [zone],
            "exceptions_99": [result.exceptions_99],
            "exceptions_975": [result.exceptions_975],
            "backtest_eligible": [result.eligible],
        }
    )


def desk_tests(
    store: DeltaStore, business_dates: list[date], regions: list[str], run_id: str
) -> DataFrame:
    """Rows of ``gold.desk_tests`` for each of ``business_dates``, one per desk backtested on
    the date (one grouped pass for all the dates)."""
    days = desk_days(store, business_dates, regions)
    tests = days.groupBy("as_of", "desk").applyInPandas(desk_test, _GROUP_SCHEMA)
    return tests.select(
        "business_date",
        "desk",
        "region",
        "observations",
        F.when(F.isnan("pla_spearman"), None)
        .otherwise(F.col("pla_spearman"))
        .alias("pla_spearman"),
        F.when(F.isnan("pla_ks"), None).otherwise(F.col("pla_ks")).alias("pla_ks"),
        "pla_zone",
        "exceptions_99",
        "exceptions_975",
        "backtest_eligible",
        F.lit(run_id).alias("run_id"),
    )

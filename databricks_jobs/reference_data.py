"""Readers for the landing zone's reference and market data (docs/data.md), explicit schemas."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import numpy as np
import pandas as pd
from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from databricks_jobs.job_args import under_root
from databricks_jobs.storage_paths import spark_path
from risk_models.stress import HistoricalPeriod

BOOKS_SCHEMA = T.StructType(
    [
        T.StructField("book", T.StringType(), False),
        T.StructField("desk", T.StringType(), False),
        T.StructField("region", T.StringType(), False),
    ]
)

INSTRUMENTS_SCHEMA = T.StructType(
    [
        T.StructField("instrument_id", T.StringType(), False),
        T.StructField("instrument_type", T.StringType(), False),
        T.StructField("currency", T.StringType(), False),
        T.StructField("underlying", T.StringType(), True),
        T.StructField("strike", T.DoubleType(), True),
        T.StructField("expiry_date", T.DateType(), True),
        T.StructField("option_type", T.StringType(), True),
        T.StructField("coupon_rate", T.DoubleType(), True),
        T.StructField("maturity_date", T.DateType(), True),
    ]
)

STRESS_PERIODS_SCHEMA = T.StructType(
    [
        T.StructField("name", T.StringType(), False),
        T.StructField("start_date", T.DateType(), False),
        T.StructField("end_date", T.DateType(), False),
    ]
)

MARKET_SCHEMA = T.StructType(
    [
        T.StructField("date", T.DateType(), False),
        T.StructField("risk_factor", T.StringType(), False),
        T.StructField("value", T.DoubleType(), False),
    ]
)


def _read_csv(spark: SparkSession, path: str, schema: T.StructType) -> DataFrame:
    return (
        spark.read.option("header", "true")
        .option("mode", "FAILFAST")
        .option("dateFormat", "yyyy-MM-dd")
        .schema(schema)
        .csv(spark_path(path))
    )


def read_books(spark: SparkSession, landing_root: str) -> DataFrame:
    return _read_csv(spark, under_root(landing_root, "reference", "books.csv"), BOOKS_SCHEMA)


def read_stress_periods(spark: SparkSession, landing_root: str) -> list[HistoricalPeriod]:
    """The named historical stress periods of ``reference/stress_periods.csv``, in file order.

    The file is optional: without it the night runs the hypothetical shocks only.
    """
    path = under_root(landing_root, "reference", "stress_periods.csv")
    try:
        rows = _read_csv(spark, path, STRESS_PERIODS_SCHEMA).collect()
    except AnalysisException as err:
        if "PATH_NOT_FOUND" not in str(err):
            raise
        return []
    periods = []
    for line, row in enumerate(rows, start=2):
        if row["end_date"] < row["start_date"]:
            raise ValueError(
                f"{path}, line {line}: period {row['name']!r} ends ({row['end_date']}) before "
                f"it starts ({row['start_date']})"
            )
        if row["name"] in {p.name for p in periods}:
            raise ValueError(f"{path}, line {line}: period name {row['name']!r} is repeated")
        periods.append(
            HistoricalPeriod(
                row["name"], row["start_date"].isoformat(), row["end_date"].isoformat()
            )
        )
    return periods


def read_instruments(spark: SparkSession, landing_root: str) -> DataFrame:
    path = under_root(landing_root, "reference", "instruments.csv")
    return _read_csv(spark, path, INSTRUMENTS_SCHEMA)


def read_market_history(
    spark: SparkSession, landing_root: str, as_of: date, n_days: int
) -> tuple[list[date], list[str], np.ndarray]:
    """The last ``n_days`` closes up to ``as_of`` as a (dates, factors, levels[T, F]) matrix.

    Small (hundreds of days × tens of factors), so it is brought to the driver. Raises if a
    factor is missing on any of those days or the history is too short.
    """
    return read_market_histories(spark, landing_root, [as_of], n_days)[as_of]


def read_market_histories(
    spark: SparkSession, landing_root: str, as_of: Sequence[date], n_days: int
) -> dict[date, tuple[list[date], list[str], np.ndarray]]:
    """:func:`read_market_history` of each date of ``as_of``, from one read of the file:
    the ``n_days`` closes up to the first date and every close after it, up to the last."""
    path = under_root(landing_root, "market", "market_data.csv")
    first, last = min(as_of), max(as_of)
    history = _read_csv(spark, path, MARKET_SCHEMA).where(F.col("date") <= F.lit(last))
    start = (
        history.select("date")
        .where(F.col("date") <= F.lit(first))
        .distinct()
        .orderBy(F.col("date").desc())
        .limit(n_days)
        .agg(F.min("date").alias("start"))
    )
    closes = history.crossJoin(F.broadcast(start)).where(F.col("date") >= F.col("start")).toPandas()
    if closes.empty:
        raise ValueError(f"{path}: no market data for business date {first.isoformat()}")
    wide = closes.pivot_table(index="date", columns="risk_factor", values="value", aggfunc="last")
    wide = wide.sort_index().sort_index(axis=1)
    return {day: _window(wide, path, day, n_days) for day in sorted(set(as_of))}


def _window(
    wide: pd.DataFrame, path: str, as_of: date, n_days: int
) -> tuple[list[date], list[str], np.ndarray]:
    """The last ``n_days`` rows of ``wide`` (date x factor) up to ``as_of``, checked: every
    factor quoted in them is quoted on each of them."""
    if as_of not in wide.index:
        raise ValueError(f"{path}: no market data for business date {as_of.isoformat()}")
    levels = wide.loc[:as_of].tail(n_days).dropna(axis=1, how="all")
    if len(levels) < n_days:
        raise ValueError(f"{path}: {len(levels)} days of history up to {as_of}, {n_days} needed")
    missing = levels.isna()
    if missing.to_numpy().any():
        day, factor = next((d, f) for d, f in zip(*np.nonzero(missing.to_numpy()), strict=True))
        raise ValueError(
            f"{path}: factor {levels.columns[factor]} has no value on {levels.index[day]}"
        )
    dates = [pd.Timestamp(d).date() for d in levels.index]
    return dates, list(levels.columns), levels.to_numpy(dtype=np.float64)

"""Job ``frtb_es`` (task of the firm job, after the aggregation): FRTB IMA ES of every desk
and the firm (Basel MAR33), on the same revaluation as VaR.

The night's positions (``gold.positions``, every region) are revalued by book on the
executors with the VaR pricers, in the FRTB market states of
:func:`databricks_jobs.frtb_capital.frtb_states` (10-day moves by liquidity-horizon bucket,
risk class, full and reduced factor sets); the book vectors are summed to desks, regions
and the firm, and each desk's and the firm's figures come from
:func:`databricks_jobs.frtb_capital.frtb_figures`. Writes the business date's partitions
of ``gold.frtb_pnl`` (the node vectors and their layout) and ``gold.frtb_results``.
"""

from __future__ import annotations

import json
import logging
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from databricks_jobs import job_args
from databricks_jobs.delta_store import DeltaStore
from databricks_jobs.frtb_capital import (
    FRTB_PNL_COLUMNS,
    FRTB_RESULT_COLUMNS,
    frtb_figures,
    frtb_result_row,
    frtb_states,
)
from databricks_jobs.jobs.compute_risk import RiskInputError, with_terms
from databricks_jobs.reference_data import read_instruments, read_market_history
from databricks_jobs.risk_metrics import FIRM
from databricks_jobs.spark_session import get_spark
from databricks_jobs.valuation import SCENARIO_WINDOW, book_state_pnl

log = logging.getLogger("eodrisk.frtb_es")

BOOK_FRTB_SCHEMA = "book string, desk string, region string, pnl array<double>"


def book_frtb_vectors(
    positions: DataFrame, factors: list[str], base: np.ndarray, states: np.ndarray
) -> DataFrame:
    """FRTB P&L of each book over ``states`` ``(N, F)``, revalued on the executors."""

    def revalue_book(frame: pd.DataFrame) -> pd.DataFrame:
        pnl = book_state_pnl(frame, factors, base, states)
        return pd.DataFrame(
            {
                "book": [frame["book"].iloc[0]],
                "desk": [frame["desk"].iloc[0]],
                "region": [frame["region"].iloc[0]],
                "pnl": [pnl],
            }
        )

    return positions.groupBy("region", "book").applyInPandas(revalue_book, BOOK_FRTB_SCHEMA)


def compute_frtb_es(
    spark: SparkSession,
    *,
    landing_root: str,
    lake_root: str,
    business_date: date,
    regions: list[str],
    run_id: str,
    window: int = SCENARIO_WINDOW,
) -> dict[str, Any]:
    store = DeltaStore(spark, lake_root)
    positions = store.read("gold.positions", {"business_date": business_date}).where(
        F.col("region").isin(regions)
    )
    terms = with_terms(
        positions.select("region", "desk", "book", "instrument_id", "quantity"),
        read_instruments(spark, landing_root),
        business_date,
    ).join(positions.select("region", "book", "instrument_id"), ["book", "instrument_id"])
    dates, factors, levels = read_market_history(spark, landing_root, business_date, window + 1)
    frtb = frtb_states(dates, factors, levels)
    # Books in a fixed order: the node sums, and so a rerun, are bit-for-bit reproducible.
    books = sorted(
        book_frtb_vectors(terms, factors, levels[-1], frtb.levels).collect(),
        key=lambda r: (r["region"], r["book"]),
    )
    found = sorted({r["region"] for r in books})
    if found != sorted(regions):
        raise RiskInputError(
            f"no positions of {sorted(set(regions) - set(found))} for {business_date}: "
            "run compute_risk for every region first"
        )
    vectors: dict[tuple[str, str, str], np.ndarray] = {}
    for row in books:
        pnl = np.asarray(row["pnl"], dtype=np.float64)
        for key in (
            ("desk", row["desk"], row["region"]),
            ("region", row["region"], row["region"]),
            ("firm", FIRM, FIRM),
        ):
            vectors[key] = vectors.get(key, 0.0) + pnl
    figures = {key: frtb_figures(pnl, frtb.layout) for key, pnl in vectors.items()}
    partition = {"business_date": business_date}
    store.replace_partition(
        spark.createDataFrame(
            [
                (business_date, region, level, node, "", frtb.layout, pnl.tolist(), run_id)
                for (level, node, region), pnl in sorted(vectors.items())
            ],
            FRTB_PNL_COLUMNS,
        ),
        "gold.frtb_pnl",
        partition,
    )
    store.replace_partition(
        spark.createDataFrame(
            [
                frtb_result_row(business_date, region, level, node, f, run_id)
                for (level, node, region), f in sorted(figures.items())
            ],
            FRTB_RESULT_COLUMNS,
        ),
        "gold.frtb_results",
        partition,
    )
    firm = figures[("firm", FIRM, FIRM)]
    print(
        f"FRTB {business_date}: firm ES {firm['frtb_es_usd']:,.0f} USD, IMCC "
        f"{firm['imcc_usd']:,.0f} USD, stress window {firm['stress_window_start']} to "
        f"{firm['stress_window_end']}, {frtb.levels.shape[0]} states"
    )
    return {
        "business_date": business_date.isoformat(),
        "frtb_es_usd": firm["frtb_es_usd"],
        "imcc_usd": firm["imcc_usd"],
    }


def main(argv: list[str] | None = None) -> None:
    parser = job_args.parser(__doc__.splitlines()[0])
    parser.add_argument("--regions", type=job_args.region_list, required=True)
    parser.add_argument("--landing-root", type=job_args.storage_root, required=True)
    args = parser.parse_args(argv)
    spark = get_spark()
    for business_date in args.business_dates:
        result = compute_frtb_es(
            spark,
            landing_root=args.landing_root,
            lake_root=args.lake_root,
            business_date=business_date,
            regions=args.regions,
            run_id=args.run_id,
        )
        print(json.dumps(result))


if __name__ == "__main__":
    main()

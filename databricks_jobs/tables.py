"""The catalogue of the pipeline's tables: each one declared once, here.

Delta (``silver.*``, ``gold.*``, written by the jobs through :class:`DeltaStore`) and
Postgres (``risk.*``, created by the migrations in ``sql/``, filled by ``load_reporting``
and the DAG's run-history task): name, typed columns, key (the grain's columns), partition
columns, grain and a one-line description. What is derived from it:

* the Spark schema a job writes (:attr:`Table.ddl`, a Spark DDL string) and the check that
  a DataFrame written to a Delta table has exactly the catalogue's columns and types
  (:func:`check_written`, called on every write by ``DeltaStore.replace_partition``);
* the Spark and Arrow schemas (:func:`spark_schema`, :func:`arrow_schema`: a local Delta
  write's);
* the loader's key and value columns (:attr:`Table.key`, :attr:`Table.values`) and the
  report's columns;
* the table list of docs/data.md (``tests/repo/test_table_catalogue.py`` keeps it exact),
  and the check of the ``risk`` tables against the migrations (same test).

Column types are Spark's names (``DataType.simpleString()``): ``string``, ``date``,
``bigint``, ``int``, ``double``, ``boolean``, ``timestamp``, ``array<double>``,
``array<string>``. A Postgres column is ``not null`` unless its type ends in ``?``;
``= now()`` marks a column the database fills (``loaded_at``), which no load writes.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import types as T

#: Postgres type of each catalogue type (as ``format_type`` spells it).
POSTGRES_TYPES = {
    "string": "text",
    "date": "date",
    "bigint": "bigint",
    "int": "integer",
    "double": "double precision",
    "boolean": "boolean",
    "timestamp": "timestamp with time zone",
    "array<string>": "text[]",
}
SPARK_TYPES = {
    "string": T.StringType(),
    "date": T.DateType(),
    "bigint": T.LongType(),
    "int": T.IntegerType(),
    "double": T.DoubleType(),
    "boolean": T.BooleanType(),
    "timestamp": T.TimestampType(),
    "array<double>": T.ArrayType(T.DoubleType()),
    "array<string>": T.ArrayType(T.StringType()),
}
DATABASE_DEFAULT = "= now()"


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    nullable: bool = False
    #: filled by the database (``default now()``), never written by a load
    database_default: bool = False


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    #: the columns that identify a row (the grain; Postgres: the primary key)
    key: tuple[str, ...]
    grain: str
    description: str
    #: Delta only: the partition columns, in order (each write replaces one partition)
    partition_by: tuple[str, ...] = ()
    #: Postgres only: the Delta table the nightly load (``load_reporting``) fills it from
    loaded_from: str = ""

    @property
    def is_delta(self) -> bool:
        return not self.name.startswith("risk.")

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def ddl(self) -> str:
        """The Spark DDL schema (``business_date date, region string, ...``)."""
        return ", ".join(f"{c.name} {c.type}" for c in self.columns)

    @property
    def values(self) -> tuple[str, ...]:
        """The columns a load writes after the key (an upsert's ``set`` list): all but the
        key and those the database fills."""
        return tuple(
            c.name for c in self.columns if c.name not in self.key and not c.database_default
        )

    @property
    def loaded(self) -> tuple[str, ...]:
        """The columns a load writes, in the order it writes them: the key, then the values."""
        return (*self.key, *self.values)


def _columns(*specs: str) -> tuple[Column, ...]:
    """``"name type"``, ``"name type?"`` (nullable) or ``"name type = now()"``."""
    out = []
    for spec in specs:
        default = spec.endswith(DATABASE_DEFAULT)
        name, kind = spec.removesuffix(DATABASE_DEFAULT).split()
        out.append(Column(name, kind.rstrip("?"), kind.endswith("?"), default))
    return tuple(out)


_DATE_REGION = ("business_date", "region")
_DATE = ("business_date",)
_LOADED_AT = "loaded_at timestamp = now()"
#: The columns that place a row of a node table in the hierarchy, partition columns first.
_NODE = ("business_date date", "region string", "level string", "node string")

DELTA: tuple[Table, ...] = (
    # ---------------------------------------------------------------- Delta: silver
    Table(
        "silver.trades",
        _columns(
            "trade_id string",
            "business_date date",
            "trade_date date",
            "region string",
            "desk string",
            "book string",
            "instrument_id string",
            "side string",
            "quantity double",
            "signed_quantity double",
            "price double",
            "currency string",
            "source_line bigint",
            "source_file string",
            "run_id string",
        ),
        key=("business_date", "region", "trade_id"),
        grain="business date × region × trade",
        description="The trades of a region's file that passed every ingest rule.",
        partition_by=_DATE_REGION,
    ),
    Table(
        "silver.trades_quarantine",
        _columns(
            "business_date date",
            "region string",
            "line_number bigint",
            "raw_line string",
            "rule string",
            "field string",
            "message string",
            "source_file string",
            "run_id string",
        ),
        key=("business_date", "region", "line_number"),
        grain="business date × region × file line",
        description="The lines of a trade file that broke a rule: line, raw text, rule, field.",
        partition_by=_DATE_REGION,
    ),
    Table(
        "silver.ingest_audit",
        _columns(
            "business_date date",
            "region string",
            "source_file string",
            "sha256 string",
            "rows_read bigint",
            "rows_accepted bigint",
            "rows_quarantined bigint",
            "run_id string",
        ),
        key=_DATE_REGION,
        grain="business date × region",
        description="The file ingested and its reconciliation (read = accepted + quarantined).",
        partition_by=_DATE_REGION,
    ),
    # ---------------------------------------------------------------- Delta: gold
    Table(
        "gold.positions",
        _columns(
            "business_date date",
            "region string",
            "desk string",
            "book string",
            "instrument_id string",
            "quantity double",
            "n_trades bigint",
            "run_id string",
        ),
        key=("business_date", "region", "book", "instrument_id"),
        grain="business date × region × book × instrument",
        description="Net signed quantity per book and instrument, netted from silver.trades.",
        partition_by=_DATE_REGION,
    ),
    Table(
        "gold.pnl_vectors",
        _columns(
            *_NODE,
            "parent string",
            "scenario_start date",
            "scenario_end date",
            "pnl array<double>",
            "run_id string",
        ),
        key=("business_date", "region", "level", "node"),
        grain="business date × hierarchy node (region, desk, book)",
        description="A node's P&L under every historical scenario (USD, profit positive).",
        partition_by=_DATE_REGION,
    ),
    Table(
        "gold.var_results",
        _columns(
            *_NODE,
            "parent string",
            "var_99_1d_usd double",
            "var_99_10d_usd double",
            "es_975_1d_usd double",
            "positions_date date",
            "run_id string",
        ),
        key=("business_date", "region", "level", "node"),
        grain="business date × hierarchy node (firm, region, desk, book)",
        description="VaR 99% 1-day and 10-day, ES 97.5% 1-day of a node, positive losses.",
        partition_by=_DATE_REGION,
    ),
    Table(
        "gold.var_contributions",
        _columns(
            *_NODE,
            "book string",
            "component_var_99_1d_usd double",
            "run_id string",
        ),
        key=("business_date", "region", "level", "node", "book"),
        grain="business date × node (firm, region, desk) × book in it",
        description="A book's Euler contribution to its node's VaR 99% 1-day.",
        partition_by=_DATE_REGION,
    ),
    Table(
        "gold.stress_pnl",
        _columns(
            *_NODE,
            "parent string",
            "scenario string",
            "kind string",
            "state_date date",
            "pnl_usd double",
            "run_id string",
        ),
        key=("business_date", "region", "level", "node", "scenario", "state_date"),
        grain="business date × node × stress scenario × market state",
        description="A node's P&L in each state of each stress scenario (USD, loss negative).",
        partition_by=_DATE_REGION,
    ),
    Table(
        "gold.firm_summary",
        _columns(
            "business_date date",
            "firm_var_99_1d_usd double",
            "sum_region_var_99_1d_usd double",
            "diversification_benefit_usd double",
            "regions string",
            "run_id string",
        ),
        key=_DATE,
        grain="business date",
        description="Firm VaR, the sum of the regions' VaR and the diversification benefit.",
        partition_by=_DATE,
    ),
    Table(
        "gold.frtb_pnl",
        _columns(
            *_NODE,
            "parent string",
            "layout string",
            "pnl array<double>",
            "run_id string",
        ),
        key=("business_date", "level", "node"),
        grain="business date × node (firm, region, desk, book)",
        description="A node's P&L over the FRTB market states; layout names the segments.",
        partition_by=_DATE,
    ),
    Table(
        "gold.frtb_results",
        _columns(
            *_NODE,
            "es_full_current_usd double",
            "es_reduced_current_usd double",
            "es_reduced_stressed_usd double",
            "stress_window_start date",
            "stress_window_end date",
            "frtb_es_usd double",
            "imcc_usd double",
            "run_id string",
        ),
        key=("business_date", "level", "node"),
        grain="business date × node (firm, region, desk, book)",
        description="Basel MAR33 internal-model ES (liquidity-adjusted) and IMCC of a node.",
        partition_by=_DATE,
    ),
    Table(
        "gold.backtest",
        _columns(
            "business_date date",
            "level string",
            "node string",
            "region string",
            "forecast_date date",
            "var_forecast_99_1d_usd double",
            "hypothetical_pnl_usd double",
            "is_exception boolean",
            "run_id string",
        ),
        key=("business_date", "level", "node"),
        grain="business date × hierarchy node",
        description="Yesterday's positions under today's move against yesterday's VaR.",
        partition_by=_DATE,
    ),
    Table(
        "gold.backtest_summary",
        _columns(
            "business_date date",
            "level string",
            "node string",
            "region string",
            "observations bigint",
            "exceptions bigint",
            "zone string",
            "plus_factor double",
            "kupiec_lr double",
            "kupiec_p_value double",
            "christoffersen_lr_ind double",
            "christoffersen_p_ind double",
            "christoffersen_lr_cc double",
            "christoffersen_p_cc double",
            "run_id string",
        ),
        key=("business_date", "level", "node"),
        grain="business date × node (firm, region)",
        description="VaR backtest over the last 250 days: zone, Kupiec, Christoffersen.",
        partition_by=_DATE,
    ),
    Table(
        "gold.desk_tests",
        _columns(
            "business_date date",
            "desk string",
            "region string",
            "observations bigint",
            "pla_spearman double",
            "pla_ks double",
            "pla_zone string",
            "exceptions_99 bigint",
            "exceptions_975 bigint",
            "backtest_eligible boolean",
            "run_id string",
        ),
        key=("business_date", "desk"),
        grain="business date × desk",
        description="MAR32 desk tests: P&L attribution (Spearman, KS, zone) and backtest.",
        partition_by=_DATE,
    ),
)
_DELTA = {t.name: t for t in DELTA}


def _loaded(
    name: str,
    source: str,
    key: tuple[str, ...],
    grain: str,
    description: str,
    *,
    keep: tuple[str, ...] = (),
    add: tuple[str, ...] = (),
    retype: dict[str, str] | None = None,
    nullable: tuple[str, ...] = (),
) -> Table:
    """A ``risk`` table the nightly load fills from Delta table ``source``: its columns
    (those in ``keep``, or all), retyped where Postgres stores them narrower, then the
    columns the load computes (``add``) and ``loaded_at``."""
    retype = retype or {}
    columns = [
        Column(c.name, retype.get(c.name, c.type), c.name in nullable)
        for c in _DELTA[source].columns
        if not keep or c.name in keep
    ]
    columns += [*_columns(*add), *_columns(_LOADED_AT)]
    return Table(name, tuple(columns), key, grain, description, loaded_from=source)


_NODE_KEY = ("business_date", "level", "node")

CATALOGUE: tuple[Table, ...] = (
    *DELTA,
    # ---------------------------------------------------------------- Postgres: risk
    _loaded(
        "risk.var_summary",
        "gold.var_results",
        _NODE_KEY,
        "business date × hierarchy node",
        "gold.var_results of the firm and the loaded regions.",
    ),
    _loaded(
        "risk.firm_summary",
        "gold.firm_summary",
        _DATE,
        "business date",
        "gold.firm_summary: firm VaR, sum of regions, diversification benefit.",
    ),
    _loaded(
        "risk.ingest_audit",
        "silver.ingest_audit",
        _DATE_REGION,
        "business date × region",
        "silver.ingest_audit: the file ingested and its reconciliation.",
    ),
    _loaded(
        "risk.quarantine_summary",
        "silver.trades_quarantine",
        ("business_date", "region", "rule", "field"),
        "business date × region × rule broken",
        "How many trade rows silver.trades_quarantine holds per rule and field.",
        keep=("business_date", "region", "rule", "field", "run_id"),
        add=("rows_quarantined bigint",),
    ),
    _loaded(
        "risk.var_contributions",
        "gold.var_contributions",
        ("business_date", "level", "node", "book"),
        "business date × node (firm, region, desk) × book",
        "gold.var_contributions: books' Euler contributions to VaR 99% 1-day.",
    ),
    _loaded(
        "risk.backtest",
        "gold.backtest",
        _NODE_KEY,
        "business date × hierarchy node",
        "gold.backtest: hypothetical P&L against the VaR forecast.",
    ),
    _loaded(
        "risk.backtest_summary",
        "gold.backtest_summary",
        _NODE_KEY,
        "business date × node (firm, region)",
        "gold.backtest_summary: zone, plus factor, Kupiec and Christoffersen.",
        retype={"observations": "int", "exceptions": "int"},
        nullable=tuple(f"christoffersen_{s}" for s in ("lr_ind", "p_ind", "lr_cc", "p_cc")),
    ),
    _loaded(
        "risk.stress_results",
        "gold.stress_pnl",
        ("business_date", "level", "node", "scenario"),
        "business date × node × stress scenario",
        "A node's stress P&L: the shock's, or a period's worst (with its date).",
        keep=("business_date", "region", "level", "node", "scenario", "kind", "pnl_usd", "run_id"),
        add=("worst_date date?",),
    ),
    _loaded(
        "risk.desk_tests",
        "gold.desk_tests",
        ("business_date", "desk"),
        "business date × desk",
        "gold.desk_tests: MAR32 P&L attribution test and desk backtest.",
        retype={"observations": "int", "exceptions_99": "int", "exceptions_975": "int"},
        nullable=("pla_spearman", "pla_ks"),
    ),
    _loaded(
        "risk.frtb_es",
        "gold.frtb_results",
        _NODE_KEY,
        "business date × node (firm, desk)",
        "gold.frtb_results of the firm and the desks: FRTB ES and IMCC.",
    ),
    Table(
        "risk.limits",
        _columns(
            "level string",
            "node string",
            "measure string",
            "limit_usd double",
            "effective_from date",
            "set_by string",
            "created_at timestamp = now()",
        ),
        key=("level", "node", "measure", "effective_from"),
        grain="limit version (level × node × measure × effective_from)",
        description="Limits on a node's measure, versioned by effective_from; never updated.",
    ),
    Table(
        "risk.limit_utilisation",
        _columns(
            "business_date date",
            "level string",
            "node string",
            "region string",
            "measure string",
            "figure_usd double",
            "limit_usd double",
            "limit_node string",
            "limit_effective_from date",
            "utilisation double",
            "status string",
            "run_id string",
            _LOADED_AT,
        ),
        key=("business_date", "level", "node", "measure"),
        grain="business date × node × limited measure",
        description="The night's figure against the limit in force on the date.",
    ),
    Table(
        "risk.pipeline_runs",
        _columns(
            "dag_id string",
            "run_id string",
            "business_date date",
            "state string",
            "started_at timestamp?",
            "ended_at timestamp?",
            "latency_s double?",
            "sla_deadline timestamp?",
            "sla_met boolean?",
            "failed_tasks array<string>",
            "recorded_at timestamp = now()",
        ),
        key=("dag_id", "run_id"),
        grain="Airflow run of the eod_risk DAG",
        description="A DAG run's state, latency, business deadline and failed tasks.",
    ),
    Table(
        "risk.task_runs",
        _columns(
            "dag_id string",
            "run_id string",
            "business_date date",
            "task_id string",
            "region string?",
            "attempt int",
            "state string",
            "started_at timestamp?",
            "ended_at timestamp?",
            "duration_s double?",
            "databricks_run_id bigint?",
            "run_page_url string?",
            "setup_duration_s double?",
            "execution_duration_s double?",
            "log_url string?",
            "error string?",
            "recorded_at timestamp = now()",
        ),
        key=("dag_id", "run_id", "task_id", "attempt"),
        grain="task of an eod_risk DAG run, its last attempt (written by record_run)",
        description="A task's final state, timing, Databricks run, log link and error.",
    ),
)

TABLES: dict[str, Table] = {t.name: t for t in CATALOGUE}
DELTA_TABLES = tuple(t.name for t in CATALOGUE if t.is_delta)
POSTGRES_TABLES = tuple(t.name for t in CATALOGUE if not t.is_delta)
#: The ``risk`` tables the nightly load replaces for a date, in load order.
LOADED_TABLES = tuple(t.name for t in CATALOGUE if t.loaded_from)


def table(name: str) -> Table:
    try:
        return TABLES[name]
    except KeyError:
        raise KeyError(f"{name!r} is not in databricks_jobs/tables.py's catalogue") from None


def spark_schema(name: str, nullable: dict[str, bool] | None = None) -> T.StructType:
    """The Spark schema of table ``name``; ``nullable`` per column (default: all)."""
    nullable = nullable or {}
    return T.StructType(
        [
            T.StructField(c.name, SPARK_TYPES[c.type], nullable.get(c.name, True))
            for c in table(name).columns
        ]
    )


def arrow_schema(name: str, nullable: dict[str, bool] | None = None):
    """The Arrow schema of Delta table ``name`` (a local delta-rs write's)."""
    from pyspark.sql.pandas.types import to_arrow_schema

    return to_arrow_schema(spark_schema(name, nullable))


def check_written(name: str, written: list[tuple[str, str]], partition_by: list[str]) -> None:
    """Refuse a write to Delta table ``name`` whose ``(column, type)`` list (Spark's
    ``simpleString`` types, in order) or partition columns are not the catalogue's."""
    declared = table(name)
    if tuple(partition_by) != declared.partition_by:
        raise ValueError(
            f"{name} is partitioned by {declared.partition_by} (databricks_jobs/tables.py), "
            f"not {tuple(partition_by)}"
        )
    expected = [(c.name, c.type) for c in declared.columns]
    if written != expected:
        missing = [c for c in expected if c not in written]
        extra = [c for c in written if c not in expected]
        raise ValueError(
            f"the rows written to {name} do not have its catalogue schema "
            f"(databricks_jobs/tables.py): missing {missing}, unexpected {extra}"
            + ("" if missing or extra else f", order {[c for c, _ in written]}")
        )

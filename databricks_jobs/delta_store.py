"""The Delta tables of the pipeline, addressed by name (``silver.trades``) under one lake root.

The lake root is where the names resolve (docs/deploying.md, "Unity Catalog"):

* ``uc://<catalog>`` -- on Databricks: Unity Catalog tables ``<catalog>.<layer>.<table>``
  (``risk.gold.var_results``), written with ``saveAsTable`` and read with ``spark.table``:
  governed, granted, queryable from Databricks SQL and dashboards, with lineage;
* a folder or a storage URI -- path-based tables ``<root>/<layer>/<table>`` (locally, and
  for a lake kept outside a metastore).

On Databricks (or any Spark with Delta Lake installed) Spark reads and writes Delta
natively. Locally, where delta-spark's jars cannot be fetched, tables are written with
``deltalake`` (delta-rs): Spark writes Parquet to a staging folder, partitioned as the table,
and the staged files themselves are committed to the Delta log in one transaction
(:mod:`databricks_jobs.delta_commit`) — the same table format and log, no row rewritten or
collected into the driver. Reads go back through Spark over the files of the current Delta
snapshot.

Every write replaces exactly one partition (``replaceWhere``), so rerunning a stage for a
business date gives the same table contents — and so a write can be retried: transient I/O
errors (an object store timing out, a Delta commit losing a race) are retried with bounded,
jittered exponential backoff (:mod:`databricks_jobs.retry`), each retry logged.
"""

from __future__ import annotations

import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from pathlib import Path
from urllib.parse import quote

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from databricks_jobs import tables
from databricks_jobs.delta_commit import commit_files, staged_files
from databricks_jobs.retry import DEFAULT_POLICY, RetryPolicy, call_with_retry
from databricks_jobs.storage_paths import check_local_lake_root, spark_path, uri_to_path

#: A partition key's value, or the values of several partitions (a range of business dates).
PartitionValue = str | date | Sequence[str | date]

_TABLE_NAME = re.compile(r"^(silver|gold)\.[a-z][a-z0-9_]*$")
UNITY_CATALOG = "uc://"
_CATALOG_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class DeltaStore:
    """Named Delta tables under ``lake_root`` (``<lake_root>/<layer>/<table>``)."""

    def __init__(
        self, spark: SparkSession, lake_root: str, *, retry_policy: RetryPolicy = DEFAULT_POLICY
    ) -> None:
        self.spark = spark
        self.lake_root = lake_root
        self.native = _spark_has_delta(spark)
        if not self.native:
            check_local_lake_root(lake_root)
        self.retry_policy = retry_policy
        self.catalog = unity_catalog(lake_root)
        if self.catalog is not None and not self.native:
            raise ValueError(
                f"lake root {lake_root} names Unity Catalog tables: they need Databricks "
                "(Spark with Delta); locally pass a folder as the lake root"
            )

    def path(self, table: str) -> str:
        """Where ``table`` lives: a path, or a ``<catalog>.<layer>.<table>`` name."""
        return table_location(self.lake_root, table)

    def exists(self, table: str) -> bool:
        return call_with_retry(
            lambda: self._exists(table), what=f"look up {table}", policy=self.retry_policy
        )

    def _exists(self, table: str) -> bool:
        if self.catalog is not None:
            return bool(self.spark.catalog.tableExists(self.path(table)))
        if self.native:
            from delta.tables import DeltaTable as SparkDeltaTable  # type: ignore[import-not-found]

            return SparkDeltaTable.isDeltaTable(self.spark, self.path(table))
        from deltalake import DeltaTable

        return DeltaTable.is_deltatable(self.path(table))

    def replace_partition(
        self, df: DataFrame, table: str, partition: Mapping[str, PartitionValue]
    ) -> None:
        """Overwrite the rows of ``table`` where the partition columns equal ``partition``.

        A value may be a list: the partitions of all its values are replaced in one commit
        (a range of business dates: ``{"business_date": [d1, d2], "region": "EMEA"}``), and
        a value of the list for which ``df`` has no row leaves its partition empty, exactly as
        replacing it alone with no row would.
        ``df`` must hold only rows of those partitions, in the table's catalogue schema
        (:mod:`databricks_jobs.tables`, checked); the table is partitioned by the keys of
        ``partition`` (in order) and created on first write.
        """
        partition_by = list(partition)
        tables.check_written(
            table, [(f.name, f.dataType.simpleString()) for f in df.schema], partition_by
        )
        predicate = partition_predicate(partition)

        def write() -> None:
            # An overwrite of exactly this partition: a retry after a partial failure gives
            # the same table, never duplicate rows.
            if self.native:
                writer = (
                    df.write.format("delta")
                    .mode("overwrite")
                    .option("replaceWhere", predicate)
                    .partitionBy(*partition_by)
                )
                if self.catalog is not None:
                    writer.saveAsTable(self.path(table))  # created on first write, then
                else:  # only the partition is replaced: same replaceWhere semantics
                    writer.save(self.path(table))
            else:
                self._replace_partition_local(
                    lambda staging, keys: df.write.partitionBy(*keys).parquet(str(staging)),
                    {f.name: f.nullable for f in df.schema},
                    table,
                    partition,
                )

        call_with_retry(write, what=f"write {table} where {predicate}", policy=self.retry_policy)

    def replace_partition_rows(
        self, rows: Sequence[tuple], table: str, partition: Mapping[str, PartitionValue]
    ) -> None:
        """:meth:`replace_partition` with ``rows`` the driver holds (a handful, e.g. an
        ingest's audit row per file; none empties the partitions), each a tuple in the
        table's catalogue column order. On Spark with Delta they are a DataFrame written like
        any other; locally pyarrow stages them in Spark's layout, without a Spark job, and the
        staged files are committed exactly as Spark's are."""
        columns = tables.table(table).column_names
        for row in rows:
            if len(row) != len(columns):
                raise ValueError(f"a row written to {table} has {len(row)} values, not {columns}")
        if self.native:
            schema = tables.spark_schema(table)
            self.replace_partition(self.spark.createDataFrame(list(rows), schema), table, partition)
            return
        tables.check_written(
            table, [(c.name, c.type) for c in tables.table(table).columns], list(partition)
        )
        nullable = dict.fromkeys(columns, True)  # as a DataFrame of these rows declares them
        call_with_retry(
            lambda: self._replace_partition_local(
                lambda staging, keys: _stage_rows(rows, table, staging, keys),
                nullable,
                table,
                partition,
            ),
            what=f"write {table} where {partition_predicate(partition)}",
            policy=self.retry_policy,
        )

    def _replace_partition_local(
        self,
        stage: Callable[[Path, list[str]], None],
        nullable: Mapping[str, bool],
        table: str,
        partition: Mapping[str, PartitionValue],
    ) -> None:
        """``stage`` writes Parquet to a staging folder, partitioned as the table is (Spark
        for a DataFrame, pyarrow for a driver's few rows); the staged files move into the
        table's partition folders and one delta-rs transaction adds them and removes the
        replaced partitions' files (their record counts, from the footers, in the log:
        :meth:`count`). No row is read back or rewritten. A write that dies before the commit
        leaves files no snapshot names (and its staging folder, swept later)."""
        target = Path(self.path(table))
        staging_root = Path(self.lake_root) / "_staging"
        _sweep_stale_staging(staging_root, table)
        staging = staging_root / f"{table}-{uuid.uuid4().hex}"
        partitions = {key: [_literal(v) for v in _values(val)] for key, val in partition.items()}
        try:
            stage(staging, list(partitions))
            staged = staged_files(table, staging, partitions)
            schema = tables.arrow_schema(table, nullable)
            commit_files(table, target, staged, partitions, schema, nullable, self.retry_policy)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def read(self, table: str, where: Mapping[str, PartitionValue] | None = None) -> DataFrame:
        """The current snapshot of ``table``, filtered on partition columns (a list value:
        any of its values)."""
        where = dict(where or {})
        if self.catalog is not None:
            df = call_with_retry(
                lambda: self.spark.read.table(self.path(table)),
                what=f"read {table}",
                policy=self.retry_policy,
            )
        elif self.native:
            df = call_with_retry(
                lambda: self.spark.read.format("delta").load(self.path(table)),
                what=f"read {table}",
                policy=self.retry_policy,
            )
        else:
            df = call_with_retry(
                lambda: self._read_local(table, where),
                what=f"read {table}",
                policy=self.retry_policy,
            )
        for col, val in where.items():
            values = _values(val)
            df = df.where(F.col(col).isin(*values) if len(values) > 1 else F.col(col) == values[0])
        return df

    def count(self, table: str, where: Mapping[str, PartitionValue]) -> int:
        """Rows of ``table`` where the partition columns equal ``where`` (a list value: any
        of its values).

        Locally the Delta log's record count of each file in the snapshot (written at
        commit from the files' footers) when every file has one, without reading rows.
        """
        if not self.native and self.catalog is None:
            counted = call_with_retry(
                lambda: self._count_local(table, where),
                what=f"count {table}",
                policy=self.retry_policy,
            )
            if counted is not None:
                return sum(counted.values())
        return self.read(table, where).count()

    def counts_by(
        self, table: str, where: Mapping[str, PartitionValue], column: str
    ) -> dict[object, int]:
        """:meth:`count`, per value of the partition column ``column`` (``{date(2026, 11,
        24): 300, ...}``; a value without rows is absent): locally from the Delta log alike,
        else one grouped count."""
        if not self.native and self.catalog is None:
            counted = call_with_retry(
                lambda: self._count_local(table, where, column),
                what=f"count {table} by {column}",
                policy=self.retry_policy,
            )
            if counted is not None:
                return counted
        grouped = self.read(table, where).groupBy(column).count()
        return {row[column]: row["count"] for row in grouped.collect()}  # a row per value

    def _count_local(
        self, table: str, where: Mapping[str, PartitionValue], by: str | None = None
    ) -> dict[object, int] | None:
        """Record counts from the log per value of partition column ``by`` (all under
        ``None`` when not given), or ``None`` when the log cannot tell."""
        from deltalake import DeltaTable

        path = self.path(table)
        if not DeltaTable.is_deltatable(path):
            raise FileNotFoundError(f"Delta table {table} does not exist at {path}")
        delta = DeltaTable(path)
        if not {*where, *([by] if by else [])} <= set(delta.metadata().partition_columns):
            return None
        files = pa.table(delta.get_add_actions(flatten=True)).to_pydict()
        wanted = {col: {_literal(v) for v in _values(val)} for col, val in where.items()}
        totals: dict[object, int] = {}
        for i, records in enumerate(files.get("num_records", [])):
            values = [files[f"partition.{col}"][i] for col in wanted]
            if any(
                v is None or _literal(v) not in w
                for v, w in zip(values, wanted.values(), strict=True)
            ):
                continue
            if records is None:
                return None
            key = files[f"partition.{by}"][i] if by else None
            totals[key] = totals.get(key, 0) + records
        return totals

    def _read_local(self, table: str, where: Mapping[str, PartitionValue]) -> DataFrame:
        from deltalake import DeltaTable

        path = self.path(table)
        if not DeltaTable.is_deltatable(path):
            raise FileNotFoundError(f"Delta table {table} does not exist at {path}")
        delta = DeltaTable(path)
        partition_cols = delta.metadata().partition_columns
        filters = [
            (c, "in", [_literal(x) for x in _values(v)])
            for c, v in where.items()
            if c in partition_cols
        ]
        files = delta.file_uris(partition_filters=filters or None)
        schema = _arrow_schema_to_spark(pa.schema(delta.schema().to_arrow()))
        if not files:
            return self.spark.createDataFrame([], schema)
        data_schema = StructType([f for f in schema.fields if f.name not in partition_cols])
        paths = [spark_path(uri_to_path(f)) for f in files]
        df = self.spark.read.schema(data_schema).parquet(*paths)
        # delta-rs keeps partition values in the log and the Hive-style folder names, not in
        # the Parquet files; restore them from the folder each row was read from (the
        # partition folders are the last ones: the lake root may hold a "col=..." folder).
        for col in partition_cols:
            folder = rf"/{col}=([^/]*)(?:/[^/=]+=[^/]*)*/[^/]+$"
            raw = F.regexp_extract(F.input_file_name(), folder, 1)
            df = df.withColumn(col, F.url_decode(raw).cast(schema[col].dataType))
        return df.select(*[f.name for f in schema.fields])


def table_location(lake_root: str, table: str) -> str:
    """``silver.trades`` under ``lake_root``: ``<catalog>.silver.trades`` for ``uc://<catalog>``,
    else the path ``<lake_root>/silver/trades``."""
    if not _TABLE_NAME.match(table):
        raise ValueError(f"invalid table name {table!r}: expected '<silver|gold>.<name>'")
    layer, name = table.split(".")
    catalog = unity_catalog(lake_root)
    if catalog is not None:
        return f"{catalog}.{layer}.{name}"
    return f"{lake_root.rstrip('/')}/{layer}/{name}"


def unity_catalog(lake_root: str) -> str | None:
    """The catalog of a ``uc://<catalog>`` lake root; ``None`` for a path-based lake."""
    if not lake_root.startswith(UNITY_CATALOG):
        return None
    catalog = lake_root.removeprefix(UNITY_CATALOG).strip("/")
    if not _CATALOG_NAME.match(catalog):
        raise ValueError(f"lake root {lake_root!r}: expected uc://<catalog> (lower-case name)")
    return catalog


# Longer than any job may run (bundle timeouts ≤ 1 h): a staging folder this old belongs to
# a write whose process was killed before its ``finally`` could remove it.
STALE_STAGING_S = 6 * 3600


def _sweep_stale_staging(staging_root: Path, table: str) -> None:
    """Remove ``table``'s staging folders left behind by killed writes (housekeeping only:
    staging is outside every table, so readers never saw them)."""
    if not staging_root.is_dir():
        return
    cutoff = time.time() - STALE_STAGING_S
    for leftover in staging_root.glob(f"{table}-*"):
        try:
            if leftover.stat().st_mtime < cutoff:
                shutil.rmtree(leftover, ignore_errors=True)
        except FileNotFoundError:  # another writer swept it first
            continue


def _stage_rows(rows: Sequence[tuple], table: str, staging: Path, keys: list[str]) -> None:
    """Write ``rows`` (catalogue column order) under ``staging`` as Spark stages a
    partitioned write: a Parquet file per partition in Hive-style ``key=value`` folders (the
    values escaped), the partition columns not in the files."""
    import pyarrow.parquet as pq

    schema = tables.arrow_schema(table)
    names = schema.names
    positions = [names.index(k) for k in keys]
    data = [i for i in range(len(names)) if i not in positions]
    groups: dict[tuple, list[tuple]] = {}
    for row in rows:
        groups.setdefault(tuple(_literal(row[i]) for i in positions), []).append(row)
    staging.mkdir(parents=True)
    for number, (values, members) in enumerate(sorted(groups.items())):
        folder = staging.joinpath(
            *(f"{k}={quote(v, safe='')}" for k, v in zip(keys, values, strict=True))
        )
        folder.mkdir(parents=True)
        frame = pa.Table.from_pylist(
            [{names[i]: row[i] for i in data} for row in members],
            schema=pa.schema([schema.field(i) for i in data]),
        )
        pq.write_table(frame, folder / f"part-{number:05d}.parquet")


def partition_predicate(partition: Mapping[str, PartitionValue]) -> str:
    """The SQL predicate (``replaceWhere``) selecting ``partition``'s rows: ``col = 'v'``, or
    ``col IN ('v1', 'v2')`` for a list of values."""
    terms = []
    for col, val in partition.items():
        values = _values(val)
        if not values:
            raise ValueError(f"partition {col}: no value")
        if len(values) == 1:
            terms.append(f"{col} = '{_literal(values[0])}'")
        else:
            quoted = ", ".join(f"'{_literal(v)}'" for v in values)
            terms.append(f"{col} IN ({quoted})")
    return " AND ".join(terms)


def _values(value: PartitionValue) -> list[str | date]:
    """A partition value as the list of values it stands for."""
    if isinstance(value, str | date):
        return [value]
    return sorted(set(value), key=_literal)


def _literal(value: str | date) -> str:
    text = value.isoformat() if isinstance(value, date) else str(value)
    if "'" in text:
        raise ValueError(f"partition value {text!r} may not contain a quote")
    return text


def _spark_has_delta(spark: SparkSession) -> bool:
    if "DATABRICKS_RUNTIME_VERSION" in os.environ:
        return True
    extensions = spark.conf.get("spark.sql.extensions", "") or ""
    return "DeltaSparkSessionExtension" in extensions


def _arrow_schema_to_spark(schema) -> StructType:
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(schema)

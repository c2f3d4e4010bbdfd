"""A local Delta write's commit: Spark's staged Parquet files become the table's files.

Locally (no delta-spark) :class:`databricks_jobs.delta_store.DeltaStore` has Spark write a
partition replacement as Parquet into a staging folder, partitioned by the table's partition
columns (Hive-style ``col=value`` folders, values not in the files: the layout of a Delta
table). :func:`staged_files` lists what Spark wrote, checks every file belongs to a replaced
partition and reads each footer's record count; :func:`commit_files` moves the files into the
table's partition folders and commits, in one delta-rs transaction, an add action per file
(its record count in the stats: ``DeltaStore.count`` reads them) and the removal of every
file of the replaced partitions. No row is read back or rewritten.

A write that dies before the commit leaves files that no snapshot names (readers go by the
log) and its staging folder (swept by a later write); a retry stages and commits anew.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import unquote

from databricks_jobs.retry import RetryPolicy, call_with_retry

#: Spark's folder name for a null partition value.
_SPARK_NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"


@dataclass(frozen=True)
class StagedFile:
    """A Parquet file Spark staged: where it is, its place in the table, its footer's facts."""

    path: Path
    #: path under the table root: the partition folders (Spark-escaped) and the file name
    relative: str
    partition_values: dict[str, str]
    size: int
    modified_ms: int
    num_records: int


def staged_files(
    table: str, staging: Path, partitions: Mapping[str, Sequence[str]]
) -> list[StagedFile]:
    """The data files Spark wrote under ``staging``, partitioned by ``partitions``' keys (in
    order); ``ValueError`` naming the partition when one is not among ``partitions``' values
    (the rows written must belong to the partitions replaced)."""
    import pyarrow.parquet as pq

    keys = list(partitions)
    found = []
    for folder, dirs, files in os.walk(staging):
        dirs.sort()
        for name in sorted(files):
            if name.startswith((".", "_")):  # checksums, _SUCCESS
                continue
            path = Path(folder) / name
            relative = path.relative_to(staging).as_posix()
            values = _partition_values(table, relative, keys)
            for key, value in values.items():
                if value not in partitions[key]:
                    raise ValueError(
                        f"rows written to {table} belong to partition {key}={value}, which "
                        f"is not among the partitions replaced ({key} in {list(partitions[key])})"
                    )
            stat = path.stat()
            found.append(
                StagedFile(
                    path=path,
                    relative=relative,
                    partition_values=values,
                    size=stat.st_size,
                    modified_ms=int(stat.st_mtime * 1000),
                    num_records=pq.read_metadata(path).num_rows,
                )
            )
    return found


def _partition_values(table: str, relative: str, keys: list[str]) -> dict[str, str]:
    folders = relative.split("/")[:-1]
    names = [f.partition("=")[0] for f in folders]
    if names != keys:
        raise ValueError(
            f"staged file {relative} of {table}: expected partition folders {keys}, got {names}"
        )
    values = {}
    for key, folder in zip(keys, folders, strict=True):
        escaped = folder.partition("=")[2]
        if escaped == _SPARK_NULL_PARTITION:
            raise ValueError(f"rows written to {table} have no value for partition column {key}")
        values[key] = unquote(escaped)  # Spark escapes a value's special characters as %XX
    return values


def commit_files(
    table: str,
    target: Path,
    staged: list[StagedFile],
    partitions: Mapping[str, Sequence[str]],
    schema,
    nullable: Mapping[str, bool],
    policy: RetryPolicy,
) -> None:
    """Move ``staged`` into the Delta table at ``target`` and commit them in place of every
    file of ``partitions`` (one transaction; the table is created with ``schema``, an Arrow
    schema, when it does not exist). ``nullable``: the written columns' nullability, checked
    against an existing table's (a column it declares non-null must hold no null)."""
    from deltalake import DeltaTable, Schema, transaction
    from deltalake.exceptions import CommitFailedError, DeltaError

    location = str(target)
    exists = DeltaTable.is_deltatable(location)
    if exists:
        _check_table_schema(
            table, DeltaTable(location), Schema.from_arrow(schema), staged, nullable, partitions
        )
    adds = [_place(target, f) for f in staged]
    partition_by = list(partitions)
    if not exists:
        try:
            transaction.create_table_with_add_actions(
                location, Schema.from_arrow(schema), adds, mode="error", partition_by=partition_by
            )
            return
        except (DeltaError, CommitFailedError):
            if not DeltaTable.is_deltatable(location):
                raise
            # another writer created the table first: replace the partitions in it, as below
    filters = [(key, "in", list(values)) for key, values in partitions.items()]

    def overwrite() -> None:
        # On the newest snapshot: the removals are every file the partitions hold now, so a
        # commit that lost a race to another partition's writer is simply made again.
        current = DeltaTable(location)
        current.create_write_transaction(
            adds,
            mode="overwrite",
            schema=current.schema(),
            partition_by=partition_by,
            partition_filters=filters,
        )

    call_with_retry(
        overwrite,
        what=f"commit {table} ({len(adds)} files)",
        policy=replace(policy, retry_on=lambda error: isinstance(error, CommitFailedError)),
    )


def _place(target: Path, staged: StagedFile):
    """Move a staged file to its partition folder in the table; its add action."""
    from deltalake.transaction import AddAction

    destination = target / staged.relative
    destination.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staged.path, destination)
    return AddAction(
        path=staged.relative,  # delta-rs URI-encodes it in the log
        size=staged.size,
        partition_values=staged.partition_values,
        modification_time=staged.modified_ms,
        data_change=True,
        stats=json.dumps({"numRecords": staged.num_records}),
    )


def _check_table_schema(
    table: str,
    delta,
    written,
    staged: list[StagedFile],
    nullable: Mapping[str, bool],
    partitions: Mapping[str, Sequence[str]],
) -> None:
    """The existing table has the written columns and types, and a column it declares
    non-null gets no null (Spark's footers count them; a column the write itself declares
    non-null needs no look)."""
    have = [(f.name, f.type) for f in delta.schema().fields]
    want = [(f.name, f.type) for f in written.fields]
    if have != want:
        raise ValueError(
            f"Delta table {table} has columns {[str(c) for c in have]}, the rows written "
            f"{[str(c) for c in want]} (databricks_jobs/tables.py): migrate the table first"
        )
    import pyarrow.parquet as pq

    for field in delta.schema().fields:
        if field.nullable or not nullable.get(field.name, True) or field.name in partitions:
            continue  # a partition's value is in its folder name, never null (staged_files)
        for f in staged:
            if f.num_records and pq.read_table(f.path, columns=[field.name]).column(0).null_count:
                raise ValueError(
                    f"rows written to {table} ({f.partition_values}) have nulls in "
                    f"{field.name}, which the table declares non-null"
                )

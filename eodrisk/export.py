"""Query results as files an analyst opens elsewhere: CSV, Parquet or XLSX.

``eodrisk query "SQL" --format xlsx --out desk_var.xlsx`` (cli.py) runs the query and hands
the cursor's column names and rows here. Types follow Postgres: numbers stay numbers
(``numeric`` as exact decimals in Parquet, floats in XLSX, which has no decimal type), dates
stay dates, nulls stay empty cells / nulls.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

FORMATS = ("table", "csv", "parquet", "xlsx")
XLSX_SHEET = "query"


class ExportError(ValueError):
    """The export cannot be written as asked; the message says what to change."""


def write(columns: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str, out: Path) -> Path:
    """Write ``rows`` (one tuple per row, in ``columns`` order) to ``out`` as ``fmt``."""
    writers = {"csv": _csv, "parquet": _parquet, "xlsx": _xlsx}
    if fmt not in writers:
        raise ExportError(f"unknown format {fmt!r}: expected one of {', '.join(writers)}")
    duplicates = sorted({c for c in columns if list(columns).count(c) > 1})
    if duplicates and fmt != "csv":
        raise ExportError(
            f"the query returns the column name(s) {', '.join(duplicates)} more than once; "
            f"{fmt} needs unique names: alias them (select a.x as a_x, b.x as b_x …)"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    writers[fmt](list(columns), rows, tmp)
    tmp.replace(out)
    return out


def _csv(columns: list[str], rows: Sequence[Sequence[Any]], path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if v is None else _text(v) for v in row])


def _text(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _parquet(columns: list[str], rows: Sequence[Sequence[Any]], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrays = [pa.array([row[i] for row in rows]) for i in range(len(columns))]
    pq.write_table(pa.Table.from_arrays(arrays, names=columns), path)


def _xlsx(columns: list[str], rows: Sequence[Sequence[Any]], path: Path) -> None:
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet(XLSX_SHEET)
    sheet.append(columns)
    for row in rows:
        sheet.append([_cell(v) for v in row])
    book.save(path)


def _cell(value: Any) -> Any:
    """A value Excel stores: floats for decimals, naive datetimes (UTC), text otherwise."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    if value is None or isinstance(value, bool | int | float | str | date):
        return value
    return str(value)

"""Validation of a region's trade file: raw lines in, valid trades and quarantined rows out.

Pure ``DataFrame -> DataFrame`` transforms (no I/O). Each data line is parsed on its own;
the first rule it breaks is recorded with the field and a message, and the raw text is
kept, so ``rows_read = rows_accepted + rows_quarantined`` always holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

TRADE_COLUMNS = (
    "trade_id",
    "business_date",
    "trade_date",
    "book",
    "instrument_id",
    "side",
    "quantity",
    "price",
    "currency",
)
EXPECTED_HEADER = ",".join(TRADE_COLUMNS)
MAX_ABS_QUANTITY = 1e10
MAX_PRICE = 1e9
_EXTRA = "_extra_field"
_CSV_SCHEMA = ", ".join(f"`{c}` STRING" for c in (*TRADE_COLUMNS, _EXTRA))


@dataclass(frozen=True)
class ValidatedTrades:
    valid: DataFrame
    quarantine: DataFrame


def check_header(first_line: str, file_name: str) -> None:
    """Refuse the whole file when its header is not exactly the contract's."""
    header = first_line.lstrip("\ufeff").rstrip("\r\n")
    if header != EXPECTED_HEADER:
        raise ValueError(
            f"{file_name} line 1: header {header[:200]!r} does not match the expected "
            f"columns {EXPECTED_HEADER!r} (docs/data.md, 'Trade files')"
        )


def _finite_double(name: str) -> Column:
    value = F.expr(f"try_cast(trim(`{name}`) as double)")
    return F.when(F.isnan(value) | (F.abs(value) == float("inf")), None).otherwise(value)


def _rule(condition: Column, rule: str, field: str, message: Column | str) -> tuple:
    return condition, rule, field, message if isinstance(message, Column) else F.lit(message)


def validate_trades(
    lines: DataFrame,
    books: DataFrame,
    instruments: DataFrame,
    business_date: date,
    region: str,
) -> ValidatedTrades:
    """Split raw lines into valid trades and quarantined rows.

    Parameters
    ----------
    lines : DataFrame[line_number: long, raw_line: string]
        The data lines of one file (header excluded), physical line numbers from 2.
    books, instruments : DataFrame
        Reference data (``reference_data.BOOKS_SCHEMA`` / ``INSTRUMENTS_SCHEMA``).
    """
    parsed = lines.withColumn(
        "f", F.from_csv(F.col("raw_line"), _CSV_SCHEMA, {"mode": "PERMISSIVE"})
    ).select("line_number", "raw_line", "f.*")
    stripped = {c: F.trim(F.col(c)) for c in TRADE_COLUMNS}
    typed = parsed.select(
        "line_number",
        "raw_line",
        F.col(_EXTRA),
        *[stripped[c].alias(c) for c in TRADE_COLUMNS],
        F.expr("try_to_date(trim(business_date), 'yyyy-MM-dd')").alias("_business_date"),
        F.expr("try_to_date(trim(trade_date), 'yyyy-MM-dd')").alias("_trade_date"),
        _finite_double("quantity").alias("_quantity"),
        _finite_double("price").alias("_price"),
    )
    region_books = books.where(F.col("region") == region).select(
        "book", F.col("desk").alias("_desk")
    )
    all_books = books.select("book", F.col("region").alias("_book_region"))
    joined = (
        typed.join(F.broadcast(all_books), "book", "left")
        .join(F.broadcast(region_books), "book", "left")
        .join(
            F.broadcast(instruments.select("instrument_id", F.col("currency").alias("_instr_ccy"))),
            "instrument_id",
            "left",
        )
        .withColumn(
            "_occurrence",
            F.row_number().over(Window.partitionBy("trade_id").orderBy("line_number")),
        )
    )
    bd = business_date.isoformat()
    rules = [
        _rule(F.trim(F.col("raw_line")) == "", "empty_line", "", "empty line"),
        _rule(
            F.col(_EXTRA).isNotNull(),
            "malformed_row",
            "",
            f"more than {len(TRADE_COLUMNS)} fields",
        ),
        *[
            _rule(
                F.col(c).isNull() | (F.col(c) == ""),
                "missing_field",
                c,
                f"{c} is empty or missing",
            )
            for c in TRADE_COLUMNS
        ],
        _rule(
            F.col("_business_date").isNull(),
            "invalid_date",
            "business_date",
            F.concat(F.lit("not a YYYY-MM-DD date: "), F.col("business_date")),
        ),
        _rule(
            F.col("_business_date") != F.lit(business_date),
            "business_date_mismatch",
            "business_date",
            F.concat(F.col("business_date"), F.lit(f" is not the file's business date {bd}")),
        ),
        _rule(
            F.col("_trade_date").isNull(),
            "invalid_date",
            "trade_date",
            F.concat(F.lit("not a YYYY-MM-DD date: "), F.col("trade_date")),
        ),
        _rule(
            F.col("_trade_date") > F.lit(business_date),
            "trade_date_after_business_date",
            "trade_date",
            F.concat(F.col("trade_date"), F.lit(f" is after the business date {bd}")),
        ),
        _rule(
            ~F.col("side").isin("BUY", "SELL"),
            "invalid_side",
            "side",
            F.concat(F.lit("side must be BUY or SELL, got "), F.col("side")),
        ),
        _rule(
            F.col("_quantity").isNull(),
            "invalid_number",
            "quantity",
            F.concat(F.lit("not a finite number: "), F.col("quantity")),
        ),
        _rule(
            F.col("_quantity") <= 0,
            "non_positive_quantity",
            "quantity",
            F.concat(F.lit("quantity must be > 0, got "), F.col("quantity")),
        ),
        _rule(
            F.col("_quantity") > MAX_ABS_QUANTITY,
            "quantity_out_of_range",
            "quantity",
            F.concat(F.lit(f"quantity above {MAX_ABS_QUANTITY:.0e}: "), F.col("quantity")),
        ),
        _rule(
            F.col("_price").isNull(),
            "invalid_number",
            "price",
            F.concat(F.lit("not a finite number: "), F.col("price")),
        ),
        _rule(
            (F.col("_price") <= 0) | (F.col("_price") > MAX_PRICE),
            "price_out_of_range",
            "price",
            F.concat(F.lit(f"price must be in (0, {MAX_PRICE:.0e}], got "), F.col("price")),
        ),
        _rule(
            F.col("_book_region").isNull(),
            "unknown_book",
            "book",
            F.concat(F.lit("book not in reference/books.csv: "), F.col("book")),
        ),
        _rule(
            F.col("_desk").isNull(),
            "book_not_in_region",
            "book",
            F.concat(
                F.col("book"),
                F.lit(" belongs to "),
                F.col("_book_region"),
                F.lit(f", not {region}"),
            ),
        ),
        _rule(
            F.col("_instr_ccy").isNull(),
            "unknown_instrument",
            "instrument_id",
            F.concat(
                F.lit("instrument not in reference/instruments.csv: "), F.col("instrument_id")
            ),
        ),
        _rule(
            F.col("currency") != F.col("_instr_ccy"),
            "currency_mismatch",
            "currency",
            F.concat(
                F.col("currency"), F.lit(" differs from the instrument's "), F.col("_instr_ccy")
            ),
        ),
        _rule(
            F.col("_occurrence") > 1,
            "duplicate_trade_id",
            "trade_id",
            F.concat(F.lit("trade_id seen on an earlier line: "), F.col("trade_id")),
        ),
    ]
    verdict = F.lit(None).cast("struct<rule:string,field:string,message:string>")
    for condition, rule, field, message in reversed(rules):
        verdict = F.when(
            F.coalesce(condition, F.lit(False)),
            F.struct(
                F.lit(rule).alias("rule"), F.lit(field).alias("field"), message.alias("message")
            ),
        ).otherwise(verdict)
    checked = joined.withColumn("_verdict", verdict)

    valid = checked.where(F.col("_verdict").isNull()).select(
        "trade_id",
        F.col("_business_date").alias("business_date"),
        F.col("_trade_date").alias("trade_date"),
        F.lit(region).alias("region"),
        F.col("_desk").alias("desk"),
        "book",
        "instrument_id",
        "side",
        F.col("_quantity").alias("quantity"),
        F.when(F.col("side") == "BUY", F.col("_quantity"))
        .otherwise(-F.col("_quantity"))
        .alias("signed_quantity"),
        F.col("_price").alias("price"),
        "currency",
        F.col("line_number").alias("source_line"),
    )
    quarantine = checked.where(F.col("_verdict").isNotNull()).select(
        F.lit(business_date).alias("business_date"),
        F.lit(region).alias("region"),
        "line_number",
        "raw_line",
        F.col("_verdict.rule").alias("rule"),
        F.col("_verdict.field").alias("field"),
        F.col("_verdict.message").alias("message"),
    )
    return ValidatedTrades(valid=valid, quarantine=quarantine)

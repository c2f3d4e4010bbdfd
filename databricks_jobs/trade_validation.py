"""Validation of a region's trade files: raw lines in, valid trades and quarantined rows out.

Pure ``DataFrame -> DataFrame`` transforms (no I/O). Each data line is parsed on its own and
judged against its file's business date (a column: the files of many dates are validated in
one pass); the first rule it breaks is recorded with the field and a message, and the raw
text is kept, so ``rows_read = rows_accepted + rows_quarantined`` always holds.

File-level checks (encoding, header) are pure functions of the file's first bytes and raise
:class:`FileFormatError` naming the file and what was expected. The policy for each kind of
bad input is in docs/faults.md.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from databricks_jobs.landing import TRADE_COLUMNS, TRADE_FILE_HEADER

MAX_ABS_QUANTITY = 1e10
MAX_PRICE = 1e9
MIN_TRADE_DATE = date(1900, 1, 1)
#: The longest header line read when checking a file (the contract's is 80 characters).
MAX_HEADER_BYTES = 4096
#: Every rule a data line can break, as (rule, field) in the order they are checked: the
#: names loaded into ``risk.quarantine_summary`` and shown in BI. ``validate_trades`` builds
#: exactly these (it refuses to run otherwise), so this is the list to read or reuse.
QUARANTINE_RULES: tuple[tuple[str, str], ...] = (
    ("empty_line", ""),
    ("invalid_encoding", ""),
    ("control_character", ""),
    ("bad_quoting", ""),
    ("malformed_row", ""),
    *(("missing_field", c) for c in TRADE_COLUMNS),
    ("invalid_date", "business_date"),
    ("business_date_mismatch", "business_date"),
    ("invalid_date", "trade_date"),
    ("trade_date_after_business_date", "trade_date"),
    ("invalid_side", "side"),
    ("invalid_number", "quantity"),
    ("non_positive_quantity", "quantity"),
    ("quantity_out_of_range", "quantity"),
    ("invalid_number", "price"),
    ("price_out_of_range", "price"),
    ("unknown_book", "book"),
    ("book_not_in_region", "book"),
    ("unknown_instrument", "instrument_id"),
    ("currency_mismatch", "currency"),
    ("duplicate_trade_id", "trade_id"),
)
_EXTRA = "_extra_field"
_CSV_SCHEMA = ", ".join(f"`{c}` STRING" for c in (*TRADE_COLUMNS, _EXTRA))
# RFC 4180 quoting: a field may be quoted (commas inside it are data), a quote inside a
# quoted field is doubled. A record is one physical line: see docs/faults.md.
_CSV_OPTIONS = {"mode": "PERMISSIVE", "escape": '"'}
# A whole quoted field; what is left of a line without them has no quote, and its commas
# separate the fields. (The CSV parser would read an unterminated quote to the end of the
# line, and a stray quote inside a field as data; and it turns a trailing empty field
# into null, so the field count comes from here.)
# Possessive quantifiers: the JVM's regex engine recurses once per repetition of an
# alternation, and a megabyte quoted field overflowed its stack (issue 16).
_QUOTED_FIELD = r'(?<=^|,)"[^"]*+(?:""[^"]*+)*+"(?=,|$)'
# Spark's CSV parser (univocity) aborts the whole job on a record of more than 20,480
# fields (``MALFORMED_CSV_RECORD``); a line is parsed only when its field count, taken from
# the line itself, is at most one more than the contract's (the extra shows as _EXTRA).
_MAX_PARSED_FIELDS = len(TRADE_COLUMNS) + 1
# Plain decimal numbers only: Spark's cast also takes Java literals ("5d", "0x1p3", "Infinity").
_NUMBER = r"^[+-]?([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][+-]?[0-9]+)?$"
_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
# U+FFFD marks bytes that were not UTF-8 (the line reader decodes with replacement). Control
# characters have no place in a trade file: C0 (NUL, tab, ...), DEL, C1 (U+0080-U+009F: NEL
# U+0085 among them) and the Unicode line and paragraph separators, which Python's
# ``splitlines`` (and other readers) treat as line breaks inside what Hadoop reads as one line.
_UNDECODABLE = "\ufffd"
_CONTROL = "[\\x00-\\x1f\\x7f-\\x9f\\u2028\\u2029]"
_UTF16_32_BOMS = (
    (b"\xff\xfe\x00\x00", "UTF-32-LE"),
    (b"\x00\x00\xfe\xff", "UTF-32-BE"),
    (b"\xff\xfe", "UTF-16-LE"),
    (b"\xfe\xff", "UTF-16-BE"),
)


class FileFormatError(ValueError):
    """The file as a whole breaks the contract (encoding, header): nothing is ingested."""


@dataclass(frozen=True)
class ValidatedTrades:
    """Every line with its verdict (``_verdict``: null, or the first rule it breaks) and its
    file's business date (``_file_date``).

    ``valid`` and ``quarantine`` are projections of ``checked``; persist it (``persisted``)
    before using both, so the lines are parsed and joined once.
    """

    checked: DataFrame
    region: str
    keys: tuple[str, ...] = ()

    def persisted(self) -> ValidatedTrades:
        return replace(self, checked=self.checked.persist(StorageLevel.MEMORY_AND_DISK))

    def counts(self) -> dict[date, tuple[int, int]]:
        """``{business_date: (rows_accepted, rows_quarantined)}`` of the files' dates that
        have a data line, from one aggregation over ``checked``."""
        is_valid = F.col("_verdict").isNull()
        per_date = self.checked.groupBy("_file_date").agg(
            F.count(F.when(is_valid, 1)).alias("valid"),
            F.count(F.when(~is_valid, 1)).alias("quarantined"),
        )
        return {
            row["_file_date"]: (int(row["valid"]), int(row["quarantined"]))
            for row in per_date.collect()  # one row per business date
        }

    @property
    def valid(self) -> DataFrame:
        return self.checked.where(F.col("_verdict").isNull()).select(
            *self.keys,
            "trade_id",
            F.col("_business_date").alias("business_date"),
            F.col("_trade_date").alias("trade_date"),
            F.lit(self.region).alias("region"),
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

    @property
    def quarantine(self) -> DataFrame:
        return self.checked.where(F.col("_verdict").isNotNull()).select(
            *self.keys,
            F.col("_file_date").alias("business_date"),
            F.lit(self.region).alias("region"),
            "line_number",
            "raw_line",
            F.col("_verdict.rule").alias("rule"),
            F.col("_verdict.field").alias("field"),
            F.col("_verdict.message").alias("message"),
        )


def check_file_start(head: bytes, file_name: str) -> None:
    """Refuse the whole file unless it starts with the contract's header line in UTF-8.

    ``head`` is the file's first :data:`MAX_HEADER_BYTES` bytes (or all of a shorter file).
    The header line ends at the first LF, CR or CRLF, as for Hadoop's line reader that splits
    the data lines. A UTF-8 byte-order mark is accepted.
    """
    expected = f"expected UTF-8 text starting with the header line {TRADE_FILE_HEADER!r}"
    if not head:
        raise FileFormatError(f"{file_name}: the file is empty; {expected}")
    for bom, encoding in _UTF16_32_BOMS:
        if head.startswith(bom):
            raise FileFormatError(
                f"{file_name}: the file is {encoding} encoded (byte-order mark "
                f"{bom.hex(' ')}); {expected} (docs/data.md, 'Trade files')"
            )
    first_line, *rest = re.split(rb"\r\n|\r|\n", head, maxsplit=1)
    if b"\x00" in first_line:
        raise FileFormatError(
            f"{file_name} line 1: NUL bytes in the header (UTF-16 or binary data?); {expected}"
        )
    if not rest and len(head) >= MAX_HEADER_BYTES:
        raise FileFormatError(
            f"{file_name} line 1: no line break in the first {MAX_HEADER_BYTES} bytes; {expected}"
        )
    try:
        text = first_line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FileFormatError(
            f"{file_name} line 1: the header is not valid UTF-8 ({exc.reason} at byte "
            f"{exc.start}); {expected}"
        ) from None
    check_header(text, file_name)


def check_header(first_line: str, file_name: str) -> None:
    """Refuse the whole file when its header is not exactly the contract's."""
    header = first_line.removeprefix("\ufeff").removesuffix("\n").removesuffix("\r")
    if header != TRADE_FILE_HEADER:
        raise FileFormatError(
            f"{file_name} line 1: header {header[:200]!r} does not match the expected "
            f"columns {TRADE_FILE_HEADER!r} (docs/data.md, 'Trade files')"
        )


def _finite_double(name: str) -> Column:
    """The field as a finite double, or null unless it is a plain decimal number."""
    text = F.trim(F.col(name))
    value = F.expr(f"try_cast(trim(`{name}`) as double)")
    return F.when(text.rlike(_NUMBER) & ~F.isnan(value) & (F.abs(value) != float("inf")), value)


def _iso_date(name: str) -> Column:
    """The field as a date, or null unless it is exactly ``YYYY-MM-DD`` (a real day)."""
    text = F.trim(F.col(name))
    return F.when(text.rlike(_DATE), F.expr(f"try_cast(trim(`{name}`) as date)"))


def _rule(condition: Column, rule: str, field: str, message: Column | str) -> tuple:
    return condition, rule, field, message if isinstance(message, Column) else F.lit(message)


def validate_trades(
    lines: DataFrame,
    books: DataFrame,
    instruments: DataFrame,
    region: str,
    *,
    file_key: Sequence[str] = (),
) -> ValidatedTrades:
    """Split raw lines into valid trades and quarantined rows.

    Parameters
    ----------
    lines : DataFrame[business_date: date, line_number: long, raw_line: string, *file_key]
        The data lines of the region's files (header excluded), each with its file's
        business date (the date the rules compare with, and the quarantine rows'), physical
        line numbers from 2 in each file.
    books, instruments : DataFrame
        Reference data (``reference_data.BOOKS_SCHEMA`` / ``INSTRUMENTS_SCHEMA``).
    file_key : column names
        When ``lines`` holds several files of one business date, the columns telling them
        apart. Trade ids must be unique per business date and key (per file), and both
        outputs keep the key columns first.
    """
    keys = list(file_key)
    raw = F.col("raw_line")
    # The quoted-field regex is costly; most lines have no quote at all.
    unquoted = F.when(raw.contains('"'), F.regexp_replace(raw, _QUOTED_FIELD, "")).otherwise(raw)
    counted = lines.select(
        *keys,
        F.col("business_date").alias("_file_date"),
        "line_number",
        "raw_line",
        unquoted.contains('"').alias("_stray_quote"),
        (F.length(unquoted) - F.length(F.replace(unquoted, F.lit(","), F.lit(""))) + 1).alias(
            "_n_fields"
        ),
    )
    parsed = counted.withColumn(
        "f",
        F.when(
            F.col("_n_fields") <= _MAX_PARSED_FIELDS,
            F.from_csv(raw, _CSV_SCHEMA, _CSV_OPTIONS),
        ),
    ).select(*keys, "_file_date", "line_number", "raw_line", "_stray_quote", "_n_fields", "f.*")
    stripped = {c: F.trim(F.col(c)) for c in TRADE_COLUMNS}
    typed = parsed.select(
        *keys,
        "_file_date",
        "line_number",
        "raw_line",
        F.col(_EXTRA),
        "_stray_quote",
        "_n_fields",
        *[stripped[c].alias(c) for c in TRADE_COLUMNS],
        _iso_date("business_date").alias("_business_date"),
        _iso_date("trade_date").alias("_trade_date"),
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
            F.row_number().over(
                Window.partitionBy("_file_date", *keys, "trade_id").orderBy("line_number")
            ),
        )
    )
    file_date = F.col("_file_date").cast("string")  # YYYY-MM-DD, as date.isoformat()
    rules = [
        _rule(F.trim(F.col("raw_line")) == "", "empty_line", "", "empty line"),
        _rule(
            F.col("raw_line").contains(_UNDECODABLE),
            "invalid_encoding",
            "",
            "bytes that are not UTF-8 (shown as U+FFFD); the file must be UTF-8",
        ),
        _rule(
            F.col("raw_line").rlike(_CONTROL),
            "control_character",
            "",
            "a control character (tab, NUL, ...) in the line",
        ),
        _rule(
            F.col("_stray_quote"),
            "bad_quoting",
            "",
            'a quote outside a whole quoted field ("...", inner quotes doubled), or unterminated',
        ),
        _rule(
            F.col(_EXTRA).isNotNull() | (F.col("_n_fields") > len(TRADE_COLUMNS)),
            "malformed_row",
            "",
            F.concat(
                F.col("_n_fields").cast("string"), F.lit(f" fields, expected {len(TRADE_COLUMNS)}")
            ),
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
            F.col("_business_date") != F.col("_file_date"),
            "business_date_mismatch",
            "business_date",
            F.concat(F.col("business_date"), F.lit(" is not the file's business date "), file_date),
        ),
        _rule(
            F.col("_trade_date").isNull(),
            "invalid_date",
            "trade_date",
            F.concat(F.lit("not a YYYY-MM-DD date: "), F.col("trade_date")),
        ),
        _rule(
            F.col("_trade_date") < F.lit(MIN_TRADE_DATE),
            "invalid_date",
            "trade_date",
            F.concat(F.col("trade_date"), F.lit(f" is before {MIN_TRADE_DATE.isoformat()}")),
        ),
        _rule(
            F.col("_trade_date") > F.col("_file_date"),
            "trade_date_after_business_date",
            "trade_date",
            F.concat(F.col("trade_date"), F.lit(" is after the business date "), file_date),
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
    built = tuple(dict.fromkeys((rule, field) for _, rule, field, _ in rules))
    if built != QUARANTINE_RULES:
        raise AssertionError(f"rules {built} differ from QUARANTINE_RULES: update it with them")
    verdict = F.lit(None).cast("struct<rule:string,field:string,message:string>")
    for condition, rule, field, message in reversed(rules):
        verdict = F.when(
            F.coalesce(condition, F.lit(False)),
            F.struct(
                F.lit(rule).alias("rule"), F.lit(field).alias("field"), message.alias("message")
            ),
        ).otherwise(verdict)
    # Only what the two outputs need: the raw text is kept for quarantined lines alone.
    checked = joined.withColumn("_verdict", verdict).select(
        *keys,
        "_file_date",
        "line_number",
        F.when(F.col("_verdict").isNotNull(), F.col("raw_line")).alias("raw_line"),
        "trade_id",
        "book",
        "instrument_id",
        "side",
        "currency",
        "_business_date",
        "_trade_date",
        "_desk",
        "_quantity",
        "_price",
        "_verdict",
    )
    return ValidatedTrades(checked, region, tuple(keys))

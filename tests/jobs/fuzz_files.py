"""Seeded generator of damaged trade files, each with the outcome the ingest must reach.

A generated file knows, for every physical data line, whether the line must be accepted
(and with which trade id, quantity and price) or quarantined (and under which rules), or,
for a file-level problem, which error it must fail with — and its manifest, valid or not.
The damage is drawn from a list of kinds (docs/faults.md, 'Fuzzed trade files') and from
the grammar of each field's value space (:mod:`tests.jobs.fuzz_grammar`), with a
``random.Random`` seeded per file, so a run is reproducible and a failing file can be
regenerated from its number alone.
"""

from __future__ import annotations

import csv
import hashlib
import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from databricks_jobs.landing import TRADE_COLUMNS, TRADE_FILE_HEADER
from tests.jobs import fuzz_grammar as grammar

ANY = frozenset({"*"})  # quarantined under whichever rule breaks first


@dataclass
class Line:
    text: str
    rules: frozenset[str] | None  # None: accepted
    trade_id: str | None = None
    quantity: float | None = None
    price: float | None = None
    side: str | None = None
    utf8_only: bool = False  # holds what only UTF-8 can carry (or malformed UTF-8 bytes)


@dataclass
class FuzzFile:
    number: int
    data: bytes
    lines: list[Line]  # the physical data lines, in order (line 2 onwards)
    file_error: str | None = None  # a regex the file-level error must match
    encoding: str = "utf-8"
    kinds: list[str] = field(default_factory=list)  # what was done to it, for messages
    manifest_change: dict | None = None  # the manifest as written (None: not an object)
    manifest_error: str | None = None  # a regex the manifest's refusal must match

    @property
    def rows(self) -> int:
        return len(self.lines)


@dataclass(frozen=True)
class Reference:
    region_books: list[str]
    other_books: list[str]
    instruments: dict[str, str]  # id -> currency


def read_reference(landing: Path, region: str) -> Reference:
    with (landing / "reference" / "books.csv").open() as fh:
        books = list(csv.DictReader(fh))
    with (landing / "reference" / "instruments.csv").open() as fh:
        instruments = {r["instrument_id"]: r["currency"] for r in csv.DictReader(fh)}
    return Reference(
        region_books=sorted(b["book"] for b in books if b["region"] == region),
        other_books=sorted(b["book"] for b in books if b["region"] != region),
        instruments=instruments,
    )


class Generator:
    def __init__(self, ref: Reference, business_date: date, seed: int) -> None:
        self.ref = ref
        self.day = business_date
        self.seed = seed
        self.instrument_ids = sorted(ref.instruments)

    # ------------------------------------------------------------------ one valid trade
    def trade(self, rng: random.Random, trade_id: str) -> dict[str, str]:
        instrument = rng.choice(self.instrument_ids)
        quantity = rng.choice([1, 7, 100, 2500, 99_999, 1_000_000])
        return {
            "trade_id": trade_id,
            "business_date": self.day.isoformat(),
            "trade_date": (self.day - timedelta(days=rng.randint(0, 400))).isoformat(),
            "book": rng.choice(self.ref.region_books),
            "instrument_id": instrument,
            "side": rng.choice(["BUY", "SELL"]),
            "quantity": str(quantity),
            "price": f"{rng.uniform(0.01, 5000):.4f}",
            "currency": self.ref.instruments[instrument],
        }

    @staticmethod
    def join(fields: dict[str, str]) -> str:
        return ",".join(fields[c] for c in TRADE_COLUMNS)

    def accepted(self, fields: dict[str, str], text: str | None = None) -> Line:
        return Line(
            text if text is not None else self.join(fields),
            None,
            trade_id=fields["trade_id"].strip(" "),
            quantity=float(fields["quantity"]),
            price=float(fields["price"]),
            side=fields["side"].strip(" "),
        )

    # ------------------------------------------------------------------ a line: valid or damaged
    def valid_variant(self, rng: random.Random, t: dict[str, str]) -> tuple[Line, str]:
        kind = rng.choice(
            ["plain", "plain", "plain", "quoted", "spaces", "number_forms", "tiny", "boundary",
             "unicode_id", "doubled_quote", "grammar", "grammar", "grammar"]
        )  # fmt: skip
        if kind == "grammar":
            return self.grammar_valid(rng, t)
        if kind == "quoted":
            cols = rng.sample(list(TRADE_COLUMNS), rng.randint(1, 4))
            text = ",".join(f'"{t[c]}"' if c in cols else t[c] for c in TRADE_COLUMNS)
            return self.accepted(t, text), kind
        if kind == "spaces":
            text = ",".join(f"  {t[c]} " for c in TRADE_COLUMNS)
            return self.accepted(t, text), kind
        if kind == "number_forms":
            q = float(t["quantity"])
            t["quantity"] = rng.choice([f"{q:.1f}", f"{q:e}", f"+{int(q)}", f"{int(q)}."])
        elif kind == "tiny":
            t["quantity"], t["price"] = "1e-300", rng.choice(["5e-324", "0.000001"])
        elif kind == "boundary":
            t["quantity"], t["price"] = rng.choice(["1e10", "9999999999"]), "1e9"
        elif kind == "unicode_id":
            t["trade_id"] = t["trade_id"] + rng.choice(["Ü", "é", "ß", "Æ"])  # all in latin-1
        elif kind == "doubled_quote":
            line = self.accepted(t, None)
            fields = [f'"{t[c]}-""q"""' if c == "trade_id" else t[c] for c in TRADE_COLUMNS]
            line.text, line.trade_id = ",".join(fields), t["trade_id"] + '-"q"'
            return line, kind
        return self.accepted(t), kind

    def damaged(
        self, rng: random.Random, t: dict[str, str], earlier: list[Line]
    ) -> tuple[list[Line], str]:
        cols = list(TRADE_COLUMNS)
        kind = rng.choice(DAMAGE)
        one = frozenset
        if kind.startswith("grammar_"):
            return self.grammar_damage(rng, t, kind)
        if kind == "empty_field":
            t[rng.choice(cols)] = rng.choice(["", "   "])
            return [Line(self.join(t), one({"missing_field"}))], kind
        if kind == "blank_line":
            return [Line(rng.choice(["", " ", "    "]), one({"empty_line"}))], kind
        if kind == "extra_field":
            extra = rng.choice([",x", ",", ",,", ",1.5"])
            return [Line(self.join(t) + extra, one({"malformed_row"}))], kind
        if kind == "missing_last_field":
            return [Line(self.join(t).rsplit(",", 1)[0], one({"missing_field"}))], kind
        if kind == "dropped_middle_column":
            drop = rng.randrange(1, len(cols) - 1)
            return [Line(",".join(t[c] for i, c in enumerate(cols) if i != drop), ANY)], kind
        if kind == "duplicated_column":
            dup = rng.randrange(len(cols))
            values = [t[c] for c in cols]
            values.insert(dup, values[dup])
            return [Line(",".join(values), ANY)], kind
        if kind == "semicolons":
            return [Line(";".join(t[c] for c in cols), one({"missing_field"}))], kind
        if kind == "tabs":
            return [Line("\t".join(t[c] for c in cols), one({"control_character"}))], kind
        if kind == "nul_byte":
            c = rng.choice(cols)
            t[c] = t[c][:1] + "\x00" + t[c][1:]
            return [Line(self.join(t), one({"control_character"}))], kind
        if kind == "bad_quantity_text":
            t["quantity"] = rng.choice(
                ["abc", "5d", "5F", "0x1p3", "0x10", "NaN", "nan", "inf", "-Infinity", "1e400",
                 '"1,000"', "１２", "1_000", "5 5", "--5", "1e", "."]
            )  # fmt: skip
            return [Line(self.join(t), one({"invalid_number"}))], kind
        if kind == "non_positive_quantity":
            t["quantity"] = rng.choice(["0", "-5", "-0", "0.0", "1e-400", "-1e300"])
            return [Line(self.join(t), one({"non_positive_quantity"}))], kind
        if kind == "huge_quantity":
            t["quantity"] = rng.choice(["1e11", "10000000001", "1e300", "1.7976931348623157e308"])
            return [Line(self.join(t), one({"quantity_out_of_range"}))], kind
        if kind == "bad_price":
            value = rng.choice(["0", "-1", "1e10", "1000000001", "NaN", "Infinity", "1.2.3"])
            t["price"] = value
            numeric = value not in ("NaN", "Infinity", "1.2.3")
            rule = "price_out_of_range" if numeric else "invalid_number"
            return [Line(self.join(t), one({rule}))], kind
        if kind == "business_date_mismatch":
            t["business_date"] = (self.day - timedelta(days=rng.choice([1, 3, 365]))).isoformat()
            return [Line(self.join(t), one({"business_date_mismatch"}))], kind
        if kind == "bad_date_text":
            c = rng.choice(["business_date", "trade_date"])
            t[c] = rng.choice(
                ["20261124", "2026-11-24T00:00", "24/11/2026", "2026-13-01", "2026-02-30",
                 "2026-1-24", "-2026-11-24", "+2026-11-24", "0000-01-01", "0001-01-01", "yesterday"]
            )  # fmt: skip
            if c == "business_date" and t[c] in ("0000-01-01", "0001-01-01"):
                return [Line(self.join(t), one({"business_date_mismatch"}))], kind
            return [Line(self.join(t), one({"invalid_date"}))], kind
        if kind == "trade_date_after":
            t["trade_date"] = (self.day + timedelta(days=rng.choice([1, 30]))).isoformat()
            return [Line(self.join(t), one({"trade_date_after_business_date"}))], kind
        if kind == "bad_side":
            t["side"] = rng.choice(["buy", "Sell", "HOLD", "B", "BUY "[:3] + "X"])
            return [Line(self.join(t), one({"invalid_side"}))], kind
        if kind == "unknown_book":
            t["book"] = rng.choice(["NO_SUCH_BOOK", t["book"].lower(), t["book"] + "_X"])
            return [Line(self.join(t), one({"unknown_book"}))], kind
        if kind == "other_region_book":
            t["book"] = rng.choice(self.ref.other_books)
            return [Line(self.join(t), one({"book_not_in_region"}))], kind
        if kind == "unknown_instrument":
            t["instrument_id"] = rng.choice(["EQ_NOPE", t["instrument_id"] + "X", "eq_sap"])
            return [Line(self.join(t), one({"unknown_instrument"}))], kind
        if kind == "currency_mismatch":
            t["currency"] = next(c for c in ("USD", "EUR", "JPY", "GBP") if c != t["currency"])
            return [Line(self.join(t), one({"currency_mismatch"}))], kind
        if kind == "duplicate_trade_id" and earlier:
            source = rng.choice(earlier)
            t["trade_id"] = '"' + source.trade_id.replace('"', '""') + '"'
            return [Line(self.join(t), one({"duplicate_trade_id"}))], kind
        if kind == "exact_duplicate_row" and earlier:
            source = rng.choice(earlier)
            return [Line(source.text, one({"duplicate_trade_id"}))], kind
        if kind == "embedded_newline":
            c = rng.choice(cols[1:-1])
            value = t[c]
            t[c] = f'"{value[:2]}\n{value[2:]}"'
            first, second = self.join(t).split("\n")
            return [Line(first, one({"bad_quoting"})), Line(second, one({"bad_quoting"}))], kind
        if kind == "unbalanced_quote":
            c = rng.choice(cols[1:])
            t[c] = rng.choice(['"' + t[c], t[c][:1] + '"' + t[c][1:], t[c] + '"'])
            return [Line(self.join(t), one({"bad_quoting"}))], kind
        if kind == "quoted_comma":
            c = rng.choice(["book", "instrument_id", "side", "currency"])
            t[c] = f'"{t[c]},X"'
            return [Line(self.join(t), ANY)], kind
        # duplicate kinds with nothing earlier to copy: a plain valid line
        return [self.accepted(t)], "plain"

    # ------------------------------------------------------------------ the grammar
    FIELD_GRAMMAR = ("trade_id", "business_date", "trade_date", "book", "instrument_id",
                     "side", "quantity", "price", "currency")  # fmt: skip

    def field_value(self, rng: random.Random, t: dict[str, str], column: str) -> grammar.Value:
        if column == "trade_id":
            return grammar.trade_id(rng, t["trade_id"])
        if column in ("business_date", "trade_date"):
            return grammar.iso_date(rng, t[column])
        if column in ("quantity", "price"):
            return grammar.number(rng, float(t[column]))
        rule = {"book": "unknown_book", "instrument_id": "unknown_instrument",
                "side": "invalid_side", "currency": "currency_mismatch"}[column]  # fmt: skip
        return grammar.code(rng, t[column], rule)

    def grammar_valid(self, rng: random.Random, t: dict[str, str]) -> tuple[Line, str]:
        """A valid line with one field drawn from the valid part of its value space."""
        column = rng.choice(self.FIELD_GRAMMAR)
        for _ in range(20):
            value = self.field_value(rng, t, column)
            if value.rule is None:
                break
        else:
            return self.accepted(t), "plain"
        t[column] = value.text
        line = self.accepted(t)
        line.utf8_only = any(ord(ch) > 0xFF for ch in line.text)
        return line, f"grammar:{value.kind}"

    def grammar_damage(
        self, rng: random.Random, t: dict[str, str], kind: str
    ) -> tuple[list[Line], str]:
        if kind == "grammar_field":
            column = rng.choice(self.FIELD_GRAMMAR[1:])  # any trade id is valid
            for _ in range(20):
                value = self.field_value(rng, t, column)
                if value.rule is not None:
                    break
            else:
                return [self.accepted(t)], "plain"
            t[column] = value.text
            return [Line(self.join(t), frozenset({value.rule}), utf8_only=True)], (
                f"grammar:{column}:{value.kind}"
            )
        if kind == "grammar_control":
            value = grammar.control(rng, self.join(t))
        elif kind == "grammar_utf8":
            value = grammar.malformed_utf8(rng, self.join(t))
        else:  # grammar_huge: rare, they cost a megabyte each
            if rng.random() > 0.03:
                return [self.accepted(t)], "plain"
            text, rule, huge_kind = grammar.huge(rng, self.join(t))
            return [Line(text, frozenset({rule}))], f"grammar:{huge_kind}"
        return [Line(value.text, frozenset({value.rule}), utf8_only=True)], f"grammar:{value.kind}"

    # ------------------------------------------------------------------ a whole file
    def file(self, number: int) -> FuzzFile:
        rng = random.Random(self.seed * 1_000_003 + number)
        kinds: list[str] = []
        n_records = rng.choice([0, 1, 2, 5, 8, 12, 20, 30])
        lines: list[Line] = []
        for i in range(n_records):
            t = self.trade(rng, f"F{number:04d}-{i:03d}")
            if rng.random() < 0.55:
                line, kind = self.valid_variant(rng, t)
                new = [line]
            else:
                new, kind = self.damaged(rng, t, [x for x in lines if x.rules is None])
            kinds.append(kind)
            lines.extend(new)

        header = TRADE_FILE_HEADER
        file_error = None
        roll = rng.random()
        if roll < 0.10:
            header, file_error = self.bad_header(rng)
            kinds.append("bad_header")
        newline = rng.choice(["\n"] * 6 + ["\r\n"] * 3 + ["\r"] + ["mixed"] * 2)
        kinds.append({"\n": "lf", "\r\n": "crlf", "\r": "cr", "mixed": "mixed_eol"}[newline])
        trailing = rng.random() < 0.85
        if not trailing:
            kinds.append("no_final_newline")
        if lines and "," in lines[-1].text and rng.random() < 0.08:
            lines[-1] = truncate(rng, lines[-1])
            trailing = False
            kinds.append("truncated_last_line")
        texts = [header, *(line.text for line in lines)]
        if newline == "mixed":
            body = mixed_line_ends(rng, texts, trailing)
        else:
            body = newline.join(texts) + (newline if trailing else "")
        if lines and not trailing and lines[-1].text == "":
            # "...\n" then nothing: the reader sees no final empty line
            lines.pop()

        encoding = "utf-8"
        roll = rng.random()
        bom = b""
        utf8_only = any(line.utf8_only for line in lines)
        if roll < 0.08:
            bom = b"\xef\xbb\xbf"
            kinds.append("utf8_bom")
        elif roll < 0.16 and not utf8_only:
            encoding = "latin-1"
        elif roll < 0.20 and file_error is None and not utf8_only:
            encoding = rng.choice(["utf-16", "utf-16-le", "utf-16-be"])
            file_error = "UTF-16|NUL bytes"
        kinds.append(encoding)
        if encoding == "utf-8":
            data = bom + grammar.encode_utf8(body)
            for line in lines:
                line.text = grammar.as_read(line.text)
        else:
            data = bom + body.encode(encoding, errors="replace")
        if encoding == "latin-1":
            for line in lines:
                # latin-1 bytes 0x80-0xff are not UTF-8 (read as U+FFFD); characters beyond
                # latin-1 were written as "?" by the encoder
                if any(127 < ord(ch) < 256 for ch in line.text):
                    line.rules = frozenset({"invalid_encoding"})
                line.text = "".join(
                    ch if ord(ch) < 128 else "\ufffd" if ord(ch) < 256 else "?" for ch in line.text
                )
        if rng.random() < 0.02:
            data, lines, file_error = rng.choice(EMPTY_FILES)
            lines = list(lines)
            kinds.append("empty_or_blank_file")
        manifest = {
            "file": f"trades_{number:05d}.csv",
            "rows": len(lines),
            "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
        manifest_kind, manifest_change, manifest_error = grammar.manifest_variant(rng, manifest)
        kinds.append(f"manifest:{manifest_kind}")
        return FuzzFile(
            number, data, lines, file_error, encoding, kinds, manifest_change, manifest_error
        )

    def bad_header(self, rng: random.Random) -> tuple[str, str]:
        cols = list(TRADE_COLUMNS)
        kind = rng.choice(
            ["missing", "extra", "duplicated", "renamed", "reordered", "semicolons", "spaces",
             "quoted", "upper", "no_header", "trailing_comma"]
        )  # fmt: skip
        if kind == "missing":
            cols.pop(rng.randrange(len(cols)))
        elif kind == "extra":
            cols.insert(rng.randrange(len(cols) + 1), "comment")
        elif kind == "duplicated":
            i = rng.randrange(len(cols))
            cols.insert(i, cols[i])
        elif kind == "renamed":
            cols[rng.randrange(len(cols))] = "instrument"
        elif kind == "reordered":
            i = rng.randrange(len(cols) - 1)
            cols[i], cols[i + 1] = cols[i + 1], cols[i]
        elif kind == "semicolons":
            return ";".join(cols), "header .* does not match the expected columns"
        elif kind == "spaces":
            return ", ".join(cols), "header .* does not match the expected columns"
        elif kind == "quoted":
            return ",".join(f'"{c}"' for c in cols), "header .* does not match"
        elif kind == "upper":
            return ",".join(cols).upper(), "header .* does not match"
        elif kind == "no_header":
            return self.join(self.trade(rng, "NOHEADER-1")), "header .* does not match"
        elif kind == "trailing_comma":
            return ",".join(cols) + ",", "header .* does not match"
        return ",".join(cols), "header .* does not match the expected columns"


def mixed_line_ends(rng: random.Random, texts: list[str], trailing: bool) -> str:
    """``texts`` joined by LF, CRLF or CR chosen line by line. A CR followed by an empty
    line's LF would read as one CRLF (one line less), so that LF is never drawn."""
    out, previous = [], ""
    for i, text in enumerate(texts):
        last = i == len(texts) - 1
        ends = ["\n", "\r\n", "\r"]
        if previous == "\r" and text == "":
            ends = ["\r", "\r\n"]
        end = rng.choice(ends) if (trailing or not last) else ""
        out.append(text + end)
        previous = end
    return "".join(out)


def truncate(rng: random.Random, line: Line) -> Line:
    """Cut the line before its last comma: at least the currency is gone."""
    head = line.text.rsplit(",", 1)[0]
    cut = rng.randint(max(1, len(head) // 2), len(head))
    return Line(head[:cut], ANY)


EMPTY_FILES = [
    (b"", [], "the file is empty"),
    (b"\n", [], "header '' does not match"),
    ((TRADE_FILE_HEADER + "\n").encode(), [], None),
    (TRADE_FILE_HEADER.encode(), [], None),
    (b"\xef\xbb\xbf" + (TRADE_FILE_HEADER + "\r\n").encode(), [], None),
    (b"\xff\xfe" + TRADE_FILE_HEADER.encode("utf-16-le"), [], "UTF-16-LE"),
    (b"\x00\x00\xfe\xff" + TRADE_FILE_HEADER.encode("utf-32-be"), [], "UTF-32-BE"),
    (b"\x80\x81" + TRADE_FILE_HEADER.encode(), [], "not valid UTF-8"),
    (b"x" * 5000, [], "no line break"),
]

DAMAGE = [
    "empty_field",
    "blank_line",
    "extra_field",
    "missing_last_field",
    "dropped_middle_column",
    "duplicated_column",
    "semicolons",
    "tabs",
    "nul_byte",
    "bad_quantity_text",
    "non_positive_quantity",
    "huge_quantity",
    "bad_price",
    "business_date_mismatch",
    "bad_date_text",
    "trade_date_after",
    "bad_side",
    "unknown_book",
    "other_region_book",
    "unknown_instrument",
    "currency_mismatch",
    "duplicate_trade_id",
    "exact_duplicate_row",
    "embedded_newline",
    "unbalanced_quote",
    "quoted_comma",
    # the grammar (tests/jobs/fuzz_grammar.py), drawn more often than any one listed kind
    *["grammar_field"] * 6,
    *["grammar_control"] * 2,
    *["grammar_utf8"] * 2,
    "grammar_huge",
]

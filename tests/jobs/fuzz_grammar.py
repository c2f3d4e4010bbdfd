"""The value space of each trade-file field, as a grammar: every drawn value comes with
the verdict the ingest must give it (accepted as a given value, or the rule it breaks).

Classes covered (docs/faults.md, 'Fuzzed trade files'): Unicode digits and look-alike
letters, every whitespace and control class (C0, DEL, C1, Unicode spaces, invisible format
characters, line/paragraph separators), number spellings (valid and not), dates, sides,
reference codes, free-text trade ids (any script, astral characters), malformed UTF-8 of
every kind, pathological sizes, and manifest field types. Draws use a ``random.Random``
seeded by the caller, so a file is reproducible from its number.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

#: Digits that are not ASCII (Arabic-Indic, Persian, Devanagari, Bengali, full-width,
#: mathematical bold, circled, superscript): never a number in a trade file.
UNICODE_DIGITS = ["\u0663", "\u06f3", "\u0969", "\u09e9", "\uff13", "\U0001d7d1", "\u2462", "³"]
#: Letters that look like ASCII ones (Cyrillic, Greek, full-width).
LOOKALIKES = {"A": "\u0410", "B": "\u0412", "E": "\u0415", "O": "\u041e", "P": "\u0420",
              "C": "\u0421", "M": "\u041c", "T": "\u0422", "U": "\u03a5", "S": "\u0405",
              "0": "O", "1": "l"}  # fmt: skip
#: Whitespace Spark's trim keeps (only ASCII space is trimmed).
UNICODE_SPACES = ["\u00a0", "\u1680", "\u2002", "\u2003", "\u2009", "\u200a", "\u202f",
                  "\u205f", "\u3000"]  # fmt: skip
#: Invisible format characters: data (in a trade id) but never part of a code or number.
INVISIBLE = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad"]
#: Every control the contract refuses (CR and LF end the line, so they are not in a field).
CONTROLS = [
    *(chr(c) for c in range(0x20) if c not in (0x0A, 0x0D)),
    "\x7f",
    *(chr(c) for c in range(0x80, 0xA0)),
    "\u2028",
    "\u2029",
]
#: Malformed UTF-8, each kind: lone continuation bytes, truncated 2/3/4-byte sequences,
#: overlong encodings, a UTF-16 surrogate, beyond U+10FFFF, 5-byte forms, bytes never in
#: UTF-8. Written where the text has the placeholder :data:`BAD_BYTES_MARK` + index.
MALFORMED_UTF8 = [b"\x80", b"\xbf", b"\xc3", b"\xe2\x82", b"\xf0\x9f\x98", b"\xc0\xaf",
                  b"\xe0\x80\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xf8\x88\x80\x80\x80",
                  b"\xfe", b"\xff"]  # fmt: skip
BAD_BYTES_MARK = 0xF0000  # plane-15 private use: U+F0000 + i stands for MALFORMED_UTF8[i]
FREE_TEXT = ["\u6771\u4eac", "\U0001f4c8", "\u05d0\u05d1", "\u0645\u0631\u062d\u0628\u0627",
             "e\u0301", "\u00df", "\u0130", "\u2126", "\U00020000", "\u200f"]  # fmt: skip


@dataclass(frozen=True)
class Value:
    """A drawn field value: its text, and the rule it breaks (None: valid)."""

    text: str
    rule: str | None
    kind: str


def _sprinkle(rng: random.Random, text: str, chars: list[str]) -> str:
    at = rng.randrange(len(text) + 1)
    return text[:at] + rng.choice(chars) + text[at:]


def _replace_one(rng: random.Random, text: str, mapping: dict[str, str]) -> str | None:
    spots = [i for i, ch in enumerate(text) if ch in mapping]
    if not spots:
        return None
    i = rng.choice(spots)
    return text[:i] + mapping[text[i]] + text[i + 1 :]


def number(rng: random.Random, value: float, invalid_rule: str = "invalid_number") -> Value:
    """A spelling of the positive number ``value``: valid (the parse gives ``value``'s
    spelling back through float()) or not a plain decimal number."""
    plain = repr(value) if value != int(value) else str(int(value))
    kind = rng.choice(["valid", "valid", "unicode_digit", "lookalike", "unicode_space",
                       "invisible", "literal"])  # fmt: skip
    if kind == "valid":
        form = rng.choice(["plain", "plus", "exp", "EXP", "spaces", "trailing_dot", "zeros"])
        text = {
            "plain": plain,
            "plus": "+" + plain,
            "exp": f"{value:e}",
            "EXP": f"{value:E}",
            "spaces": f"  {plain} ",
            "trailing_dot": plain + "." if "." not in plain else plain,
            "zeros": "00" + plain,
        }[form]
        return Value(text, None, f"number_{form}")
    if kind == "unicode_digit":
        digits = {d: rng.choice(UNICODE_DIGITS) for d in "0123456789"}
        text = _replace_one(rng, plain, digits) or plain + rng.choice(UNICODE_DIGITS)
    elif kind == "lookalike":
        text = _replace_one(rng, plain, {"0": "O", "1": "l"}) or "O" + plain
    elif kind == "unicode_space":
        text = _sprinkle(rng, plain, UNICODE_SPACES)
    elif kind == "invisible":
        text = _sprinkle(rng, plain, INVISIBLE)
    else:
        text = rng.choice(["1_000", "0x1A", "1e", "e5", "Infinity", "-inf", "NaN", "1.2.3",
                           "5d", "0x1p3", "1e999", "..5", "+-1", "\uff11\uff12"])  # fmt: skip
    return Value(text, invalid_rule, f"number_{kind}")


def iso_date(rng: random.Random, day: str) -> Value:
    kind = rng.choice(["valid", "spaces", "unicode_digit", "lookalike", "unicode_space",
                       "invisible"])  # fmt: skip
    if kind == "valid":
        return Value(day, None, "date_valid")
    if kind == "spaces":
        return Value(f" {day}  ", None, "date_spaces")
    if kind == "unicode_digit":
        text = _replace_one(rng, day, {d: rng.choice(UNICODE_DIGITS) for d in "0123456789"})
    elif kind == "lookalike":
        text = _replace_one(rng, day, {"0": "O", "1": "l"}) or day.replace("2", "Z", 1)
    elif kind == "unicode_space":
        text = _sprinkle(rng, day, UNICODE_SPACES)
    else:
        text = _sprinkle(rng, day, INVISIBLE)
    return Value(text or day + "\u200b", "invalid_date", f"date_{kind}")


def code(rng: random.Random, good: str, rule: str) -> Value:
    """A reference code (book, instrument, currency, side): the code itself (with ASCII
    spaces around, trimmed), or one that only looks like it."""
    kind = rng.choice(["valid", "spaces", "lookalike", "unicode_space", "invisible", "fullwidth",
                       "lower"])  # fmt: skip
    if kind == "valid":
        return Value(good, None, "code_valid")
    if kind == "spaces":
        return Value(f" {good} ", None, "code_spaces")
    if kind == "lookalike":
        text = _replace_one(rng, good, LOOKALIKES)
        if text is None:
            text = good + "\u0430"
    elif kind == "unicode_space":
        text = rng.choice([good + rng.choice(UNICODE_SPACES), rng.choice(UNICODE_SPACES) + good])
    elif kind == "invisible":
        text = _sprinkle(rng, good, INVISIBLE)
    elif kind == "fullwidth":
        text = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in good)
    else:
        text = good.lower() if good.lower() != good else good + "x"
    return Value(text, rule, f"code_{kind}")


def trade_id(rng: random.Random, base: str) -> Value:
    """A free-text trade id: any script, astral characters, Unicode spaces and invisible
    characters are data (kept as written, ASCII spaces trimmed)."""
    extra = rng.choice([*FREE_TEXT, *UNICODE_SPACES, *INVISIBLE, *LOOKALIKES.values()])
    return Value(rng.choice([base + extra, extra + base]), None, "free_text_id")


def control(rng: random.Random, line: str) -> Value:
    """``line`` with one control character anywhere."""
    return Value(_sprinkle(rng, line, CONTROLS), "control_character", "control")


def malformed_utf8(rng: random.Random, line: str) -> Value:
    """``line`` with a placeholder for malformed UTF-8 bytes (see :func:`encode_utf8`)."""
    mark = chr(BAD_BYTES_MARK + rng.randrange(len(MALFORMED_UTF8)))
    return Value(_sprinkle(rng, line, [mark]), "invalid_encoding", "malformed_utf8")


_MARKS = re.compile(f"[{chr(BAD_BYTES_MARK)}-{chr(BAD_BYTES_MARK + len(MALFORMED_UTF8) - 1)}]")


def encode_utf8(text: str) -> bytes:
    """UTF-8 of ``text`` with each placeholder replaced by its malformed bytes."""
    parts = _MARKS.split(text)
    marks = _MARKS.findall(text)
    out = bytearray(parts[0].encode("utf-8"))
    for mark, part in zip(marks, parts[1:], strict=True):
        out += MALFORMED_UTF8[ord(mark) - BAD_BYTES_MARK] + part.encode("utf-8")
    return bytes(out)


def as_read(text: str) -> str:
    """What the line reader gives for ``text``: each malformed sequence as U+FFFD."""
    return _MARKS.sub("\ufffd", text)


def huge(rng: random.Random, line: str, size: int = 1 << 20) -> tuple[str, str, str]:
    """A pathological line: (text, rule, kind) — a megabyte field, a megabyte line of one
    field, or a line of only separators."""
    kind = rng.choice(["megabyte_field", "megabyte_line", "only_separators"])
    if kind == "megabyte_field":
        fields = line.split(",")
        fields[4] = "X" * size  # instrument_id
        return ",".join(fields), "unknown_instrument", kind
    if kind == "megabyte_line":
        return "Y" * size, "missing_field", kind
    return "," * rng.choice([9, 100, 25_000]), "malformed_row", kind


#: Manifest variants: (kind, change to the manifest or None to drop "file", error regex).
def manifest_variant(rng: random.Random, manifest: dict) -> tuple[str, dict | None, str | None]:
    rows = manifest["rows"]
    kind = rng.choice(["valid"] * 85 + ["rows_float", "rows_whole_float", "rows_string",
                       "rows_bool", "rows_infinity", "rows_nan", "rows_negative", "rows_null",
                       "bytes_float", "sha_upper", "sha_short", "file_other", "file_missing",
                       "extra_key", "not_object"])  # fmt: skip
    changed = dict(manifest)
    error: str | None = "not a valid manifest"
    if kind == "valid":
        return kind, changed, None
    if kind == "extra_key":
        changed["producer"] = "fuzz"
        return kind, changed, None
    if kind == "rows_float":
        changed["rows"] = rows + 0.5
    elif kind == "rows_whole_float":
        changed["rows"] = float(rows)
    elif kind == "rows_string":
        changed["rows"] = str(rows)
    elif kind == "rows_bool":
        changed["rows"] = True
    elif kind == "rows_infinity":
        changed["rows"] = float("inf")
        error = "Infinity is not a JSON number"
    elif kind == "rows_nan":
        changed["rows"] = float("nan")
        error = "NaN is not a JSON number"
    elif kind == "rows_negative":
        changed["rows"] = -1 - rows
    elif kind == "rows_null":
        changed["rows"] = None
    elif kind == "bytes_float":
        changed["bytes"] = manifest["bytes"] + 0.25
    elif kind == "sha_upper":
        changed["sha256"] = manifest["sha256"].upper()
    elif kind == "sha_short":
        changed["sha256"] = manifest["sha256"][:63]
    elif kind == "file_other":
        changed["file"] = "trades_19991231.csv"
        error = "the manifest vouches for 'trades_19991231.csv'"
    elif kind == "file_missing":
        del changed["file"]
    else:
        return kind, None, "not a JSON object"
    return kind, changed, error

"""The daily HTML risk report: figures equal Postgres, bi-only as risk_reader, and it renders
in headless Chromium with no console error, no network request and a non-blank screenshot.

Every ``data-testid``/``data-value`` on the page is resolved to the value recomputed in
Python from the rows inserted into ``risk`` (tests/platform/bi_expected.py): a figure
the test cannot account for fails the test, so nothing on the page goes unchecked.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import struct
import subprocess
import time
import zlib
from datetime import date, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from databricks_jobs.postgres import apply_migrations
from eodrisk.report import main, write_report
from eodrisk.report.queries import QUERIES, ReportDataError
from eodrisk.report.sample import build_history, insert_history
from tests.platform.bi_expected import Expected

END = date(2026, 11, 24)
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
]


@pytest.fixture(scope="module")
def history():
    return build_history(END)


@pytest.fixture(scope="module")
def expected(history) -> Expected:
    return Expected(history)


@pytest.fixture
def loaded_dsn(pg_dsn, history) -> str:
    apply_migrations(pg_dsn)
    insert_history(pg_dsn, history)
    return pg_dsn


# ---- the page's figures ---------------------------------------------------------------------


class _Figures(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.figures: dict[str, str] = {}
        self.duplicates: list[str] = []
        self.external: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        a = dict(attrs)
        for name in ("src", "href", "xlink:href", "action"):
            if a.get(name) and not str(a[name]).startswith(("#", "data:")):
                self.external.append(f"<{tag} {name}={a[name]}>")
        if "data-testid" in a and "data-value" in a:
            testid = a["data-testid"] or ""
            if testid in self.figures:
                self.duplicates.append(testid)
            self.figures[testid] = a["data-value"] or ""


def page_figures(html: str) -> _Figures:
    parser = _Figures()
    parser.feed(html)
    return parser


def _runs(history, d: date) -> dict[tuple[str, str], dict[str, Any]]:
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for r in history.rows("risk.var_summary"):
        if r["business_date"] == d:
            run = out.setdefault(
                (r["region"], r["run_id"]), {"run_id": r["run_id"], "nodes": 0, "at": []}
            )
            run["nodes"] += 1
            run["at"].append(r["loaded_at"])
    for run in out.values():
        run["last_loaded_at"] = max(run.pop("at"))
    return out


def expected_figure(testid: str, e: Expected, d: date, role: str = "risk_reader") -> Any:
    """The value a figure must carry, from the inserted rows; KeyError when unknown."""
    kind, *rest = testid.split(".")
    if kind == "meta":
        return {"business_date": d, "role": role}[rest[0]]
    if kind == "firm":
        return e.firm_daily()[d][rest[0]]
    if kind == "node":
        level, node, column = rest
        return e.var_by_key[(d, level, node)][column]
    if kind == "trend":
        day, column = rest
        return e.var_by_key[(date.fromisoformat(day), "firm", "FIRM")][column]
    if kind == "contrib":
        level, node, book, column = rest
        return e.top_contributors()[(d, level, node, book)][column]
    if kind == "chart" and rest[0] == "contributions":
        return e.top_contributors()[(d, "firm", "FIRM", rest[1])]["component_var_99_1d_usd"]
    if kind == "chart" and rest[0] == "waterfall":
        firm = e.firm_daily()[d]
        named = {
            "sum": firm["sum_region_var_99_1d_usd"],
            "benefit": firm["diversification_benefit_usd"],
            "firm": firm["firm_var_99_1d_usd"],
        }
        if rest[1] in named:
            return named[rest[1]]
        return e.var_by_key[(d, "region", rest[1])]["var_99_1d_usd"]
    if kind == "backtest":
        level, node, column = rest
        return e.backtest()[(d, level, node)][column]
    if kind == "dq":
        region, column = rest
        return e.data_quality()[(d, region)][column]
    if kind == "dqrule":
        region, rule, field, column = rest
        return e.data_quality_by_rule()[(d, region, rule, field)][column]
    if kind == "run":
        region, run_id, column = rest
        return _runs(e.history, d)[(region, run_id)][column]
    raise KeyError(testid)


def matches(page_value: str, want: Any) -> bool:
    if want is None:
        return page_value == ""
    if isinstance(want, bool):
        return page_value == ("true" if want else "false")
    if isinstance(want, float):
        return abs(float(page_value) - want) <= 1e-12 * max(abs(want), 1.0)
    if isinstance(want, int):
        return int(page_value) == want
    if isinstance(want, datetime):
        return datetime.fromisoformat(page_value) == want
    if isinstance(want, date):
        return page_value == want.isoformat()
    return page_value == str(want)


def assert_figures_equal_postgres(html: str, e: Expected, d: date) -> dict[str, str]:
    parsed = page_figures(html)
    figures = parsed.figures
    assert not parsed.duplicates, f"figures with the same data-testid: {parsed.duplicates[:5]}"
    unknown, wrong = [], []
    for testid, value in figures.items():
        if testid.startswith("pipeline."):
            continue  # checked where a run is inserted
        try:
            want = expected_figure(testid, e, d)
        except KeyError:
            unknown.append(testid)
            continue
        if not matches(value, want):
            wrong.append((testid, value, want))
    assert not unknown, f"figures the test cannot account for: {unknown[:10]}"
    assert not wrong, f"page figures != Postgres: {wrong[:10]}"

    # And the page shows everything it must.
    nodes = [k for k in e.var_by_key if k[0] == d and k[1] in ("region", "desk")]
    required = {
        "firm.firm_var_99_1d_usd",
        "firm.firm_var_99_1d_change_usd",
        "firm.firm_var_99_1d_change_pct",
        "firm.firm_es_975_1d_usd",
        "firm.firm_es_975_1d_change_usd",
        "firm.firm_var_99_10d_usd",
        "firm.diversification_benefit_usd",
        "firm.sum_region_var_99_1d_usd",
        "firm.backtest_zone",
        "firm.backtest_exceptions",
        *(f"node.{lvl}.{n}.var_99_1d_usd" for _, lvl, n in nodes),
        *(f"node.{lvl}.{n}.var_99_1d_change_usd" for _, lvl, n in nodes),
        *(f"node.{lvl}.{n}.es_975_1d_usd" for _, lvl, n in nodes),
        *(f"backtest.region.{r}.zone" for r in ("AMER", "APAC", "EMEA")),
        *(f"dq.{r}.quarantine_rate" for r in ("AMER", "APAC", "EMEA")),
        *(
            f"dqrule.{region}.{rule}.{field}.rows_quarantined"
            for (day, region, rule, field) in e.data_quality_by_rule()
            if day == d
        ),
        *(f"chart.waterfall.{r}" for r in ("AMER", "APAC", "EMEA", "sum", "benefit", "firm")),
    }
    trend_days = sorted(k[0] for k in e.var_by_key if k[1:] == ("firm", "FIRM") and k[0] <= d)
    trend_days = trend_days[-250:]
    required |= {f"trend.{t.isoformat()}.var_99_1d_usd" for t in trend_days}
    required |= {
        f"trend.{t.isoformat()}.is_exception"
        for t in trend_days
        if e.var_by_key[(t, "firm", "FIRM")]["is_exception"]
    }
    top = sorted(
        (v for k, v in e.top_contributors().items() if k[:3] == (d, "firm", "FIRM")),
        key=lambda r: r["contributor_rank"],
    )[:10]
    required |= {f"chart.contributions.{r['book']}" for r in top}
    required |= {f"contrib.firm.FIRM.{r['book']}.share_of_node_var" for r in top}
    missing = sorted(required - set(figures))
    assert not missing, f"figures missing from the page: {missing[:10]}"
    shown_exceptions = {k for k in figures if k.startswith("trend.") and k.endswith("exception")}
    assert len(shown_exceptions) == 6
    return figures


def assert_self_contained(html: str) -> None:
    parsed = page_figures(html)
    assert not parsed.external, f"external references: {parsed.external}"
    assert not ({"script", "link", "img", "iframe", "object"} & parsed.tags)
    lowered = html.lower()
    for needle in ("@import", "url(", "//cdn", "<script"):
        assert needle not in lowered, needle


def test_report_figures_equal_postgres_and_page_is_self_contained(loaded_dsn, expected, tmp_path):
    out = write_report(loaded_dsn, END, tmp_path / "report.html")
    html = out.read_text(encoding="utf-8")
    figures = assert_figures_equal_postgres(html, expected, END)
    assert figures["firm.backtest_zone"] == "yellow"
    assert figures["meta.role"] == "risk_reader"
    assert 'class="badge yellow"' in html
    assert_self_contained(html)


def test_report_for_an_earlier_date(loaded_dsn, expected, tmp_path):
    d = expected.history.dates[-60]
    html = write_report(loaded_dsn, d, tmp_path / "r.html").read_text(encoding="utf-8")
    assert_figures_equal_postgres_partial(html, expected, d)


def assert_figures_equal_postgres_partial(html: str, e: Expected, d: date) -> None:
    figures = page_figures(html).figures
    wrong = [
        (k, v, expected_figure(k, e, d))
        for k, v in figures.items()
        if not k.startswith("pipeline.") and not matches(v, expected_figure(k, e, d))
    ]
    assert not wrong, wrong[:10]
    assert figures["meta.business_date"] == d.isoformat()


def test_report_flags_a_region_carried_forward_over_its_holiday(loaded_dsn, expected, tmp_path):
    """Mon 23 November 2026 is a Tokyo holiday (Labour Thanksgiving): APAC and its desks
    show the positions of Friday 20th, equal to Postgres; the other regions are not flagged."""
    d = date(2026, 11, 23)
    html = write_report(loaded_dsn, d, tmp_path / "r.html").read_text(encoding="utf-8")
    assert_figures_equal_postgres_partial(html, expected, d)
    figures = page_figures(html).figures
    flagged = {k: v for k, v in figures.items() if k.endswith(".positions_date")}
    assert flagged["node.region.APAC.positions_date"] == "2026-11-20"
    assert {k.split(".")[2] for k in flagged if k.startswith("node.region.")} == {"APAC"}
    assert all(v == "2026-11-20" for v in flagged.values())
    assert len(flagged) > 1  # the desks too
    assert 'data-testid="note.carried_forward"' in html and "APAC (positions of 2026-11-20)" in html
    plain = write_report(loaded_dsn, END, tmp_path / "p.html").read_text(encoding="utf-8")
    assert "positions_date" not in plain and "note.carried_forward" not in plain


def test_report_queries_read_bi_only_as_risk_reader(loaded_dsn, tmp_path):
    for name, sql in QUERIES.items():
        assert " risk." not in sql and "from bi." in sql, name
    # As risk_reader nothing in risk is readable, so a successful report read bi only.
    html = write_report(loaded_dsn, END, tmp_path / "r.html").read_text(encoding="utf-8")
    assert page_figures(html).figures["meta.role"] == "risk_reader"


def test_report_for_a_date_not_loaded_says_what_to_do(loaded_dsn, history, tmp_path):
    loaded = rf"loaded dates run from {min(history.dates)} to {max(history.dates)}"
    with pytest.raises(ReportDataError, match=rf"no firm figures for 2030-01-02.*{loaded}"):
        write_report(loaded_dsn, date(2030, 1, 2), tmp_path / "r.html")
    assert not (tmp_path / "r.html").exists()


def test_report_without_migrations_says_what_to_do(pg_dsn, tmp_path):
    with pytest.raises(ReportDataError, match="apply the sql/ migrations"):
        write_report(pg_dsn, END, tmp_path / "r.html")


def test_main_writes_the_file_and_prints_its_path(loaded_dsn, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EODRISK_PG_DSN", loaded_dsn)
    out = tmp_path / "nested" / "report.html"
    assert main(["--date", END.isoformat(), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out.resolve())
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    # Without --date: the latest loaded date, under the data dir.
    assert main(["--data-dir", str(tmp_path / "d")]) == 0
    default = tmp_path / "d" / "reports" / f"risk-report-{END.isoformat()}.html"
    assert capsys.readouterr().out.strip() == str(default.resolve())
    assert main(["--date", "2030-01-02", "--out", str(out)]) == 2
    assert "no firm figures for 2030-01-02" in capsys.readouterr().err


def test_main_without_postgres_says_run_the_demo(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("EODRISK_PG_DSN", raising=False)
    assert main(["--data-dir", str(tmp_path)]) == 2
    assert "run `eodrisk demo` first" in capsys.readouterr().err


def test_report_shows_the_latest_pipeline_run(loaded_dsn, tmp_path):
    with psycopg2.connect(loaded_dsn) as conn, conn.cursor() as cur:
        cur.execute("select to_regclass('risk.pipeline_runs') is not null")
        if not cur.fetchone()[0]:
            pytest.skip("risk.pipeline_runs (sql/0005) is not installed")
        for run_id, ended in (("scheduled__early", "02:10"), ("manual__rerun", "03:40")):
            cur.execute(
                "insert into risk.pipeline_runs (dag_id, run_id, business_date, state, "
                "started_at, ended_at, latency_s) values ('eod_risk', %s, %s, 'success', "
                "%s::timestamptz - interval '30 minutes', %s::timestamptz, 1800)",
                (run_id, END, f"2026-11-25 {ended}+00", f"2026-11-25 {ended}+00"),
            )
    conn.close()
    html = write_report(loaded_dsn, END, tmp_path / "r.html").read_text(encoding="utf-8")
    figures = page_figures(html).figures
    assert figures["pipeline.run_id"] == "manual__rerun"
    assert figures["pipeline.state"] == "success"
    assert float(figures["pipeline.latency_s"]) == 1800.0


# ---- headless Chromium ------------------------------------------------------------------------


def _require_chromium() -> Path:
    if CHROMIUM.exists():
        return CHROMIUM
    if os.environ.get("EODRISK_REQUIRE_CHROMIUM"):
        pytest.fail("EODRISK_REQUIRE_CHROMIUM is set but /usr/bin/chromium is missing")
    pytest.skip(
        "Debian's chromium is not installed (/usr/bin/chromium): run .ci/install-chromium "
        "(apt-get install -y chromium) to run the browser test"
    )


def decode_png(data: bytes) -> tuple[int, int, int, bytes]:
    """(width, height, channels, raw pixels) of an 8-bit, non-interlaced RGB/RGBA PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, []
    width = height = channels = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and interlace == 0 and colour in (2, 6), (depth, colour)
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat.append(body)
        pos += 12 + length
    raw = zlib.decompress(b"".join(idat))
    stride = width * channels
    out = bytearray(height * stride)
    prev = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        if kind == 1:
            for i in range(channels, stride):
                line[i] = (line[i] + line[i - channels]) & 0xFF
        elif kind == 2:
            line = bytearray((a + b) & 0xFF for a, b in zip(line, prev, strict=True))
        elif kind == 3:
            for i in range(stride):
                left = line[i - channels] if i >= channels else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xFF
        elif kind == 4:
            for i in range(stride):
                a = line[i - channels] if i >= channels else 0
                b, c = prev[i], prev[i - channels] if i >= channels else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
                line[i] = (line[i] + pred) & 0xFF
        out[y * stride : (y + 1) * stride] = line
        prev = line
    return width, height, channels, bytes(out)


def luminance_stats(png: bytes) -> tuple[float, int]:
    """(variance of pixel luminance, number of distinct colours) of a screenshot."""
    width, height, channels, pixels = decode_png(png)
    values, colours = [], set()
    for y in range(0, height, 3):
        row = pixels[y * width * channels : (y + 1) * width * channels]
        for x in range(0, width, 3):
            r, g, b = row[x * channels : x * channels + 3]
            values.append(0.299 * r + 0.587 * g + 0.114 * b)
            colours.add((r, g, b))
    mean = sum(values) / len(values)
    return sum((v - mean) ** 2 for v in values) / len(values), len(colours)


class DevTools:
    """Chromium's DevTools protocol over --remote-debugging-pipe (fd 3 in, fd 4 out)."""

    def __init__(self, chromium: Path, profile: Path) -> None:
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        def wire() -> None:
            os.dup2(to_chrome_r, 3)
            os.dup2(from_chrome_w, 4)
            # dup2 onto the same fd is a no-op that keeps close-on-exec (outside pytest the
            # pipe itself may be fd 3 or 4): Chromium must inherit both
            os.set_inheritable(3, True)
            os.set_inheritable(4, True)

        self.proc = subprocess.Popen(
            [
                str(chromium),
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}",
                "--remote-debugging-pipe",
                "--window-size=1280,1600",
            ],
            preexec_fn=wire,
            close_fds=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self._from_chrome], [], [], max(left, 0))
            if not ready:
                raise TimeoutError("no message from Chromium")
            chunk = os.read(self._from_chrome, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def send(
        self,
        method: str,
        params: dict | None = None,
        session: str | None = None,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, timeout: float = 30.0) -> dict[str, Any]:
        for event in self.events:
            if event.get("method") == method:
                return event
        deadline = time.monotonic() + timeout
        while True:
            event = self._read(deadline)
            self.events.append(event)
            if event.get("method") == method:
                return event

    def close(self) -> None:
        with contextlib.suppress(OSError, RuntimeError, TimeoutError):
            self.send("Browser.close", timeout=5)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_chrome)
        os.close(self._from_chrome)


# Every chart label whose box Chromium lays out outside its SVG's viewBox (cut on screen).
CUT_LABELS_JS = """
JSON.stringify([...document.querySelectorAll('svg.chart')].flatMap(svg => {
  const box = svg.viewBox.baseVal;
  return [...svg.querySelectorAll('text')].map(t => [t.textContent, t.getBBox()])
    .filter(([, b]) => b.x < box.x - 0.5 || b.x + b.width > box.x + box.width + 0.5)
    .map(([text, b]) => `${svg.dataset.testid}: ${text} x=${b.x.toFixed(1)}..`
                        + `${(b.x + b.width).toFixed(1)} of ${box.width}`);
}))
"""


def load_in_chromium(
    chromium: Path, url: str, profile: Path, evaluate: str = "1"
) -> dict[str, Any]:
    """Open ``url``; return console errors, uncaught exceptions, requests and the DOM text,
    and the value of the ``evaluate`` expression in the loaded page."""
    tools = DevTools(chromium, profile)
    try:
        target = tools.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = tools.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        for domain in ("Runtime", "Log", "Network", "Page"):
            tools.send(f"{domain}.enable", session=session)
        tools.send("Page.navigate", {"url": url}, session=session)
        tools.wait_for("Page.loadEventFired")
        time.sleep(0.3)  # late console messages
        value = tools.send(
            "Runtime.evaluate", {"expression": evaluate, "returnByValue": True}, session=session
        )["result"].get("value")
        events = tools.events
        return {
            "value": value,
            "console_errors": [
                e["params"]
                for e in events
                if e.get("method") == "Runtime.consoleAPICalled"
                and e["params"]["type"] in ("error", "assert", "warning")
            ]
            + [
                e["params"]["entry"]
                for e in events
                if e.get("method") == "Log.entryAdded"
                and e["params"]["entry"]["level"] in ("error", "warning")
            ],
            "exceptions": [
                e["params"] for e in events if e.get("method") == "Runtime.exceptionThrown"
            ],
            "requests": [
                e["params"]["request"]["url"]
                for e in events
                if e.get("method") == "Network.requestWillBeSent"
            ],
            "failed": [e["params"] for e in events if e.get("method") == "Network.loadingFailed"],
        }
    finally:
        tools.close()


def test_devtools_harness_sees_console_errors_and_requests(tmp_path):
    """The harness itself: a page with a console error and a blocked CDN request is caught."""
    chromium = _require_chromium()
    page = tmp_path / "bad.html"
    page.write_text(
        "<!DOCTYPE html><html><head><link rel=stylesheet href='https://cdn.invalid/x.css'>"
        "</head><body><script>console.error('boom'); undefined_fn();</script></body></html>"
    )
    seen = load_in_chromium(chromium, page.as_uri(), tmp_path / "profile")
    assert any("boom" in json.dumps(e) for e in seen["console_errors"])
    assert seen["exceptions"]
    assert any("cdn.invalid" in url for url in seen["requests"])


def test_report_in_headless_chromium(loaded_dsn, expected, tmp_path):
    chromium = _require_chromium()
    report = write_report(loaded_dsn, END, tmp_path / "report.html")
    url = report.as_uri()

    # 1. No console error, no exception, no request but the file itself.
    seen = load_in_chromium(chromium, url, tmp_path / "profile-devtools", CUT_LABELS_JS)
    assert json.loads(seen["value"]) == []  # no chart label cut (EMEA_EQ_DERIVATIVES_02…)
    assert not seen["console_errors"], seen["console_errors"]
    assert not seen["exceptions"], seen["exceptions"]
    assert not seen["failed"], seen["failed"]
    assert seen["requests"] == [url], seen["requests"]

    # 2. Screenshot: not blank.
    shot = tmp_path / "report.png"
    run = subprocess.run(
        [
            str(chromium),
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'profile-shot'}",
            "--window-size=1280,3400",
            f"--screenshot={shot}",
            url,
        ],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0 and shot.exists(), run.stderr.decode()[-2000:]
    variance, colours = luminance_stats(shot.read_bytes())
    assert variance > 100.0, f"screenshot looks blank (luminance variance {variance:.1f})"
    assert colours > 50, f"screenshot has only {colours} colours"
    if os.environ.get("EODRISK_REPORT_SCREENSHOT"):
        shutil.copy(shot, os.environ["EODRISK_REPORT_SCREENSHOT"])

    # 3. The DOM Chromium built: the figures equal Postgres.
    dom = subprocess.run(
        [
            str(chromium),
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'profile-dom'}",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        timeout=120,
        check=True,
    ).stdout.decode("utf-8")
    figures = assert_figures_equal_postgres(dom, expected, END)
    assert figures["firm.backtest_zone"] == "yellow"

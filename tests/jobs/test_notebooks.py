"""The quant notebooks run top to bottom against a small lake (they use no Spark): as Python
files (``runpy``, a stub ``dbutils`` whose widgets hold the test's values, as on Databricks) and
as Jupyter notebooks (jupytext reads the ``# %%`` cells, nbclient executes them in a
kernel, widgets from ``EODRISK_<NAME>`` variables) that show and write their plots.

The lake is built by the jobs (Spark), as the back history builds it (``eodrisk.history``).
"""

from __future__ import annotations

import math
import runpy
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from eodrisk.calendar import configured_regions
from eodrisk.history import backfill
from eodrisk.sample_data import business_days, generate_night
from tests.bundle_runs import bundle, in_process_runner

pytestmark = pytest.mark.spark

NOTEBOOKS = Path(__file__).resolve().parents[2] / "databricks_jobs" / "notebooks"
DAYS = business_days(date(2026, 11, 24), 3)
REGIONS = list(configured_regions())


class Widgets:
    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.created: dict[str, str] = {}

    def text(self, name: str, default: str, label: str | None = None) -> None:
        self.created[name] = default

    def get(self, name: str) -> str:
        return self.values.get(name, self.created.get(name, ""))


class StubDbutils:
    def __init__(self, **values: str) -> None:
        self.widgets = Widgets(values)


@pytest.fixture(scope="module")
def lake(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("notebooks")
    generate_night(root / "landing", DAYS, regions=REGIONS, trades_per_region=150)
    run = in_process_runner(bundle(root / "landing", root / "lake"))
    backfill(run, root / "lake", DAYS, REGIONS, run_id="nb")
    return root / "landing", root / "lake"


def run_notebook(name: str, **widgets: str) -> dict:
    path = NOTEBOOKS / name
    lines = path.read_text().splitlines()
    assert lines[0] == "# Databricks notebook source"
    assert "# COMMAND ----------" in lines
    shown: list = []
    widgets.setdefault("plots_dir", str(Path(widgets["lake_root"]).parent / "plots"))
    namespace = runpy.run_path(
        str(path),
        init_globals={"dbutils": StubDbutils(**widgets), "display": shown.append},
        run_name="__main__",
    )
    namespace["_shown"] = shown
    return namespace


def test_explore_var_lists_nodes_and_top_contributors(lake):
    _, lake_root = lake
    ns = run_notebook("explore_var.py", lake_root=str(lake_root), top_n="40")
    assert ns["day"] == DAYS[-1]  # no business_date widget: the latest date
    nodes, contributors = ns["nodes"], ns["contributors"]
    assert nodes["level"].iloc[0] == "firm" and len(nodes) == 1 + 3 + 12 + 34
    firm_var = nodes.loc[nodes["node"] == "FIRM", "var_99_1d_usd"].iloc[0]
    assert len(contributors) == 34  # every book of the firm
    assert contributors["component_var_99_1d_usd"].sum() == pytest.approx(firm_var, rel=1e-9)
    assert contributors["component_var_99_1d_usd"].is_monotonic_decreasing
    assert ns["_shown"][0] is nodes


def test_compare_methods_puts_five_methods_side_by_side(lake):
    landing, lake_root = lake
    ns = run_notebook(
        "compare_methods.py",
        lake_root=str(lake_root),
        landing_root=str(landing),
        business_date=DAYS[-1].isoformat(),
        nodes="FIRM,EMEA",
        n_sims="2000",
    )
    table = ns["table"]
    assert len(table) == 10 and set(table["node"]) == {"FIRM", "EMEA"}
    from databricks_jobs.quant import node_pnl, read_table

    results = read_table(str(lake_root), "gold.var_results", business_date=DAYS[-1])
    for node in ("FIRM", "EMEA"):
        rows = table[table["node"] == node].set_index("method")
        stored = results.loc[results["node"] == node].iloc[0]
        assert rows.loc["historical", "var_99_1d_usd"] == stored["var_99_1d_usd"]
        assert rows.loc["historical", "es_975_1d_usd"] == stored["es_975_1d_usd"]
        pnl = node_pnl(str(lake_root), DAYS[-1], node)
        sd = float(np.std(pnl, ddof=1))
        normal = rows.loc["parametric (normal fit to HS P&L)"]
        assert normal["var_99_1d_usd"] == pytest.approx(stats.norm.ppf(0.99) * sd, rel=1e-12)
        es = sd * stats.norm.pdf(stats.norm.ppf(0.975)) / 0.025
        assert normal["es_975_1d_usd"] == pytest.approx(es, rel=1e-12)
        assert (rows["var_99_1d_usd"] > 0).all()
        assert (rows["es_975_1d_usd"] > 0).all()
        # the covariance-based methods agree with each other within MC and non-linearity error
        delta_normal = rows.filter(like="delta-normal", axis=0)["var_99_1d_usd"].iloc[0]
        monte_carlo = rows.filter(like="Monte Carlo", axis=0)["var_99_1d_usd"].iloc[0]
        assert monte_carlo == pytest.approx(delta_normal, rel=0.25)


def test_run_backtest_reports_traffic_light_and_tests(lake, capsys):
    _, lake_root = lake
    ns = run_notebook("run_backtest.py", lake_root=str(lake_root), node="EMEA")
    stats_ = ns["stats"]
    daily = ns["result"]["daily"]
    assert stats_["observations"] == len(daily) == len(DAYS) - 1
    x = int(daily["is_exception"].sum())
    assert stats_["exceptions"] == x
    assert stats_["zone"] == ("green" if x <= 4 else "yellow" if x <= 9 else "red")
    n, p = len(daily), 0.01
    lr = -2 * ((n - x) * math.log(1 - p) + x * math.log(p))
    if 0 < x < n:
        lr += 2 * ((n - x) * math.log(1 - x / n) + x * math.log(x / n))
    assert stats_["kupiec_lr"] == pytest.approx(lr, rel=1e-12)
    assert "Basel zone" in capsys.readouterr().out


# ---- the same notebooks in Jupyter: jupytext reads the `# %%` cells, nbclient runs a kernel


def run_in_jupyter(name: str, monkeypatch, **widgets: str):
    """Execute a notebook through a Jupyter kernel (widgets as EODRISK_<NAME> variables)."""
    import jupytext
    from nbclient import NotebookClient

    for key, value in widgets.items():
        monkeypatch.setenv(f"EODRISK_{key.upper()}", value)
    notebook = jupytext.read(NOTEBOOKS / name, fmt="py:percent")
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert len(code) >= 3, f"{name}: the `# %%` cells beside the Databricks markers"
    NotebookClient(notebook, timeout=300, kernel_name="python3").execute()
    return notebook


def outputs(notebook, mime: str) -> list:
    return [
        out["data"][mime]
        for cell in notebook.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if mime in out.get("data", {})
    ]


def stream_text(notebook) -> str:
    return "".join(
        out.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if out.get("output_type") == "stream"
    )


def test_notebooks_run_in_a_jupyter_kernel_and_write_their_plots(lake, tmp_path, monkeypatch):
    import base64

    from databricks_jobs.quant import read_table

    landing, lake_root = lake
    plots = tmp_path / "plots"
    # The lake as a URI (file://): the same path as s3:// or abfss:// roots, without Path().
    explore = run_in_jupyter(
        "explore_var.py", monkeypatch, lake_root=lake_root.as_uri(), plots_dir=str(plots)
    )
    firm = read_table(str(lake_root), "gold.var_results", business_date=DAYS[-1])
    firm_var = firm.loc[firm["node"] == "FIRM", "var_99_1d_usd"].iloc[0]
    assert f"FIRM VaR 99% 1d: {firm_var:,.0f} USD" in stream_text(explore)
    backtest = run_in_jupyter("run_backtest.py", monkeypatch, node="EMEA", plots_dir=str(plots))
    assert "Basel zone" in stream_text(backtest)
    methods = run_in_jupyter(
        "compare_methods.py",
        monkeypatch,
        landing_root=landing.as_uri(),
        nodes="FIRM",
        n_sims="500",
        plots_dir=str(plots),
    )
    for notebook in (explore, backtest, methods):
        (png,) = outputs(notebook, "image/png")  # shown once, inline
        assert base64.b64decode(png)[:8] == b"\x89PNG\r\n\x1a\n"
    written = sorted(p.name for p in plots.iterdir())
    assert written == [
        "backtest_EMEA.png",
        f"pnl_distribution_FIRM_{DAYS[-1]}.png",
        f"var_methods_{DAYS[-1]}.png",
    ]
    assert all((plots / name).read_bytes()[:4] == b"\x89PNG" for name in written)

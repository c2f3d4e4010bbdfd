"""The jobs artifact as a job cluster gets it: built by the bundle, installed on the runtime.

The wheel is built with the bundle's own ``artifacts`` command and installed into a copy of
the Databricks Runtime 17.3 environment (pyspark 4.0 and the runtime's numpy, pandas,
pyarrow, scipy: :mod:`eodrisk.emulator.runtime`), then run from a folder outside the
repository with nothing of the source tree on the path.
"""

from __future__ import annotations

import json
import os
import subprocess
from datetime import date
from pathlib import Path

import pytest
from deltalake import DeltaTable

from eodrisk.emulator.bundle import load_bundle
from eodrisk.emulator.runtime import (
    RUNTIMES,
    build_artifacts,
    cluster_env,
    python_of,
    runtime_for,
)
from eodrisk.emulator.worker import SCRUBBED_ENV
from eodrisk.sample_data import generate_night

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
DAY = date(2026, 11, 24)
NEVER_ON_A_CLUSTER = {"pgserver", "rich", "eodrisk-platform", "eodrisk"}


@pytest.fixture(scope="module")
def cluster() -> Path:
    bundle = load_bundle(REPO_ROOT, target="dev", environ={})
    wheels = build_artifacts(bundle.root, bundle.artifacts, bundle.wheel_libraries)
    assert [w.name for w in wheels] == ["eodrisk_jobs-0.1.0-py3-none-any.whl"]
    return cluster_env(runtime_for(bundle.spark_versions), wheels)


def run_on_cluster(cluster: Path, code: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}
    python = str(python_of(cluster))
    env.update(PYSPARK_PYTHON=python, SPARK_LOCAL_IP="127.0.0.1", PYTHONNOUSERSITE="1")
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [python, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def test_the_artifact_installs_nothing_the_runtime_has_or_a_cluster_must_not(cluster, tmp_path):
    done = run_on_cluster(
        cluster,
        "import json, importlib.metadata as m; "
        "print(json.dumps([(d.metadata['Name'], d.version) for d in m.distributions()]))",
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    installed = json.loads(done.stdout)
    names = [name.lower().replace("_", "-") for name, _ in installed]
    assert names.count("pyspark") == 1
    assert not [n for n in names if n in NEVER_ON_A_CLUSTER or n.startswith("apache-airflow")]
    versions = dict((n.lower(), v) for n, v in installed)
    runtime = RUNTIMES["17.3.x-scala2.13"]
    for pin in runtime.packages:  # the runtime's own versions, not upgraded by the artifact
        name, version = pin.split("==")
        assert versions[name] == version, pin
    assert versions["eodrisk-jobs"] == "0.1.0"


def test_ingest_trades_entry_point_ingests_a_night_from_outside_the_repository(cluster, tmp_path):
    landing, lake = tmp_path / "landing", tmp_path / "lake"
    generate_night(landing, [DAY], regions=["EMEA"], trades_per_region=300, history_days=30)
    trade_file = landing / "EMEA" / f"trades_{DAY:%Y%m%d}.csv"
    data_rows = len(trade_file.read_text().splitlines()) - 1  # an independent count: the file
    arguments = [
        f"--business-date={DAY}",
        "--region=EMEA",
        f"--landing-root={landing}",
        f"--lake-root={lake}",
        "--run-id=artifact-test",
    ]
    done = run_on_cluster(
        cluster,
        "from importlib.metadata import entry_points\n"
        "(ingest,) = entry_points(group='databricks_jobs', name='ingest_trades')\n"
        f"ingest.load()({arguments!r})\n",
        tmp_path / "driver",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    audit = DeltaTable(str(lake / "silver" / "ingest_audit")).to_pandas()
    assert audit["rows_read"].tolist() == [data_rows]
    accepted = len(DeltaTable(str(lake / "silver" / "trades")).to_pandas())
    assert audit["rows_accepted"].tolist() == [accepted] and accepted > 0


def test_the_artifact_finds_its_migrations_and_not_the_local_platform(cluster, tmp_path):
    done = run_on_cluster(
        cluster,
        "import json\n"
        "from databricks_jobs.postgres import MIGRATIONS, shipped_migrations\n"
        "print(json.dumps([str(MIGRATIONS), shipped_migrations()]))\n",
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    folder, ids = json.loads(done.stdout)
    assert Path(folder).is_relative_to(cluster) and "site-packages" in folder
    in_repo = sorted(
        p.name.removesuffix(".sql") for p in (REPO_ROOT / "sql").glob("*.sql")
        if not p.name.endswith(".rollback.sql")
    )  # fmt: skip
    assert sorted(ids) == in_repo
    platform = run_on_cluster(cluster, "import eodrisk", tmp_path)
    assert "No module named 'eodrisk'" in platform.stderr

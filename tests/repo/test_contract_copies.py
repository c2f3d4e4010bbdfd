"""Contracts the DAG folder must declare again because it may import only itself and
Airflow (never the jobs wheel): each copy here is checked against its home. (The DAG id
has one home, the DAG file's name: tests/repo/test_dag_policy.py finds the DAG by it.)"""

from __future__ import annotations

import sys

from databricks_jobs import landing
from databricks_jobs.risk_metrics import FIRM
from databricks_jobs.tables import table
from eodrisk.airflow_local import DAG_CONFIG, DAGS_FOLDER

if str(DAGS_FOLDER) not in sys.path:
    sys.path.append(str(DAGS_FOLDER))  # as Airflow does for the DAG bundle

from eodrisk_dag import calendars as dag_calendars
from eodrisk_dag import records
from eodrisk_dag.config import load_config


def test_the_sensor_waits_for_the_files_the_landing_contract_names():
    config = load_config(DAG_CONFIG)
    assert config.landing_files.trades == landing.TRADE_FILE_PATTERN
    assert config.landing_files.marker == landing.MARKER_PATTERN


def test_the_dag_calendars_firm_is_the_hierarchys_firm():
    assert dag_calendars.FIRM == FIRM


def test_the_run_recorders_columns_are_the_catalogued_ones():
    for name, columns, key in (
        ("risk.task_runs", records.TASK_COLUMNS, records.TASK_KEY),
        ("risk.pipeline_runs", records.PIPELINE_COLUMNS, records.PIPELINE_KEY),
    ):
        catalogued = table(name)
        assert [*columns, "recorded_at"] == [c.name for c in catalogued.columns], name
        assert key == tuple(catalogued.key), name


def test_the_migrations_name_the_firm_node_as_the_hierarchy_does():
    """The SQL views and default limits match the firm's node by name (a migration is
    applied once and never edited, so it keeps its literal): every ``node = '…'`` and every
    firm-level limit row in sql/ names the hierarchy's FIRM."""
    import re

    from databricks_jobs.postgres import MIGRATIONS

    sql = "\n".join(p.read_text() for p in sorted(MIGRATIONS.glob("*.sql")))
    named = set(re.findall(r"\w\.node\s*=\s*'(\w+)'", sql))  # the views' joins ('*': any node)
    named |= set(re.findall(r"\('firm',\s*'([^']*)',\s*'\w+_usd'", sql))  # firm limits
    assert named == {FIRM}

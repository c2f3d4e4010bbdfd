"""The repository's bundle as a deployable artefact: compute, retries, permissions, targets.

``databricks bundle validate`` needs a workspace; these checks run everywhere. Every job of
every target must be Jobs API ``JobSettings`` that round-trip without losing a key.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from databricks.sdk.service.jobs import JobSettings

from eodrisk.emulator.bundle import load_bundle

REPO_ROOT = Path(__file__).resolve().parents[2]
TARGETS = ("local", "dev", "staging", "prod")
SP = "6f1c2a9e-0b7d-4c55-9a1e-000000000001"
JOBS = ("ingest_trades", "compute_risk", "firm_risk", "load_reporting", "migrate")


def lost_keys(sent, kept, path=""):
    if isinstance(sent, dict):
        out = []
        for key, value in sent.items():
            out += (
                [f"{path}.{key}"]
                if key not in kept
                else lost_keys(value, kept[key], f"{path}.{key}")
            )
        return out
    if isinstance(sent, list):
        return [
            k
            for i, (a, b) in enumerate(zip(sent, kept, strict=True))
            for k in lost_keys(a, b, f"{path}[{i}]")
        ]
    return []


def bundle_yaml() -> dict:
    return yaml.safe_load((REPO_ROOT / "bundle.yml").read_text())


def raw_jobs() -> dict:
    return yaml.safe_load((REPO_ROOT / "resources" / "jobs.yml").read_text())["resources"]["jobs"]


@pytest.mark.parametrize("target", TARGETS)
def test_every_job_of_every_target_round_trips_through_job_settings(target):
    bundle = load_bundle(
        REPO_ROOT, target=target, variables={"service_principal_name": SP}, environ={}
    )
    assert {j.resource_key for j in bundle.jobs.values()} == set(JOBS)
    for job in bundle.jobs.values():
        settings = JobSettings.from_dict(job.settings)
        assert lost_keys(job.settings, settings.as_dict()) == [], job.name
        assert "${" not in str(job.settings)


def test_prod_and_staging_run_as_the_service_principal_in_production_mode():
    targets = bundle_yaml()["targets"]
    for name in ("staging", "prod"):
        assert targets[name]["mode"] == "production"
        assert targets[name]["run_as"] == {
            "service_principal_name": "${var.service_principal_name}"
        }
        bundle = load_bundle(
            REPO_ROOT, target=name, variables={"service_principal_name": SP}, environ={}
        )
        for job in bundle.jobs.values():
            assert JobSettings.from_dict(job.settings).run_as.service_principal_name == SP
    assert targets["dev"]["mode"] == "development" and targets["local"]["mode"] == "development"
    assert "run_as" not in targets["dev"]


def test_jobs_use_job_clusters_sized_per_workload_with_spot_fallback_or_the_pool():
    for key, job in raw_jobs().items():
        clusters = {c["job_cluster_key"]: c["new_cluster"] for c in job["job_clusters"]}
        for task in job["tasks"]:
            assert "existing_cluster_id" not in task, f"{key}: all-purpose cluster"
            assert task["job_cluster_key"] in clusters
        for spec in clusters.values():
            if "instance_pool_id" in spec:  # node type and spot policy come from the pool
                assert spec["instance_pool_id"] == "${var.small_jobs_pool_id}"
                assert "node_type_id" not in spec and "aws_attributes" not in spec
            else:
                assert spec["aws_attributes"]["availability"] == "SPOT_WITH_FALLBACK"
                assert spec["aws_attributes"]["first_on_demand"] >= 1  # the driver on demand
                assert spec["autoscale"]["min_workers"] < spec["autoscale"]["max_workers"]
    risk = raw_jobs()["compute_risk"]["job_clusters"][0]["new_cluster"]
    assert risk["node_type_id"].startswith("r")  # memory-optimised for aggregation
    assert "instance_pool_id" in raw_jobs()["ingest_trades"]["job_clusters"][0]["new_cluster"]
    assert bundle_yaml()["variables"]["small_jobs_pool_id"]["lookup"] == {
        "instance_pool": "eodrisk-small-jobs"
    }


def test_jobs_have_timeouts_retries_concurrency_and_permissions():
    for key, job in raw_jobs().items():
        assert job["timeout_seconds"] > 0 and job["max_concurrent_runs"] >= 1
        for task in job["tasks"]:
            assert 0 < task["timeout_seconds"] <= job["timeout_seconds"], (key, task["task_key"])
            assert "max_retries" in task
            if task["max_retries"]:
                assert task["min_retry_interval_millis"] >= 30_000
                assert "retry_on_timeout" in task
        assert {(p["level"], p["group_name"]) for p in job["permissions"]} == {
            ("CAN_MANAGE_RUN", "${var.ops_group}"),
            ("CAN_VIEW", "${var.analysts_group}"),
        }


def test_the_firm_workflow_is_aggregation_then_backtest_then_data_quality():
    tasks = {t["task_key"]: t for t in raw_jobs()["firm_risk"]["tasks"]}
    assert list(tasks) == ["firm_aggregation", "backtest", "data_quality", "frtb_es"]
    assert tasks["backtest"]["depends_on"] == [{"task_key": "firm_aggregation"}]
    assert tasks["data_quality"]["depends_on"] == [{"task_key": "backtest"}]
    assert tasks["frtb_es"]["depends_on"] == [{"task_key": "firm_aggregation"}]
    from importlib.metadata import entry_points

    entries = {ep.name for ep in entry_points(group="databricks_jobs")}
    for key in ("data_quality", "frtb_es"):
        assert tasks[key]["python_wheel_task"]["entry_point"] in entries


def test_the_local_target_still_serves_through_the_emulator_without_a_workspace():
    bundle = load_bundle(REPO_ROOT, target="local", environ={})
    ingest = next(j for j in bundle.jobs.values() if j.resource_key == "ingest_trades")
    assert (
        ingest.settings["job_clusters"][0]["new_cluster"]["instance_pool_id"]
        == "local-emulator-pool"
    )
    assert "run_as" not in ingest.settings


def test_every_wheel_task_is_an_entry_point_of_the_jobs_artifact():
    """The bundle deploys eodrisk_jobs (pyproject.toml); each task names one of its entry points."""
    from importlib.metadata import distribution

    jobs_artifact = distribution("eodrisk-jobs")
    entry_points = {ep.name for ep in jobs_artifact.entry_points if ep.group == "databricks_jobs"}
    wheel_tasks = [
        t["python_wheel_task"]
        for job in raw_jobs().values()
        for t in job["tasks"]
        if "python_wheel_task" in t
    ]
    assert {t["package_name"] for t in wheel_tasks} == {"eodrisk_jobs"}
    assert {t["entry_point"] for t in wheel_tasks} <= entry_points
    assert "migrate" in entry_points


def test_migrations_are_a_deploy_step_with_the_owner_and_the_night_loads_as_the_loader():
    env = {
        key: job["job_clusters"][0]["new_cluster"]["spark_env_vars"]["EODRISK_PG_DSN"]
        for key, job in raw_jobs().items()
        if key in ("migrate", "load_reporting")
    }
    assert env == {
        "migrate": "{{secrets/eodrisk/pg_owner_dsn}}",
        "load_reporting": "{{secrets/eodrisk/pg_dsn}}",
    }
    assert raw_jobs()["migrate"]["tasks"][0]["max_retries"] == 0

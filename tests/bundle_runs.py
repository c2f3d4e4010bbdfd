"""Run a bundle job's tasks in this process, with the parameters the bundle gives them.

The test's stand-in for ``run-now``: the job's tasks in dependency order, each task's
command line resolved from ``resources/jobs.yml`` (job parameters over their defaults,
``{{job.parameters.*}}`` and ``{{job.run_id}}`` references) exactly as the emulator and
Databricks resolve them, then the wheel entry point's ``main`` (the firm aggregation
notebook's ``run``) called in this process, on the session's Spark. What the emulator adds
(the built wheel, the runtime-shaped venv, the API) is tested in tests/platform.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import entry_points
from pathlib import Path

from databricks_jobs.jobs.firm_risk import run as firm_aggregation
from eodrisk.emulator.bundle import (
    Bundle,
    load_bundle,
    resolve_dynamic_values,
    task_references,
    topological_order,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
#: stands in for the Databricks run id of a run started without a run_id parameter
NIGHTLY_RUN_ID = "7001"


def bundle(landing: Path, lake: Path) -> Bundle:
    variables = {"landing_root": str(landing), "lake_root": str(lake)}
    return load_bundle(REPO_ROOT, variables=variables, environ={})


def run_job(resolved: Bundle, job_key: str, parameters: Mapping[str, str]) -> None:
    """Run every task of ``job_key`` with these job parameters (others at their defaults)."""
    (job,) = [j for j in resolved.jobs.values() if j.resource_key == job_key]
    unknown = set(parameters) - set(job.parameter_defaults)
    assert not unknown, f"{job_key} has no job parameter {unknown}"
    base = {"job.run_id": NIGHTLY_RUN_ID, "job.id": str(job.job_id)}
    references = task_references({**job.parameter_defaults, **parameters}, base)
    tasks = {t["task_key"]: t for t in job.tasks}
    mains = {e.name: e for e in entry_points(group="databricks_jobs")}
    for key in topological_order(job.tasks):
        task = resolve_dynamic_values(tasks[key], references)
        if "python_wheel_task" in task:
            wheel = task["python_wheel_task"]
            mains[wheel["entry_point"]].load()(list(wheel["parameters"]))
        else:  # the firm aggregation notebook: its widgets as the job's parameters
            widgets = task["notebook_task"]["base_parameters"]
            firm_aggregation([f"--{k.replace('_', '-')}={v}" for k, v in widgets.items()])


def in_process_runner(resolved: Bundle):
    """An ``eodrisk.history`` runner that runs each stage's jobs here, one after another."""

    def run(stages, progress=None) -> None:
        for done, stage in enumerate(stages, start=1):
            for job_run in stage:
                run_job(resolved, job_run.job, job_run.parameters)
            if progress is not None:
                progress(done, len(stages))

    return run

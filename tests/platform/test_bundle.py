"""The emulator's bundle loader: includes, targets, variables, ids and validation."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from databricks.sdk.service.jobs import JobSettings

from eodrisk.emulator.bundle import (
    FIRST_JOB_ID,
    BundleError,
    load_bundle,
    resolve_dynamic_values,
    task_references,
    topological_order,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
PIPELINE_JOBS = {
    "eodrisk-ingest-trades",
    "eodrisk-compute-risk",
    "eodrisk-firm-risk",
    "eodrisk-load-reporting",
    "eodrisk-migrate",
}


def write_bundle(root: Path, main: str, **includes: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "bundle.yml").write_text(textwrap.dedent(main))
    for name, text in includes.items():
        path = root / "resources" / f"{name}.yml"
        path.parent.mkdir(exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


MAIN = """
    bundle: {name: demo}
    include: [resources/*.yml]
    variables:
      root: {default: /default}
      nested: {default: "${var.root}/nested"}
    targets:
      local:
        variables: {root: /local}
        resources:
          jobs:
            alpha:
              max_concurrent_runs: 3
              tasks:
                - task_key: second
                  spark_python_task: {python_file: scripts/override.py}
      prod:
        mode: production
"""

JOBS = """
    resources:
      jobs:
        alpha:
          name: alpha-${bundle.target}
          parameters:
            - {name: where, default: "${var.nested}"}
          tasks:
            - task_key: first
              spark_python_task:
                python_file: ../scripts/first.py
                parameters: ["--where={{job.parameters.where}}", "--run={{job.run_id}}"]
            - task_key: second
              depends_on: [{task_key: first}]
              spark_python_task: {python_file: ../scripts/second.py}
        beta:
          name: beta
          permissions: [{level: CAN_VIEW, group_name: analysts}]
          tasks:
            - task_key: only
              python_wheel_task: {package_name: demo, entry_point: beta}
"""


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    return write_bundle(tmp_path / "demo", MAIN, jobs=JOBS)


def by_key(root: Path, **kwargs) -> dict:
    return {j.resource_key: j for j in load_bundle(root, environ={}, **kwargs).jobs.values()}


def test_repository_bundle_keeps_job_names_and_resolves_local_roots():
    bundle = load_bundle(REPO_ROOT, environ={})
    assert {j.name for j in bundle.jobs.values()} == PIPELINE_JOBS
    assert bundle.variables["landing_root"] == "./var/demo/landing"
    for job in bundle.jobs.values():
        assert "${" not in str(job.settings)
        assert JobSettings.from_dict(job.settings).name == job.name


@pytest.mark.parametrize("target", ["local", "dev", "staging", "prod"])
def test_repository_bundle_resolves_every_target(target):
    bundle = load_bundle(REPO_ROOT, target=target, environ={})
    assert {j.name for j in bundle.jobs.values()} == PIPELINE_JOBS


def test_job_ids_follow_sorted_resource_keys(demo):
    jobs = by_key(demo)
    assert jobs["alpha"].job_id == FIRST_JOB_ID
    assert jobs["beta"].job_id == FIRST_JOB_ID + 1


def test_persisted_job_ids_survive_a_new_job(demo, tmp_path):
    ids_file = tmp_path / "job_ids.json"
    before = by_key(demo, job_ids_file=ids_file)
    (demo / "resources" / "aardvark.yml").write_text(
        "resources:\n  jobs:\n    aardvark:\n      tasks:\n"
        "        - {task_key: t, spark_python_task: {python_file: x.py}}\n"
    )
    after = by_key(demo, job_ids_file=ids_file)
    assert after["alpha"].job_id == before["alpha"].job_id
    assert after["beta"].job_id == before["beta"].job_id
    assert after["aardvark"].job_id == FIRST_JOB_ID + 2


def test_target_overrides_merge_tasks_by_key_and_keep_the_rest(demo):
    alpha = by_key(demo)["alpha"]
    tasks = {t["task_key"]: t for t in alpha.tasks}
    assert alpha.settings["max_concurrent_runs"] == 3
    assert tasks["second"]["spark_python_task"]["python_file"] == "scripts/override.py"
    assert tasks["second"]["depends_on"] == [{"task_key": "first"}]
    assert tasks["first"]["spark_python_task"]["python_file"] == "scripts/first.py"


def test_variable_precedence_override_env_target_default(demo):
    assert by_key(demo)["alpha"].parameter_defaults["where"] == "/local/nested"
    assert by_key(demo, target="prod")["alpha"].parameter_defaults["where"] == "/default/nested"
    env_only = load_bundle(demo, environ={"BUNDLE_VAR_root": "/env"})
    assert env_only.variables["nested"] == "/env/nested"
    explicit = load_bundle(demo, variables={"root": "/cli"}, environ={"BUNDLE_VAR_root": "/env"})
    assert explicit.variables["root"] == "/cli"


def test_bundle_fields_are_substituted_and_names_not_prefixed(demo):
    jobs = by_key(demo)
    assert jobs["alpha"].name == "alpha-local"
    assert jobs["beta"].name == "beta"


def test_api_defaults_filled_and_bundle_only_keys_dropped(demo):
    beta = by_key(demo)["beta"].settings
    assert "permissions" not in beta
    assert beta["max_concurrent_runs"] == 1
    assert beta["queue"] == {"enabled": True}
    assert beta["deployment"]["kind"] == "BUNDLE"


def test_unknown_variable_override_is_rejected(demo):
    with pytest.raises(BundleError, match="not declared"):
        load_bundle(demo, variables={"nope": "x"}, environ={})


def test_unknown_target_is_rejected(demo):
    with pytest.raises(BundleError, match="target 'qa' is not defined"):
        load_bundle(demo, target="qa", environ={})


@pytest.mark.parametrize(
    ("fragment", "message"),
    [
        ("name: ${var.missing}", r"cannot resolve \$\{var.missing\}"),
        (
            "tasks: [{task_key: a, spark_python_task: {python_file: a.py, "
            "parameters: ['{{job.parameters.nope}}']}}]",
            "undefined job parameter",
        ),
        (
            "tasks: [{task_key: a, depends_on: [{task_key: b}], "
            "spark_python_task: {python_file: a.py}}, "
            "{task_key: b, depends_on: [{task_key: a}], spark_python_task: {python_file: b.py}}]",
            "cycle",
        ),
        (
            "tasks: [{task_key: a, depends_on: [{task_key: zz}], "
            "spark_python_task: {python_file: a.py}}]",
            "unknown task 'zz'",
        ),
        ("tasks: []", "has no tasks"),
    ],
)
def test_invalid_jobs_are_rejected(tmp_path, fragment, message):
    job = (
        fragment
        if fragment.startswith("tasks")
        else f"{fragment}\n      tasks: [{{task_key: t, spark_python_task: {{python_file: t.py}}}}]"
    )
    header = "bundle: {name: bad}\ntargets: {local: {}}\nresources:\n  jobs:\n    j:\n"
    root = write_bundle(tmp_path / "bad", f"{header}      {job}\n")
    with pytest.raises(BundleError, match=message):
        load_bundle(root, environ={})


def test_dynamic_values_and_topological_order():
    tasks = [
        {"task_key": "c", "depends_on": [{"task_key": "a"}, {"task_key": "b"}]},
        {"task_key": "b", "depends_on": [{"task_key": "a"}]},
        {"task_key": "a"},
    ]
    assert topological_order(tasks) == ["a", "b", "c"]
    resolved = resolve_dynamic_values(
        ["--d={{job.parameters.d}}", "{{ task.name }}", "{{job.unknown}}"],
        {"job.parameters.d": "2026-11-24", "task.name": "t"},
    )
    assert resolved == ["--d=2026-11-24", "t", "{{job.unknown}}"]


def test_every_task_stores_the_run_id_parameter_which_defaults_to_the_databricks_run_id():
    """History runs pass ``run_id=backfill``; a night leaves it at ``{{job.run_id}}``."""
    bundle = load_bundle(REPO_ROOT, environ={})
    for job in bundle.jobs.values():
        if job.resource_key == "migrate":
            continue
        assert job.parameter_defaults["run_id"] == "{{job.run_id}}", job.resource_key
        for parameters, expected in (({}, "4242"), ({"run_id": "backfill"}, "backfill")):
            values = {**job.parameter_defaults, **parameters}
            references = task_references(values, {"job.run_id": "4242"})
            for task in job.tasks:
                resolved = json.dumps(resolve_dynamic_values(task, references))
                assert f"--run-id={expected}" in resolved or f'"run_id": "{expected}"' in resolved

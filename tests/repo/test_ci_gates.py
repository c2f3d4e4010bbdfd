"""The gates of `.ci/run` fail when they should.

`.ci/run` runs `make test`: `make lint` (ruff with the AIR rules, ruff format, sqlfluff,
mypy), then pytest over the whole suite, which includes the DAG import and policy tests
(`test_ci_run_is_make_test_...` pins that chain). Each gate test breaks one thing in a
temporary copy of the repository (git's files, as a clean clone has them) and runs the real
gate there, asserting it fails and names the problem: `.ci/run` itself for the lint gates
(make stops at the first failing tool), the policy test module for a DAG import error and
policy violations, pytest for a failing test. All cases start at once, as subprocesses.

Also here: the offline half of bundle validation. `databricks bundle validate` needs a
workspace (CI does it, .github/workflows/ci.yml); locally every target of bundle.yml must
load with the repository's bundle loader and every job must be valid Jobs API settings.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
TOOLS = (
    "ruff",
    "sqlfluff",
    "mypy",
    "pytest",
    "check-jsonschema",
    "eodrisk",
)  # eodrisk: make superset
NOT_COPIED = {".git", ".venv", "var", "build", "dist", "spark-warehouse", "metastore_db"}
NOT_COPIED |= {"__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache", ".hypothesis"}
POLICY_MODULE = "tests/repo/test_dag_policy.py"
GATE_TIMEOUT_S = 240


@dataclass
class Gate:
    """One gate run in its own copy of the repository."""

    name: str
    copy: Path
    process: subprocess.Popen
    started: float
    output: str = ""
    returncode: int | None = None
    elapsed_s: float = 0.0

    def result(self) -> Gate:
        if self.returncode is None:
            self.output, _ = self.process.communicate(timeout=GATE_TIMEOUT_S)
            self.returncode = self.process.returncode
            self.elapsed_s = time.monotonic() - self.started
        return self


def repo_files() -> list[str]:
    """The files of the repository: git's tracked files (a clean clone: all of them)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True, check=False
    )
    if listed.returncode != 0:  # not a git checkout: everything but caches and the venv
        return [
            str(p.relative_to(REPO))
            for p in REPO.rglob("*")
            if p.is_file() and not NOT_COPIED & set(p.relative_to(REPO).parts)
        ]
    return [name for name in listed.stdout.split("\0") if name and (REPO / name).is_file()]


def copy_repo(dest: Path, files: list[str]) -> Path:
    """A copy of ``files`` with a `.venv/bin` of this venv's tools.

    The marker `.venv/bin/.installed` is newer than pyproject.toml (copied with its mtime),
    so make's bootstrap does not run: it would reinstall the editable package from the copy
    into the real venv.
    """
    for name in files:
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, dest / name)
    bin_dir = dest / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    for tool in TOOLS:
        (bin_dir / tool).symlink_to(VENV_BIN / tool)
    (bin_dir / ".installed").touch()
    return dest


def clean_env(copy: Path, **extra: str) -> dict[str, str]:
    """This process's environment without its test Airflow, pointed at the copy's code."""
    dropped = ("AIRFLOW", "EODRISK_", "PYTEST_", "MAKE")  # MAKEFLAGS/MAKELEVEL of `make test`
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    if "EODRISK_TEST_PG_DSN" in os.environ:
        env["EODRISK_TEST_PG_DSN"] = os.environ["EODRISK_TEST_PG_DSN"]
    env["PYTHONPATH"] = str(copy)  # the copy's eodrisk and tests, not the editable install
    env.update(extra)
    return env


def write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))


# ------------------------------------------------------------------------------------ cases
# name -> (what to break in the copy, command, extra environment)


def break_ruff(root: Path) -> None:
    # An Airflow 2 idiom the AIR rules refuse, and nothing else wrong with the file.
    write(
        root,
        "airflow/dags/eodrisk_dag/gate_probe.py",
        '''\
        """Gate probe."""

        from airflow.sdk import DAG

        DAG("gate_probe", schedule_interval="@daily")
        ''',
    )


def break_format(root: Path) -> None:
    write(root, "risk_models/gate_probe.py", '"""Gate probe."""\n\nX = {  "a":1 }\n')


def break_sql(root: Path) -> None:
    write(root, "sql/0999.gate-probe.sql", "SELECT 1 AS One;\n")


def break_types(root: Path) -> None:
    write(
        root,
        "risk_models/gate_probe.py",
        '''\
        """Gate probe."""


        def half(x: float) -> float:
            return x / 2


        HALF: int = half(1.0)
        ''',
    )


def break_dag_import(root: Path) -> None:
    write(
        root,
        "airflow/dags/gate_probe.py",
        '''\
        """An Airflow DAG file that cannot be imported."""

        from airflow.sdk import DAG
        from airflow.providers.databricks.operators.no_such_module import Operator
        ''',
    )


def break_retry_policy(root: Path) -> None:
    # eod_risk.yml itself refuses retries < 2 (an import error); a second DAG file that
    # imports fine, with owner, callback, timeout, tags and docs, but no retries, is what
    # only the policy test catches.
    write(
        root,
        "airflow/dags/gate_probe.py",
        '''\
        """A DAG whose task is never retried."""

        from datetime import timedelta

        import pendulum
        from airflow.providers.standard.operators.empty import EmptyOperator
        from airflow.sdk import DAG


        def alert(context):
            pass


        with DAG(
            "gate_probe",
            schedule=None,
            start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
            tags=["probe"],
            doc_md=__doc__,
            default_args={
                "owner": "risk-platform",
                "on_failure_callback": alert,
                "execution_timeout": timedelta(minutes=5),
                "retries": 0,
            },
        ):
            EmptyOperator(task_id="not_retried")
        ''',
    )


def break_top_level_io(root: Path) -> None:
    write(
        root,
        "airflow/dags/gate_probe.py",
        '''\
        """A tidy Airflow DAG that writes a file whenever it is parsed."""

        from pathlib import Path

        import pendulum
        from airflow.sdk import DAG

        Path(__file__).with_suffix(".parsed").write_text("parsed")

        with DAG(
            "gate_probe",
            schedule=None,
            start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
            tags=["probe"],
        ):
            pass
        ''',
    )


GATE_PROBE = "tests/models/test_gate_probe.py"


def break_a_test(root: Path) -> None:
    write(
        root,
        GATE_PROBE,
        """\
        def test_passes():
            assert True


        def test_fails():
            assert 1 + 1 == 3
        """,
    )


CI_RUN = ["bash", ".ci/run"]
POLICY = [str(VENV_BIN / "pytest"), POLICY_MODULE, "-m", "not integration", "-p", "no:randomly"]
# If a lint gate wrongly passed, `make test` would go on to pytest: keep that step instant.
LINT_ONLY = {"PYTEST_ARGS": "--version"}

CASES = {
    "ruff": (break_ruff, CI_RUN, LINT_ONLY),
    "ruff-format": (break_format, CI_RUN, LINT_ONLY),
    "sqlfluff": (break_sql, CI_RUN, LINT_ONLY),
    "mypy": (break_types, CI_RUN, LINT_ONLY),
    "dag-import-error": (break_dag_import, POLICY, {}),
    "retry-policy": (break_retry_policy, POLICY, {}),
    "top-level-io": (break_top_level_io, POLICY, {}),
    "failing-test": (
        break_a_test,
        [str(VENV_BIN / "pytest"), "tests/models/test_gate_probe.py"],
        {},
    ),
}


@pytest.fixture(scope="module")
def gates(tmp_path_factory) -> dict[str, Gate]:
    started = {}
    files = repo_files()
    for name, (breaker, command, extra_env) in CASES.items():
        copy = copy_repo(tmp_path_factory.mktemp(f"gate-{name}") / "repo", files)
        breaker(copy)
        process = subprocess.Popen(
            command,
            cwd=copy,
            env=clean_env(copy, **extra_env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        started[name] = Gate(name, copy, process, time.monotonic())
    yield started
    for gate in started.values():
        if gate.process.poll() is None:
            gate.process.kill()
            gate.process.wait()


def failed(gate: Gate) -> str:
    result = gate.result()
    assert result.returncode != 0, f"{gate.name}: the gate passed:\n{result.output[-3000:]}"
    return result.output


# ------------------------------------------------------------------------------------ lint gates


def test_ci_run_fails_on_a_ruff_error_including_airflow_rules(gates):
    output = failed(gates["ruff"])
    assert "AIR301" in output and "schedule_interval" in output
    assert "gate_probe.py" in output


def test_ci_run_fails_on_unformatted_code(gates):
    output = failed(gates["ruff-format"])
    assert "risk_models/gate_probe.py" in output and "1 file would be reformatted" in output


def test_ci_run_fails_on_a_sqlfluff_error(gates):
    output = failed(gates["sqlfluff"])
    assert "sql/0999.gate-probe.sql" in output
    assert "CP01" in output  # keywords must be lowercase


def test_ci_run_fails_on_a_type_error_in_the_models(gates):
    output = failed(gates["mypy"])
    assert "risk_models/gate_probe.py" in output and "[assignment]" in output


# ------------------------------------------------------------------------------------ test gates


def test_policy_tests_fail_on_a_dag_import_error(gates):
    output = failed(gates["dag-import-error"])
    assert f"FAILED {POLICY_MODULE}::test_dags_import_without_errors" in output
    assert "no_such_module" in output


def test_policy_tests_fail_on_a_retry_policy_violation(gates):
    output = failed(gates["retry-policy"])
    assert f"FAILED {POLICY_MODULE}::test_every_task_retries_with_exponential_backoff" in output
    assert "gate_probe.not_retried" in output
    # The DAG imports and meets the rest of the policy: only the retry rule fails.
    assert f"FAILED {POLICY_MODULE}::test_dags_import_without_errors" not in output
    assert f"FAILED {POLICY_MODULE}::test_every_task_has_owner_callback_and_timeout" not in output
    assert f"FAILED {POLICY_MODULE}::test_every_dag_has_tags_and_docs" not in output


def test_policy_tests_fail_on_top_level_io(gates):
    output = failed(gates["top-level-io"])
    assert f"FAILED {POLICY_MODULE}::test_parse_does_no_top_level_io" in output
    assert "TopLevelIOError" in output


def test_pytest_fails_on_a_failing_test(gates):
    output = failed(gates["failing-test"])
    assert f"FAILED {GATE_PROBE}::test_fails" in output
    assert "1 failed, 1 passed" in output


# ------------------------------------------------------------------------------------ the chain


def test_ci_run_is_make_test_and_make_test_is_lint_then_the_whole_suite():
    script = (REPO / ".ci" / "run").read_text()
    commands = [
        line.strip()
        for line in script.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert "set -euo pipefail" in commands
    assert any(c == "make test" or c.endswith(" make test") for c in commands), commands
    # Debian's chromium and Prometheus/Alertmanager are installed first, and their tests
    # are required (a skip would be a failure), then make test.
    make_test = commands.index("make test")
    for installer, required in (
        (".ci/install-chromium", "export EODRISK_REQUIRE_CHROMIUM=1"),
        (".ci/install-prometheus", "export EODRISK_REQUIRE_PROMETHEUS=1"),
        ("make superset", "export EODRISK_REQUIRE_SUPERSET=1"),
    ):
        assert commands.index(installer) < make_test, commands
        assert commands.index(required) < make_test, commands
        assert installer.startswith("make ") or os.access(REPO / installer, os.X_OK), installer
    dry = subprocess.run(
        ["make", "--no-print-directory", "-n", "-o", ".venv/bin/.installed", "test", "VENV=.venv"],
        cwd=REPO,
        env=clean_env(REPO),
        capture_output=True,
        text=True,
        check=True,
    )
    steps = [" ".join(line.split()) for line in dry.stdout.splitlines() if line.strip()]
    lint = [
        ".venv/bin/ruff check .",
        ".venv/bin/ruff format --check .",
        ".venv/bin/sqlfluff lint sql/ --dialect postgres",
        ".venv/bin/mypy risk_models",
    ]
    assert steps[: len(lint)] == lint, steps
    # then the whole suite: no marker, path or -k narrows it (more steps may follow)
    assert ".venv/bin/pytest" in steps[len(lint) :], steps


# ------------------------------------------------------------------------------------ bundle


def bundle_targets(root: Path = REPO) -> list[str]:
    return list(yaml.safe_load((root / "bundle.yml").read_text())["targets"])


def unknown_keys(sent: object, kept: object, path: str = "") -> list[str]:
    """Keys of ``sent`` that JobSettings.from_dict(...).as_dict() dropped: not Jobs API fields."""
    if isinstance(sent, dict) and isinstance(kept, dict):
        out = []
        for key, value in sent.items():
            if key not in kept:
                out.append(f"{path}/{key}")
            else:
                out += unknown_keys(value, kept[key], f"{path}/{key}")
        return out
    if isinstance(sent, list) and isinstance(kept, list):
        pairs = enumerate(zip(sent, kept, strict=True))
        return [k for i, (s, k_) in pairs for k in unknown_keys(s, k_, f"{path}[{i}]")]
    return []


def validate_bundle(root: Path, target: str) -> dict[str, list[str]]:
    from databricks.sdk.service.jobs import JobSettings

    from eodrisk.emulator.bundle import load_bundle

    bundle = load_bundle(root, target=target, environ={})
    problems = {}
    for job in bundle.jobs.values():
        settings = job.settings
        issues = unknown_keys(settings, JobSettings.from_dict(settings).as_dict())
        if "${" in str(settings):
            issues.append("unresolved ${...} reference")
        if not settings.get("tasks"):
            issues.append("no tasks")
        problems[job.name] = issues
    return problems


@pytest.mark.parametrize("target", bundle_targets())
def test_every_bundle_target_loads_and_every_job_is_valid_jobs_api_settings(target):
    problems = validate_bundle(REPO, target)
    assert problems, f"target {target} has no jobs"
    assert {name: p for name, p in problems.items() if p} == {}


def test_bundle_check_catches_a_misspelt_job_field(tmp_path):
    write(
        tmp_path,
        "bundle.yml",
        """\
        bundle: {name: probe}
        targets: {dev: {mode: development}}
        resources:
          jobs:
            probe:
              name: probe
              max_concurent_runs: 1
              tasks:
                - task_key: only
                  spark_python_task: {python_file: ./x.py}
                  timout_seconds: 60
        """,
    )
    assert validate_bundle(tmp_path, "dev") == {
        "probe": ["/max_concurent_runs", "/tasks[0]/timout_seconds"]
    }

"""The Databricks Runtime of a job cluster, as a local virtualenv the emulator's workers run in.

Two cached layers, both outside the repository (``$EODRISK_RUNTIME_CACHE``, default
``~/.cache/eodrisk``), so a clean clone and CI on the same machine reuse them:

1. **runtime** (``runtimes/<key>``, key = a digest of the :class:`RuntimeSpec`): a virtualenv
   holding what the Databricks Runtime of the cluster spec's ``spark_version`` ships and the
   jobs rely on -- pyspark and the runtime's numpy, pandas, pyarrow and scipy, at the
   versions of its release notes. Built once per machine (minutes: pyspark is large).
2. **cluster** (``clusters/<key>``, key = runtime key + the artifacts' content + the driver
   harness): a hard-linked copy of the runtime (seconds) into which the bundle's built
   artifacts are pip-installed with the dependencies they declare, exactly what a cluster
   installs from a task's ``libraries``. An undeclared dependency is missing here as it is
   on a cluster; the local platform (``eodrisk``), Airflow and pgserver are never present.

The artifacts are built with the bundle's own ``artifacts.<name>.build`` command, run in the
artifact's ``path`` (see :func:`build_artifacts`). A driver harness (:mod:`.driver`) is
copied into the cluster; it is what the worker processes run (``<cluster>/bin/python
<cluster>/harness/driver.py``), from a working directory outside the repository.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("eodrisk.emulator.runtime")

CACHE_ENV = "EODRISK_RUNTIME_CACHE"
HARNESS_PACKAGE = "emulator_driver"
READY_MARKER = ".ready"
# Cluster envs not used for this long are removed when a new one is made (runtimes are kept).
CLUSTER_IDLE_S = 6 * 3600.0
INSTALL_TIMEOUT_S = 1800.0
_DRIVER_SOURCES = Path(__file__).with_name("driver")
# (folder, command) of the artifacts built by this process: an emulator started again in the
# same process (a test session) deploys the same sources, so it reuses the build.
_BUILT: set[tuple[str, str]] = set()


@dataclass(frozen=True)
class RuntimeSpec:
    """A Databricks Runtime as the jobs see it: its Python and its preinstalled libraries."""

    spark_version: str
    python: str
    packages: tuple[str, ...]
    note: str = ""

    @property
    def key(self) -> str:
        return _digest(json.dumps(asdict(self), sort_keys=True).encode())


# Databricks Runtime 17.3 LTS release notes, "System environment" and "Installed Python
# libraries": Python 3.12.3, Apache Spark 4.0.0, numpy 2.1.3, pandas 2.2.3, pyarrow 19.0.1,
# scipy 1.15.1. This machine has no Python 3.12, so the runtime env uses the platform's 3.11
# (the jobs' requires-python covers both); every library version is the runtime's.
RUNTIMES: dict[str, RuntimeSpec] = {
    "17.3.x-scala2.13": RuntimeSpec(
        spark_version="17.3.x-scala2.13",
        python=f"{sys.version_info.major}.{sys.version_info.minor}",
        packages=(
            "pyspark==4.0.0",
            "numpy==2.1.3",
            "pandas==2.2.3",
            "pyarrow==19.0.1",
            "scipy==1.15.1",
        ),
        note="DBR 17.3 LTS ships Python 3.12.3; emulated with this machine's Python",
    ),
}
# Bundles without a cluster spec (the emulator's test fixture) run on the pipeline's runtime.
DEFAULT_SPARK_VERSION = "17.3.x-scala2.13"


class RuntimeBuildError(RuntimeError):
    """A runtime or cluster environment could not be built."""


def cache_root() -> Path:
    configured = os.environ.get(CACHE_ENV)
    base = Path(configured) if configured else Path.home() / ".cache" / "eodrisk"
    return base.expanduser().resolve()


def runtime_for(spark_versions: Iterable[str]) -> RuntimeSpec:
    """The one runtime the bundle's clusters ask for (the emulator runs one pool)."""
    versions = sorted(set(spark_versions)) or [DEFAULT_SPARK_VERSION]
    unknown = [v for v in versions if v not in RUNTIMES]
    if unknown:
        raise RuntimeBuildError(
            f"spark_version {', '.join(unknown)} has no local runtime "
            f"(eodrisk/emulator/runtime.py RUNTIMES knows {', '.join(sorted(RUNTIMES))})"
        )
    if len(versions) > 1:
        raise RuntimeBuildError(f"the bundle's clusters ask for several runtimes: {versions}")
    return RUNTIMES[versions[0]]


def runtime_env(spec: RuntimeSpec, root: Path | None = None) -> Path:
    """The runtime virtualenv of ``spec``, built on first use and cached by its key."""
    env = (root or cache_root()) / "runtimes" / spec.key
    with _locked(env):
        if (env / READY_MARKER).is_file():
            return env
        started = time.perf_counter()
        shutil.rmtree(env, ignore_errors=True)  # a half-built env of a killed build
        _run([sys.executable, "-m", "venv", str(env)], "create the runtime virtualenv")
        _pip(env, ["install", *spec.packages], f"install the runtime's libraries {spec.packages}")
        (env / "runtime.json").write_text(json.dumps(asdict(spec), indent=2))
        (env / READY_MARKER).write_text(f"{time.perf_counter() - started:.1f}\n")
        log.info("built runtime %s in %.0f s", spec.spark_version, time.perf_counter() - started)
    return env


def cluster_env(spec: RuntimeSpec, wheels: list[Path], root: Path | None = None) -> Path:
    """The runtime with ``wheels`` installed (and what they declare) plus the driver harness."""
    root = root or cache_root()
    runtime = runtime_env(spec, root)
    harness = sorted(_DRIVER_SOURCES.glob("*.py"))
    key = _digest(
        spec.key.encode()
        + b"".join(_wheel_digest(w).encode() for w in wheels)
        + b"".join(p.name.encode() + p.read_bytes() for p in harness)
    )
    env = root / "clusters" / key
    with _locked(env):
        if (env / READY_MARKER).is_file():
            os.utime(env / READY_MARKER)
            return env
        _prune_clusters(env.parent, keep=env)
        started = time.perf_counter()
        shutil.rmtree(env, ignore_errors=True)
        # Hard links: seconds, and the runtime's files are shared, never modified (pip
        # replaces files, it does not write into them).
        _run(["cp", "-al", str(runtime), str(env)], "copy the runtime")
        (env / READY_MARKER).unlink()
        if wheels:
            _pip(env, ["install", *map(str, wheels)], "install the bundle's artifacts")
        package = env / "harness" / HARNESS_PACKAGE
        package.mkdir(parents=True)
        for source in harness:
            shutil.copy2(source, package / source.name)
        (env / "harness" / "driver.py").write_text(
            f"import sys\n\nfrom {HARNESS_PACKAGE}.process import worker_main\n\n"
            "sys.exit(worker_main(sys.argv[1:]))\n"
        )
        (env / READY_MARKER).write_text(f"{time.perf_counter() - started:.1f}\n")
        log.info("built cluster env %s in %.0f s", key, time.perf_counter() - started)
    return env


def python_of(env: Path) -> Path:
    return env / "bin" / "python"


def driver_script(env: Path) -> Path:
    return env / "harness" / "driver.py"


def build_artifacts(
    root: Path, artifacts: Mapping[str, Any], library_globs: list[str]
) -> list[Path]:
    """Run each artifact's ``build`` command in its ``path``; return the wheels tasks attach.

    As ``databricks bundle deploy`` does: the command runs in a shell in the artifact's
    folder (relative to the bundle root); the tasks' ``libraries: [{whl: GLOB}]`` (relative
    to the bundle root once loaded) name what gets installed. Once per process and artifact
    (a pip build takes 10-70 s on a loaded 2-core machine).
    """
    for name, artifact in sorted(artifacts.items()):
        command = artifact.get("build")
        folder = (root / str(artifact.get("path", "."))).resolve()
        if not command or (str(folder), command) in _BUILT:
            continue
        # The build runs with the platform's Python first on PATH, like an activated venv.
        path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
        env = {**os.environ, "PATH": path}
        started = time.perf_counter()
        done = subprocess.run(
            command, shell=True, cwd=folder, env=env, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise RuntimeBuildError(
                f"artifact {name!r}: `{command}` failed in {folder} (exit {done.returncode}):\n"
                f"{(done.stdout + done.stderr)[-4000:]}"
            )
        _BUILT.add((str(folder), command))
        log.info("built artifact %s in %.1f s", name, time.perf_counter() - started)
    wheels: list[Path] = []
    for pattern in library_globs:
        matches = sorted(root.glob(pattern))
        if not matches:
            raise RuntimeBuildError(f"library {pattern} matches no file under {root}")
        wheels.extend(m for m in matches if m not in wheels)
    return wheels


def _wheel_digest(wheel: Path) -> str:
    """A digest of a wheel's members (names and bytes, not zip timestamps): stable rebuilds."""
    h = hashlib.sha256()
    with zipfile.ZipFile(wheel) as archive:
        for name in sorted(archive.namelist()):
            h.update(name.encode() + b"\0" + archive.read(name))
    return h.hexdigest()


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _pip(env: Path, args: list[str], what: str) -> None:
    _run(
        [str(python_of(env)), "-m", "pip", "--disable-pip-version-check", "--no-input", *args],
        what,
    )


def _run(command: list[str], what: str) -> None:
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, check=False
    )
    if done.returncode != 0:
        raise RuntimeBuildError(f"could not {what}: {' '.join(command)}\n{done.stderr[-4000:]}")


@contextlib.contextmanager
def _locked(env: Path) -> Iterator[None]:
    """One builder per environment across processes (parallel test runs, engineers)."""
    env.parent.mkdir(parents=True, exist_ok=True)
    with open(env.parent / f"{env.name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _prune_clusters(folder: Path, keep: Path) -> None:
    """Remove cluster envs idle for :data:`CLUSTER_IDLE_S` (each code change makes one)."""
    cutoff = time.time() - CLUSTER_IDLE_S
    for env in folder.iterdir():
        marker = env / READY_MARKER
        if env == keep or not env.is_dir() or not marker.is_file():
            continue
        if marker.stat().st_mtime < cutoff:
            shutil.rmtree(env, ignore_errors=True)

"""Load the jobs of a Databricks Asset Bundle, resolved for one target.

The bundle root holds ``databricks.yml`` (or ``bundle.yml``) plus the files its ``include:``
globs name. Resolution follows ``databricks bundle validate``:

* ``resources.jobs`` of every file are gathered; the target's ``resources`` are merged on top
  (mappings deep-merged, ``tasks`` merged by ``task_key``, ``job_clusters`` by
  ``job_cluster_key``, other lists replaced);
* variables take, from strongest to weakest: explicit overrides (constructor / ``--var``),
  ``BUNDLE_VAR_<name>`` environment variables, the target's ``variables:``, the default;
* ``${var.NAME}``, ``${bundle.name}``, ``${bundle.target}`` and ``${workspace.host}`` are
  substituted; any other ``${...}`` reference is an error.

Compute is not emulated: ``job_clusters``, ``new_cluster``, ``instance_pool_id`` and task
retry settings are kept in the job settings (``jobs/get`` shows them, as deployed) but every
task runs on the emulator's warm worker processes, which behave like one instance pool. A
variable defined by ``lookup:`` (an instance pool by name) resolves to ``lookup:<kind>:<name>``.

Development-mode name prefixing (``[dev user] name``) is deliberately NOT applied: the
emulator's target ``local`` keeps every job's ``name:`` verbatim so the DAG finds
``eodrisk-ingest-trades`` by name exactly as it would in production.

Job ids are assigned once per state directory (see :func:`assign_job_ids`): existing resource
keys keep their id, new keys get the next one, so runs stored on disk keep pointing at the
right job when the bundle grows.
"""

from __future__ import annotations

import copy
import json
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

BUNDLE_FILE_NAMES = ("databricks.yml", "databricks.yaml", "bundle.yml", "bundle.yaml")
FIRST_JOB_ID = 541_276_309_180_001
KEYED_LISTS = {"tasks": "task_key", "job_clusters": "job_cluster_key", "parameters": "name"}
BUNDLE_ONLY_KEYS = ("permissions",)

_INTERPOLATION = re.compile(r"\$\{([^}]+)\}")
_DYNAMIC_REFERENCE = re.compile(r"\{\{\s*([^}]+?)\s*\}\}")
_DYNAMIC_NAMESPACES = (
    "job.id",
    "job.name",
    "job.run_id",
    "job.repair_count",
    "task.name",
    "task.run_id",
    "task.execution_count",
)


class BundleError(ValueError):
    """The bundle cannot be loaded or resolved for the requested target."""


@dataclass(frozen=True)
class JobDefinition:
    """One deployed job: its id, bundle resource key and Jobs API ``JobSettings`` dict."""

    job_id: int
    resource_key: str
    settings: dict[str, Any]
    created_time: int

    @property
    def name(self) -> str:
        return str(self.settings["name"])

    @property
    def tasks(self) -> list[dict[str, Any]]:
        return list(self.settings.get("tasks", []))

    @property
    def parameter_defaults(self) -> dict[str, str]:
        return {p["name"]: str(p.get("default", "")) for p in self.settings.get("parameters", [])}


@dataclass(frozen=True)
class Bundle:
    """The resolved bundle: name, target, root folder and its jobs by id."""

    name: str
    target: str
    root: Path
    variables: dict[str, str]
    jobs: dict[int, JobDefinition] = field(default_factory=dict)
    artifacts: dict[str, Any] = field(default_factory=dict)

    def job(self, job_id: int) -> JobDefinition | None:
        return self.jobs.get(job_id)

    @property
    def wheel_libraries(self) -> list[str]:
        """The ``libraries: [{whl: ...}]`` of every task, relative to the bundle root."""
        found = [
            str(library["whl"])
            for job in self.jobs.values()
            for task in job.tasks
            for library in task.get("libraries") or []
            if "whl" in library
        ]
        return sorted(set(found))

    @property
    def spark_versions(self) -> list[str]:
        """The runtimes the jobs' clusters ask for (``new_cluster.spark_version``)."""
        found = [
            str(cluster["new_cluster"]["spark_version"])
            for job in self.jobs.values()
            for cluster in job.settings.get("job_clusters") or []
            if "spark_version" in (cluster.get("new_cluster") or {})
        ]
        return sorted(set(found))


def load_bundle(
    root: Path,
    *,
    target: str = "local",
    variables: Mapping[str, str] | None = None,
    job_ids_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Bundle:
    """Read, merge and resolve the bundle at ``root`` for ``target``.

    ``job_ids_file`` persists the resource key → job id map (see :func:`assign_job_ids`);
    without it ids follow the sorted resource keys from :data:`FIRST_JOB_ID`.
    """
    root = root.resolve()
    document = _read_yaml(_bundle_file(root))
    for extra in _included_files(root, document.get("include", [])):
        _merge_included(document, _read_yaml(extra), extra, root)

    bundle_name = str((document.get("bundle") or {}).get("name", root.name))
    target_doc = _target(document, target)
    resolved_vars = _resolve_variables(
        document.get("variables") or {},
        target_doc.get("variables") or {},
        variables or {},
        os.environ if environ is None else environ,
    )
    context = {
        "bundle.name": bundle_name,
        "bundle.target": target,
        "workspace.host": str((target_doc.get("workspace") or {}).get("host", "")),
        **{f"var.{k}": v for k, v in resolved_vars.items()},
    }
    raw_jobs = _deep_merge(
        (document.get("resources") or {}).get("jobs") or {},
        (target_doc.get("resources") or {}).get("jobs") or {},
    )
    known = load_job_ids(job_ids_file) if job_ids_file is not None else {}
    ids = assign_job_ids(sorted(raw_jobs), known)
    if job_ids_file is not None and ids != known:
        save_job_ids(job_ids_file, ids)
    created = int(time.time() * 1000)
    jobs: dict[int, JobDefinition] = {}
    run_as = _run_as(_interpolate(target_doc.get("run_as") or {}, context))
    for key in sorted(raw_jobs):
        settings = _job_settings(key, _interpolate(raw_jobs[key], context), bundle_name, target)
        if run_as:
            settings["run_as"] = dict(run_as)
        jobs[ids[key]] = JobDefinition(ids[key], key, settings, created)
    artifacts = _interpolate(document.get("artifacts") or {}, context)
    return Bundle(bundle_name, target, root, resolved_vars, jobs, artifacts)


def assign_job_ids(resource_keys: list[str], known: Mapping[str, int]) -> dict[str, int]:
    """Keep the ids in ``known``; give new resource keys (sorted) the next free ids."""
    ids = dict(known)
    next_id = max(ids.values(), default=FIRST_JOB_ID - 1) + 1
    for key in sorted(resource_keys):
        if key not in ids:
            ids[key] = next_id
            next_id += 1
    return ids


def load_job_ids(path: Path) -> dict[str, int]:
    """Read the resource key → job id map persisted in ``path`` (empty when absent)."""
    if not path.exists():
        return {}
    return {str(k): int(v) for k, v in json.loads(path.read_text()).items()}


def save_job_ids(path: Path, ids: Mapping[str, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(dict(sorted(ids.items())), indent=2))
    os.replace(tmp, path)


def _bundle_file(root: Path) -> Path:
    for name in BUNDLE_FILE_NAMES:
        if (root / name).is_file():
            return root / name
    raise BundleError(f"no {' / '.join(BUNDLE_FILE_NAMES)} in {root}")


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        content = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise BundleError(f"{path}: invalid YAML: {exc}") from exc
    if not isinstance(content, dict):
        raise BundleError(f"{path}: top level must be a mapping")
    return content


def _included_files(root: Path, patterns: list[str]) -> list[Path]:
    files: list[Path] = []
    for pattern in patterns:
        matches = sorted(p for p in root.glob(pattern) if p.is_file())
        files.extend(m for m in matches if m not in files)
    return files


def _merge_included(
    document: dict[str, Any], extra: dict[str, Any], path: Path, root: Path
) -> None:
    """Add an included file's jobs and variables; a name defined twice is an error."""
    jobs = (extra.get("resources") or {}).get("jobs") or {}
    sections = (
        (
            document.setdefault("resources", {}).setdefault("jobs", {}),
            "jobs",
            {key: _translate_paths(job, path.parent, root) for key, job in jobs.items()},
        ),
        (document.setdefault("variables", {}), "variable", extra.get("variables") or {}),
    )
    for existing, kind, incoming in sections:
        for name, value in incoming.items():
            if name in existing:
                raise BundleError(f"{path}: {kind} {name!r} is already defined")
            existing[name] = value


def _translate_paths(job: Mapping[str, Any], base: Path, root: Path) -> dict[str, Any]:
    """Make ``python_file`` / ``notebook_path`` / ``libraries.whl`` relative to the bundle root.

    As in ``databricks bundle deploy``, a relative path is relative to the file that
    defines it; the emulator resolves the translated path against the bundle root.
    """
    job = copy.deepcopy(dict(job))
    for task in job.get("tasks") or []:
        specs = [
            (task.get("spark_python_task") or {}, "python_file"),
            (task.get("notebook_task") or {}, "notebook_path"),
            *((library, "whl") for library in task.get("libraries") or []),
        ]
        for spec, key in specs:
            path = spec.get(key)
            if isinstance(path, str) and not _is_absolute_or_remote(path):
                spec[key] = os.path.relpath(base / path, root)
    return job


def _is_absolute_or_remote(path: str) -> bool:
    return path.startswith("/") or "://" in path or path.startswith("${")


def _target(document: dict[str, Any], target: str) -> dict[str, Any]:
    targets = document.get("targets") or {}
    if target not in targets:
        raise BundleError(f"target {target!r} is not defined (have: {', '.join(sorted(targets))})")
    return targets[target] or {}


def _resolve_variables(
    declared: Mapping[str, Any],
    target_values: Mapping[str, Any],
    overrides: Mapping[str, str],
    environ: Mapping[str, str],
) -> dict[str, str]:
    unknown = sorted(set(overrides) - set(declared))
    if unknown:
        raise BundleError(f"variable(s) not declared in the bundle: {', '.join(unknown)}")
    values: dict[str, str] = {}
    for name, spec in declared.items():
        default = spec.get("default") if isinstance(spec, Mapping) else spec
        lookup = spec.get("lookup") if isinstance(spec, Mapping) else None
        if default is None and isinstance(lookup, Mapping):
            default = _lookup_placeholder(lookup)
        target_value = target_values.get(name)
        if isinstance(target_value, Mapping):
            target_value = target_value.get("default")
        for candidate in (
            overrides.get(name),
            environ.get(f"BUNDLE_VAR_{name}"),
            target_value,
            default,
        ):
            if candidate is not None:
                values[name] = str(candidate)
                break
        else:
            raise BundleError(f"no value assigned to required variable {name!r}")
    return _resolve_variable_references(values)


def _lookup_placeholder(lookup: Mapping[str, Any]) -> str:
    """``lookup: {instance_pool: name}`` needs a workspace; locally it stands for itself.

    ``databricks bundle deploy`` resolves it to the object's id; the emulator has no such
    objects (cluster specs are ignored), so the value only has to be recognisable.
    """
    kind, name = next(iter(lookup.items()))
    return f"lookup:{kind}:{name}"


def _resolve_variable_references(values: dict[str, str]) -> dict[str, str]:
    """Variables may reference other variables (``${var.other}``); resolve to a fixed point."""
    context = {f"var.{k}": v for k, v in values.items()}
    for _ in range(len(values) + 1):
        resolved = {
            k: _interpolate_string(v, context, allow_unresolved=True) for k, v in values.items()
        }
        if resolved == values:
            return resolved
        values = resolved
        context = {f"var.{k}": v for k, v in values.items()}
    raise BundleError("variables reference each other in a cycle")


def _deep_merge(base: Any, override: Any, list_key: str | None = None) -> Any:
    if isinstance(base, Mapping) and isinstance(override, Mapping):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = _deep_merge(base.get(key), value, KEYED_LISTS.get(key))
        return merged
    if _is_keyed_list(base, list_key) and _is_keyed_list(override, list_key):
        by_key = {item[list_key]: item for item in base}
        merged_list = list(base)
        for item in override:
            key = item[list_key]
            if key in by_key:
                index = merged_list.index(by_key[key])
                merged_list[index] = _deep_merge(by_key[key], item)
            else:
                merged_list.append(item)
        return merged_list
    return copy.deepcopy(override if override is not None else base)


def _is_keyed_list(value: Any, key: str | None) -> bool:
    return (
        key is not None
        and isinstance(value, list)
        and all(isinstance(item, Mapping) and key in item for item in value)
    )


def _interpolate(value: Any, context: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return _interpolate_string(value, context, allow_unresolved=False)
    if isinstance(value, Mapping):
        return {k: _interpolate(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, context) for v in value]
    return value


def _interpolate_string(text: str, context: Mapping[str, str], *, allow_unresolved: bool) -> str:
    def replace(match: re.Match[str]) -> str:
        reference = match.group(1).strip()
        if reference in context:
            return context[reference]
        if allow_unresolved:
            return match.group(0)
        raise BundleError(f"cannot resolve ${{{reference}}}: not a known variable or bundle field")

    return _INTERPOLATION.sub(replace, text)


def _run_as(run_as: Mapping[str, Any]) -> dict[str, str]:
    """The target's ``run_as`` identity, which deploy writes into every job's settings.

    An identity whose value is still empty (``service_principal_name`` not supplied) is left
    out, so a target can be inspected without it; ``databricks bundle validate`` refuses it.
    """
    identity = {k: str(v) for k, v in run_as.items()}
    return identity if identity and all(v.strip() for v in identity.values()) else {}


def _job_settings(key: str, raw: Mapping[str, Any], bundle: str, target: str) -> dict[str, Any]:
    """Turn a bundle job resource into Jobs API ``JobSettings`` with API defaults filled in."""
    settings = {k: v for k, v in raw.items() if k not in BUNDLE_ONLY_KEYS}
    settings.setdefault("name", key)
    settings.setdefault("max_concurrent_runs", 1)
    settings.setdefault("timeout_seconds", 0)
    settings.setdefault("queue", {"enabled": True})
    settings.setdefault("format", "MULTI_TASK")
    settings.setdefault("email_notifications", {})
    settings["edit_mode"] = "UI_LOCKED"
    settings["deployment"] = {
        "kind": "BUNDLE",
        "metadata_file_path": f"/Workspace/.bundle/{bundle}/{target}/state/metadata.json",
    }
    _validate_job(key, settings)
    return settings


def _validate_job(key: str, settings: Mapping[str, Any]) -> None:
    tasks = settings.get("tasks") or []
    if not tasks:
        raise BundleError(f"job {key!r} has no tasks")
    keys = [t.get("task_key") for t in tasks]
    if None in keys or len(set(keys)) != len(keys):
        raise BundleError(f"job {key!r}: every task needs a unique task_key")
    parameters = {p["name"] for p in settings.get("parameters", [])}
    for task in tasks:
        for dependency in task.get("depends_on", []):
            if dependency.get("task_key") not in keys:
                raise BundleError(
                    f"job {key!r}: task {task['task_key']!r} depends on unknown task "
                    f"{dependency.get('task_key')!r}"
                )
        _validate_references(key, task, parameters)
    topological_order(tasks)


def _validate_references(job_key: str, task: Mapping[str, Any], parameters: set[str]) -> None:
    for reference in _DYNAMIC_REFERENCE.findall(json.dumps(task)):
        if reference.startswith("job.parameters."):
            if reference.removeprefix("job.parameters.") not in parameters:
                raise BundleError(
                    f"job {job_key!r}: task {task['task_key']!r} references undefined job "
                    f"parameter {{{{{reference}}}}}"
                )
        elif reference not in _DYNAMIC_NAMESPACES:
            raise BundleError(
                f"job {job_key!r}: unsupported dynamic value reference {{{{{reference}}}}}"
            )


def topological_order(tasks: list[Mapping[str, Any]]) -> list[str]:
    """Task keys in an order where every task follows its dependencies; cycles are errors."""
    pending = {t["task_key"]: {d["task_key"] for d in t.get("depends_on", [])} for t in tasks}
    order: list[str] = []
    while pending:
        ready = sorted(k for k, deps in pending.items() if deps <= set(order))
        if not ready:
            raise BundleError(f"tasks depend on each other in a cycle: {sorted(pending)}")
        order.extend(ready)
        for key in ready:
            del pending[key]
    return order


def task_references(
    job_parameters: Mapping[str, str], run_references: Mapping[str, str]
) -> dict[str, str]:
    """The dynamic value references of a run's tasks: the run's own (``job.run_id``, ...)
    and ``job.parameters.<name>``, whose value may itself reference the run's (a default of
    ``{{job.run_id}}``)."""
    return {
        **run_references,
        **{
            f"job.parameters.{k}": resolve_dynamic_values(v, run_references)
            for k, v in job_parameters.items()
        },
    }


def resolve_dynamic_values(value: Any, references: Mapping[str, str]) -> Any:
    """Replace ``{{job.parameters.x}}``-style references inside task settings."""
    if isinstance(value, str):
        return _DYNAMIC_REFERENCE.sub(lambda m: references.get(m.group(1), m.group(0)), value)
    if isinstance(value, list):
        return [resolve_dynamic_values(v, references) for v in value]
    if isinstance(value, Mapping):
        return {k: resolve_dynamic_values(v, references) for k, v in value.items()}
    return value

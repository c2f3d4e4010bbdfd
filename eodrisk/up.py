"""``eodrisk up`` / ``eodrisk down``: the local platform, kept running in the background.

``up`` starts a supervisor process, detached from the terminal, that runs
:func:`eodrisk.platform.local_platform` with Airflow's own components (``airflow=True``)
under the data directory and keeps it up until ``down``: Postgres, the Slack sink, the
Databricks emulator on its documented port (:data:`EMULATOR_PORT`), Airflow's API server
and UI on :data:`~eodrisk.airflow_services.AIRFLOW_PORT` (free ports when those are taken,
said when it happens), scheduler, triggerer and DAG processor.

The supervisor writes ``DATA_DIR/platform.json`` once everything is healthy — its pid, the
URLs, the Airflow user and where its password is, the Postgres DSN — and removes it when it
stops; ``DATA_DIR/platform.log`` is its log. A second ``up`` finds the file and its live
process and says the platform is already up. ``down`` sends the supervisor SIGTERM: it
stops Airflow, then the emulator, the sink and Postgres, in that order.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from eodrisk.airflow_local import DAG_ID
from eodrisk.emulator.cli import DEFAULT_PORT as EMULATOR_PORT

STATE_FILE = "platform.json"
LOG_FILE = "platform.log"
#: how long ``up`` waits for a cold start (migrations, Airflow's first DAG parse)
START_TIMEOUT_S = 900
STOP_TIMEOUT_S = 120


def state_path(data_dir: Path) -> Path:
    return Path(data_dir).resolve() / STATE_FILE


def read_state(data_dir: Path, *, starting: bool = False) -> dict[str, Any] | None:
    """The running platform's state, or None when it is not up (a stale file of a process
    that died is removed). With ``starting``, also the state of a platform whose jobs serve
    while Airflow starts (it has ``"starting": "airflow"`` and no Airflow URL)."""
    path = state_path(data_dir)
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not _alive(state.get("pid")):
        path.unlink(missing_ok=True)
        return None
    return state if starting or "starting" not in state else None


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie (our own child not yet reaped) is not up
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def airflow_password(state: dict[str, Any]) -> str:
    """The Airflow user's password (kept in the Airflow home, never printed)."""
    return json.loads(Path(state["airflow_password_file"]).read_text())[state["airflow_user"]]


def airflow_run_url(state: dict[str, Any], run_id: str, dag_id: str = DAG_ID) -> str:
    """The Airflow UI's page of one DAG run: its grid and task instances."""
    from urllib.parse import quote

    return f"{state['urls']['airflow']}/dags/{dag_id}/runs/{quote(run_id, safe='')}"


def describe(state: dict[str, Any]) -> str:
    """What a user opens and how to stop it, one line each (commands run as printed)."""
    urls = state["urls"]
    lines = [
        f"Airflow UI and REST API: {urls['airflow']} (user {state['airflow_user']}, "
        f"password in {state['airflow_password_file']})",
        f"Databricks emulator (run pages): {urls['databricks']}",
        f"Slack sink (messages page): {urls['slack']}",
        f"Postgres: {state['postgres']}",
        f"Logs: {state['log']} and {state['airflow_logs']}",
        f"Stop it with: {_eodrisk()} down --data-dir {state['data_dir']}",
    ]
    return "\n".join(lines)


def _eodrisk() -> str:
    return str(Path(sys.executable).with_name("eodrisk"))


def up(
    data_dir: Path, *, timeout_s: float = START_TIMEOUT_S, quiet: bool = False, jobs: bool = False
) -> dict:
    """Start the platform in the background unless it is up or starting; return its state
    once it is up — with ``jobs``, as soon as Postgres and the Databricks emulator serve, while
    Airflow may still be starting (:func:`wait_up` waits for the rest)."""
    data_dir = Path(data_dir).resolve()
    state = read_state(data_dir, starting=True)
    if state is not None and "starting" not in state:
        if not quiet:
            print(f"the platform under {data_dir} is already up (pid {state['pid']}):")
            print(describe(state))
        return state
    supervisor = None
    log = data_dir / LOG_FILE
    started = time.perf_counter()
    if state is None:
        data_dir.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            supervisor = subprocess.Popen(
                [sys.executable, "-m", __name__, "--data-dir", str(data_dir)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # outlives this command and its terminal
            )
        if not quiet:
            print(f"starting the local platform under {data_dir} (log: {log}) ...", flush=True)
    try:
        state = wait_up(data_dir, timeout_s=timeout_s, jobs=jobs, supervisor=supervisor)
    except BaseException:
        if supervisor is not None and supervisor.poll() is None:
            supervisor.send_signal(signal.SIGTERM)
            supervisor.wait(timeout=STOP_TIMEOUT_S)
        raise
    if not quiet and "starting" not in state:
        print(f"the platform is up ({time.perf_counter() - started:.0f}s):")
        for line in taken_ports(state):
            print(line)
        print(describe(state))
    return state


def wait_up(
    data_dir: Path,
    *,
    timeout_s: float = START_TIMEOUT_S,
    jobs: bool = False,
    supervisor: subprocess.Popen | None = None,
) -> dict:
    """The state of the platform starting under ``data_dir`` once it is up (with ``jobs``:
    once its jobs serve); raises when its supervisor (``supervisor``, or the one the state
    file names) exits first or after ``timeout_s``."""
    data_dir = Path(data_dir).resolve()
    log = data_dir / LOG_FILE
    deadline = time.monotonic() + timeout_s
    while True:
        state = read_state(data_dir, starting=True)
        if state is not None and (jobs or "starting" not in state):
            return state
        if supervisor is not None and supervisor.poll() is not None:
            raise RuntimeError(
                f"the platform did not start (exit {supervisor.returncode}):\n" + _tail(log)
            )
        if supervisor is None and state is None:
            raise RuntimeError(
                f"the platform under {data_dir} stopped while starting:\n" + _tail(log)
            )
        if time.monotonic() > deadline:
            raise TimeoutError(f"the platform is not up after {timeout_s:.0f}s; see {log}")
        time.sleep(0.5)


def taken_ports(state: dict[str, Any]) -> list[str]:
    """A line for each documented port that was taken, so a free one serves instead."""
    from urllib.parse import urlsplit

    from eodrisk.airflow_services import AIRFLOW_PORT

    lines = []
    for key, name, documented in (
        ("airflow", "Airflow", AIRFLOW_PORT),
        ("databricks", "the Databricks emulator", EMULATOR_PORT),
    ):
        port = urlsplit(state["urls"][key]).port
        if port != documented:
            lines.append(
                f"port {documented} was taken: {name} serves on {port} instead "
                "(links of this platform's runs carry that port)"
            )
    return lines


def down(data_dir: Path, *, timeout_s: float = STOP_TIMEOUT_S) -> bool:
    """Stop the platform (up or starting); False when it was not up."""
    state = read_state(data_dir, starting=True)
    if state is None:
        return False
    pid = state["pid"]
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while _alive(pid):
        if time.monotonic() > deadline:
            os.killpg(pid, signal.SIGKILL)  # its group: Postgres and Airflow's children too
            break
        time.sleep(0.5)
    state_path(data_dir).unlink(missing_ok=True)
    return True


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def serve(data_dir: Path) -> None:
    """The supervisor: run the platform until SIGTERM/SIGINT, with the state file while up."""
    from eodrisk.airflow_services import AIRFLOW_PORT, USERNAME, choose_port
    from eodrisk.platform import local_platform
    from eodrisk.postgres_server import describe as describe_dsn

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    emulator_port = choose_port(EMULATOR_PORT)
    if emulator_port != EMULATOR_PORT:
        print(f"port {EMULATOR_PORT} is taken: the emulator serves on {emulator_port}", flush=True)
    started = time.perf_counter()
    path = state_path(data_dir)
    # the Jobs API token, for the demo's back history (run-now on this emulator)
    token_file = data_dir / "emulator" / "token"

    def jobs_ready(emulator, dsn: str) -> None:
        """The jobs serve: written while Airflow starts, so the back history can run."""
        token_file.touch(mode=0o600)
        token_file.write_text(emulator.token or "")
        _write_state(path, {**common(dsn), "urls": {"databricks": emulator.url},
                            "starting": "airflow"})  # fmt: skip

    def common(dsn: str) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "data_dir": str(data_dir),
            "databricks_token_file": str(token_file),
            "postgres": describe_dsn(dsn),
            "dsn": dsn,
            "log": str(data_dir / LOG_FILE),
        }

    with local_platform(
        data_dir, emulator_port=emulator_port, airflow=True, jobs_ready=jobs_ready
    ) as platform:
        services = platform.airflow
        if services.port != AIRFLOW_PORT:
            print(f"port {AIRFLOW_PORT} is taken: Airflow serves on {services.port}", flush=True)
        state = {
            **common(platform.dsn),
            "urls": platform.urls,
            "airflow_user": USERNAME,
            "airflow_password_file": services.env[
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"
            ],
            "airflow_pids": services.pids,
            "airflow_logs": str(services.log_dir),
            "startup_s": {
                **{f"airflow {k}": round(v, 1) for k, v in services.timings_s.items()},
                "total": round(time.perf_counter() - started, 1),
            },
        }
        _write_state(path, state)
        print(f"up: {json.dumps(state['urls'])} startup {state['startup_s']}", flush=True)
        try:
            stop.wait()
        finally:
            path.unlink(missing_ok=True)
            print("stopping", flush=True)
    print("stopped", flush=True)


def _write_state(path: Path, state: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    tmp.chmod(0o600)
    tmp.replace(path)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="the local platform's supervisor (eodrisk up)")
    parser.add_argument("--data-dir", type=Path, required=True)
    serve(parser.parse_args().data_dir.resolve())

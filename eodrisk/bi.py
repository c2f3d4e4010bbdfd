"""``eodrisk bi``: Apache Superset over the ``bi`` views, provisioned as code.

eodrisk bi install                                   build Superset's virtualenv (make superset)
eodrisk bi [--data-dir DIR] [--host H] [--port N]    serve the dashboards (after make demo)

Superset's pins clash with Airflow's, so it lives in its own virtualenv, built from
``eodrisk/superset/requirements.txt`` outside the repository (``~/.cache/eodrisk``, keyed by
that file's hash: a clean clone on the same machine reuses it). Its metadata is SQLite
under ``DIR/superset/`` with a secret key and an admin password generated there on first
start (files readable by their owner only; nothing in code). At every start the dashboards
checked in under ``eodrisk/superset/dashboards/`` (Superset's export format) are imported,
with the database connection pointed at this Postgres as ``risk_bi``, the BI tool's login
in ``risk_reader``: it reads ``bi`` and nothing of ``risk`` (sql/0008).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import io
import os
import secrets
import subprocess
import sys
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode, urlunsplit

import yaml

SUPERSET_DIR = Path(__file__).with_name("superset")
REQUIREMENTS = SUPERSET_DIR / "requirements.txt"
DASHBOARDS = SUPERSET_DIR / "dashboards"
DASHBOARD_SLUG = "eod-risk"
BI_LOGIN = "risk_bi"  # sql/0008: login in risk_reader
ADMIN = "admin"
VENV_ENV = "EODRISK_SUPERSET_VENV"
DEFAULT_DATA_DIR = Path("var/demo")
START_TIMEOUT_S = 300


class BIError(RuntimeError):
    """Superset cannot be set up or started; the message says what to do."""


# ------------------------------------------------------------------------------- virtualenv


def venv_dir() -> Path:
    """Superset's virtualenv: ``$EODRISK_SUPERSET_VENV``, else under the user's cache."""
    if os.environ.get(VENV_ENV):
        return Path(os.environ[VENV_ENV])
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()[:12]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "eodrisk" / f"superset-{digest}"


def install(venv: Path | None = None) -> Path:
    """Build the virtualenv from the pinned requirements (nothing to do when it is there)."""
    venv = venv or venv_dir()
    marker = venv / ".installed"
    if marker.exists():
        return venv
    # One builder at a time: two clones (or CI gate copies) building the same cached venv at
    # once would each `venv --clear` the other's half-installed packages. The later one
    # waits on the lock and finds the marker.
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f"{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists():
            return venv
        python = os.environ.get("EODRISK_SUPERSET_PYTHON", sys.executable)
        subprocess.run([python, "-m", "venv", "--clear", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
        subprocess.run([*pip, "--upgrade", "pip"], check=True)
        subprocess.run([*pip, "-r", str(REQUIREMENTS)], check=True)
        marker.write_text(REQUIREMENTS.read_text())
    return venv


# ----------------------------------------------------------------------------- configuration


def _secret(path: Path, nbytes: int = 32) -> str:
    """A random secret kept in ``path`` (created once, owner-only)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(nbytes))
    return path.read_text().strip()


def bi_uri(dsn: str) -> str:
    """SQLAlchemy URI of ``dsn``'s database as the BI login (no password: set out of band)."""
    from psycopg2.extensions import parse_dsn

    parts = parse_dsn(dsn)
    query = {k: v for k, v in parts.items() if k in ("sslmode", "connect_timeout")}
    host = parts.get("host", "127.0.0.1")
    netloc = f"{BI_LOGIN}@" + ("" if host.startswith("/") else f"{host}:{parts.get('port', 5432)}")
    if host.startswith("/"):
        query["host"] = host
        if parts.get("port"):
            query["port"] = parts["port"]
    return urlunsplit(
        ("postgresql+psycopg2", netloc, "/" + parts.get("dbname", "postgres"), urlencode(query), "")
    )


def write_config(home: Path) -> Path:
    config = home / "superset_config.py"
    secret_file = home / "secret_key"
    _secret(secret_file)
    config.write_text(
        "# Written by eodrisk bi at every start; edit eodrisk/bi.py instead.\n"
        "from pathlib import Path\n"
        f"SECRET_KEY = Path({str(secret_file)!r}).read_text().strip()\n"
        f"SQLALCHEMY_DATABASE_URI = 'sqlite:///{home / 'superset.db'}'\n"
        "FEATURE_FLAGS = {'DASHBOARD_NATIVE_FILTERS': True, 'ALLOW_ADHOC_SUBQUERY': True}\n"
        "TALISMAN_ENABLED = False  # loopback only; the CSP would need the app's own hosts\n"
        "WTF_CSRF_ENABLED = True\n"
        "SUPERSET_WEBSERVER_TIMEOUT = 120\n"
        "SQLLAB_CTAS_NO_LIMIT = True\n"
        "PREVENT_UNSAFE_DB_CONNECTIONS = False  # the metadata DB is SQLite, the data Postgres\n"
    )
    return config


def export_zip(uri: str) -> bytes:
    """The checked-in export as the ZIP Superset imports, its database pointed at ``uri``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(DASHBOARDS.rglob("*.yaml")):
            text = path.read_text()
            if path.parent.name == "databases":
                database = yaml.safe_load(text)
                database["sqlalchemy_uri"] = uri
                text = yaml.safe_dump(database, sort_keys=False)
            archive.writestr(f"eodrisk_export/{path.relative_to(DASHBOARDS)}", text)
    return buffer.getvalue()


def _superset(venv: Path, env: dict[str, str], *args: str) -> None:
    run = subprocess.run(
        [str(venv / "bin" / "superset"), *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if run.returncode != 0:
        raise BIError(f"superset {' '.join(args[:2])} failed: {run.stderr.strip()[-3000:]}")


def prepare(home: Path, dsn: str, venv: Path) -> tuple[dict[str, str], str]:
    """Metadata DB upgraded, roles, admin user and the dashboards imported.

    Returns the environment to run Superset with and the admin password.
    """
    home.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "SUPERSET_CONFIG_PATH": str(write_config(home)),
        "FLASK_APP": "superset.app:create_app()",
        "PYTHONWARNINGS": "ignore",
    }
    version = (venv / ".installed").read_text()
    initialised = home / ".initialised"
    password = _secret(home / "admin_password", 18)
    if not initialised.exists() or initialised.read_text() != version:
        _metadata_from_template(home, env, venv)
        with contextlib.suppress(BIError):  # exists already after an upgrade
            _superset(venv, env, "fab", "create-admin", *_admin_fields(), "--password", password)
        initialised.write_text(version)
    bundle = home / "dashboards.zip"
    bundle.write_bytes(export_zip(bi_uri(dsn)))
    _superset(venv, env, "import-dashboards", "--path", str(bundle), "--username", ADMIN)
    return env, password


def _admin_fields() -> list[str]:
    return [
        "--username",
        ADMIN,
        "--firstname",
        "eodrisk",
        "--lastname",
        "admin",
        "--email",
        "admin@eodrisk.invalid",
    ]


def _metadata_from_template(home: Path, env: dict[str, str], venv: Path) -> None:
    """An upgraded, initialised metadata DB (roles and permissions; users are per home).

    A new home copies the virtualenv's template, made once per pinned version (``db
    upgrade`` + ``init`` take a minute or two on a busy machine); an existing one (a
    version change) is upgraded in place, keeping what its users built.
    """
    import shutil

    template = venv / "metadata-template.db"
    database = home / "superset.db"
    if not database.exists() and template.exists():
        shutil.copyfile(template, database)
        return
    fresh = not database.exists()
    _superset(venv, env, "db", "upgrade")
    _superset(venv, env, "init")
    if fresh:
        shutil.copyfile(database, template.with_suffix(".tmp"))
        template.with_suffix(".tmp").replace(template)


@contextlib.contextmanager
def running(
    home: Path, dsn: str, *, host: str = "127.0.0.1", port: int = 8088, venv: Path | None = None
) -> Iterator[tuple[str, str]]:
    """Superset (gunicorn, one worker) serving the dashboards; yields (base URL, password)."""
    venv = venv or venv_dir()
    if not (venv / ".installed").exists():
        raise BIError(f"Superset is not installed at {venv}: run `make superset` first")
    env, password = prepare(home, dsn, venv)
    log = (home / "superset.log").open("ab")
    server = subprocess.Popen(
        [
            str(venv / "bin" / "gunicorn"),
            "--workers=1",
            "--threads=8",
            "--timeout=120",
            f"--bind={host}:{port}",
            "superset.app:create_app()",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://{host}:{port}"
    try:
        _wait_healthy(url, server, home / "superset.log")
        yield url, password
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def _wait_healthy(url: str, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise BIError(f"Superset exited ({server.returncode}); its log: {log}")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"{url}/health", timeout=5) as response,
        ):
            if response.status == 200:
                return
        time.sleep(1.0)
    raise BIError(f"Superset did not answer {url}/health in {START_TIMEOUT_S} s; its log: {log}")


# ------------------------------------------------------------------------------------ command


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="eodrisk bi", description=__doc__.splitlines()[0])
    parser.add_argument("action", nargs="?", choices=("serve", "install"), default="serve")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8088)
    args = parser.parse_args(argv)
    if args.action == "install":
        started = time.perf_counter()
        venv = install()
        print(f"Superset in {venv} ({time.perf_counter() - started:.0f} s)")
        return 0

    from databricks_jobs.postgres import apply_migrations
    from eodrisk.postgres_server import DSN_ENV, postgres

    if not os.environ.get(DSN_ENV) and not (args.data_dir / "postgres").exists():
        print(f"no Postgres under {args.data_dir}: run `make demo` first", file=sys.stderr)
        return 2
    home = args.data_dir / "superset"
    with postgres(args.data_dir / "postgres") as dsn:
        apply_migrations(dsn)  # risk_bi (sql/0008) on a database loaded before it existed
        try:
            with running(home, dsn, host=args.host, port=args.port) as (url, _):
                print(
                    f"Superset at {url}/superset/dashboard/{DASHBOARD_SLUG}/ "
                    f"(user {ADMIN}, password in {home / 'admin_password'}); Ctrl-C stops it",
                    flush=True,
                )
                with contextlib.suppress(KeyboardInterrupt):
                    while True:
                        time.sleep(3600)
        except BIError as exc:
            print(f"eodrisk bi: {exc}", file=sys.stderr)
            return 2
    return 0

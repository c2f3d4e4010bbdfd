"""Help and footprint of the CLI (issue 18): every command is listed in `eodrisk --help`,
every option of every command has help text, and printed DSNs/commands run as printed."""

from __future__ import annotations

import argparse
import subprocess

import pytest

from eodrisk import cli
from eodrisk.demo import _sh
from eodrisk.postgres_server import describe

COMMANDS = (
    "up", "down", "demo", "generate", "backfill", "emulator", "status", "metrics", "monitoring",
    "report", "db", "query",
)  # fmt: skip
SUBCOMMANDS = {"db": ["upgrade"], "monitoring": ["up"]}


def test_every_command_is_listed_in_the_top_level_help(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    listed = capsys.readouterr().out
    for command in COMMANDS:
        assert f"    {command} " in listed or f"    {command}\n" in listed, command


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_has_help_text(command, monkeypatch, capsys):
    """Records every argument any parser of the command declares while printing its help."""
    missing: list[str] = []
    original = argparse._ActionsContainer.add_argument

    def add_argument(self, *args, **kwargs):
        action = original(self, *args, **kwargs)
        if (
            not action.help
            and action.dest != "help"
            and not isinstance(action, argparse._SubParsersAction)
        ):
            missing.append(f"{getattr(self, 'prog', '?')} {'/'.join(args) or action.dest}")
        return action

    monkeypatch.setattr(argparse._ActionsContainer, "add_argument", add_argument)
    for argv in (
        [command, "--help"],
        *([command, sub, "--help"] for sub in SUBCOMMANDS.get(command, [])),
    ):
        with pytest.raises(SystemExit) as done:
            cli.main(argv)
        assert done.value.code == 0, argv
    capsys.readouterr()
    assert missing == []


def test_the_printed_embedded_postgres_dsn_works_with_psql(pg_server_dsn, tmp_path):
    """The embedded server listens on a Unix socket: the printed DSN carries it as libpq's
    ``host`` parameter, so ``psql`` takes it as printed (here: a socket-only DSN)."""
    import psycopg2

    with psycopg2.connect(pg_server_dsn) as conn, conn.cursor() as cur:
        cur.execute("show unix_socket_directories")
        socket_dir = cur.fetchone()[0].split(",")[0].strip()
        port = conn.get_dsn_parameters()["port"]
    conn.close()
    user = psycopg2.extensions.parse_dsn(pg_server_dsn).get("user", "postgres")
    dbname = psycopg2.extensions.parse_dsn(pg_server_dsn).get("dbname", "postgres")
    dsn = f"host={socket_dir} port={port} user={user} dbname={dbname}"
    printed = describe(dsn)
    assert printed.startswith("postgresql://") and "password" not in printed
    result = subprocess.run(
        f"psql {_sh(printed)} -tAc 'select 41 + 1'",
        shell=True, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "42"


def test_shell_quoting_of_printed_commands_round_trips():
    for arg in ("/tmp/demo", "/tmp/my demo", "select 'x' from t where a = '2026-11-24'", 'a"b$c'):
        out = subprocess.run(
            f"printf %s {_sh(arg)}", shell=True, capture_output=True, text=True, check=True
        ).stdout
        assert out == arg


@pytest.mark.parametrize(
    ("raised", "line"),
    [
        (KeyboardInterrupt(), "eodrisk: interrupted (Ctrl-C); stopped"),
        # while the demo follows a night that goes on in Airflow
        (
            KeyboardInterrupt("stopped following; the night goes on in Airflow (URL)"),
            "eodrisk: interrupted (Ctrl-C); stopped following; the night goes on in Airflow (URL)",
        ),
    ],
)
def test_ctrl_c_ends_with_one_line_and_exit_130(monkeypatch, capsys, raised, line):
    import eodrisk.demo

    def interrupted(*_, **__):
        raise raised

    monkeypatch.setattr(eodrisk.demo, "run_demo", interrupted)
    assert cli.main(["demo", "--trades", "10"]) == 130
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip().splitlines() == [line]

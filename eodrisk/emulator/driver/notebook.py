"""Run a Databricks *source-format* notebook (``# Databricks notebook source``) locally.

Cells are separated by ``# COMMAND ----------``. A cell made only of ``# MAGIC`` lines is a
magic cell: ``%md`` is documentation and skipped, ``%sql`` runs through ``spark.sql``;
other magics (``%pip``, ``%run``, ``%sh``...) are not supported and fail the task. Python
cells run in one shared namespace holding ``spark``, ``dbutils`` and ``display``.

``dbutils`` is the subset jobs use: ``widgets`` (values are the task's ``base_parameters``
over the job parameters, as Databricks pushes both down) and ``notebook.exit(value)``,
whose value becomes the task's ``notebook_output.result``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

CELL_SEPARATOR = "# COMMAND ----------"
MAGIC_PREFIX = "# MAGIC"
HEADER = "# Databricks notebook source"
RESULT_MAX_BYTES = 5 * 1024 * 1024


class NotebookExit(Exception):  # noqa: N818 - mirrors dbutils.notebook.exit
    """Raised by ``dbutils.notebook.exit`` to end the notebook with a result."""

    def __init__(self, value: str) -> None:
        super().__init__(value)
        self.value = value


class InputWidgetNotDefined(Exception):  # noqa: N818 - the name Databricks reports
    """``dbutils.widgets.get`` of a widget that has no value."""


class _Widgets:
    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = dict(values)

    def get(self, name: str) -> str:
        if name not in self._values:
            raise InputWidgetNotDefined(f"No input widget named {name} is defined")
        return self._values[name]

    def getAll(self) -> dict[str, str]:  # noqa: N802 - dbutils API name
        return dict(self._values)

    def text(self, name: str, defaultValue: str = "", label: str | None = None) -> None:
        self._values.setdefault(name, defaultValue)

    dropdown = combobox = multiselect = text  # same contract for a job run


class _Notebook:
    @staticmethod
    def exit(value: Any) -> None:
        raise NotebookExit("" if value is None else str(value))


class DbUtils:
    """The part of ``dbutils`` available to notebooks run by the emulator."""

    def __init__(self, widgets: Mapping[str, str]) -> None:
        self.widgets = _Widgets(widgets)
        self.notebook = _Notebook()


def run_notebook(path: Path, widgets: Mapping[str, str], spark: Any) -> str | None:
    """Execute the notebook; return the ``dbutils.notebook.exit`` value, if any."""
    namespace: dict[str, Any] = {
        "__name__": "__main__",
        "__file__": str(path),
        "spark": spark,
        "dbutils": DbUtils(widgets),
        "display": _display,
    }
    try:
        for index, cell in enumerate(split_cells(path.read_text())):
            _run_cell(cell, index, path, namespace, spark)
    except NotebookExit as exit_:
        return exit_.value
    return None


def split_cells(source: str) -> list[str]:
    """The notebook's cells, without the header line."""
    lines = source.splitlines()
    if lines and lines[0].strip() == HEADER:
        lines = lines[1:]
    cells, current = [], []
    for line in lines:
        if line.strip() == CELL_SEPARATOR:
            cells.append("\n".join(current))
            current = []
        else:
            current.append(line)
    cells.append("\n".join(current))
    return [cell for cell in cells if cell.strip()]


def _run_cell(cell: str, index: int, path: Path, namespace: dict[str, Any], spark: Any) -> None:
    lines = [line for line in cell.splitlines() if line.strip()]
    if not all(line.startswith(MAGIC_PREFIX) for line in lines):
        exec(compile(cell, f"{path}:cell{index + 1}", "exec"), namespace)
        return
    body = [line[len(MAGIC_PREFIX) :].removeprefix(" ") for line in lines]
    magic, _, rest = body[0].partition(" ")
    if magic == "%md":
        return
    if magic == "%sql":
        spark.sql("\n".join([rest, *body[1:]]).strip())
        return
    raise NotImplementedError(f"Magic command {magic} is not supported by the Jobs API emulator")


def _display(value: Any) -> None:
    show = getattr(value, "show", None)
    if callable(show):
        show(truncate=False)
    else:
        print(value)

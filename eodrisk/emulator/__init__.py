"""A local emulator of the Databricks Jobs API 2.2, serving the jobs of ``bundle.yml``.

Modules: :mod:`~eodrisk.emulator.bundle` (job definitions from the bundle, per target),
:mod:`~eodrisk.emulator.runs` (run model and persistent store),
:mod:`~eodrisk.emulator.scheduler` (run life cycle), :mod:`~eodrisk.emulator.runtime`
(the Databricks Runtime as a cached virtualenv, with the bundle's built artifacts installed),
:mod:`~eodrisk.emulator.worker` (worker processes on that environment's Python) running
:mod:`~eodrisk.emulator.driver` (the harness inside them), :mod:`~eodrisk.emulator.service`
(API semantics),
:mod:`~eodrisk.emulator.api` (HTTP), :mod:`~eodrisk.emulator.pages` (run pages),
:mod:`~eodrisk.emulator.app` (:class:`Emulator`) and :mod:`~eodrisk.emulator.cli`.
"""

from eodrisk.emulator.app import Emulator
from eodrisk.emulator.cli import main

__all__ = ["Emulator", "main"]

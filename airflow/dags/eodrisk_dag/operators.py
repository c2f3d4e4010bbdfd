"""``DatabricksRunNowOperator`` with one fix for the deferrable + ``repair_run`` path.

In apache-airflow-providers-databricks 7.23 the deferrable completion
(``DatabricksRunNowOperator.execute_complete``) repairs whenever the trigger event carries
``repair_run=True`` — also when the run *succeeded*, so every successful deferred run is sent
``runs/repair`` with ``rerun_all_failed_tasks`` and the task fails on the API's 400 ("no
failed tasks to repair"). The synchronous path repairs only failed runs. This subclass makes
the deferrable path do the same; remove it once the provider checks the result state.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.databricks.hooks.databricks import RunState
from airflow.providers.databricks.operators.databricks import DatabricksRunNowOperator


class RepairingRunNowOperator(DatabricksRunNowOperator):
    """Run a job now; on a failed run repair it (once per try), never a successful one."""

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> None:
        succeeded = bool(
            event
            and event.get("run_state")
            and RunState.from_json(event["run_state"]).is_successful
        )
        if event and succeeded:
            event = {**event, "repair_run": False}
        return super().execute_complete(context, event)
